//! A routed endpoint: a veth pair, a host route to each container address, proxy ARP/NDP on the
//! host side, and inside the container a default route through a link-local gateway.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use weft_drivers::driver::{JoinInfo, StaticRoute};
use weft_drivers::netlink::{Netlink, Route, VethEnd, WEFT_PROTOCOL};
use weft_drivers::netns::Netns;
use weft_drivers::sandbox::{self, SandboxConfig, SandboxRoute};
use weft_drivers::{names, sysctl, DriverError, Endpoint, MacAddr, Network, Sandbox};

use crate::options::RoutedConfig;

/// The host side's MAC on every routed veth (as Calico does): containers always see the same
/// gateway MAC.
pub const HOST_MAC: MacAddr = MacAddr([0xee; 6]);
/// The IPv4 gateway containers route through; nothing owns it, the host answers for it.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The host side's IPv6 link-local address (EUI-64 of `HOST_MAC`).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);

pub fn validate(net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
    sandbox::check_endpoint(net, ep)
}

/// The container's own address as a host route (/32, /128).
fn host_prefix(a: &IpNet) -> IpNet {
    IpNet::new(a.addr(), if a.addr().is_ipv4() { 32 } else { 128 }).expect("full-length prefix")
}

/// The `/proc/sys` settings a routed endpoint's host side depends on, with the value each must
/// have: compared by `weft status` and put back by reconciliation.
pub fn host_sysctls(host: &str, v6: bool) -> Vec<(String, &'static str)> {
    let mut keys = vec![
        // Answers the container's ARP for 169.254.1.1 and for its network's other addresses.
        (sysctl::iface_key("ipv4", host, "proxy_arp"), "1"),
        // Forwards what the container sends; inherited from conf/all at creation only.
        (sysctl::iface_key("ipv4", host, "forwarding"), "1"),
        // Published ports answer on 127.0.0.1: the DNATed packet leaves through this veth with
        // a loopback source until masquerade rewrites it.
        (sysctl::iface_key("ipv4", host, "route_localnet"), "1"),
        (format!("net/ipv4/neigh/{host}/proxy_delay"), "0"),
    ];
    if v6 {
        keys.push((sysctl::iface_key("ipv6", host, "proxy_ndp"), "1"));
        keys.push((sysctl::iface_key("ipv6", host, "forwarding"), "1"));
    }
    keys
}

/// The host routes (`/32`, `/128` on the veth) an endpoint needs.
pub fn expected_host_routes(ep: &Endpoint) -> Vec<IpNet> {
    ep.addresses.iter().map(host_prefix).collect()
}

/// Puts back what an endpoint's host side lost (a host route deleted, a sysctl turned off) while
/// its veth survived; one line per repair. A missing veth cannot be repaired here: the container
/// side went with it, and only a new connect makes both.
pub fn repair_host_side(nl: &mut Netlink, ep: &Endpoint) -> Result<Vec<String>, DriverError> {
    let host = names::host_veth(&ep.id);
    let Some(link) = nl.link_by_name(&host)? else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    for (key, want) in host_sysctls(&host, ep.v6().is_some()) {
        if sysctl::read(&key).ok().as_deref().map(str::trim) != Some(want) {
            sysctl::write(&key, want)?;
            done.push(format!(
                "set {key} back to {want} (endpoint {})",
                names::short(&ep.id)
            ));
        }
    }
    let present: Vec<IpNet> = nl
        .routes(None, Some(254))?
        .into_iter()
        .filter(|r| r.oif == Some(link.index) && r.protocol == WEFT_PROTOCOL)
        .map(|r| r.destination)
        .collect();
    for a in &ep.addresses {
        if !present.contains(&host_prefix(a)) {
            nl.replace_route(&host_route(a, link.index))?;
            done.push(format!(
                "re-created host route {} dev {host} (endpoint {})",
                host_prefix(a),
                names::short(&ep.id)
            ));
        }
    }
    Ok(done)
}

fn host_route(a: &IpNet, oif: u32) -> Route {
    let mut r = Route::new(host_prefix(a));
    r.oif = Some(oif);
    r.scope = 253;
    r.protocol = WEFT_PROTOCOL;
    r
}

pub fn join(net: &Network, ep: &Endpoint, sandbox: &Sandbox) -> Result<JoinInfo, DriverError> {
    let config = RoutedConfig::from_network(net)?;
    validate(net, ep)?;
    let mut nl = Netlink::open()?;
    let host_name = names::host_veth(&ep.id);
    let host = VethEnd {
        name: host_name.clone(),
        mtu: config.mtu,
        mac: Some(HOST_MAC),
        alias: Some(names::endpoint_alias(&net.id, &ep.id)),
    };
    let (peer_name, ns) = match sandbox {
        Sandbox::Netns(path) => (ep.ifname.clone(), Some(Netns::open(path)?)),
        Sandbox::Delegated => (names::staged_veth(&ep.id), None),
    };
    let peer = VethEnd {
        name: peer_name.clone(),
        mtu: config.mtu,
        mac: Some(ep.mac),
        alias: None,
    };
    // Read before the new interface exists: what earlier attachments already gave the sandbox.
    let earlier = match &ns {
        Some(ns) => Earlier::read(ns)?,
        None => Earlier::default(),
    };
    let host_index = sandbox::create_veth(&mut nl, &host, &peer, ns.as_ref())?;
    let has_v4 = ep.v4().is_some();
    let has_v6 = ep.v6().is_some();
    let result =
        configure_host_side(&mut nl, &host_name, host_index, ep, has_v6).and_then(|()| match &ns {
            Some(ns) => sandbox::configure(
                ns,
                &peer_name,
                &sandbox_config(net, ep, has_v4, has_v6, earlier),
            ),
            None => Ok(()),
        });
    if let Err(e) = result {
        // The host routes go with the link.
        let _ = nl.del_link(host_index);
        return Err(e);
    }
    let gateway_v4 = (has_v4 && !net.internal).then_some(IpAddr::V4(GATEWAY_V4));
    let gateway_v6 = (has_v6 && !net.internal).then_some(IpAddr::V6(GATEWAY_V6));
    Ok(JoinInfo {
        src_name: ns.is_none().then_some(peer_name),
        gateway_v4,
        gateway_v6,
        // A consumer that configures the container itself (Docker) needs the gateway on-link.
        static_routes: has_v4
            .then(|| StaticRoute {
                destination: IpNet::new(IpAddr::V4(GATEWAY_V4), 32).expect("host prefix"),
                next_hop: None,
            })
            .into_iter()
            .collect(),
        host_ifname: host_name,
        addresses: ep.addresses.iter().map(host_prefix).collect(),
    })
}

fn configure_host_side(
    nl: &mut Netlink,
    name: &str,
    index: u32,
    ep: &Endpoint,
    v6: bool,
) -> Result<(), DriverError> {
    let proxy = |family: &str, key: &str| {
        let k = sysctl::iface_key(family, name, key);
        sysctl::write(&k, "1").map_err(|e| DriverError::Unsupported {
            feature: format!("proxy {} on {name}", if family == "ipv4" { "ARP" } else { "NDP" }),
            hint: format!(
                "routed networks need it ({e}); run weft where it may write /proc/sys/net, or use a bridge network"
            ),
        })
    };
    proxy("ipv4", "proxy_arp")?;
    if v6 {
        proxy("ipv6", "proxy_ndp")?;
    }
    for (key, value) in host_sysctls(name, v6) {
        sysctl::write(&key, value)?;
    }
    if v6 {
        // The gateway address is added by hand without DAD, so containers can use it at once.
        sysctl::write(&sysctl::iface_key("ipv6", name, "addr_gen_mode"), "1")?;
        nl.add_address(
            index,
            IpNet::new(IpAddr::V6(GATEWAY_V6), 64).expect("link-local"),
        )?;
    }
    nl.set_up(index)?;
    for a in &ep.addresses {
        nl.replace_route(&host_route(a, index))?;
    }
    Ok(())
}

/// What a sandbox already has from attachments made before this one (other routed networks, a
/// bridge network), read from its main table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Earlier {
    /// `169.254.1.1/32 dev X scope link` exists (an earlier routed interface owns it).
    gateway_route_v4: bool,
    default_v4: bool,
    default_v6: bool,
}

impl Earlier {
    fn read(ns: &Netns) -> Result<Earlier, DriverError> {
        let mut nl = Netlink::open_in(ns)?;
        Ok(Earlier::of(&nl.routes(None, Some(254))?))
    }

    fn of(routes: &[Route]) -> Earlier {
        let gateway = gateway_prefix();
        let mut e = Earlier::default();
        for r in routes {
            match r.destination {
                d if d == gateway => e.gateway_route_v4 = true,
                IpNet::V4(d) if d.prefix_len() == 0 => e.default_v4 = true,
                IpNet::V6(d) if d.prefix_len() == 0 => e.default_v6 = true,
                _ => {}
            }
        }
        e
    }
}

fn gateway_prefix() -> IpNet {
    IpNet::new(IpAddr::V4(GATEWAY_V4), 32).expect("host prefix")
}

/// The container side. The first routed attachment gets Calico's shape: `169.254.1.1 dev ethX
/// scope link` and `default via 169.254.1.1`. A later one must not add a second
/// `169.254.1.1/32` (IPv4 allows one route per prefix and metric: EEXIST) nor a second default
/// route (the first network keeps it, as in Docker): it gets a route to each of its network's
/// subnets via 169.254.1.1 as an onlink next hop on its own interface, which needs no route to
/// the gateway. The same when a bridge network came first. IPv6's gateway is link-local, scoped
/// to the interface, so only the default route can collide.
fn sandbox_config(
    net: &Network,
    ep: &Endpoint,
    v4: bool,
    v6: bool,
    earlier: Earlier,
) -> SandboxConfig {
    let mut c = SandboxConfig {
        addresses: ep.addresses.iter().map(host_prefix).collect(),
        ..SandboxConfig::default()
    };
    let subnets = |want_v4: bool| {
        net.subnets
            .iter()
            .map(|s| s.subnet.trunc())
            .filter(move |s| s.addr().is_ipv4() == want_v4)
            .collect::<Vec<_>>()
    };
    if v4 {
        let gw = IpAddr::V4(GATEWAY_V4);
        c.neighbours.push((gw, HOST_MAC));
        let own_gateway_route = !earlier.gateway_route_v4;
        if own_gateway_route {
            c.routes.push(SandboxRoute::OnLink(gateway_prefix()));
        }
        if !net.internal && !earlier.default_v4 {
            c.routes.push(if own_gateway_route {
                SandboxRoute::DefaultVia(gw)
            } else {
                SandboxRoute::ViaOnLink(default_prefix(gw), gw)
            });
        } else {
            // Internal, or another network has the default route: this interface still
            // reaches the rest of its own network through the host.
            for s in subnets(true) {
                c.routes.push(if own_gateway_route {
                    SandboxRoute::Via(s, gw)
                } else {
                    SandboxRoute::ViaOnLink(s, gw)
                });
            }
        }
    }
    if v6 {
        let gw = IpAddr::V6(GATEWAY_V6);
        c.neighbours.push((gw, HOST_MAC));
        if !net.internal && !earlier.default_v6 {
            c.routes.push(SandboxRoute::DefaultVia(gw));
        } else {
            for s in subnets(false) {
                c.routes.push(SandboxRoute::Via(s, gw));
            }
        }
    }
    c
}

fn default_prefix(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0".parse().expect("literal"),
        IpAddr::V6(_) => "::/0".parse().expect("literal"),
    }
}

/// Removes the pair; the host routes and proxy settings go with the host side. When the
/// container's default route went through this endpoint, another routed interface of the same
/// container (found by its permanent neighbour entry for the gateway) gets it.
pub fn leave(ep: &Endpoint) -> Result<(), DriverError> {
    let mut nl = Netlink::open()?;
    // The namespace may be gone already (the container stopped): nothing to move then.
    let ns = match &ep.sandbox {
        Some(Sandbox::Netns(path)) => Netns::open(path).ok(),
        _ => None,
    };
    let held = ns
        .as_ref()
        .and_then(|ns| defaults_through(ns, &ep.ifname).ok())
        .unwrap_or_default();
    nl.del_link_by_name(&names::host_veth(&ep.id))?;
    nl.del_link_by_name(&names::staged_veth(&ep.id))?;
    if let Some(ns) = ns.filter(|_| held.0 || held.1) {
        move_default(ns.path().display().to_string(), &ns, held)?;
    }
    Ok(())
}

/// Whether the sandbox's IPv4 and IPv6 default routes go out through `ifname`.
fn defaults_through(ns: &Netns, ifname: &str) -> Result<(bool, bool), DriverError> {
    let mut nl = Netlink::open_in(ns)?;
    let Some(link) = nl.link_by_name(ifname)? else {
        return Ok((false, false));
    };
    let mut held = (false, false);
    for r in nl.routes(None, Some(254))? {
        if r.destination.prefix_len() == 0 && r.oif == Some(link.index) {
            match r.destination {
                IpNet::V4(_) => held.0 = true,
                IpNet::V6(_) => held.1 = true,
            }
        }
    }
    Ok(held)
}

/// Gives the default route the leaving interface had to the sandbox's first other routed
/// interface of that family (the one with the lowest index: the earliest attached), as an
/// onlink route, since the `169.254.1.1/32` route may have gone with the leaving interface.
fn move_default(path: String, ns: &Netns, held: (bool, bool)) -> Result<(), DriverError> {
    let mut nl = Netlink::open_in(ns)?;
    let neighbours = nl.neighbours(None)?;
    let existing = nl.routes(None, Some(254))?;
    for (wanted, gw) in [
        (held.0, IpAddr::V4(GATEWAY_V4)),
        (held.1, IpAddr::V6(GATEWAY_V6)),
    ] {
        let default = default_prefix(gw);
        if !wanted || existing.iter().any(|r| r.destination == default) {
            continue;
        }
        let Some(index) = neighbours
            .iter()
            .filter(|n| n.address == gw && n.mac == Some(HOST_MAC) && n.permanent)
            .map(|n| n.ifindex)
            .min()
        else {
            continue;
        };
        let mut route = Route::new(default);
        route.gateway = Some(gw);
        route.oif = Some(index);
        route.onlink = true;
        nl.replace_route(&route).map_err(|e| DriverError::Netns {
            path: path.clone(),
            message: format!(
                "the interface that had the default route left, and moving it to ifindex {index} failed ({e}); add it by hand: ip route add {default} via {gw} dev <interface> onlink"
            ),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use weft_drivers::model::SubnetInfo;

    use super::*;

    fn net(subnets: &[&str], internal: bool) -> Network {
        Network {
            id: "1".repeat(64),
            name: "r".into(),
            driver: "routed".into(),
            internal,
            enable_ipv6: true,
            subnets: subnets
                .iter()
                .map(|s| SubnetInfo {
                    subnet: s.parse().unwrap(),
                    gateway: None,
                    ip_range: None,
                    pool_id: String::new(),
                })
                .collect(),
            options: BTreeMap::new(),
        }
    }

    fn ep(addresses: &[&str]) -> Endpoint {
        Endpoint {
            id: "2".repeat(64),
            network_id: "1".repeat(64),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            mac: MacAddr([2, 0x42, 0, 0, 0, 1]),
            ifname: "eth1".into(),
            ports: Vec::new(),
            sandbox: None,
            options: BTreeMap::new(),
        }
    }

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_first_attachment_gets_calicos_shape() {
        let c = sandbox_config(
            &net(&["10.1.0.0/24", "fd01::/64"], false),
            &ep(&["10.1.0.2/24", "fd01::2/64"]),
            true,
            true,
            Earlier::default(),
        );
        assert_eq!(
            c.routes,
            vec![
                SandboxRoute::OnLink(p("169.254.1.1/32")),
                SandboxRoute::DefaultVia(IpAddr::V4(GATEWAY_V4)),
                SandboxRoute::DefaultVia(IpAddr::V6(GATEWAY_V6)),
            ]
        );
    }

    #[test]
    fn a_later_attachment_routes_its_subnets_onlink_and_adds_nothing_that_collides() {
        let earlier = Earlier::of(&[
            Route::new(p("169.254.1.1/32")),
            Route::new(p("0.0.0.0/0")),
            Route::new(p("::/0")),
        ]);
        assert_eq!(
            earlier,
            Earlier {
                gateway_route_v4: true,
                default_v4: true,
                default_v6: true
            }
        );
        let c = sandbox_config(
            &net(&["10.2.0.0/24", "fd02::/64"], false),
            &ep(&["10.2.0.2/24", "fd02::2/64"]),
            true,
            true,
            earlier,
        );
        assert_eq!(
            c.routes,
            vec![
                SandboxRoute::ViaOnLink(p("10.2.0.0/24"), IpAddr::V4(GATEWAY_V4)),
                SandboxRoute::Via(p("fd02::/64"), IpAddr::V6(GATEWAY_V6)),
            ]
        );
        // The neighbour entries are per interface: every attachment gets them.
        assert_eq!(c.neighbours.len(), 2);
    }

    #[test]
    fn after_a_bridge_network_the_routed_interface_owns_the_gateway_route_but_not_the_default() {
        let earlier = Earlier::of(&[Route::new(p("0.0.0.0/0")), Route::new(p("10.9.0.0/24"))]);
        let c = sandbox_config(
            &net(&["10.3.0.0/24"], false),
            &ep(&["10.3.0.2/24"]),
            true,
            false,
            earlier,
        );
        assert_eq!(
            c.routes,
            vec![
                SandboxRoute::OnLink(p("169.254.1.1/32")),
                SandboxRoute::Via(p("10.3.0.0/24"), IpAddr::V4(GATEWAY_V4)),
            ]
        );
    }
}
