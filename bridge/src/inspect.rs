//! What the kernel has for a network, next to what the records expect.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use weft_drivers::firewall::{Firewall, NftRunner, PortTarget};
use weft_drivers::netlink::Netlink;
use weft_drivers::{DriverError, Endpoint, Network};

use crate::network::firewall_rules;
use crate::options::BridgeConfig;
use crate::{names, ports};

pub fn network<R: NftRunner>(
    fw: &Firewall<R>,
    net: &Network,
    endpoints: &[Endpoint],
) -> Result<Value, DriverError> {
    let config = BridgeConfig::from_network(net)?;
    let mut nl = Netlink::open()?;
    let bridge = nl.link_by_name(&config.bridge)?;
    let bridge_addrs: Vec<String> = match &bridge {
        Some(b) => nl
            .addresses(Some(b.index))?
            .into_iter()
            .map(|(_, a)| a.to_string())
            .collect(),
        None => Vec::new(),
    };
    let links = nl.links()?;
    let mut eps = Vec::new();
    for ep in endpoints {
        let host = names::host_veth(&ep.id);
        let link = links.iter().find(|l| l.name == host);
        eps.push(json!({
            "id": ep.id,
            "host_ifname": host,
            "present": link.is_some(),
            "attached": link.is_some_and(|l| bridge.as_ref().is_some_and(|b| l.master == Some(b.index))),
        }));
    }
    let known: BTreeSet<&str> = endpoints.iter().map(|e| e.id.as_str()).collect();
    let stray: Vec<&str> = links
        .iter()
        .filter(|l| {
            l.alias
                .as_deref()
                .and_then(|a| names::endpoint_of_alias(a, &net.id))
                .is_some_and(|id| !known.contains(id))
        })
        .map(|l| l.name.as_str())
        .collect();
    let mut expected: Vec<PortTarget> = Vec::new();
    for ep in endpoints {
        expected.extend(ports::targets(net, ep)?);
    }
    expected.sort();
    let published: Vec<PortTarget> = fw
        .published()?
        .into_iter()
        .filter(|p| {
            net.subnets
                .iter()
                .any(|s| s.subnet.contains(&p.container_ip))
        })
        .collect();
    let chain = format!("in-{}", firewall_rules(net, &config).key);
    let snapshot = fw.snapshot()?.to_string();
    Ok(json!({
        "bridge": {
            "name": config.bridge,
            "present": bridge.is_some(),
            "up": bridge.as_ref().map(|b| b.up),
            "mtu": bridge.as_ref().map(|b| b.mtu),
            "addresses": bridge_addrs,
            "expected_addresses": net.subnets.iter().filter_map(|s| s.gateway).map(|g| g.to_string()).collect::<Vec<_>>(),
        },
        "endpoints": eps,
        "stray_links": stray,
        "published_ports": published,
        "expected_published_ports": expected,
        "firewall": { "network_chain_present": snapshot.contains(&format!("\"{chain}\"")) },
    }))
}
