//! An endpoint's veth pair: the host side on the bridge, the container side in the sandbox.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_drivers::driver::JoinInfo;
use weft_drivers::netlink::{Netlink, Route, VethEnd};
use weft_drivers::netns::Netns;
use weft_drivers::{sysctl, DriverError, Endpoint, Network, Sandbox};

use crate::names;
use crate::options::BridgeConfig;

pub fn validate(net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
    names::check_ifname(&ep.ifname).map_err(|reason| {
        DriverError::Invalid(format!("interface name {:?}: {reason}", ep.ifname))
    })?;
    for a in &ep.addresses {
        if !net.subnets.iter().any(|s| s.subnet.contains(&a.addr())) {
            return Err(DriverError::Invalid(format!(
                "address {a} is in no subnet of network {}",
                net.name
            )));
        }
    }
    Ok(())
}

fn gateways(net: &Network) -> (Option<IpAddr>, Option<IpAddr>) {
    if net.internal {
        return (None, None);
    }
    let v4 = net.v4_subnets().find_map(|s| s.gateway).map(|g| g.addr());
    let v6 = net.v6_subnets().find_map(|s| s.gateway).map(|g| g.addr());
    (v4, v6)
}

pub fn join(net: &Network, ep: &Endpoint, sandbox: &Sandbox) -> Result<JoinInfo, DriverError> {
    let config = BridgeConfig::from_network(net)?;
    validate(net, ep)?;
    let mut nl = Netlink::open()?;
    let bridge = nl.link_by_name(&config.bridge)?.ok_or_else(|| {
        DriverError::Invalid(format!(
            "bridge {} of network {} is missing; restart weft daemon or recreate the network",
            config.bridge, net.name
        ))
    })?;
    let mtu = config.mtu.or(Some(bridge.mtu));
    let host_name = names::host_veth(&ep.id);
    let host = VethEnd {
        name: host_name.clone(),
        mtu,
        mac: None,
        alias: Some(names::endpoint_alias(&net.id, &ep.id)),
    };
    let (peer_name, ns) = match sandbox {
        Sandbox::Netns(path) => (ep.ifname.clone(), Some(Netns::open(path)?)),
        Sandbox::Delegated => (names::staged_veth(&ep.id), None),
    };
    let peer = VethEnd {
        name: peer_name.clone(),
        mtu,
        mac: Some(ep.mac),
        alias: None,
    };
    // A retried join finds its own pair from the first attempt: start again from nothing.
    nl.del_link_by_name(&host_name)?;
    if ns.is_none() {
        nl.del_link_by_name(&peer_name)?;
    }
    let host_index = nl
        .add_veth(&host, &peer, ns.as_ref())
        .map_err(|e| match e.errno() {
            Some(libc::EEXIST) => DriverError::Exists {
                object: format!("interface {peer_name}"),
                hint: match sandbox {
                    Sandbox::Netns(p) => format!(
                        "namespace {} already has it; pick another --ifname",
                        p.display()
                    ),
                    Sandbox::Delegated => "a stale staged interface exists; remove it".into(),
                },
            },
            _ => e,
        })?;
    let (gateway_v4, gateway_v6) = gateways(net);
    let result =
        attach_host_side(&mut nl, &config, bridge.index, host_index).and_then(|()| match &ns {
            Some(ns) => configure_sandbox(ns, ep, &peer_name, gateway_v4, gateway_v6),
            None => Ok(()),
        });
    if let Err(e) = result {
        let _ = nl.del_link(host_index);
        return Err(e);
    }
    Ok(JoinInfo {
        src_name: ns.is_none().then_some(peer_name),
        gateway_v4,
        gateway_v6,
        static_routes: Vec::new(),
        host_ifname: host_name,
    })
}

fn attach_host_side(
    nl: &mut Netlink,
    config: &BridgeConfig,
    bridge: u32,
    host: u32,
) -> Result<(), DriverError> {
    nl.set_master(host, Some(bridge))?;
    // ICC off = bridge port isolation: isolated ports reach the bridge (the host) but not each
    // other, without depending on br_netfilter.
    nl.set_bridge_port(host, config.hairpin, !config.icc)?;
    nl.set_up(host)
}

fn configure_sandbox(
    ns: &Netns,
    ep: &Endpoint,
    ifname: &str,
    gateway_v4: Option<IpAddr>,
    gateway_v6: Option<IpAddr>,
) -> Result<(), DriverError> {
    let mut nl = Netlink::open_in(ns)?;
    let link = nl.link_by_name(ifname)?.ok_or_else(|| DriverError::Netns {
        path: ns.path().display().to_string(),
        message: format!("interface {ifname} vanished right after it was created"),
    })?;
    if ep.addresses.iter().any(|a| matches!(a, IpNet::V6(_))) {
        let key = sysctl::iface_key("ipv6", ifname, "disable_ipv6");
        ns.run(|| sysctl::write(&key, "0"))??;
    }
    for a in &ep.addresses {
        nl.add_address(link.index, *a)?;
    }
    nl.set_up(link.index)?;
    if let Some(lo) = nl.link_by_name("lo")? {
        if !lo.up {
            nl.set_up(lo.index)?;
        }
    }
    for gw in [gateway_v4, gateway_v6].into_iter().flatten() {
        let mut route = Route::new(default_route(gw));
        route.gateway = Some(gw);
        route.oif = Some(link.index);
        match nl.add_route(&route) {
            // The sandbox already has a default route from an earlier network: keep it, as
            // Docker does.
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            other => other?,
        }
    }
    Ok(())
}

fn default_route(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0".parse().unwrap(),
        IpAddr::V6(_) => "::/0".parse().unwrap(),
    }
}

/// Removes the pair (deleting the host side takes the container side with it); an absent pair
/// is not an error.
pub fn leave(ep: &Endpoint) -> Result<(), DriverError> {
    let mut nl = Netlink::open()?;
    nl.del_link_by_name(&names::host_veth(&ep.id))?;
    // A Docker endpoint whose join failed before Docker moved the container side.
    nl.del_link_by_name(&names::staged_veth(&ep.id))?;
    Ok(())
}
