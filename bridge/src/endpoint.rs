//! An endpoint's veth pair: the host side on the bridge, the container side in the sandbox.

use std::net::IpAddr;

use weft_drivers::driver::JoinInfo;
use weft_drivers::netlink::{Netlink, VethEnd};
use weft_drivers::netns::Netns;
use weft_drivers::sandbox::{self, SandboxConfig, SandboxRoute};
use weft_drivers::{DriverError, Endpoint, Network, Sandbox};

use crate::names;
use crate::options::BridgeConfig;

pub fn validate(net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
    sandbox::check_endpoint(net, ep)
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
    let host_index = sandbox::create_veth(&mut nl, &host, &peer, ns.as_ref())?;
    let (gateway_v4, gateway_v6) = gateways(net);
    let inside = SandboxConfig {
        addresses: ep.addresses.clone(),
        routes: [gateway_v4, gateway_v6]
            .into_iter()
            .flatten()
            .map(SandboxRoute::DefaultVia)
            .collect(),
        neighbours: Vec::new(),
    };
    let result =
        attach_host_side(&mut nl, &config, bridge.index, host_index).and_then(|()| match &ns {
            Some(ns) => sandbox::configure(ns, &peer_name, &inside),
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
        addresses: ep.addresses.clone(),
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

/// Removes the pair (deleting the host side takes the container side with it); an absent pair
/// is not an error.
pub fn leave(ep: &Endpoint) -> Result<(), DriverError> {
    let mut nl = Netlink::open()?;
    nl.del_link_by_name(&names::host_veth(&ep.id))?;
    // A Docker endpoint whose join failed before Docker moved the container side.
    nl.del_link_by_name(&names::staged_veth(&ep.id))?;
    Ok(())
}
