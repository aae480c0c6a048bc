//! Bringing the kernel back to what the records say for a routed network.

use std::collections::BTreeSet;

use weft_drivers::firewall::{endpoint_targets, Firewall, NftRunner};
use weft_drivers::netlink::Netlink;
use weft_drivers::{names, DriverError, Endpoint, Network};

use crate::network;

/// Re-creates blackhole routes and rules, removes veths of endpoints that no longer exist, and
/// brings published ports in line.
pub fn network<R: NftRunner>(
    fw: &Firewall<R>,
    net: &Network,
    endpoints: &[Endpoint],
) -> Result<Vec<String>, DriverError> {
    network::create(fw, net)?;
    let mut nl = Netlink::open()?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    let known: BTreeSet<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
    for link in nl.links()? {
        let Some(id) = link
            .alias
            .as_deref()
            .and_then(|a| names::endpoint_of_alias(a, &net.id))
        else {
            continue;
        };
        if !known.contains(id) {
            match nl.del_link(link.index) {
                Ok(()) => done.push(format!(
                    "removed leaked interface {} (endpoint {id})",
                    link.name
                )),
                Err(e) => errors.push(e),
            }
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
    let mut nl = Netlink::open()?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for link in nl.links()? {
        let Some(alias) = link.alias.as_deref() else {
            continue;
        };
        if !alias.starts_with("weft:ep:") {
            continue;
        }
        if let Some(id) = names::network_of_alias(alias) {
            if !networks.iter().any(|n| n.id == id) {
                match nl.del_link(link.index) {
                    Ok(()) => done.push(format!(
                        "removed interface {} of vanished network {id}",
                        link.name
                    )),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    DriverError::collect(errors).map(|()| done)
}
