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
    let host_index = sandbox::create_veth(&mut nl, &host, &peer, ns.as_ref())?;
    let has_v4 = ep.v4().is_some();
    let has_v6 = ep.v6().is_some();
    let result =
        configure_host_side(&mut nl, &host_name, host_index, ep, has_v6).and_then(|()| match &ns {
            Some(ns) => sandbox::configure(
                ns,
                &peer_name,
                &sandbox_config(ep, has_v4, has_v6, net.internal),
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
    // Published ports answer on 127.0.0.1: the DNATed packet leaves through this veth with a
    // loopback source until masquerade rewrites it.
    sysctl::write(&sysctl::iface_key("ipv4", name, "route_localnet"), "1")?;
    sysctl::write(&format!("net/ipv4/neigh/{name}/proxy_delay"), "0")?;
    if v6 {
        proxy("ipv6", "proxy_ndp")?;
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

fn sandbox_config(ep: &Endpoint, v4: bool, v6: bool, internal: bool) -> SandboxConfig {
    let mut c = SandboxConfig {
        addresses: ep.addresses.iter().map(host_prefix).collect(),
        ..SandboxConfig::default()
    };
    if v4 {
        c.neighbours.push((IpAddr::V4(GATEWAY_V4), HOST_MAC));
        c.routes.push(SandboxRoute::OnLink(
            IpNet::new(IpAddr::V4(GATEWAY_V4), 32).expect("host prefix"),
        ));
        if !internal {
            c.routes
                .push(SandboxRoute::DefaultVia(IpAddr::V4(GATEWAY_V4)));
        }
    }
    if v6 {
        c.neighbours.push((IpAddr::V6(GATEWAY_V6), HOST_MAC));
        if !internal {
            c.routes
                .push(SandboxRoute::DefaultVia(IpAddr::V6(GATEWAY_V6)));
        }
    }
    // Internal networks: the container reaches the rest of its network through the host.
    if internal {
        for a in &ep.addresses {
            let subnet = a.trunc();
            let via = match subnet {
                IpNet::V4(_) => IpAddr::V4(GATEWAY_V4),
                IpNet::V6(_) => IpAddr::V6(GATEWAY_V6),
            };
            c.routes.push(SandboxRoute::Via(subnet, via));
        }
    }
    c
}

/// Removes the pair; the host routes and proxy settings go with the host side.
pub fn leave(ep: &Endpoint) -> Result<(), DriverError> {
    let mut nl = Netlink::open()?;
    nl.del_link_by_name(&names::host_veth(&ep.id))?;
    nl.del_link_by_name(&names::staged_veth(&ep.id))?;
    Ok(())
}
