//! What the kernel has for a routed network, next to what the records expect.

use serde_json::{json, Value};
use weft_drivers::firewall::{endpoint_targets, Firewall, NftRunner, PortTarget};
use weft_drivers::netlink::{Netlink, RouteKind, WEFT_PROTOCOL};
use weft_drivers::{names, sysctl, DriverError, Endpoint, Network};

use crate::endpoint;

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
        // Every setting the endpoint depends on that differs (only meaningful while the veth
        // exists: its /proc/sys directory goes with it).
        let wrong_sysctls: Vec<String> = if link.is_some() {
            endpoint::host_sysctls(&host, ep.v6().is_some())
                .into_iter()
                .filter_map(|(key, want)| {
                    let have = sysctl::read(&key).ok();
                    (have.as_deref().map(str::trim) != Some(want)).then(|| {
                        format!(
                            "{key} is {} (needs {want})",
                            have.as_deref().map(str::trim).unwrap_or("unreadable")
                        )
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        eps.push(json!({
            "id": ep.id,
            "host_ifname": host,
            "present": link.is_some(),
            "host_routes": host_routes,
            "expected_host_routes": endpoint::expected_host_routes(ep).iter().map(ToString::to_string).collect::<Vec<_>>(),
            "proxy_arp": proxy_arp.as_deref() == Some("1"),
            "wrong_sysctls": wrong_sysctls,
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
            continue;
        }
        let have: Vec<&str> = e["host_routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        for want in e["expected_host_routes"].as_array().into_iter().flatten() {
            let want = want.as_str().unwrap_or("");
            if !have.contains(&want) {
                problems.push(format!(
                    "host route {want} dev {} of endpoint {id} is missing (weft status --repair or a daemon start puts it back)",
                    e["host_ifname"].as_str().unwrap_or("")
                ));
            }
        }
        for wrong in e["wrong_sysctls"].as_array().into_iter().flatten() {
            problems.push(format!(
                "endpoint {id}: {} (weft status --repair or a daemon start sets it back)",
                wrong.as_str().unwrap_or("")
            ));
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
