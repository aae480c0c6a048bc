//! From an endpoint's published ports to the DNAT entries the firewall holds.

use weft_drivers::firewall::{endpoint_targets, PortTarget};
use weft_drivers::{DriverError, Endpoint, Network};

use crate::options::BridgeConfig;

/// The endpoint's DNAT entries; mappings without a host address bind the network's
/// `host_binding_ipv4` when it has one.
pub fn targets(net: &Network, ep: &Endpoint) -> Result<Vec<PortTarget>, DriverError> {
    let config = BridgeConfig::from_network(net)?;
    endpoint_targets(ep, config.host_binding)
}
