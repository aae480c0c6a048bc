//! A routed network: forwarding on, a blackhole route for each subnet, firewall rules.

use ipnet::IpNet;
use weft_drivers::firewall::{Firewall, NetworkRules, NftRunner};
use weft_drivers::netlink::{Netlink, Route, RouteKind, WEFT_PROTOCOL};
use weft_drivers::{names, sysctl, DriverError, Network};

use crate::options::RoutedConfig;

pub fn validate(net: &Network) -> Result<RoutedConfig, DriverError> {
    let config = RoutedConfig::from_network(net)?;
    if net.subnets.is_empty() {
        return Err(DriverError::Invalid(format!(
            "network {}: a routed network needs at least one subnet",
            net.name
        )));
    }
    if let Some(s) = net.subnets.iter().find(|s| s.gateway.is_some()) {
        return Err(DriverError::Invalid(format!(
            "network {}: routed networks have no gateway address (containers route through {}); drop the gateway of {}",
            net.name,
            crate::GATEWAY_V4,
            s.subnet
        )));
    }
    if !net.enable_ipv6 && net.v6_subnets().next().is_some() {
        return Err(DriverError::Invalid(format!(
            "network {}: an IPv6 subnet was given but IPv6 is not enabled; add --ipv6",
            net.name
        )));
    }
    Ok(config)
}

pub fn firewall_rules(net: &Network, config: &RoutedConfig) -> NetworkRules {
    NetworkRules {
        key: names::short(&net.id).to_string(),
        interface: None,
        subnets: net.subnets.iter().map(|s| s.subnet.trunc()).collect(),
        masquerade: config.masquerade,
        internal: net.internal,
        cluster: config.cluster.clone(),
    }
}

/// `ip route replace blackhole SUBNET proto weft`: the unused part of the subnet goes nowhere.
pub fn blackhole(subnet: IpNet) -> Route {
    let mut r = Route::new(subnet.trunc());
    r.kind = RouteKind::Blackhole;
    r.protocol = WEFT_PROTOCOL;
    r
}

pub fn create<R: NftRunner>(fw: &Firewall<R>, net: &Network) -> Result<(), DriverError> {
    let config = validate(net)?;
    let mut nl = Netlink::open()?;
    sysctl::write("net/ipv4/ip_forward", "1")?;
    if net.enable_ipv6 {
        sysctl::write("net/ipv6/conf/all/forwarding", "1")?;
    }
    let mut added = Vec::new();
    let result = net
        .subnets
        .iter()
        .try_for_each(|s| {
            let r = blackhole(s.subnet);
            nl.replace_route(&r)?;
            added.push(r);
            Ok(())
        })
        .and_then(|()| fw.apply_network(&firewall_rules(net, &config)));
    if result.is_err() {
        for r in &added {
            let _ = nl.del_route(r);
        }
        let _ = fw.remove_network(&firewall_rules(net, &config));
    }
    result
}

/// Removes the blackhole routes and the firewall rules; keeps going past failures.
pub fn delete<R: NftRunner>(fw: &Firewall<R>, net: &Network) -> Result<(), DriverError> {
    let config = RoutedConfig::from_network(net)?;
    let mut errors = Vec::new();
    if let Err(e) = fw.remove_network(&firewall_rules(net, &config)) {
        errors.push(e);
    }
    match Netlink::open() {
        Ok(mut nl) => {
            for s in &net.subnets {
                match nl.del_route(&blackhole(s.subnet)) {
                    Err(e) if e.errno() != Some(libc::ESRCH) => errors.push(e),
                    _ => {}
                }
            }
        }
        Err(e) => errors.push(e),
    }
    DriverError::collect(errors)
}
