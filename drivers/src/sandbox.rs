//! The container side of an endpoint: a veth pair whose peer is created straight inside the
//! sandbox, then configured there (addresses, routes, static neighbours). Shared by the drivers
//! that attach containers with veth pairs (bridge, routed).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::DriverError;
use crate::model::{Endpoint, MacAddr, Network};
use crate::netlink::{Neighbour, Netlink, Route, VethEnd};
use crate::netns::Netns;
use crate::sysctl;

/// A route to put in the sandbox, all through the endpoint's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxRoute {
    /// `ip route add default via GW dev IF`; kept if the sandbox already has a default route
    /// (an earlier network's gateway wins, as in Docker).
    DefaultVia(IpAddr),
    /// `ip route add DST dev IF scope link`.
    OnLink(IpNet),
    /// `ip route add DST via GW dev IF`.
    Via(IpNet, IpAddr),
    /// `ip route add DST via GW dev IF onlink`: the gateway needs no route of its own, so a
    /// second interface can use the same link-local gateway as the first (the routed driver's
    /// 169.254.1.1) without a second, colliding `169.254.1.1/32` route.
    ViaOnLink(IpNet, IpAddr),
}

/// What goes inside the sandbox once the interface exists.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub addresses: Vec<IpNet>,
    pub routes: Vec<SandboxRoute>,
    /// Permanent neighbour entries (e.g. a gateway address nothing owns).
    pub neighbours: Vec<(IpAddr, MacAddr)>,
}

/// Checks what a veth-based driver needs of an endpoint before any kernel change: a valid
/// interface name, and every address inside one of the network's subnets.
pub fn check_endpoint(net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
    crate::names::check_ifname(&ep.ifname).map_err(|reason| {
        DriverError::Invalid(format!("interface name {:?}: {reason}", ep.ifname))
    })?;
    for a in &ep.addresses {
        if !net.subnets.iter().any(|s| s.subnet.contains(&a.addr())) {
            return Err(DriverError::Invalid(format!(
                "address {} is outside the subnets of network {} here ({})",
                a.addr(),
                net.name,
                net.subnets
                    .iter()
                    .map(|s| s.subnet.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// Creates the pair `host` / `peer`; with `ns` the peer is made inside that namespace, else it
/// stays in the host namespace (for a consumer that moves it itself). A pair left by an earlier
/// attempt under the same names is removed first, so a retried attach starts from nothing.
/// Returns the host end's index.
pub fn create_veth(
    nl: &mut Netlink,
    host: &VethEnd,
    peer: &VethEnd,
    ns: Option<&Netns>,
) -> Result<u32, DriverError> {
    if let Some(ns) = ns.filter(|ns| ns.same_as_current()) {
        // Every consumer's attach comes through here: the container side would put a
        // container's addresses and default route on the host itself.
        return Err(DriverError::Invalid(format!(
            "{} is the host's own network namespace: attaching it would give the host a container's addresses and default route; give the container's namespace (or use the `host` network)",
            ns.path().display()
        )));
    }
    nl.del_link_by_name(&host.name)?;
    if ns.is_none() {
        nl.del_link_by_name(&peer.name)?;
    }
    nl.add_veth(host, peer, ns).map_err(|e| match e.errno() {
        Some(libc::EEXIST) => DriverError::Exists {
            object: format!("interface {}", peer.name),
            hint: match ns {
                Some(ns) => format!(
                    "namespace {} already has an interface of that name; pick another interface name",
                    ns.path().display()
                ),
                None => "a stale interface of that name exists in the host namespace; remove it".into(),
            },
        },
        _ => e,
    })
}

/// Configures `ifname` inside `ns`: IPv6 enabled if needed, addresses, link up, loopback up,
/// neighbours, then routes.
pub fn configure(ns: &Netns, ifname: &str, config: &SandboxConfig) -> Result<(), DriverError> {
    let mut nl = Netlink::open_in(ns)?;
    let link = nl.link_by_name(ifname)?.ok_or_else(|| DriverError::Netns {
        path: ns.path().display().to_string(),
        message: format!("interface {ifname} vanished right after it was created"),
    })?;
    set_ipv6(
        ns,
        ifname,
        config.addresses.iter().any(|a| a.addr().is_ipv6()),
    )?;
    for a in &config.addresses {
        nl.add_address(link.index, *a)?;
    }
    nl.set_up(link.index)?;
    if let Some(lo) = nl.link_by_name("lo")? {
        if !lo.up {
            nl.set_up(lo.index)?;
        }
    }
    for (address, mac) in &config.neighbours {
        nl.add_neighbour(&Neighbour {
            ifindex: link.index,
            address: *address,
            mac: Some(*mac),
            permanent: true,
        })?;
    }
    for r in &config.routes {
        let route = match *r {
            SandboxRoute::DefaultVia(gw) => {
                let mut route = Route::new(default_route(gw));
                route.gateway = Some(gw);
                route.oif = Some(link.index);
                route
            }
            SandboxRoute::Via(dst, gw) => {
                let mut route = Route::new(dst);
                route.gateway = Some(gw);
                route.oif = Some(link.index);
                route
            }
            SandboxRoute::ViaOnLink(dst, gw) => {
                let mut route = Route::new(dst);
                route.gateway = Some(gw);
                route.oif = Some(link.index);
                route.onlink = true;
                route
            }
            SandboxRoute::OnLink(dst) => {
                let mut route = Route::new(dst);
                route.oif = Some(link.index);
                route.scope = 253;
                route
            }
        };
        match nl.add_route(&route) {
            Err(e)
                if e.errno() == Some(libc::EEXIST) && matches!(r, SandboxRoute::DefaultVia(_)) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Turns IPv6 on for an interface that gets IPv6 addresses and off for one that gets none, as
/// Docker does. Off matters for cost: on a bridge, each new container's link-local DAD, MLD
/// reports and router solicitations are flooded to every other container, so an IPv4-only
/// network would pay per connect in proportion to its size. A kernel without IPv6 has nothing
/// to turn off.
fn set_ipv6(ns: &Netns, ifname: &str, wanted: bool) -> Result<(), DriverError> {
    let key = sysctl::iface_key("ipv6", ifname, "disable_ipv6");
    ns.run(|| {
        if !wanted && !sysctl::exists(&key) {
            return Ok(());
        }
        sysctl::write(&key, if wanted { "0" } else { "1" })
    })?
}

fn default_route(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0".parse().expect("literal"),
        IpAddr::V6(_) => "::/0".parse().expect("literal"),
    }
}
