//! Bringing the kernel back to what the records say for one network.

use weft_drivers::firewall::{Firewall, NftRunner};
use weft_drivers::netlink::Netlink;
use weft_drivers::reconcile::{remove_orphan_links, remove_unknown_endpoint_links};
use weft_drivers::{DriverError, Endpoint, Network};

use crate::{network, ports};

/// Re-creates the bridge and rules if missing, removes veths and published ports of endpoints
/// that no longer exist, and publishes missing ports of those that do.
pub fn network<R: NftRunner>(
    fw: &Firewall<R>,
    net: &Network,
    endpoints: &[Endpoint],
) -> Result<Vec<String>, DriverError> {
    let mut done = Vec::new();
    let config = network::validate(net)?;
    let mut nl = Netlink::open()?;
    if nl.link_by_name(&config.bridge)?.is_none() {
        done.push(format!("re-created missing bridge {}", config.bridge));
    }
    network::create(fw, net)?;

    let cleanup = remove_unknown_endpoint_links(&mut nl, net, endpoints)?;
    done.extend(cleanup.done);
    let mut errors = cleanup.errors;

    let mut expected = Vec::new();
    for ep in endpoints {
        expected.extend(ports::targets(net, ep)?);
    }
    let subnets: Vec<_> = net.subnets.iter().map(|s| s.subnet).collect();
    match fw.sync_published(&subnets, &expected) {
        Ok(lines) => done.extend(lines),
        Err(e) => errors.push(e),
    }
    DriverError::collect(errors).map(|()| done)
}

/// Removes bridges and veths weft made for networks that no longer exist.
pub fn orphans(networks: &[Network]) -> Result<Vec<String>, DriverError> {
    remove_orphan_links(networks, false)
}
