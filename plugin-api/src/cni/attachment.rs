//! One CNI attachment — `(network, CNI_CONTAINERID, CNI_IFNAME)`, the spec's primary key — as a
//! weft endpoint: its id and owner mark, the routes it needs beyond the default one, and the
//! CNI result that describes it.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use weft_drivers::netlink::{Netlink, Route};
use weft_drivers::netns::Netns;
use weft_engine::{ids, EndpointRecord};

use super::error::CniError;
use super::result::{CniResult, Interface, IpConfig, RouteEntry};

/// The endpoint id of an attachment: derived, so DEL, CHECK and GC find it without an index.
pub fn endpoint_id(network_id: &str, container_id: &str, ifname: &str) -> String {
    ids::derived_id(&["cni", network_id, container_id, ifname])
}

/// The owner mark CNI endpoints carry: `cni:<container id>:<ifname>`, and `:<config name>` when
/// the config's name is not the network's (a config that names a cluster network with
/// `cluster`), so that configs sharing a network each collect only their own attachments. No
/// part can hold a `:`, so it parses back unambiguously.
pub fn owner(container_id: &str, ifname: &str, config: Option<&str>) -> String {
    match config {
        None => format!("cni:{container_id}:{ifname}"),
        Some(config) => format!("cni:{container_id}:{ifname}:{config}"),
    }
}

/// `(container id, ifname, config name if recorded)` of an owner made by [`owner`]; `None` for
/// endpoints CNI did not make.
pub fn parse_owner(owner: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut parts = owner.strip_prefix("cni:")?.splitn(3, ':');
    let container_id = parts.next()?;
    let ifname = parts.next()?;
    Some((container_id, ifname, parts.next()))
}

/// The default route of `gw`'s family.
pub fn default_dst(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0".parse().expect("literal"),
        IpAddr::V6(_) => "::/0".parse().expect("literal"),
    }
}

/// The endpoint's gateway for `addr`'s family (none on internal networks).
/// The addresses as the container interface carries them.
pub fn container_addresses(ep: &EndpointRecord) -> Vec<IpNet> {
    match &ep.join {
        Some(j) if !j.addresses.is_empty() => j.addresses.clone(),
        _ => ep.endpoint.addresses.clone(),
    }
}

pub fn gateway_for(ep: &EndpointRecord, addr: IpAddr) -> Option<IpAddr> {
    let join = ep.join.as_ref()?;
    match addr {
        IpAddr::V4(_) => join.gateway_v4,
        IpAddr::V6(_) => join.gateway_v6,
    }
}

/// Every route the container has from this attachment: the default route per gateway (the
/// bridge driver made those) and `extra` with their gateways filled in.
pub fn routes(ep: &EndpointRecord, extra: &[RouteEntry]) -> Vec<RouteEntry> {
    let join = ep.join.as_ref();
    let mut out: Vec<RouteEntry> = join
        .into_iter()
        .flat_map(|j| [j.gateway_v4, j.gateway_v6])
        .flatten()
        .map(|gw| RouteEntry {
            dst: default_dst(gw),
            gw: Some(gw),
            extra: Default::default(),
        })
        .collect();
    for r in extra {
        if out.iter().any(|o| o.dst == r.dst) {
            continue;
        }
        let gw = r.gw.or_else(|| gateway_for(ep, r.dst.addr()));
        out.push(RouteEntry { gw, ..r.clone() });
    }
    out
}

/// Adds the routes the driver did not make (all but the default ones) inside the namespace and
/// returns the routes the container really has from this attachment: a default route is left
/// out when the driver kept one from an earlier network instead (as Docker does).
pub fn program_routes(
    netns: &Path,
    ifname: &str,
    ep: &EndpointRecord,
    routes: Vec<RouteEntry>,
) -> Result<Vec<RouteEntry>, CniError> {
    let ns = Netns::open(netns)?;
    let mut nl = Netlink::open_in(&ns)?;
    let link = nl.link_by_name(ifname)?.ok_or_else(|| {
        CniError::UnknownContainer(format!(
            "interface {ifname} vanished from {} while its routes were set up",
            netns.display()
        ))
    })?;
    let present = nl.routes(None, None)?;
    let mut out = Vec::new();
    for r in routes {
        if r.dst.prefix_len() == 0 {
            if present
                .iter()
                .any(|k| k.destination == r.dst && k.gateway == r.gw && k.oif == Some(link.index))
            {
                out.push(r);
            }
            continue;
        }
        check_route(ep, &r)?;
        let mut route = Route::new(r.dst);
        route.gateway = r.gw;
        route.oif = Some(link.index);
        if r.gw.is_none() {
            // RT_SCOPE_LINK: an on-link route.
            route.scope = 253;
        }
        match nl.add_route(&route) {
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            other => other?,
        }
        out.push(r);
    }
    Ok(out)
}

fn check_route(ep: &EndpointRecord, r: &RouteEntry) -> Result<(), CniError> {
    let v4 = r.dst.addr().is_ipv4();
    if let Some(gw) = r.gw {
        if gw.is_ipv4() != v4 {
            return Err(CniError::InvalidConfig(format!(
                "route {} via {gw}: the gateway is of another address family",
                r.dst
            )));
        }
    }
    if !ep
        .endpoint
        .addresses
        .iter()
        .any(|a| a.addr().is_ipv4() == v4)
    {
        return Err(CniError::InvalidConfig(format!(
            "route {}: the container has no address of that family",
            r.dst
        )));
    }
    Ok(())
}

/// The CNI result of an endpoint: the bridge (if any), the host-side veth and the container interface
/// (MACs and MTUs as the kernel has them), its addresses on the container interface, `routes`,
/// and `dns`.
pub fn result(
    ep: &EndpointRecord,
    netns: &Path,
    routes: Vec<RouteEntry>,
    dns: Option<serde_json::Value>,
) -> Result<CniResult, CniError> {
    let join = ep.join.as_ref().ok_or_else(|| {
        CniError::Io(format!(
            "endpoint {} has no join record after ADD",
            &ep.endpoint.id[..12]
        ))
    })?;
    let mut nl = Netlink::open()?;
    let host = nl.link_by_name(&join.host_ifname)?.ok_or_else(|| {
        CniError::Io(format!(
            "host interface {} vanished right after it was made",
            join.host_ifname
        ))
    })?;
    // A bridge network lists its bridge first; a routed one has none.
    let bridge = match host.master {
        Some(i) => nl.link_by_index(i)?,
        None => None,
    };
    let iface = |name: &str, mac: Option<String>, mtu: u32, sandbox: Option<String>| Interface {
        name: name.to_string(),
        mac,
        mtu: Some(mtu),
        sandbox,
        extra: Default::default(),
    };
    let mut interfaces: Vec<Interface> = bridge
        .iter()
        .map(|b| iface(&b.name, b.mac.map(|m| m.to_string()), b.mtu, None))
        .collect();
    interfaces.push(iface(
        &host.name,
        host.mac.map(|m| m.to_string()),
        host.mtu,
        None,
    ));
    interfaces.push(iface(
        &ep.endpoint.ifname,
        Some(ep.endpoint.mac.to_string()),
        host.mtu,
        Some(netns.display().to_string()),
    ));
    let container = interfaces.len() - 1;
    let ips = container_addresses(ep)
        .into_iter()
        .map(|a| IpConfig {
            address: a,
            gateway: gateway_for(ep, a.addr()),
            interface: Some(container),
            extra: Default::default(),
        })
        .collect();
    Ok(CniResult {
        interfaces,
        ips,
        routes,
        dns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_and_ids_are_per_attachment() {
        let o = owner("f877_a.b-c", "eth0", None);
        assert_eq!(o, "cni:f877_a.b-c:eth0");
        assert_eq!(parse_owner(&o), Some(("f877_a.b-c", "eth0", None)));
        let o = owner("f877", "eth0", Some("pods"));
        assert_eq!(parse_owner(&o), Some(("f877", "eth0", Some("pods"))));
        assert_eq!(parse_owner("/run/netns/x"), None);
        assert_eq!(parse_owner("cni:only-one-part"), None);
        let a = endpoint_id("n", "c1", "eth0");
        assert!(ids::is_id(&a));
        assert_ne!(a, endpoint_id("n", "c1", "eth1"));
        assert_ne!(a, endpoint_id("m", "c1", "eth0"));
    }
}
