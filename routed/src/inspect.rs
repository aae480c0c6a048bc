//! What the kernel has for a routed network, next to what the records expect.

use serde_json::{json, Value};
use weft_drivers::firewall::{endpoint_targets, Firewall, NftRunner, PortTarget};
use weft_drivers::netlink::{Netlink, RouteKind, WEFT_PROTOCOL};
use weft_drivers::{names, sysctl, DriverError, Endpoint, Network};

pub fn network<R: NftRunner>(
    fw: &Firewall<R>,
    net: &Network,
    endpoints: &[Endpoint],
) -> Result<Value, DriverError> {
    let mut nl = Netlink::open()?;
    let routes: Vec<_> = nl
        .routes(None, Some(254))?
        .into_iter()
        .filter(|r| r.protocol == WEFT_PROTOCOL)
        .collect();
    let blackholes: Vec<String> = routes
        .iter()
        .filter(|r| {
            r.kind == RouteKind::Blackhole
                && net
                    .subnets
                    .iter()
                    .any(|s| s.subnet.trunc() == r.destination)
        })
        .map(|r| r.destination.to_string())
        .collect();
    let mut eps = Vec::new();
    for ep in endpoints {
        let host = names::host_veth(&ep.id);
        let link = nl.link_by_name(&host)?;
        let host_routes: Vec<String> = routes
            .iter()
            .filter(|r| link.as_ref().is_some_and(|l| r.oif == Some(l.index)))
            .map(|r| r.destination.to_string())
            .collect();
        let proxy_arp = sysctl::read(&sysctl::iface_key("ipv4", &host, "proxy_arp")).ok();
        eps.push(json!({
            "id": ep.id,
            "host_ifname": host,
            "present": link.is_some(),
            "host_routes": host_routes,
            "expected_host_routes": ep.addresses.iter().map(|a| format!("{}/{}", a.addr(), if a.addr().is_ipv4() { 32 } else { 128 })).collect::<Vec<_>>(),
            "proxy_arp": proxy_arp.as_deref() == Some("1"),
        }));
    }
    let mut expected: Vec<PortTarget> = Vec::new();
    for ep in endpoints {
        expected.extend(endpoint_targets(ep, None)?);
    }
    expected.sort();
    let subnets: Vec<_> = net.subnets.iter().map(|s| s.subnet).collect();
    let published = fw.published_into(&subnets)?;
    let mut problems = Vec::new();
    for s in &net.subnets {
        if !blackholes.contains(&s.subnet.trunc().to_string()) {
            problems.push(format!(
                "blackhole route for {} is missing",
                s.subnet.trunc()
            ));
        }
    }
    for e in &eps {
        let id = names::short(e["id"].as_str().unwrap_or("")).to_string();
        if e["present"] != true {
            problems.push(format!(
                "interface {} of endpoint {id} is missing",
                e["host_ifname"].as_str().unwrap_or("")
            ));
        } else if e["host_routes"] != e["expected_host_routes"] {
            problems.push(format!("host routes of endpoint {id} differ"));
        }
    }
    if published != expected {
        problems.push(format!(
            "published ports differ: kernel has {}, records expect {}",
            published.len(),
            expected.len()
        ));
    }
    Ok(json!({
        "problems": problems,
        "blackhole_routes": blackholes,
        "expected_blackhole_routes": net.subnets.iter().map(|s| s.subnet.trunc().to_string()).collect::<Vec<_>>(),
        "endpoints": eps,
        "published_ports": published,
        "expected_published_ports": expected,
    }))
}
