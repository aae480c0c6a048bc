//! Bringing the kernel back to what the records say for one network.

use std::collections::BTreeSet;

use weft_drivers::firewall::{Firewall, NftRunner};
use weft_drivers::netlink::Netlink;
use weft_drivers::{DriverError, Endpoint, Network};

use crate::{names, network, ports};

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

    let known: BTreeSet<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
    let mut errors = Vec::new();
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
    let mut nl = Netlink::open()?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    let known = |id: &str| networks.iter().any(|n| n.id == id);
    for link in nl.links()? {
        let Some(alias) = link.alias.as_deref() else {
            continue;
        };
        let owner = alias.strip_prefix("weft:net:").or_else(|| {
            alias
                .strip_prefix("weft:ep:")
                .and_then(|r| r.split(':').next())
        });
        if let Some(id) = owner {
            if !known(id) {
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
