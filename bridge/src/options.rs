//! The bridge driver's options (Docker's names where Docker has one) and their parsed form.

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_drivers::{DriverError, Network};

use crate::names;

pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const ENABLE_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const HOST_BINDING_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
pub const MTU: &str = "com.docker.network.driver.mtu";
pub const CONTAINER_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";
pub const HAIRPIN: &str = "weft.hairpin";
/// Docker's way of picking a weft driver (`-o weft.mode=bridge|routed`); nothing to do here.
pub const MODE: &str = "weft.mode";
/// Comma-separated cluster networks (multi-host) this network's subnet belongs to: traffic to
/// them keeps its source address (never masqueraded).
pub const CLUSTER_CIDR: &str = "weft.cluster.cidr";

const KNOWN: [&str; 10] = [
    MODE,
    BRIDGE_NAME,
    ENABLE_ICC,
    ENABLE_IP_MASQUERADE,
    HOST_BINDING_IPV4,
    DEFAULT_BRIDGE,
    MTU,
    CONTAINER_IFACE_PREFIX,
    HAIRPIN,
    CLUSTER_CIDR,
];

/// Option namespaces this driver owns: an unknown key inside them is a typo, not someone
/// else's option.
const OWNED_PREFIXES: [&str; 2] = ["com.docker.network.bridge.", "weft."];

/// The name of the default network's bridge (Docker's docker0).
pub const DEFAULT_BRIDGE_NAME: &str = "weft0";

/// The default network (Docker's `bridge`): it gets `DEFAULT_BRIDGE_NAME`.
pub const DEFAULT_NETWORK_NAME: &str = "weft";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub bridge: String,
    pub mtu: Option<u32>,
    pub icc: bool,
    pub masquerade: bool,
    pub hairpin: bool,
    /// Host address published ports bind to when a mapping names none.
    pub host_binding: Option<IpAddr>,
    /// Cluster networks never masqueraded as destinations.
    pub cluster: Vec<ipnet::IpNet>,
}

impl BridgeConfig {
    pub fn from_network(net: &Network) -> Result<Self, DriverError> {
        parse(&net.id, net.name == DEFAULT_NETWORK_NAME, &net.options)
    }
}

fn parse(
    network_id: &str,
    is_default_network: bool,
    opts: &BTreeMap<String, String>,
) -> Result<BridgeConfig, DriverError> {
    for key in opts.keys() {
        if OWNED_PREFIXES.iter().any(|p| key.starts_with(p)) && !KNOWN.contains(&key.as_str()) {
            return Err(DriverError::InvalidOption {
                key: key.clone(),
                value: opts[key].clone(),
                reason: format!("unknown bridge option; known ones are {}", KNOWN.join(", ")),
            });
        }
    }
    let default_bridge = flag(opts, DEFAULT_BRIDGE, is_default_network)?;
    let bridge = match opts.get(BRIDGE_NAME) {
        Some(name) => {
            names::check_ifname(name).map_err(|reason| DriverError::InvalidOption {
                key: BRIDGE_NAME.into(),
                value: name.clone(),
                reason,
            })?;
            name.clone()
        }
        None if default_bridge => DEFAULT_BRIDGE_NAME.to_string(),
        None => names::bridge(network_id),
    };
    let mtu = match opts.get(MTU) {
        None => None,
        Some(v) if v.is_empty() || v == "0" => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| DriverError::InvalidOption {
                    key: MTU.into(),
                    value: v.clone(),
                    reason: "MTU must be a number from 68 to 65535".into(),
                })?,
        ),
    };
    let host_binding = match opts.get(HOST_BINDING_IPV4) {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => {
            let ip: IpAddr = v.parse().map_err(|_| DriverError::InvalidOption {
                key: HOST_BINDING_IPV4.into(),
                value: v.clone(),
                reason: "not an IP address".into(),
            })?;
            (!ip.is_unspecified()).then_some(ip)
        }
    };
    let cluster = match opts.get(CLUSTER_CIDR) {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                c.trim()
                    .parse::<ipnet::IpNet>()
                    .map_err(|_| DriverError::InvalidOption {
                        key: CLUSTER_CIDR.into(),
                        value: v.clone(),
                        reason: format!("{c:?} is not a CIDR like 10.244.0.0/16"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(BridgeConfig {
        bridge,
        mtu,
        cluster,
        icc: flag(opts, ENABLE_ICC, true)?,
        masquerade: flag(opts, ENABLE_IP_MASQUERADE, true)?,
        hairpin: flag(opts, HAIRPIN, true)?,
        host_binding,
    })
}

fn flag(opts: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, DriverError> {
    match opts.get(key).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) if v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(v) => Err(DriverError::InvalidOption {
            key: key.into(),
            value: v,
            reason: "expected true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_follow_docker() {
        let c = parse(ID, false, &BTreeMap::new()).unwrap();
        assert_eq!(c.bridge, "br-0123456789ab");
        assert!(c.icc && c.masquerade && c.hairpin);
        assert_eq!(c.mtu, None);
        assert_eq!(c.host_binding, None);
    }

    #[test]
    fn default_bridge_is_weft0() {
        let c = parse(ID, false, &opts(&[(DEFAULT_BRIDGE, "true")])).unwrap();
        assert_eq!(c.bridge, "weft0");
        assert_eq!(parse(ID, true, &BTreeMap::new()).unwrap().bridge, "weft0");
        let named = parse(ID, true, &opts(&[(BRIDGE_NAME, "x0")])).unwrap();
        assert_eq!(named.bridge, "x0");
    }

    #[test]
    fn options_are_parsed() {
        let c = parse(
            ID,
            false,
            &opts(&[
                (BRIDGE_NAME, "mybr"),
                (MTU, "1400"),
                (ENABLE_ICC, "false"),
                (ENABLE_IP_MASQUERADE, "0"),
                (HOST_BINDING_IPV4, "127.0.0.1"),
                ("com.docker.network.enable_ipv6", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(c.bridge, "mybr");
        assert_eq!(c.mtu, Some(1400));
        assert!(!c.icc && !c.masquerade);
        assert_eq!(c.host_binding, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn cluster_cidrs_are_parsed() {
        let c = parse(
            ID,
            false,
            &opts(&[(CLUSTER_CIDR, "10.244.0.0/16, fd00:244::/48")]),
        )
        .unwrap();
        assert_eq!(
            c.cluster,
            vec![
                "10.244.0.0/16".parse::<ipnet::IpNet>().unwrap(),
                "fd00:244::/48".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bad_options_are_refused_with_the_key() {
        for (k, v) in [
            (MTU, "9"),
            (MTU, "big"),
            (ENABLE_ICC, "maybe"),
            (BRIDGE_NAME, "this-name-is-too-long"),
            (BRIDGE_NAME, "bad name"),
            (HOST_BINDING_IPV4, "nope"),
            (CLUSTER_CIDR, "10.244.0.0/16,nope"),
            ("com.docker.network.bridge.enable_iccc", "true"),
        ] {
            let e = parse(ID, false, &opts(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }
}
