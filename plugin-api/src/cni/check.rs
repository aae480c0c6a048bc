//! CHECK: is the attachment still what ADD made? Compares prevResult, the record, the kernel
//! (both ends of the veth, addresses, routes, published ports) and the store's reservations, and
//! reports every difference at once (code 101). An attachment weft has no record of is code 3.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use weft_drivers::netlink::{IpFamily, Netlink};
use weft_drivers::netns::Netns;
use weft_engine::records::endpoint_owner;
use weft_engine::{Controller, EndpointRecord, EngineError, NetworkRecord};
use weft_ipam::Ipam;

use super::attachment::{self, endpoint_id};
use super::env::Command;
use super::error::CniError;
use super::plugin::netns_of;
use super::result::CniResult;
use super::Ctx;

/// CHECK for a config of type `weft`.
pub fn run(ctx: &Ctx) -> Result<(), CniError> {
    let netns = netns_of(ctx)?;
    let prev = ctx.conf.prev_result.as_ref().ok_or_else(|| {
        CniError::InvalidConfig("CHECK needs prevResult: the result of the ADD it checks".into())
    })?;
    let c = ctx.controller()?;
    let (net, ep) = {
        let _lock = c.store().lock()?;
        record(ctx, &c)?
    };
    let mut problems = Vec::new();
    compare_with_prev_result(ctx, netns, &ep, prev, &mut problems);
    check_host_side(&net, &ep, &mut problems)?;
    check_container_side(ctx, netns, &ep, prev, &mut problems)?;
    check_reservations(&c, &net, &ep, &mut problems)?;
    check_published_ports(&c, &net, &ep, &mut problems)?;
    if let Some(d) = ctx.ipam_delegate() {
        d.run(Command::Check)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::Drift(format!(
            "CHECK of {}: {}",
            ctx.attachment_text(),
            problems.join("; ")
        )))
    }
}

fn record(ctx: &Ctx, c: &Controller) -> Result<(NetworkRecord, EndpointRecord), CniError> {
    let unknown = || {
        CniError::UnknownContainer(format!(
            "weft has no attachment of {} on network {:?} (in {})",
            ctx.attachment_text(),
            ctx.conf.network(),
            ctx.state_dir_text()
        ))
    };
    let net = match c.network(ctx.conf.network()) {
        Ok(n) => n,
        Err(EngineError::NotFound { .. }) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    let id = endpoint_id(&net.network.id, &ctx.env.container_id, &ctx.env.ifname);
    match c.endpoint(&net.network.id, &id) {
        Ok(pair) => Ok(pair),
        Err(EngineError::NotFound { .. }) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}

/// prevResult must list the container interface with exactly the recorded addresses.
fn compare_with_prev_result(
    ctx: &Ctx,
    netns: &Path,
    ep: &EndpointRecord,
    prev: &CniResult,
    problems: &mut Vec<String>,
) {
    let sandbox = netns.display().to_string();
    let Some(index) = prev.interfaces.iter().position(|i| {
        i.name == ctx.env.ifname && i.sandbox.as_deref().is_none_or(|s| s == sandbox)
    }) else {
        problems.push(format!(
            "prevResult lists no interface {} in {sandbox}",
            ctx.env.ifname
        ));
        return;
    };
    if let Some(mac) = &prev.interfaces[index].mac {
        if !mac.eq_ignore_ascii_case(&ep.endpoint.mac.to_string()) {
            problems.push(format!(
                "prevResult says {} has MAC {mac}, the record says {}",
                ctx.env.ifname, ep.endpoint.mac
            ));
        }
    }
    let listed: BTreeSet<IpNet> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(index))
        .map(|ip| ip.address)
        .collect();
    let recorded: BTreeSet<IpNet> = attachment::container_addresses(ep).into_iter().collect();
    if listed != recorded {
        problems.push(format!(
            "prevResult lists addresses {} for {}, the record has {}",
            join(&listed),
            ctx.env.ifname,
            join(&recorded)
        ));
    }
}

fn check_host_side(
    net: &NetworkRecord,
    ep: &EndpointRecord,
    problems: &mut Vec<String>,
) -> Result<(), CniError> {
    let Some(join) = &ep.join else {
        problems.push("the endpoint record has no join: it was never attached".into());
        return Ok(());
    };
    let mut nl = Netlink::open()?;
    match nl.link_by_name(&join.host_ifname)? {
        None => problems.push(format!("host interface {} is missing", join.host_ifname)),
        Some(link) => {
            if !link.up {
                problems.push(format!("host interface {} is down", link.name));
            }
            if net.network.driver != "bridge" {
                return Ok(());
            }
            let bridge = match link.master {
                Some(i) => nl.link_by_index(i)?,
                None => None,
            };
            match bridge {
                Some(b) if b.kind == "bridge" && b.up => {}
                Some(b) => problems.push(format!(
                    "host interface {} is attached to {}, which is not an up bridge",
                    link.name, b.name
                )),
                None => problems.push(format!("host interface {} is on no bridge", link.name)),
            }
        }
    }
    Ok(())
}

fn check_container_side(
    ctx: &Ctx,
    netns: &Path,
    ep: &EndpointRecord,
    prev: &CniResult,
    problems: &mut Vec<String>,
) -> Result<(), CniError> {
    let ns = Netns::open(netns)?;
    let mut nl = Netlink::open_in(&ns)?;
    let ifname = &ctx.env.ifname;
    let Some(link) = nl.link_by_name(ifname)? else {
        problems.push(format!(
            "interface {ifname} is missing from {}",
            netns.display()
        ));
        return Ok(());
    };
    if !link.up {
        problems.push(format!("interface {ifname} is down"));
    }
    if link.mac != Some(ep.endpoint.mac) {
        problems.push(format!(
            "interface {ifname} has MAC {}, the record says {}",
            link.mac.map(|m| m.to_string()).unwrap_or_default(),
            ep.endpoint.mac
        ));
    }
    let present: Vec<IpNet> = nl
        .addresses(Some(link.index))?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    for a in &attachment::container_addresses(ep) {
        if !present.contains(a) {
            problems.push(format!("address {a} is missing from {ifname}"));
        }
    }
    // Routes weft made and the runtime still expects (a later plugin may have changed others).
    let ours = attachment::routes(ep, &ctx.conf.ipam.routes);
    for r in ours.iter().filter(|r| {
        prev.routes
            .iter()
            .any(|p| p.dst == r.dst && (p.gw.is_none() || p.gw == r.gw))
    }) {
        let family = if r.dst.addr().is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        };
        let found = nl.routes(Some(family), None)?.into_iter().any(|k| {
            k.destination == r.dst && k.gateway == r.gw && k.oif.is_none_or(|o| o == link.index)
        });
        if !found {
            problems.push(format!(
                "route {}{} is missing",
                r.dst,
                r.gw.map(|g| format!(" via {g}")).unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The addresses must still be reserved for this endpoint in weft's IPAM.
fn check_reservations(
    c: &Controller,
    net: &NetworkRecord,
    ep: &EndpointRecord,
    problems: &mut Vec<String>,
) -> Result<(), CniError> {
    let ipam = Ipam::new(c.store());
    let owner = endpoint_owner(&net.network.id, &ep.endpoint.id);
    for (pool, addr) in &ep.leases {
        let holder = ipam
            .allocated(pool)?
            .into_iter()
            .find(|(a, _)| a == addr)
            .map(|(_, o)| o);
        if holder.as_deref() != Some(owner.as_str()) {
            problems.push(format!(
                "address {addr} is {} in pool {pool}",
                match holder {
                    None => "not reserved".to_string(),
                    Some(o) => format!("reserved by {o}"),
                }
            ));
        }
    }
    Ok(())
}

/// Every port the record publishes must be in the kernel's DNAT maps.
fn check_published_ports(
    c: &Controller,
    net: &NetworkRecord,
    ep: &EndpointRecord,
    problems: &mut Vec<String>,
) -> Result<(), CniError> {
    if ep.endpoint.ports.is_empty() {
        return Ok(());
    }
    let inspect = c.inspect_network(&net.network.id)?;
    let kernel = &inspect["kernel"];
    let mine: BTreeSet<IpAddr> = ep.endpoint.addresses.iter().map(|a| a.addr()).collect();
    let is_mine = |p: &&serde_json::Value| {
        p["container_ip"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_some_and(|ip| mine.contains(&ip))
    };
    let published: Vec<&serde_json::Value> = kernel["published_ports"]
        .as_array()
        .map(|a| a.iter().filter(is_mine).collect())
        .unwrap_or_default();
    for want in kernel["expected_published_ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(is_mine)
    {
        if !published.contains(&want) {
            problems.push(format!(
                "published port {}:{}/{} -> {}:{} is missing from the firewall",
                want["host_ip"].as_str().unwrap_or("*"),
                want["host_port"],
                want["protocol"].as_str().unwrap_or(""),
                want["container_ip"].as_str().unwrap_or(""),
                want["container_port"]
            ));
        }
    }
    Ok(())
}

fn join(set: &BTreeSet<IpNet>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
