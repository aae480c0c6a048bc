//! `none`: the sandbox keeps only its loopback interface, brought up.

use serde_json::json;

use super::{netns_of, no_addresses_or_ports, no_subnets};
use crate::driver::{JoinInfo, NetworkDriver};
use crate::error::DriverError;
use crate::model::{Endpoint, Network, Sandbox};
use crate::netlink::Netlink;

pub struct NullDriver;

impl NetworkDriver for NullDriver {
    fn name(&self) -> &'static str {
        "null"
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
        let ns = netns_of(sandbox, "none")?;
        let mut nl = Netlink::open_in(&ns)?;
        if let Some(lo) = nl.link_by_name("lo")? {
            if !lo.up {
                nl.set_up(lo.index)?;
            }
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
        let sandboxes: Vec<_> = endpoints
            .iter()
            .map(|ep| {
                let links = match &ep.sandbox {
                    Some(Sandbox::Netns(p)) => crate::netns::Netns::open(p)
                        .and_then(|ns| Netlink::open_in(&ns))
                        .and_then(|mut nl| nl.links())
                        .map(|ls| {
                            ls.into_iter()
                                .map(|l| json!({"name": l.name, "up": l.up}))
                                .collect::<Vec<_>>()
                        })
                        .map_err(|e| e.to_string()),
                    _ => Err("no namespace".into()),
                };
                json!({"id": ep.id, "sandbox": ep.sandbox, "links": links.unwrap_or_default()})
            })
            .collect();
        Ok(json!({ "sandboxes": sandboxes }))
    }

    fn reconcile(
        &self,
        _net: &Network,
        _endpoints: &[Endpoint],
    ) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}
