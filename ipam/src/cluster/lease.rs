//! The etcd key layout and the lease and reservation values, with their validation.
//!
//! ```text
//! <prefix>/clusters/<name>/config                    ClusterConfig JSON, no TTL
//! <prefix>/clusters/<name>/subnets/10.244.1.0-24     LeaseValue JSON, attached to an etcd lease (TTL)
//! <prefix>/clusters/<name>/reservations/10.244.9.0-24  Reservation JSON, no TTL
//! ```
//!
//! The prefix defaults to `/weft`. A subnet is written with `-` for `/` so it is one key
//! segment.

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::carve;
use super::config::ClusterConfig;
use super::error::ClusterError;

/// The etcd key prefix when none is given.
pub const DEFAULT_PREFIX: &str = "/weft";

/// What a host publishes about itself under its subnet key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseValue {
    /// The address other hosts reach this one on (underlay).
    pub public_ip: IpAddr,
    /// Random id persisted in the host's local store: tells a restart from a second daemon.
    pub node_id: String,
    /// For people reading etcd.
    #[serde(default)]
    pub hostname: String,
    /// The host's IPv6 subnet when the cluster has an IPv6 network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_v6: Option<Ipv6Net>,
    /// What the backend needs peers to know (the vxlan backend's VTEP MAC); `null` until the
    /// backend is up.
    #[serde(default)]
    pub backend_data: serde_json::Value,
}

/// One host's lease as read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased subnet (from the key).
    pub subnet: Ipv4Net,
    /// What the host published.
    pub value: LeaseValue,
    /// etcd's mod_revision of the key: a takeover is a transaction on it.
    pub mod_revision: i64,
}

/// A subnet kept for one host whether or not it is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The reserved subnet (from the key).
    #[serde(skip)]
    pub subnet: Option<Ipv4Net>,
    /// The host it is kept for.
    pub public_ip: IpAddr,
}

/// The keys of one cluster network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    base: String,
}

impl Keys {
    /// Keys of cluster `name` under `prefix` (a trailing `/` is ignored).
    pub fn new(prefix: &str, name: &str) -> Keys {
        Keys {
            base: format!("{}/clusters/{name}", prefix.trim_end_matches('/')),
        }
    }

    /// Everything of the cluster: `<prefix>/clusters/<name>/`.
    pub fn cluster(&self) -> String {
        format!("{}/", self.base)
    }

    /// The config key.
    pub fn config(&self) -> String {
        format!("{}/config", self.base)
    }

    /// The prefix of every lease.
    pub fn subnets(&self) -> String {
        format!("{}/subnets/", self.base)
    }

    /// The lease key of `subnet`.
    pub fn subnet(&self, subnet: Ipv4Net) -> String {
        format!("{}{}", self.subnets(), segment(subnet))
    }

    /// The prefix of every reservation.
    pub fn reservations(&self) -> String {
        format!("{}/reservations/", self.base)
    }

    /// The reservation key of `subnet`.
    pub fn reservation(&self, subnet: Ipv4Net) -> String {
        format!("{}{}", self.reservations(), segment(subnet))
    }

    /// Which kind of key `key` is, with the subnet it names.
    pub fn classify(&self, key: &str) -> KeyKind {
        if key == self.config() {
            return KeyKind::Config;
        }
        if let Some(rest) = key.strip_prefix(&self.subnets()) {
            return KeyKind::Lease(parse_segment(rest));
        }
        if let Some(rest) = key.strip_prefix(&self.reservations()) {
            return KeyKind::Reservation(parse_segment(rest));
        }
        KeyKind::Other
    }
}

/// What a key under the cluster prefix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The config.
    Config,
    /// A lease; `None` when the key does not name a subnet.
    Lease(Option<Ipv4Net>),
    /// A reservation; `None` when the key does not name a subnet.
    Reservation(Option<Ipv4Net>),
    /// Anything else.
    Other,
}

/// `10.244.1.0/24` → `10.244.1.0-24`.
pub fn segment(subnet: Ipv4Net) -> String {
    format!("{}-{}", subnet.addr(), subnet.prefix_len())
}

/// `10.244.1.0-24` → `10.244.1.0/24`, only for exactly what [`segment`] makes.
pub fn parse_segment(text: &str) -> Option<Ipv4Net> {
    let (addr, len) = text.rsplit_once('-')?;
    let subnet: Ipv4Net = format!("{addr}/{len}").parse().ok()?;
    (segment(subnet) == text && subnet.network() == subnet.addr()).then_some(subnet)
}

impl LeaseValue {
    /// The JSON stored in etcd.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("lease serializes")
    }
}

/// Decodes and checks one lease. A lease is malformed when its key names no subnet of the
/// cluster, its value is not lease JSON, or it has no usable public address or node id.
pub fn parse_lease(
    config: &ClusterConfig,
    keys: &Keys,
    key: &str,
    value: &[u8],
    mod_revision: i64,
) -> Result<Lease, ClusterError> {
    let malformed = |reason: String| ClusterError::MalformedLease {
        key: key.to_string(),
        reason,
    };
    let subnet = match keys.classify(key) {
        KeyKind::Lease(Some(subnet)) => subnet,
        _ => {
            return Err(malformed(
                "the key does not name a subnet like 10.244.1.0-24".into(),
            ))
        }
    };
    if !carve::is_host_subnet(config.network, config.subnet_len, subnet) {
        return Err(malformed(format!(
            "{subnet} is not a /{} subnet of cluster network {}",
            config.subnet_len, config.network
        )));
    }
    let value: LeaseValue = serde_json::from_slice(value)
        .map_err(|e| malformed(format!("the value is not lease JSON: {e}")))?;
    if value.public_ip.is_unspecified() || value.public_ip.is_multicast() {
        return Err(malformed(format!(
            "public_ip {} is not a host address",
            value.public_ip
        )));
    }
    if value.node_id.is_empty() {
        return Err(malformed("node_id is empty".into()));
    }
    Ok(Lease {
        subnet,
        value,
        mod_revision,
    })
}

/// Decodes and checks one reservation.
pub fn parse_reservation(
    config: &ClusterConfig,
    keys: &Keys,
    key: &str,
    value: &[u8],
) -> Result<Reservation, ClusterError> {
    let subnet = match keys.classify(key) {
        KeyKind::Reservation(Some(subnet)) => subnet,
        _ => {
            return Err(ClusterError::InvalidReservation {
                subnet: key.to_string(),
                reason: "the key does not name a subnet like 10.244.1.0-24".into(),
            })
        }
    };
    check_reservation_subnet(config, subnet)?;
    let mut reservation: Reservation =
        serde_json::from_slice(value).map_err(|e| ClusterError::InvalidReservation {
            subnet: subnet.to_string(),
            reason: format!("the value is not reservation JSON: {e}"),
        })?;
    reservation.subnet = Some(subnet);
    Ok(reservation)
}

/// A reservation must name one of the cluster's host subnets.
pub fn check_reservation_subnet(
    config: &ClusterConfig,
    subnet: Ipv4Net,
) -> Result<(), ClusterError> {
    if carve::is_host_subnet(config.network, config.subnet_len, subnet) {
        Ok(())
    } else {
        Err(ClusterError::InvalidReservation {
            subnet: subnet.to_string(),
            reason: format!(
                "it is not a /{} subnet of cluster network {} (the first subnet is never handed out)",
                config.subnet_len, config.network
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::config::BackendConfig;

    fn config() -> ClusterConfig {
        ClusterConfig::new(
            "10.244.0.0/16".parse().unwrap(),
            BackendConfig::new("vxlan"),
        )
    }

    #[test]
    fn key_layout() {
        let k = Keys::new("/weft/", "prod");
        assert_eq!(k.config(), "/weft/clusters/prod/config");
        let s: Ipv4Net = "10.244.1.0/24".parse().unwrap();
        assert_eq!(k.subnet(s), "/weft/clusters/prod/subnets/10.244.1.0-24");
        assert_eq!(k.classify(&k.subnet(s)), KeyKind::Lease(Some(s)));
        assert_eq!(k.classify(&k.reservation(s)), KeyKind::Reservation(Some(s)));
        assert_eq!(
            k.classify("/weft/clusters/prod/subnets/junk"),
            KeyKind::Lease(None)
        );
        assert_eq!(k.classify("/weft/clusters/other/config"), KeyKind::Other);
        assert_eq!(parse_segment("10.244.1.1-24"), None);
        assert_eq!(parse_segment("10.244.01.0-24"), None);
    }

    #[test]
    fn leases_are_validated() {
        let (c, k) = (config(), Keys::new("/weft", "x"));
        let good = br#"{"public_ip":"192.168.0.2","node_id":"n1","backend_data":{"vtep_mac":"0a:00:00:00:00:01"}}"#;
        let key = "/weft/clusters/x/subnets/10.244.3.0-24";
        let lease = parse_lease(&c, &k, key, good, 7).unwrap();
        assert_eq!(lease.subnet, "10.244.3.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(lease.mod_revision, 7);
        for (key, value, needle) in [
            (key, &b"garbage"[..], "not lease JSON"),
            (
                key,
                br#"{"public_ip":"0.0.0.0","node_id":"n"}"#,
                "not a host address",
            ),
            (
                key,
                br#"{"public_ip":"192.168.0.2","node_id":""}"#,
                "node_id",
            ),
            (
                "/weft/clusters/x/subnets/10.245.3.0-24",
                good,
                "not a /24 subnet",
            ),
            (
                "/weft/clusters/x/subnets/10.244.0.0-24",
                good,
                "not a /24 subnet",
            ),
            (
                "/weft/clusters/x/subnets/whatever",
                good,
                "does not name a subnet",
            ),
        ] {
            let e = parse_lease(&c, &k, key, value, 1).unwrap_err().to_string();
            assert!(e.contains(needle), "{key}: {e}");
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn reservations_are_validated() {
        let (c, k) = (config(), Keys::new("/weft", "x"));
        let s: Ipv4Net = "10.244.9.0/24".parse().unwrap();
        let r = parse_reservation(&c, &k, &k.reservation(s), br#"{"public_ip":"192.168.0.9"}"#)
            .unwrap();
        assert_eq!(r.subnet, Some(s));
        let bad: Ipv4Net = "10.244.9.0/25".parse().unwrap();
        assert!(
            parse_reservation(&c, &k, &k.reservation(bad), br#"{"public_ip":"1.2.3.4"}"#).is_err()
        );
    }
}
