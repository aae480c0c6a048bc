//! The routed driver: Calico-style attachment without a bridge. Each container gets a veth pair;
//! the host side has no address, a fixed MAC and proxy ARP/NDP on; the container's default
//! route goes through a link-local gateway nothing owns (169.254.1.1, and the host side's IPv6
//! link-local address), and the host reaches each container through a /32 (/128) route on its
//! veth. The network's whole subnet has a blackhole route, so unused addresses never leak out
//! and a routing backend can announce or route the subnet as one prefix.
//!
//! Its own crate rather than a mode of the bridge driver: it shares no kernel object with a
//! bridge network (no bridge, no gateway address, different addressing inside the container), and
//! what the two do share — veth plumbing, port publishing, masquerade, isolation — already lives
//! in `weft_drivers` (`sandbox`, `firewall`).

mod endpoint;
mod inspect;
mod network;
pub mod options;
mod reconcile;

use weft_drivers::firewall::{endpoint_targets, Firewall, NftRunner, SystemNft};
use weft_drivers::{DriverError, Endpoint, JoinInfo, Network, NetworkDriver, Sandbox};

pub use endpoint::{GATEWAY_V4, GATEWAY_V6, HOST_MAC};

pub struct RoutedDriver<R: NftRunner = SystemNft> {
    firewall: Firewall<R>,
}

impl RoutedDriver<SystemNft> {
    pub fn new() -> Self {
        RoutedDriver {
            firewall: Firewall::system(),
        }
    }
}

impl Default for RoutedDriver<SystemNft> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: NftRunner> NetworkDriver for RoutedDriver<R> {
    fn name(&self) -> &'static str {
        "routed"
    }

    fn uses_gateway(&self) -> bool {
        false
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
        _net: &Network,
        ep: &Endpoint,
    ) -> Result<(), DriverError> {
        self.firewall.publish(&endpoint_targets(ep, None)?)
    }

    fn revoke_external_connectivity(
        &self,
        _net: &Network,
        ep: &Endpoint,
    ) -> Result<(), DriverError> {
        self.firewall.unpublish(&endpoint_targets(ep, None)?)
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
