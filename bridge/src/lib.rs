//! The bridge driver: docker0-style bridge networks. A Linux bridge per network with the gateway
//! addresses on it, a veth pair per endpoint, masquerade for traffic leaving the network, DNAT
//! port publishing, ICC on/off (bridge port isolation), isolation between networks and internal
//! networks (nft), IPv6 dual stack.
//!
//! The driver keeps no state of its own: every kernel object's name derives from the network or
//! endpoint id, so each method can be repeated or resumed after a crash.

mod endpoint;
mod inspect;
pub mod names;
mod network;
pub mod options;
mod ports;
mod reconcile;

use weft_drivers::firewall::{Firewall, NftRunner, SystemNft};
use weft_drivers::{DriverError, Endpoint, JoinInfo, Network, NetworkDriver, Sandbox};

pub use options::BridgeConfig;

pub struct BridgeDriver<R: NftRunner = SystemNft> {
    firewall: Firewall<R>,
}

impl BridgeDriver<SystemNft> {
    pub fn new() -> Self {
        BridgeDriver {
            firewall: Firewall::system(),
        }
    }
}

impl Default for BridgeDriver<SystemNft> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: NftRunner> BridgeDriver<R> {
    pub fn with_firewall(firewall: Firewall<R>) -> Self {
        BridgeDriver { firewall }
    }
}

impl<R: NftRunner> NetworkDriver for BridgeDriver<R> {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn validate_network(&self, net: &Network) -> Result<(), DriverError> {
        network::validate(net).map(drop)
    }

    fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        network::create(&self.firewall, net)
    }

    fn delete_network(&self, net: &Network) -> Result<(), DriverError> {
        network::delete(&self.firewall, net)
    }

    fn validate_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        endpoint::validate(net, ep)
    }

    fn join(
        &self,
        net: &Network,
        ep: &Endpoint,
        sandbox: &Sandbox,
    ) -> Result<JoinInfo, DriverError> {
        endpoint::join(net, ep, sandbox)
    }

    fn leave(&self, _net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        endpoint::leave(ep)
    }

    fn program_external_connectivity(
        &self,
        net: &Network,
        ep: &Endpoint,
    ) -> Result<(), DriverError> {
        self.firewall.publish(&ports::targets(net, ep)?)
    }

    fn revoke_external_connectivity(
        &self,
        net: &Network,
        ep: &Endpoint,
    ) -> Result<(), DriverError> {
        self.firewall.unpublish(&ports::targets(net, ep)?)
    }

    fn inspect_network(
        &self,
        net: &Network,
        endpoints: &[Endpoint],
    ) -> Result<serde_json::Value, DriverError> {
        inspect::network(&self.firewall, net, endpoints)
    }

    fn reconcile(&self, net: &Network, endpoints: &[Endpoint]) -> Result<Vec<String>, DriverError> {
        reconcile::network(&self.firewall, net, endpoints)
    }

    fn remove_orphans(&self, networks: &[Network]) -> Result<Vec<String>, DriverError> {
        reconcile::orphans(networks)
    }
}
