//! A cluster network's configuration as kept at `<prefix>/clusters/<name>/config`.

use std::net::{IpAddr, Ipv4Addr};

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
pub const BACKENDS: [&str; 3] = ["vxlan", "host-gw", "bgp"];
/// The AS of a bgp cluster when the config names none (Calico's default, a private AS).
pub const DEFAULT_BGP_AS: u32 = 64512;
/// How the bgp backend may carry packets between hosts.
pub const BGP_ENCAPSULATIONS: [&str; 4] = ["none", "ipip", "vxlan", "cross-subnet"];
/// The tunnels `cross-subnet` may use.
pub const BGP_TUNNELS: [&str; 2] = ["ipip", "vxlan"];

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
    /// How containers attach on each host.
    #[serde(default)]
    pub attachment: Attachment,
    /// The first subnet (its network address) a host may lease (flannel's `SubnetMin`);
    /// subnets below it are never chosen, except by a reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_min: Option<Ipv4Addr>,
    /// The last subnet a host may lease (flannel's `SubnetMax`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_max: Option<Ipv4Addr>,
    /// Whether traffic from the cluster's containers to outside the cluster networks is
    /// masqueraded (flannel's `--ip-masq`). Cluster-wide, so that every host treats the
    /// containers' addresses alike: off means the outside world routes them back.
    #[serde(default = "default_masquerade")]
    pub masquerade: bool,
}

fn default_masquerade() -> bool {
    true
}

/// How a host's containers attach to its subnet of the cluster network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attachment {
    /// A bridge with the subnet's gateway address (docker0-style, the bridge driver).
    #[default]
    Bridge,
    /// No bridge: a /32 route per container and proxy ARP (Calico-style, the routed driver,
    /// which also keeps the blackhole route of the whole subnet).
    Routed,
}

impl Attachment {
    /// The local network's driver.
    pub fn driver(self) -> &'static str {
        match self {
            Attachment::Bridge => "bridge",
            Attachment::Routed => "routed",
        }
    }
}

impl std::fmt::Display for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.driver())
    }
}

impl std::str::FromStr for Attachment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bridge" => Ok(Attachment::Bridge),
            "routed" => Ok(Attachment::Routed),
            other => Err(format!(
                "unknown attachment {other:?}: use bridge or routed"
            )),
        }
    }
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
    /// The cluster-wide settings of the bgp backend (bgp only; defaults when absent). The
    /// VXLAN id and port above are also the bgp backend's when it encapsulates in VXLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpClusterConfig>,
}

/// What every host of a bgp cluster must agree on. Per-host settings (external peers, the
/// BGP port, being a route reflector by flag) are `weft daemon` flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpClusterConfig {
    /// The cluster's AS.
    #[serde(rename = "as", default = "default_bgp_as")]
    pub asn: u32,
    /// `none`, `ipip`, `vxlan` or `cross-subnet`.
    #[serde(default = "default_encapsulation")]
    pub encapsulation: String,
    /// The tunnel of `cross-subnet`: `ipip` or `vxlan`.
    #[serde(default = "default_tunnel")]
    pub cross_subnet_tunnel: String,
    /// Node-to-node mesh; off when route reflectors carry the routes.
    #[serde(default = "default_mesh")]
    pub mesh: bool,
    /// The hosts that reflect routes, by host name or public address (mesh off).
    #[serde(default)]
    pub route_reflectors: Vec<String>,
    /// The reflectors' cluster id (default: each reflector's router id).
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
}

impl Default for BgpClusterConfig {
    fn default() -> Self {
        BgpClusterConfig {
            asn: DEFAULT_BGP_AS,
            encapsulation: default_encapsulation(),
            cross_subnet_tunnel: default_tunnel(),
            mesh: true,
            route_reflectors: Vec::new(),
            cluster_id: None,
        }
    }
}

impl BgpClusterConfig {
    /// Whether the host named `hostname` (or `node_id`) at `public_ip` is listed as a route
    /// reflector.
    pub fn lists_reflector(&self, hostname: &str, node_id: &str, public_ip: IpAddr) -> bool {
        self.route_reflectors.iter().any(|r| {
            r.parse::<IpAddr>().map_or_else(
                |_| (!hostname.is_empty() && r == hostname) || r == node_id,
                |ip| ip == public_ip,
            )
        })
    }

    fn validate(&self) -> Result<(), String> {
        if self.asn == 0 {
            return Err("AS 0 is reserved: use a private AS such as 64512".into());
        }
        if !BGP_ENCAPSULATIONS.contains(&self.encapsulation.as_str()) {
            return Err(format!(
                "unknown encapsulation {:?}: use one of {}",
                self.encapsulation,
                BGP_ENCAPSULATIONS.join(", ")
            ));
        }
        if !BGP_TUNNELS.contains(&self.cross_subnet_tunnel.as_str()) {
            return Err(format!(
                "unknown cross-subnet tunnel {:?}: use one of {}",
                self.cross_subnet_tunnel,
                BGP_TUNNELS.join(", ")
            ));
        }
        if self.mesh && !self.route_reflectors.is_empty() {
            return Err(
                "route reflectors are listed but the node-to-node mesh is on: turn it off \
                 (--no-mesh)"
                    .into(),
            );
        }
        if let Some(bad) = self
            .route_reflectors
            .iter()
            .find(|r| r.is_empty() || r.contains(|c: char| c.is_whitespace() || c == ','))
        {
            return Err(format!(
                "route reflector {bad:?} is neither a host name nor an address"
            ));
        }
        Ok(())
    }
}

fn default_bgp_as() -> u32 {
    DEFAULT_BGP_AS
}
fn default_encapsulation() -> String {
    "none".into()
}
fn default_tunnel() -> String {
    "ipip".into()
}
fn default_mesh() -> bool {
    true
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
            bgp: None,
        }
    }

    /// The bgp settings (the defaults when the config has none).
    pub fn bgp_settings(&self) -> BgpClusterConfig {
        self.bgp.clone().unwrap_or_default()
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
            attachment: Attachment::default(),
            subnet_min: None,
            subnet_max: None,
            masquerade: true,
        }
    }

    /// Whether `subnet` lies within `subnet_min ..= subnet_max` (both optional).
    pub fn in_range(&self, subnet: Ipv4Net) -> bool {
        let start = subnet.network();
        self.subnet_min.is_none_or(|min| start >= min)
            && self.subnet_max.is_none_or(|max| start <= max)
    }

    /// Checks `subnet_min`/`subnet_max`: inside the network, on a subnet boundary, in order.
    /// The messages name the `weft cluster init` flags, where the values come from.
    fn validate_range(&self) -> Result<(), String> {
        let size = 1u32 << (32 - u32::from(self.subnet_len));
        for (flag, addr) in [
            ("--subnet-min", self.subnet_min),
            ("--subnet-max", self.subnet_max),
        ] {
            let Some(addr) = addr else { continue };
            if !self.network.contains(&addr) {
                return Err(format!(
                    "{flag} {addr} is outside the cluster network {}: give a subnet of it",
                    self.network
                ));
            }
            let offset = u32::from(addr) - u32::from(self.network.network());
            if offset % size != 0 {
                let down = Ipv4Addr::from(u32::from(addr) - offset % size);
                return Err(format!(
                    "{flag} {addr} is not the start of a /{} subnet: did you mean {down}?",
                    self.subnet_len
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.subnet_min, self.subnet_max) {
            if min > max {
                return Err(format!(
                    "--subnet-min {min} is above --subnet-max {max}: swap them"
                ));
            }
        }
        if let Some(max) = self.subnet_max {
            if max == self.network.network() {
                return Err(format!(
                    "--subnet-max {max} is the cluster network's first subnet, which is never \
                     handed out: give a later one"
                ));
            }
        }
        Ok(())
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
        if let Err(reason) = self.validate_range() {
            return invalid(reason);
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
        match (&self.backend.bgp, self.backend.kind.as_str()) {
            (Some(bgp), "bgp") => {
                if let Err(reason) = bgp.validate() {
                    return invalid(format!("bgp: {reason}"));
                }
            }
            (Some(_), kind) => {
                return invalid(format!(
                    "bgp settings are given but the backend is {kind}: drop them or use \
                     --backend bgp"
                ))
            }
            (None, _) => {}
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
        assert_eq!(c.attachment, Attachment::Bridge);
        assert_eq!(c.backend.bgp, None);
        assert_eq!(ClusterConfig::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn bgp_section_and_attachment_round_trip() {
        let c = ClusterConfig::decode(
            br#"{"network":"10.244.0.0/16","attachment":"routed",
                 "backend":{"type":"bgp","bgp":{"as":65001,"encapsulation":"vxlan","mesh":false,
                 "route_reflectors":["node-a","192.168.0.1"],"cluster_id":"1.0.0.1"}}}"#,
        )
        .unwrap();
        assert_eq!(c.attachment, Attachment::Routed);
        assert_eq!(c.attachment.driver(), "routed");
        let bgp = c.backend.bgp_settings();
        assert_eq!(
            (bgp.asn, bgp.encapsulation.as_str(), bgp.mesh),
            (65001, "vxlan", false)
        );
        assert_eq!(bgp.cross_subnet_tunnel, "ipip");
        assert_eq!(ClusterConfig::decode(&c.encode()).unwrap(), c);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(bgp.lists_reflector("node-a", "x", ip("192.168.0.9")));
        assert!(bgp.lists_reflector("other", "x", ip("192.168.0.1")));
        assert!(!bgp.lists_reflector("other", "x", ip("192.168.0.2")));
        assert!(!bgp.lists_reflector("", "", ip("192.168.0.2")));
        // Defaults: a mesh in AS 64512 without encapsulation.
        let d = ClusterConfig::decode(br#"{"network":"10.244.0.0/16","backend":{"type":"bgp"}}"#)
            .unwrap();
        assert_eq!(d.backend.bgp_settings(), BgpClusterConfig::default());
        assert_eq!(d.backend.bgp_settings().asn, 64512);
        assert!(!String::from_utf8(d.encode()).unwrap().contains("\"bgp\":"));
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
            (
                r#"{"network":"10.244.0.0/16","backend":{"type":"bgp","bgp":{"encapsulation":"gre"}}}"#,
                "unknown encapsulation",
            ),
            (
                r#"{"network":"10.244.0.0/16","backend":{"type":"bgp","bgp":{"route_reflectors":["a"]}}}"#,
                "--no-mesh",
            ),
            (
                r#"{"network":"10.244.0.0/16","backend":{"type":"bgp","bgp":{"as":0}}}"#,
                "AS 0",
            ),
            (
                r#"{"network":"10.244.0.0/16","backend":{"type":"vxlan","bgp":{}}}"#,
                "backend is vxlan",
            ),
            (
                r#"{"network":"10.244.0.0/16","attachment":"macvlan","backend":{"type":"vxlan"}}"#,
                "not valid config JSON",
            ),
            (
                r#"{"network":"10.244.0.0/16","subnet_min":"10.245.0.0","backend":{"type":"vxlan"}}"#,
                "--subnet-min 10.245.0.0 is outside",
            ),
            (
                r#"{"network":"10.244.0.0/16","subnet_max":"10.244.3.128","backend":{"type":"vxlan"}}"#,
                "did you mean 10.244.3.0",
            ),
            (
                r#"{"network":"10.244.0.0/16","subnet_min":"10.244.9.0","subnet_max":"10.244.3.0","backend":{"type":"vxlan"}}"#,
                "above --subnet-max",
            ),
        ] {
            let e = ClusterConfig::decode(json.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
    }
}
