//! The driver contract (libnetwork's CNM driver API in Rust).
//!
//! Every method is idempotent: calling it twice, or after a crash half-way, converges to the same
//! kernel state. A method that fails part-way undoes what it did before returning the error.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::DriverError;
use crate::model::{Endpoint, Network, Sandbox};

/// What the sandbox side needs after a join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinInfo {
    /// Name of the container-side interface in the host namespace (only for
    /// `Sandbox::Delegated`; the consumer moves and renames it).
    pub src_name: Option<String>,
    pub gateway_v4: Option<IpAddr>,
    pub gateway_v6: Option<IpAddr>,
    /// Extra routes the sandbox needs beyond the default route via the gateway.
    pub static_routes: Vec<StaticRoute>,
    /// Name of the host-side interface.
    pub host_ifname: String,
    /// The addresses as the container interface carries them (the routed driver gives host
    /// prefixes, /32 and /128, where IPAM handed out the subnet's length). Empty in records
    /// made before weft kept it: the endpoint's addresses then.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRoute {
    pub destination: IpNet,
    /// `None` = on-link (connected) route.
    pub next_hop: Option<IpAddr>,
}

pub trait NetworkDriver: Send + Sync {
    /// The name networks use to pick this driver (`bridge`, `routed`, …).
    fn name(&self) -> &'static str;

    /// Whether each subnet gets a gateway address on the host (reserved in IPAM, put on the
    /// network's interface). Drivers whose containers route through a link-local gateway nothing
    /// owns say no.
    fn uses_gateway(&self) -> bool {
        true
    }

    /// Checks options and subnets without touching the kernel.
    fn validate_network(&self, net: &Network) -> Result<(), DriverError>;
    fn create_network(&self, net: &Network) -> Result<(), DriverError>;
    /// Removes every kernel object of the network; keeps going past errors and reports them all.
    fn delete_network(&self, net: &Network) -> Result<(), DriverError>;

    /// Checks an endpoint (name, addresses, ports) without touching the kernel.
    fn validate_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError>;
    /// Creates the link pair and attaches the host side; with `Sandbox::Netns` the container side
    /// is created inside that namespace and configured (addresses, MAC, routes, up).
    fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sandbox: &Sandbox,
    ) -> Result<JoinInfo, DriverError>;
    /// Removes the link pair (both sides) and anything else `join` made.
    fn leave(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError>;

    /// Publishes the endpoint's ports (DNAT) and anything else that reaches it from outside.
    fn program_external_connectivity(
        &self,
        net: &Network,
        ep: &Endpoint,
    ) -> Result<(), DriverError>;
    fn revoke_external_connectivity(&self, net: &Network, ep: &Endpoint)
        -> Result<(), DriverError>;

    /// What the kernel really has for this network (links, addresses, rules), for `inspect`.
    fn inspect_network(
        &self,
        net: &Network,
        endpoints: &[Endpoint],
    ) -> Result<serde_json::Value, DriverError>;

    /// Removes kernel objects this driver owns on `net` that belong to none of `endpoints`, and
    /// re-creates missing network-level objects. Returns what it did, one line per change.
    fn reconcile(&self, net: &Network, endpoints: &[Endpoint]) -> Result<Vec<String>, DriverError>;

    /// Removes kernel objects this driver made for networks that are not in `networks` (every
    /// network weft knows, of any driver) — left by a crash, or by a store that was wiped.
    /// Returns what it did, one line per change.
    fn remove_orphans(&self, networks: &[Network]) -> Result<Vec<String>, DriverError> {
        let _ = networks;
        Ok(Vec::new())
    }
}
