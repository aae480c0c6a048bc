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
    let chain_present = snapshot.contains(&format!("\"{chain}\""));
    let expected_addrs: Vec<String> = net
        .subnets
        .iter()
        .filter_map(|s| s.gateway)
        .map(|g| g.to_string())
        .collect();
    let mut problems = Vec::new();
    match &bridge {
        None => problems.push(format!("bridge {} is missing", config.bridge)),
        Some(b) if !b.up => problems.push(format!("bridge {} is down", config.bridge)),
        Some(_) => {}
    }
    for a in expected_addrs.iter().filter(|a| !bridge_addrs.contains(a)) {
        problems.push(format!(
            "gateway address {a} is missing from {}",
            config.bridge
        ));
    }
    for e in &eps {
        if e["present"] != true {
            problems.push(format!(
                "interface {} of endpoint {} is missing",
                e["host_ifname"].as_str().unwrap_or(""),
                names::short(e["id"].as_str().unwrap_or(""))
            ));
        } else if e["attached"] != true {
            problems.push(format!(
                "interface {} is not on {}",
                e["host_ifname"].as_str().unwrap_or(""),
                config.bridge
            ));
        }
    }
    problems.extend(
        stray
            .iter()
            .map(|l| format!("interface {l} belongs to no endpoint")),
    );
    if published != expected {
        problems.push(format!(
            "published ports differ: kernel has {}, records expect {}",
            published.len(),
            expected.len()
        ));
    }
    if !chain_present {
        problems.push(format!("firewall chain {chain} is missing"));
    }
    Ok(json!({
        "problems": problems,
        "bridge": {
            "name": config.bridge,
            "present": bridge.is_some(),
            "up": bridge.as_ref().map(|b| b.up),
            "mtu": bridge.as_ref().map(|b| b.mtu),
            "addresses": bridge_addrs,
            "expected_addresses": expected_addrs,
        },
        "endpoints": eps,
        "stray_links": stray,
        "published_ports": published,
        "expected_published_ports": expected,
        "firewall": { "network_chain_present": chain_present },
    }))
}
