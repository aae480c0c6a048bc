//! `host`: the container shares the host's namespace. Nothing to set up; attaching checks the
//! namespace really is the host's, and inspecting shows the host's own interfaces.

use serde_json::json;

use super::{netns_of, no_addresses_or_ports, no_subnets};
use crate::driver::{JoinInfo, NetworkDriver};
use crate::error::DriverError;
use crate::model::{Endpoint, Network, Sandbox};
use crate::netlink::Netlink;

pub struct HostDriver;

impl NetworkDriver for HostDriver {
    fn name(&self) -> &'static str {
        "host"
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
        no_addresses_or_ports(net, ep)
    }

    fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sandbox: &Sandbox,
    ) -> Result<JoinInfo, DriverError> {
        no_addresses_or_ports(net, ep)?;
        let ns = netns_of(sandbox, "host")?;
        if !ns.same_as_current() {
            return Err(DriverError::Invalid(format!(
                "{} is not the host's network namespace; on the host network a container shares the host's own (e.g. /proc/1/ns/net)",
                ns.path().display()
            )));
        }
        Ok(JoinInfo {
            src_name: None,
            gateway_v4: None,
            gateway_v6: None,
            static_routes: Vec::new(),
            host_ifname: String::new(),
        })
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
        let mut nl = Netlink::open()?;
        let addresses = nl.addresses(None)?;
        let links: Vec<_> = nl
            .links()?
            .into_iter()
            .map(|l| {
                let addrs: Vec<String> = addresses
                    .iter()
                    .filter(|(i, _)| *i == l.index)
                    .map(|(_, a)| a.to_string())
                    .collect();
                json!({"name": l.name, "up": l.up, "mtu": l.mtu, "addresses": addrs})
            })
            .collect();
        Ok(json!({
            "host_links": links,
            "sandboxes": endpoints.iter().map(|e| json!({"id": e.id, "sandbox": e.sandbox})).collect::<Vec<_>>(),
        }))
    }

    fn reconcile(
        &self,
        _net: &Network,
        _endpoints: &[Endpoint],
    ) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}
