//! `host`: the container shares the host's namespace. Nothing to set up; attaching checks the
//! namespace really is the host's, and inspecting shows the host's own interfaces.

use serde_json::json;

use crate::error::DriverError;
use crate::model::Endpoint;
use crate::netlink::Netlink;
use crate::netns::Netns;

pub(super) fn join(ns: &Netns) -> Result<(), DriverError> {
    if ns.same_as_current() {
        return Ok(());
    }
    Err(DriverError::Invalid(format!(
        "{} is not the host's network namespace; on the host network a container shares the host's own (e.g. /proc/1/ns/net)",
        ns.path().display()
    )))
}

pub(super) fn inspect(endpoints: &[Endpoint]) -> Result<serde_json::Value, DriverError> {
    let mut nl = Netlink::open()?;
    let addresses = nl.addresses(None)?;
    let links: Vec<_> = nl
        .links()?
        .into_iter()
        .map(|l| {
            let addrs: Vec<String> = addresses
                .iter()
                .filter(|(i, _)| *i == l.index)
                .map(|(_, a)| a.to_string())
                .collect();
            json!({"name": l.name, "up": l.up, "mtu": l.mtu, "addresses": addrs})
        })
        .collect();
    Ok(json!({
        "host_links": links,
        "sandboxes": endpoints.iter().map(|e| json!({"id": e.id, "sandbox": e.sandbox})).collect::<Vec<_>>(),
    }))
}
