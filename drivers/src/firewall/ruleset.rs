//! The text of weft's nft transactions (pure).

use std::fmt::Write;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::elements::ElementOp;
use super::{NetworkRules, PortTarget};
use crate::error::DriverError;
use crate::model::Protocol;

pub const TABLE: &str = "weft";

/// Port maps: `<family>_<any|ip>`: keyed by protocol and port, or by host address too.
pub(super) const PORT_MAPS: [&str; 4] = ["ports4_any", "ports4_ip", "ports6_any", "ports6_ip"];

/// Table, sets, maps and base chains. Every statement is idempotent (`add` of an existing object
/// is a no-op; base chains are flushed and refilled within the same transaction).
pub(super) fn base() -> String {
    let t = TABLE;
    format!(
        "add table inet {t}
add set inet {t} nets4 {{ type ipv4_addr; flags interval; }}
add set inet {t} nets6 {{ type ipv6_addr; flags interval; }}
add set inet {t} masq4 {{ type ipv4_addr; flags interval; }}
add set inet {t} masq6 {{ type ipv6_addr; flags interval; }}
add set inet {t} cluster4 {{ type ipv4_addr; flags interval; }}
add set inet {t} cluster6 {{ type ipv6_addr; flags interval; }}
add set inet {t} interfaces {{ type ifname; }}
add map inet {t} ports4_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
add map inet {t} ports4_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
add map inet {t} ports6_any {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
add map inet {t} ports6_ip {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
add map inet {t} forward_in {{ type ifname : verdict; }}
add map inet {t} forward_out {{ type ifname : verdict; }}
add map inet {t} forward_in4 {{ type ipv4_addr : verdict; flags interval; }}
add map inet {t} forward_out4 {{ type ipv4_addr : verdict; flags interval; }}
add map inet {t} forward_in6 {{ type ipv6_addr : verdict; flags interval; }}
add map inet {t} forward_out6 {{ type ipv6_addr : verdict; flags interval; }}
add chain inet {t} publish
add chain inet {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain inet {t} output {{ type nat hook output priority -100; policy accept; }}
add chain inet {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain inet {t} forward {{ type filter hook forward priority filter; policy accept; }}
flush chain inet {t} publish
add rule inet {t} publish meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4_ip
add rule inet {t} publish meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports4_any
add rule inet {t} publish meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6_ip
add rule inet {t} publish meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports6_any
flush chain inet {t} prerouting
add rule inet {t} prerouting fib daddr type local jump publish
flush chain inet {t} output
add rule inet {t} output fib daddr type local jump publish
flush chain inet {t} postrouting
add rule inet {t} postrouting ct status dnat ip saddr @nets4 masquerade comment \"hairpin to published ports\"
add rule inet {t} postrouting ct status dnat ip6 saddr @nets6 masquerade comment \"hairpin to published ports\"
add rule inet {t} postrouting ip saddr 127.0.0.0/8 ip daddr @nets4 masquerade comment \"published ports via 127.0.0.1\"
add rule inet {t} postrouting ip saddr @masq4 ip daddr != @nets4 ip daddr != @cluster4 masquerade
add rule inet {t} postrouting ip6 saddr @masq6 ip6 daddr != @nets6 ip6 daddr != @cluster6 masquerade
flush chain inet {t} forward
add rule inet {t} forward ct state established,related accept comment \"only a flow's first packet meets the policy below\"
add rule inet {t} forward ct status dnat accept comment \"published ports are reachable from anywhere\"
add rule inet {t} forward iifname vmap @forward_in
add rule inet {t} forward oifname vmap @forward_out
add rule inet {t} forward ip saddr vmap @forward_in4
add rule inet {t} forward ip daddr vmap @forward_out4
add rule inet {t} forward ip6 saddr vmap @forward_in6
add rule inet {t} forward ip6 daddr vmap @forward_out6
"
    )
}

fn chain_in(net: &NetworkRules) -> String {
    format!("in-{}", net.key)
}

fn chain_out(net: &NetworkRules) -> String {
    format!("out-{}", net.key)
}

fn family_sets(subnet: &IpNet) -> (&'static str, &'static str, &'static str) {
    match subnet {
        IpNet::V4(_) => ("nets4", "masq4", "cluster4"),
        IpNet::V6(_) => ("nets6", "masq6", "cluster6"),
    }
}

/// Elements that make up a network (sets and verdict maps), without its chains.
fn network_elements(net: &NetworkRules) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in &net.subnets {
        let (nets, masq, _) = family_sets(s);
        out.push((nets.to_string(), s.trunc().to_string()));
        if net.masquerade && !net.internal {
            out.push((masq.to_string(), s.trunc().to_string()));
        }
    }
    for c in &net.cluster {
        let (_, _, cluster) = family_sets(c);
        out.push((cluster.to_string(), c.trunc().to_string()));
    }
    if let Some(ifname) = &net.interface {
        out.push(("interfaces".to_string(), quote(ifname)));
    }
    out
}

/// `{ a, b }` of the network's subnets of one family, or `None` if it has none.
fn subnet_set(net: &NetworkRules, v6: bool) -> Option<String> {
    let list: Vec<String> = net
        .subnets
        .iter()
        .filter(|s| matches!(s, IpNet::V6(_)) == v6)
        .map(|s| s.trunc().to_string())
        .collect();
    (!list.is_empty()).then(|| format!("{{ {} }}", list.join(", ")))
}

/// The chains of a network: `in-<key>` sees traffic the network sends, `out-<key>` traffic it
/// receives. Networks with an interface (bridges) are dispatched by interface name; others
/// (routed networks, whose containers each have their own host interface) by address.
pub(super) fn network_add(net: &NetworkRules) -> String {
    let t = TABLE;
    let mut s = String::new();
    let (cin, cout) = (chain_in(net), chain_out(net));
    for (set, elem) in network_elements(net) {
        let _ = writeln!(s, "add element inet {t} {set} {{ {elem} }}");
    }
    let _ = writeln!(s, "add chain inet {t} {cin}\nflush chain inet {t} {cin}");
    let _ = writeln!(s, "add chain inet {t} {cout}\nflush chain inet {t} {cout}");
    for (v6, family) in [(false, "ip"), (true, "ip6")] {
        let Some(own) = subnet_set(net, v6) else {
            continue;
        };
        let nets = if v6 { "nets6" } else { "nets4" };
        if net.internal {
            if net.interface.is_none() {
                let _ = writeln!(s, "add rule inet {t} {cin} {family} daddr != {own} drop comment \"internal network\"");
                let _ = writeln!(s, "add rule inet {t} {cout} {family} saddr != {own} drop comment \"internal network\"");
            }
        } else {
            let _ = writeln!(
                s,
                "add rule inet {t} {cin} {family} daddr @{nets} {family} daddr != {own} drop comment \"isolation between networks\""
            );
        }
    }
    match &net.interface {
        Some(ifname) => {
            let q = quote(ifname);
            if net.internal {
                let _ = writeln!(
                    s,
                    "add rule inet {t} {cin} oifname != {q} drop comment \"internal network\""
                );
                let _ = writeln!(
                    s,
                    "add rule inet {t} {cout} iifname != {q} drop comment \"internal network\""
                );
            } else {
                let _ = writeln!(
                    s,
                    "add rule inet {t} {cin} oifname @interfaces oifname != {q} drop comment \"isolation between networks\""
                );
            }
            let _ = writeln!(s, "add element inet {t} forward_in {{ {q} : jump {cin} }}");
            let _ = writeln!(
                s,
                "add element inet {t} forward_out {{ {q} : jump {cout} }}"
            );
        }
        None => {
            for (map_in, map_out, subnet) in address_dispatch(net) {
                let _ = writeln!(
                    s,
                    "add element inet {t} {map_in} {{ {subnet} : jump {cin} }}"
                );
                let _ = writeln!(
                    s,
                    "add element inet {t} {map_out} {{ {subnet} : jump {cout} }}"
                );
            }
        }
    }
    s
}

fn address_dispatch(net: &NetworkRules) -> Vec<(&'static str, &'static str, String)> {
    net.subnets
        .iter()
        .map(|sub| match sub {
            IpNet::V4(_) => ("forward_in4", "forward_out4", sub.trunc().to_string()),
            IpNet::V6(_) => ("forward_in6", "forward_out6", sub.trunc().to_string()),
        })
        .collect()
}

pub(super) fn network_remove(net: &NetworkRules) -> String {
    let t = TABLE;
    let mut s = String::new();
    let (cin, cout) = (chain_in(net), chain_out(net));
    // Add-then-delete keeps the transaction valid whether or not the objects exist.
    let _ = writeln!(s, "add chain inet {t} {cin}\nadd chain inet {t} {cout}");
    let mut dispatch: Vec<(String, String, String)> = Vec::new();
    match &net.interface {
        Some(ifname) => {
            dispatch.push(("forward_in".into(), quote(ifname), cin.clone()));
            dispatch.push(("forward_out".into(), quote(ifname), cout.clone()));
        }
        None => {
            for (map_in, map_out, subnet) in address_dispatch(net) {
                dispatch.push((map_in.into(), subnet.clone(), cin.clone()));
                dispatch.push((map_out.into(), subnet, cout.clone()));
            }
        }
    }
    for (map, key, chain) in &dispatch {
        let _ = writeln!(s, "add element inet {t} {map} {{ {key} : jump {chain} }}");
        let _ = writeln!(s, "delete element inet {t} {map} {{ {key} }}");
    }
    for chain in [&cin, &cout] {
        let _ = writeln!(
            s,
            "flush chain inet {t} {chain}\ndelete chain inet {t} {chain}"
        );
    }
    for (set, elem) in network_elements(net) {
        let _ = writeln!(s, "add element inet {t} {set} {{ {elem} }}");
        let _ = writeln!(s, "delete element inet {t} {set} {{ {elem} }}");
    }
    s
}

pub(super) fn port_map(p: &PortTarget) -> &'static str {
    match (p.container_ip, p.host_ip) {
        (IpAddr::V4(_), None) => "ports4_any",
        (IpAddr::V4(_), Some(_)) => "ports4_ip",
        (IpAddr::V6(_), None) => "ports6_any",
        (IpAddr::V6(_), Some(_)) => "ports6_ip",
    }
}

fn port_key(p: &PortTarget) -> String {
    match p.host_ip {
        Some(ip) => format!("{ip} . {} . {}", p.protocol, p.host_port),
        None => format!("{} . {}", p.protocol, p.host_port),
    }
}

fn port_element(p: &PortTarget) -> String {
    format!(
        "{} : {} . {}",
        port_key(p),
        p.container_ip,
        p.container_port
    )
}

/// The nft text of a batch of port-map changes (what runners without a faster path run).
pub(super) fn elements_script(ops: &[ElementOp]) -> String {
    let mut s = String::new();
    for op in ops {
        let _ = match op {
            ElementOp::Add(p) => writeln!(
                s,
                "add element inet {TABLE} {} {{ {} }}",
                port_map(p),
                port_element(p)
            ),
            // Add-then-delete keeps the transaction valid whether or not the element exists.
            ElementOp::Delete(p) => writeln!(
                s,
                "add element inet {TABLE} {map} {{ {} }}\ndelete element inet {TABLE} {map} {{ {} }}",
                port_element(p),
                port_key(p),
                map = port_map(p),
            ),
        };
    }
    s
}

fn quote(ifname: &str) -> String {
    format!("\"{ifname}\"")
}

/// Reads the elements of one port map from `nft -j list map …`.
pub(super) fn parse_port_map(json: &str) -> Result<Vec<PortTarget>, DriverError> {
    let bad = |why: &str| DriverError::Firewall {
        message: format!("unexpected nft listing of a port map: {why}"),
    };
    let v: Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let mut out = Vec::new();
    let items = v["nftables"]
        .as_array()
        .ok_or_else(|| bad("no nftables array"))?;
    for item in items {
        let Some(elems) = item["map"]["elem"].as_array() else {
            continue;
        };
        for e in elems {
            let key = e[0]["concat"]
                .as_array()
                .ok_or_else(|| bad("key is not a concatenation"))?;
            let data = e[1]["concat"]
                .as_array()
                .ok_or_else(|| bad("data is not a concatenation"))?;
            let (host_ip, rest) = match key.len() {
                3 => (
                    Some(parse_ip(&key[0]).ok_or_else(|| bad("host address"))?),
                    &key[1..],
                ),
                2 => (None, &key[..]),
                _ => return Err(bad("key has an unexpected shape")),
            };
            let protocol = parse_proto(&rest[0]).ok_or_else(|| bad("protocol"))?;
            let host_port = rest[1].as_u64().ok_or_else(|| bad("host port"))? as u16;
            let container_ip = parse_ip(&data[0]).ok_or_else(|| bad("container address"))?;
            let container_port = data[1].as_u64().ok_or_else(|| bad("container port"))? as u16;
            out.push(PortTarget {
                protocol,
                host_ip,
                host_port,
                container_ip,
                container_port,
            });
        }
    }
    Ok(out)
}

fn parse_ip(v: &Value) -> Option<IpAddr> {
    v.as_str()?.parse().ok()
}

fn parse_proto(v: &Value) -> Option<Protocol> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => Protocol::from_number(n.as_u64()? as u8),
        _ => None,
    }
}
