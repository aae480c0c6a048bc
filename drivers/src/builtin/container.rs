//! `container:<netns>`: a container joins another sandbox's namespace. weft does not place
//! processes; attaching checks that the named namespace exists and, when the joining sandbox is
//! given, that it really is that same namespace, and records the attachment.

use serde_json::json;

use super::{netns_of, no_addresses_or_ports, no_subnets};
use crate::driver::{JoinInfo, NetworkDriver};
use crate::error::DriverError;
use crate::model::{Endpoint, Network, Sandbox};
use crate::netns::Netns;

/// Endpoint option naming the namespace joined.
pub const JOINS: &str = "weft.container";

pub struct ContainerDriver;

impl NetworkDriver for ContainerDriver {
    fn name(&self) -> &'static str {
        "container"
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
        let target = ep.options.get(JOINS).ok_or_else(|| {
            DriverError::Invalid(
                "container mode needs the namespace to join: container:<path>".into(),
            )
        })?;
        Netns::open(target).map(drop)
    }

    fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sandbox: &Sandbox,
    ) -> Result<JoinInfo, DriverError> {
        self.validate_endpoint(net, ep)?;
        let target = Netns::open(&ep.options[JOINS])?;
        let joiner = netns_of(sandbox, "container")?;
        let same = {
            use std::os::unix::fs::MetadataExt;
            let a = std::fs::metadata(target.path());
            let b = std::fs::metadata(joiner.path());
            matches!((a, b), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino())
        };
        if !same {
            return Err(DriverError::Invalid(format!(
                "{} is not the namespace of container:{}; run the process in that namespace",
                joiner.path().display(),
                target.path().display()
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
        Ok(json!({
            "joined": endpoints.iter().map(|e| json!({
                "id": e.id,
                "sandbox": e.sandbox,
                "joins": e.options.get(JOINS),
                "present": e.options.get(JOINS).is_some_and(|p| Netns::open(p).is_ok()),
            })).collect::<Vec<_>>(),
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
