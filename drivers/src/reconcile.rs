//! Kernel clean-ups every driver that marks its links (IFLA_IFALIAS, see `names`) needs at
//! start-up: links of endpoints that no longer exist, and links of networks that no longer exist.

use std::collections::BTreeSet;

use crate::error::DriverError;
use crate::model::{Endpoint, Network};
use crate::names;
use crate::netlink::Netlink;

/// What a clean-up did and what failed; it keeps going past failures.
#[derive(Debug, Default)]
pub struct Cleanup {
    pub done: Vec<String>,
    pub errors: Vec<DriverError>,
}

impl Cleanup {
    fn remove(&mut self, nl: &mut Netlink, index: u32, line: String) {
        match nl.del_link(index) {
            Ok(()) => self.done.push(line),
            Err(e) => self.errors.push(e),
        }
    }
}

/// Removes the host-side links of `network`'s endpoints that are not in `endpoints` (left by a
/// crash between the kernel work and the record).
pub fn remove_unknown_endpoint_links(
    nl: &mut Netlink,
    network: &Network,
    endpoints: &[Endpoint],
) -> Result<Cleanup, DriverError> {
    let known: BTreeSet<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
    let mut out = Cleanup::default();
    for link in nl.links()? {
        let Some(id) = link
            .alias
            .as_deref()
            .and_then(|a| names::endpoint_of_alias(a, &network.id))
        else {
            continue;
        };
        if !known.contains(id) {
            let line = format!("removed leaked interface {} (endpoint {id})", link.name);
            out.remove(nl, link.index, line);
        }
    }
    Ok(out)
}

/// Removes every link weft marked for a network that is not in `networks` (all networks weft
/// knows, of any driver). `endpoints_only` limits it to endpoint links, for drivers that make no
/// network-level link.
pub fn remove_orphan_links(
    networks: &[Network],
    endpoints_only: bool,
) -> Result<Vec<String>, DriverError> {
    let mut nl = Netlink::open()?;
    let mut out = Cleanup::default();
    for link in nl.links()? {
        let Some(alias) = link.alias.as_deref() else {
            continue;
        };
        if endpoints_only && !alias.starts_with("weft:ep:") {
            continue;
        }
        if let Some(id) = names::network_of_alias(alias) {
            if !networks.iter().any(|n| n.id == id) {
                let line = format!("removed interface {} of vanished network {id}", link.name);
                out.remove(&mut nl, link.index, line);
            }
        }
    }
    DriverError::collect(out.errors).map(|()| out.done)
}
