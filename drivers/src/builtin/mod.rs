//! The network modes every Docker user knows besides real networks: `none` (loopback only),
//! `host` (the host's own namespace) and `container:<netns>` (another sandbox's namespace).
//! Each is a driver with (almost) nothing to do, so its attachments are recorded, listed and
//! inspected like any other.

pub mod container;
mod host;
mod null;

pub use container::ContainerDriver;
pub use host::HostDriver;
pub use null::NullDriver;

use crate::error::DriverError;
use crate::model::{Endpoint, Network, Sandbox};
use crate::netns::Netns;

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

#[cfg(test)]
mod tests;
