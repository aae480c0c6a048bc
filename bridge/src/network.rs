//! A network's bridge: created with its gateway addresses and firewall rules, or removed.

use ipnet::IpNet;
use weft_drivers::firewall::{Firewall, NetworkRules, NftRunner};
use weft_drivers::netlink::Netlink;
use weft_drivers::{sysctl, DriverError, MacAddr, Network};

use crate::names;
use crate::options::BridgeConfig;

pub fn validate(net: &Network) -> Result<BridgeConfig, DriverError> {
    let config = BridgeConfig::from_network(net)?;
    if net.subnets.is_empty() {
        return Err(DriverError::Invalid(format!(
            "network {}: a bridge network needs at least one subnet",
            net.name
        )));
    }
    if let Some(s) = net.subnets.iter().find(|s| s.gateway.is_none()) {
        return Err(DriverError::Invalid(format!(
            "network {}: subnet {} has no gateway address for the bridge",
            net.name, s.subnet
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

pub fn firewall_rules(net: &Network, config: &BridgeConfig) -> NetworkRules {
    NetworkRules {
        key: net.id[..net.id.len().min(12)].to_string(),
        interface: Some(config.bridge.clone()),
        subnets: net.subnets.iter().map(|s| s.subnet.trunc()).collect(),
        masquerade: config.masquerade,
        internal: net.internal,
        cluster: config.cluster.clone(),
    }
}

/// A stable, locally administered MAC from the network id: a bridge without one would take the
/// lowest MAC of its ports and change it as containers come and go, breaking their ARP caches.
pub fn bridge_mac(network_id: &str) -> MacAddr {
    let mut mac = [0x02u8, 0, 0, 0, 0, 0];
    for (i, byte) in mac.iter_mut().enumerate().skip(1) {
        *byte = network_id
            .get(2 * i - 2..2 * i)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    MacAddr(mac)
}

pub fn create<R: NftRunner>(fw: &Firewall<R>, net: &Network) -> Result<(), DriverError> {
    let config = validate(net)?;
    let mut nl = Netlink::open()?;
    let alias = names::bridge_alias(&net.id);
    let (index, created) = match nl.link_by_name(&config.bridge)? {
        Some(link) if link.alias.as_deref() == Some(alias.as_str()) => (link.index, false),
        Some(_) => {
            return Err(DriverError::Exists {
                object: format!("interface {}", config.bridge),
                hint: format!(
                    "it was not made by weft for network {}; pick another bridge name with -o {}=NAME or remove the interface",
                    net.name,
                    crate::options::BRIDGE_NAME
                ),
            })
        }
        None => {
            let mac = bridge_mac(&net.id);
            let index = nl.add_bridge(&config.bridge, config.mtu, Some(mac), Some(&alias))?;
            (index, true)
        }
    };
    let result = configure(&mut nl, fw, net, &config, index);
    if result.is_err() && created {
        let _ = fw.remove_network(&firewall_rules(net, &config));
        let _ = nl.del_link(index);
    }
    result
}

fn configure<R: NftRunner>(
    nl: &mut Netlink,
    fw: &Firewall<R>,
    net: &Network,
    config: &BridgeConfig,
    index: u32,
) -> Result<(), DriverError> {
    sysctl::write("net/ipv4/ip_forward", "1")?;
    // Published ports answer on 127.0.0.1: the DNATed packet leaves through the bridge with a
    // loopback source until masquerade rewrites it, which the kernel drops unless allowed.
    sysctl::write(
        &sysctl::iface_key("ipv4", &config.bridge, "route_localnet"),
        "1",
    )?;
    if net.enable_ipv6 {
        sysctl::write(
            &sysctl::iface_key("ipv6", &config.bridge, "disable_ipv6"),
            "0",
        )?;
        sysctl::write("net/ipv6/conf/all/forwarding", "1")?;
    }
    let present: Vec<IpNet> = nl
        .addresses(Some(index))?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    for gateway in net.subnets.iter().filter_map(|s| s.gateway) {
        if !present.contains(&gateway) {
            nl.add_address(index, gateway)?;
        }
    }
    nl.set_up(index)?;
    fw.apply_network(&firewall_rules(net, config))
}

/// Removes the firewall rules and the bridge (only if weft made it). Keeps going past failures.
pub fn delete<R: NftRunner>(fw: &Firewall<R>, net: &Network) -> Result<(), DriverError> {
    let config = BridgeConfig::from_network(net)?;
    let mut errors = Vec::new();
    if let Err(e) = fw.remove_network(&firewall_rules(net, &config)) {
        errors.push(e);
    }
    match Netlink::open() {
        Ok(mut nl) => match nl.link_by_name(&config.bridge) {
            Ok(Some(link))
                if link.alias.as_deref() == Some(names::bridge_alias(&net.id).as_str()) =>
            {
                if let Err(e) = nl.del_link(link.index) {
                    errors.push(e);
                }
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        },
        Err(e) => errors.push(e),
    }
    DriverError::collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_mac_is_stable_and_local() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(bridge_mac(id).to_string(), "02:01:23:45:67:89");
        assert_eq!(bridge_mac(id), bridge_mac(id));
    }
}
