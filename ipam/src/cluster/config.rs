//! A cluster network's configuration as kept at `<prefix>/clusters/<name>/config`.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use super::error::ClusterError;

/// Per-host subnet length when the config names none (flannel's default).
pub const DEFAULT_SUBNET_LEN: u8 = 24;
/// Per-host IPv6 subnet length when the config names none.
pub const DEFAULT_SUBNET_LEN_V6: u8 = 80;
/// VXLAN network id when the config names none (flannel's default).
pub const DEFAULT_VNI: u32 = 1;
/// UDP port of the VXLAN backend when the config names none (the Linux and flannel default).
pub const DEFAULT_VXLAN_PORT: u16 = 8472;
/// Backends the agent knows.
pub const BACKENDS: [&str; 2] = ["vxlan", "host-gw"];

/// The cluster-wide settings every host reads before it claims a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The IPv4 cluster network, split into per-host subnets (e.g. 10.244.0.0/16).
    pub network: Ipv4Net,
    /// Prefix length of each host's IPv4 subnet.
    #[serde(default = "default_subnet_len")]
    pub subnet_len: u8,
    /// Optional IPv6 cluster network; each host then also gets an IPv6 subnet.
    #[serde(default)]
    pub network_v6: Option<Ipv6Net>,
    /// Prefix length of each host's IPv6 subnet.
    #[serde(default = "default_subnet_len_v6")]
    pub subnet_len_v6: u8,
    /// How hosts reach each other's subnets.
    pub backend: BackendConfig,
}

/// The backend section of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendConfig {
    /// `vxlan` or `host-gw`.
    #[serde(rename = "type")]
    pub kind: String,
    /// VXLAN network id (vxlan only).
    #[serde(default = "default_vni")]
    pub vni: u32,
    /// VXLAN UDP port (vxlan only).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Peers on the same L2 segment get a plain route instead of encapsulation (vxlan only).
    #[serde(default)]
    pub direct_routing: bool,
}

fn default_subnet_len() -> u8 {
    DEFAULT_SUBNET_LEN
}
fn default_subnet_len_v6() -> u8 {
    DEFAULT_SUBNET_LEN_V6
}
fn default_vni() -> u32 {
    DEFAULT_VNI
}
fn default_port() -> u16 {
    DEFAULT_VXLAN_PORT
}

impl BackendConfig {
    /// A backend section with the defaults of `kind`.
    pub fn new(kind: &str) -> Self {
        BackendConfig {
            kind: kind.to_string(),
            vni: DEFAULT_VNI,
            port: DEFAULT_VXLAN_PORT,
            direct_routing: false,
        }
    }
}

impl ClusterConfig {
    /// A config with default subnet lengths.
    pub fn new(network: Ipv4Net, backend: BackendConfig) -> Self {
        ClusterConfig {
            network,
            subnet_len: DEFAULT_SUBNET_LEN,
            network_v6: None,
            subnet_len_v6: DEFAULT_SUBNET_LEN_V6,
            backend,
        }
    }

    /// Decodes and validates a stored config.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClusterError> {
        let config: ClusterConfig =
            serde_json::from_slice(bytes).map_err(|e| ClusterError::InvalidConfig {
                reason: format!("it is not valid config JSON: {e}"),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The JSON stored in etcd.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serializes")
    }

    /// The cluster prefixes (IPv4 and, when set, IPv6).
    pub fn networks(&self) -> Vec<IpNet> {
        let mut out = vec![IpNet::V4(self.network)];
        out.extend(self.network_v6.map(IpNet::V6));
        out
    }

    /// Checks the shape of the networks, the subnet lengths and the backend.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let invalid = |reason: String| Err(ClusterError::InvalidConfig { reason });
        if self.network.network() != self.network.addr() {
            return invalid(format!(
                "network {} has host bits set; did you mean {}?",
                self.network,
                self.network.trunc()
            ));
        }
        // Two subnets at least: the first one is skipped (see carve).
        if self.subnet_len <= self.network.prefix_len() || self.subnet_len > 30 {
            return invalid(format!(
                "subnet length /{} does not fit network {}: use a length from /{} to /30",
                self.subnet_len,
                self.network,
                self.network.prefix_len() + 1
            ));
        }
        if let Some(v6) = self.network_v6 {
            if v6.network() != v6.addr() {
                return invalid(format!("IPv6 network {v6} has host bits set"));
            }
            if self.subnet_len_v6 <= v6.prefix_len() || self.subnet_len_v6 > 124 {
                return invalid(format!(
                    "IPv6 subnet length /{} does not fit network {v6}: use a length from /{} to /124",
                    self.subnet_len_v6,
                    v6.prefix_len() + 1
                ));
            }
        }
        if !BACKENDS.contains(&self.backend.kind.as_str()) {
            return invalid(format!(
                "unknown backend {:?}; use one of {}",
                self.backend.kind,
                BACKENDS.join(", ")
            ));
        }
        if self.backend.vni >= 1 << 24 {
            return invalid(format!(
                "VXLAN id {} has more than 24 bits: use 0 to 16777215",
                self.backend.vni
            ));
        }
        if self.backend.port == 0 {
            return invalid("VXLAN port 0 is not a port: use e.g. 8472 or 4789".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_minimal_config() {
        let c = ClusterConfig::decode(br#"{"network":"10.244.0.0/16","backend":{"type":"vxlan"}}"#)
            .unwrap();
        assert_eq!(c.subnet_len, 24);
        assert_eq!(c.backend.vni, 1);
        assert_eq!(c.backend.port, 8472);
        assert!(!c.backend.direct_routing);
        assert_eq!(ClusterConfig::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        for (json, needle) in [
            (
                r#"{"network":"10.244.0.1/16","backend":{"type":"vxlan"}}"#,
                "host bits",
            ),
            (
                r#"{"network":"10.244.0.0/16","subnet_len":16,"backend":{"type":"vxlan"}}"#,
                "does not fit",
            ),
            (
                r#"{"network":"10.244.0.0/16","backend":{"type":"ipsec"}}"#,
                "unknown backend",
            ),
            (
                r#"{"network":"10.244.0.0/16","backend":{"type":"vxlan","vni":16777216}}"#,
                "24 bits",
            ),
            (r#"{"network":"nope"}"#, "not valid config JSON"),
        ] {
            let e = ClusterConfig::decode(json.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
