//! `none`: the sandbox keeps only its loopback interface, brought up.

use serde_json::json;

use crate::error::DriverError;
use crate::model::{Endpoint, Sandbox};
use crate::netlink::Netlink;
use crate::netns::Netns;

pub(super) fn join(ns: &Netns) -> Result<(), DriverError> {
    let mut nl = Netlink::open_in(ns)?;
    if let Some(lo) = nl.link_by_name("lo")? {
        if !lo.up {
            nl.set_up(lo.index)?;
        }
    }
    Ok(())
}

/// Each sandbox with the links it has (only `lo` when nothing else touched it).
pub(super) fn inspect(endpoints: &[Endpoint]) -> Result<serde_json::Value, DriverError> {
    let sandboxes: Vec<_> = endpoints
        .iter()
        .map(|ep| {
            let links = match &ep.sandbox {
                Some(Sandbox::Netns(p)) => Netns::open(p)
                    .and_then(|ns| Netlink::open_in(&ns))
                    .and_then(|mut nl| nl.links())
                    .map(|ls| {
                        ls.into_iter()
                            .map(|l| json!({"name": l.name, "up": l.up}))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            json!({"id": ep.id, "sandbox": ep.sandbox, "links": links})
        })
        .collect();
    Ok(json!({ "sandboxes": sandboxes }))
}
