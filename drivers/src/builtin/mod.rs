//! The network modes every Docker user knows besides real networks: `none` (loopback only),
//! `host` (the host's own namespace) and `container:<netns>` (another sandbox's namespace).
//! Each is a driver with (almost) nothing to do, so its attachments are recorded, listed and
//! inspected like any other. One driver type serves the three; the modes differ only in what
//! joining checks or sets up and in what inspecting shows.

pub mod container;
mod host;
mod null;

use crate::driver::{JoinInfo, NetworkDriver};
use crate::error::DriverError;
use crate::model::{Endpoint, Network, Sandbox};
use crate::netns::Netns;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Driver `null`, network `none`.
    None,
    /// Driver `host`, network `host`.
    Host,
    /// Driver `container`, network `container` (used as `container:<netns>`).
    Container,
}

pub struct BuiltinDriver(pub Mode);

impl BuiltinDriver {
    /// The three built-in drivers.
    pub fn all() -> [BuiltinDriver; 3] {
        [
            BuiltinDriver(Mode::None),
            BuiltinDriver(Mode::Host),
            BuiltinDriver(Mode::Container),
        ]
    }
}

/// The sandbox of a built-in mode must be a namespace file.
fn netns_of(sandbox: &Sandbox, mode: &str) -> Result<Netns, DriverError> {
    match sandbox {
        Sandbox::Netns(path) => Netns::open(path),
        Sandbox::Delegated => Err(DriverError::Invalid(format!(
            "the {mode} network attaches a namespace given by path; it has no interface to hand over"
        ))),
    }
}

/// Built-in modes have no addresses and publish no ports.
fn no_addresses_or_ports(net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
    if !ep.addresses.is_empty() {
        return Err(DriverError::Invalid(format!(
            "network {} assigns no addresses; drop --ip",
            net.name
        )));
    }
    if !ep.ports.is_empty() {
        return Err(DriverError::Invalid(format!(
            "network {} publishes no ports; drop -p",
            net.name
        )));
    }
    Ok(())
}

fn no_subnets(net: &Network) -> Result<(), DriverError> {
    if net.subnets.is_empty() {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "network {} ({}) takes no subnets",
            net.name, net.driver
        )))
    }
}

fn nothing_to_hand_over() -> JoinInfo {
    JoinInfo {
        src_name: None,
        gateway_v4: None,
        gateway_v6: None,
        static_routes: Vec::new(),
        host_ifname: String::new(),
        addresses: Vec::new(),
    }
}

impl NetworkDriver for BuiltinDriver {
    fn name(&self) -> &'static str {
        match self.0 {
            Mode::None => "null",
            Mode::Host => "host",
            Mode::Container => "container",
        }
    }

    fn uses_gateway(&self) -> bool {
        false
    }

    fn validate_network(&self, net: &Network) -> Result<(), DriverError> {
        no_subnets(net)
    }

    fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        no_subnets(net)
    }

    fn delete_network(&self, _net: &Network) -> Result<(), DriverError> {
        Ok(())
    }

    fn validate_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        no_addresses_or_ports(net, ep)?;
        match self.0 {
            Mode::Container => container::validate(ep),
            Mode::None | Mode::Host => Ok(()),
        }
    }

    fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sandbox: &Sandbox,
    ) -> Result<JoinInfo, DriverError> {
        self.validate_endpoint(net, ep)?;
        match self.0 {
            Mode::None => null::join(&netns_of(sandbox, "none")?)?,
            Mode::Host => host::join(&netns_of(sandbox, "host")?)?,
            Mode::Container => container::join(ep, &netns_of(sandbox, "container")?)?,
        }
        Ok(nothing_to_hand_over())
    }

    fn leave(&self, _net: &Network, _ep: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }

    fn program_external_connectivity(
        &self,
        net: &Network,
        ep: &Endpoint,
    ) -> Result<(), DriverError> {
        no_addresses_or_ports(net, ep)
    }

    fn revoke_external_connectivity(
        &self,
        _net: &Network,
        _ep: &Endpoint,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    fn inspect_network(
        &self,
        _net: &Network,
        endpoints: &[Endpoint],
    ) -> Result<serde_json::Value, DriverError> {
        match self.0 {
            Mode::None => null::inspect(endpoints),
            Mode::Host => host::inspect(endpoints),
            Mode::Container => container::inspect(endpoints),
        }
    }

    fn reconcile(
        &self,
        _net: &Network,
        _endpoints: &[Endpoint],
    ) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests;
