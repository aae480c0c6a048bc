//! Bringing the kernel back to what the records say for a routed network.

use weft_drivers::firewall::{endpoint_targets, Firewall, NftRunner};
use weft_drivers::netlink::Netlink;
use weft_drivers::reconcile::{remove_orphan_links, remove_unknown_endpoint_links};
use weft_drivers::{DriverError, Endpoint, Network};

use crate::{endpoint, network};

/// Re-creates blackhole routes and rules, puts back endpoints' host routes and sysctls, removes veths of endpoints that no longer exist, and
/// brings published ports in line.
pub fn network<R: NftRunner>(
    fw: &Firewall<R>,
    net: &Network,
    endpoints: &[Endpoint],
) -> Result<Vec<String>, DriverError> {
    network::create(fw, net)?;
    let mut nl = Netlink::open()?;
    let cleanup = remove_unknown_endpoint_links(&mut nl, net, endpoints)?;
    let mut done = cleanup.done;
    let mut errors = cleanup.errors;
    // Each endpoint's host side: the /32 (/128) routes and the sysctls it depends on.
    for ep in endpoints {
        match endpoint::repair_host_side(&mut nl, ep) {
            Ok(lines) => done.extend(lines),
            Err(e) => errors.push(e),
        }
    }
    let mut expected = Vec::new();
    for ep in endpoints {
        expected.extend(endpoint_targets(ep, None)?);
    }
    let subnets: Vec<_> = net.subnets.iter().map(|s| s.subnet).collect();
    match fw.sync_published(&subnets, &expected) {
        Ok(lines) => done.extend(lines),
        Err(e) => errors.push(e),
    }
    DriverError::collect(errors).map(|()| done)
}

/// Removes veths weft made for networks that no longer exist. (Routed networks make no other
/// links; their blackhole routes carry weft's protocol number and go with `delete_network`.)
pub fn orphans(networks: &[Network]) -> Result<Vec<String>, DriverError> {
    remove_orphan_links(networks, true)
}
