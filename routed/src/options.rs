//! The routed driver's options.

use std::collections::BTreeMap;

use ipnet::IpNet;
use weft_drivers::{DriverError, Network};

pub const MTU: &str = "com.docker.network.driver.mtu";
/// Masquerade traffic leaving for destinations outside weft's networks (default true).
pub const MASQUERADE: &str = "weft.masquerade";
/// Cluster-wide prefixes (comma-separated) never masqueraded as destinations.
pub const CLUSTER_CIDR: &str = "weft.cluster.cidr";
/// Set by Docker's plugin to pick this driver through the `weft` plugin name.
pub const MODE: &str = "weft.mode";

const KNOWN: [&str; 4] = [MTU, MASQUERADE, CLUSTER_CIDR, MODE];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedConfig {
    pub mtu: Option<u32>,
    pub masquerade: bool,
    pub cluster: Vec<IpNet>,
}

impl RoutedConfig {
    pub fn from_network(net: &Network) -> Result<Self, DriverError> {
        parse(&net.options)
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> DriverError {
    DriverError::InvalidOption {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse(opts: &BTreeMap<String, String>) -> Result<RoutedConfig, DriverError> {
    for (key, value) in opts {
        let owned = key.starts_with("weft.") || key.starts_with("com.docker.network.bridge.");
        if owned && !KNOWN.contains(&key.as_str()) {
            return Err(invalid(
                key,
                value,
                format!(
                    "not an option of the routed driver; known ones are {}",
                    KNOWN.join(", ")
                ),
            ));
        }
    }
    let mtu = match opts.get(MTU).map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| invalid(MTU, v, "MTU must be a number from 68 to 65535"))?,
        ),
    };
    let masquerade = match opts.get(MASQUERADE).map(|v| v.to_ascii_lowercase()) {
        None => true,
        Some(v) if v.is_empty() || v == "true" || v == "1" => true,
        Some(v) if v == "false" || v == "0" => false,
        Some(v) => return Err(invalid(MASQUERADE, &v, "expected true or false")),
    };
    let cluster = match opts.get(CLUSTER_CIDR) {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim().parse::<IpNet>().map_err(|_| {
                    invalid(
                        CLUSTER_CIDR,
                        v,
                        "expected CIDR prefixes separated by commas",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(RoutedConfig {
        mtu,
        masquerade,
        cluster,
    })
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

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            parse(&BTreeMap::new()).unwrap(),
            RoutedConfig {
                mtu: None,
                masquerade: true,
                cluster: vec![]
            }
        );
        let c = parse(&opts(&[
            (MTU, "1450"),
            (MASQUERADE, "false"),
            (CLUSTER_CIDR, "10.244.0.0/16, fd10::/48"),
        ]))
        .unwrap();
        assert_eq!(c.mtu, Some(1450));
        assert!(!c.masquerade);
        assert_eq!(c.cluster.len(), 2);
    }

    #[test]
    fn bad_values_name_the_option() {
        for (k, v) in [
            (MTU, "1"),
            (MASQUERADE, "yes please"),
            (CLUSTER_CIDR, "nope"),
            ("com.docker.network.bridge.enable_icc", "false"),
        ] {
            let e = parse(&opts(&[(k, v)])).unwrap_err().to_string();
            assert!(e.contains(k), "{e}");
        }
    }
}
