//! The `bgp` backend's settings, as the cluster configuration gives them.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// The AS a cluster uses unless told otherwise (Calico's default, a private AS).
pub const DEFAULT_AS: u32 = 64512;

/// How packets reach another host's subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encapsulation {
    /// Plain routing via the peer's address: hosts must be L2-adjacent, or the fabric must
    /// learn the routes (peer with it).
    #[default]
    None,
    /// IP-in-IP through one tunnel device (IPv4 only; MTU − 20).
    Ipip,
    /// VXLAN through one device with per-peer neighbour and FDB entries (MTU − 50).
    Vxlan,
    /// Plain routing toward peers on this host's underlay subnet, the tunnel of
    /// `cross_subnet_tunnel` toward the others.
    CrossSubnet,
}

/// The tunnel `cross-subnet` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tunnel {
    /// IP-in-IP.
    #[default]
    Ipip,
    /// VXLAN.
    Vxlan,
}

/// A router outside the cluster (a top-of-rack switch), configured per host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalPeer {
    /// Its address.
    pub address: IpAddr,
    /// Its AS (equal to the cluster's for iBGP).
    #[serde(rename = "as")]
    pub asn: u32,
    /// Its BGP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Only accept its connections.
    #[serde(default)]
    pub passive: bool,
    /// Most prefixes it may send.
    #[serde(default)]
    pub max_prefixes: Option<u32>,
}

/// See the module docs; every field has a default, so `{}` is a valid configuration
/// (full mesh, no encapsulation, AS 64512).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BgpBackendConfig {
    /// The cluster's AS.
    #[serde(rename = "as")]
    pub asn: u32,
    /// How packets reach the other hosts.
    pub encapsulation: Encapsulation,
    /// The tunnel of `cross-subnet`.
    pub cross_subnet_tunnel: Tunnel,
    /// Node-to-node mesh: every cluster host is an iBGP neighbour. Off with route reflectors.
    pub mesh: bool,
    /// This host is a route reflector with this cluster id: every cluster host is its
    /// client (other reflectors are plain iBGP neighbours). Needs `mesh` off.
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
    /// The reflectors this host peers with when `mesh` is off (cluster hosts or routers
    /// outside the cluster).
    pub route_reflectors: Vec<IpAddr>,
    /// With `mesh` off, also take as reflectors the cluster hosts that say they are one in
    /// their published data (see [`super::encap::published`]): the cluster agent names its
    /// reflectors by host name, and only each host knows its own name.
    pub route_reflectors_from_hosts: bool,
    /// Routers outside the cluster.
    pub external_peers: Vec<ExternalPeer>,
    /// Prefixes accepted from external peers besides the cluster networks (e.g. `0.0.0.0/0`
    /// for a default route from the top of rack).
    pub accept_from_external: Vec<IpNet>,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP port: where this host listens and where it connects to cluster hosts.
    pub port: u16,
    /// Graceful restart time in seconds advertised to peers; 0 turns graceful restart off.
    pub graceful_restart: u16,
    /// BGP identifier; the host's public IPv4 address when unset (required with an IPv6
    /// underlay).
    pub router_id: Option<Ipv4Addr>,
    /// Most prefixes a cluster neighbour may send (unlimited when unset).
    pub max_prefixes: Option<u32>,
    /// VXLAN network id of the `vxlan` (and `cross-subnet` over vxlan) device.
    pub vxlan_vni: u32,
    /// VXLAN UDP port.
    pub vxlan_port: u16,
    /// Seconds between connection attempts to a neighbour.
    pub connect_retry: u16,
    /// Seconds after start before routes this host's previous run left in the kernel, and
    /// that no peer announces again, are removed.
    pub startup_grace: u16,
    /// Install a blackhole route for each of the host's own subnets. Off when the local
    /// network keeps one itself (the routed driver does): one owner per kernel object.
    pub blackhole: bool,
}

fn default_port() -> u16 {
    crate::speaker::BGP_PORT
}

impl Default for BgpBackendConfig {
    fn default() -> Self {
        BgpBackendConfig {
            asn: DEFAULT_AS,
            encapsulation: Encapsulation::None,
            cross_subnet_tunnel: Tunnel::Ipip,
            mesh: true,
            route_reflector_cluster_id: None,
            route_reflectors: Vec::new(),
            route_reflectors_from_hosts: false,
            external_peers: Vec::new(),
            accept_from_external: Vec::new(),
            hold_time: 90,
            port: crate::speaker::BGP_PORT,
            graceful_restart: 120,
            router_id: None,
            max_prefixes: None,
            vxlan_vni: 4096,
            vxlan_port: 4789,
            connect_retry: 5,
            startup_grace: 30,
            blackhole: true,
        }
    }
}

impl BgpBackendConfig {
    /// Checks the settings as a whole; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.asn == 0 {
            return Err("AS 0 is reserved: use a private AS such as 64512".into());
        }
        if matches!(self.hold_time, 1 | 2) {
            return Err(format!(
                "hold time {} is not allowed: use 0 or at least 3 seconds",
                self.hold_time
            ));
        }
        if self.port == 0 {
            return Err("port 0 is not a BGP port: use 179".into());
        }
        if self.vxlan_vni >= 1 << 24 {
            return Err(format!(
                "VXLAN id {} does not fit 24 bits: use 1 to 16777215",
                self.vxlan_vni
            ));
        }
        if self.mesh && self.route_reflector_cluster_id.is_some() {
            return Err(
                "this host is a route reflector but the node-to-node mesh is on: \
                 turn mesh off when using route reflectors"
                    .into(),
            );
        }
        if self.mesh && (!self.route_reflectors.is_empty() || self.route_reflectors_from_hosts) {
            return Err(
                "route reflectors are listed but the node-to-node mesh is on: \
                 turn mesh off to peer with the reflectors only"
                    .into(),
            );
        }
        if !self.mesh
            && self.route_reflector_cluster_id.is_none()
            && self.route_reflectors.is_empty()
            && !self.route_reflectors_from_hosts
            && self.external_peers.is_empty()
        {
            return Err(
                "the mesh is off and no route reflector or external peer is \
                 configured: this host would learn no routes; turn mesh on or list \
                 route_reflectors"
                    .into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.external_peers {
            if p.asn == 0 {
                return Err(format!("external peer {}: AS 0 is reserved", p.address));
            }
            if !seen.insert(p.address) {
                return Err(format!("external peer {} is listed twice", p.address));
            }
            if self.route_reflectors.contains(&p.address) {
                return Err(format!(
                    "{} is both a route reflector and an external peer: list it once",
                    p.address
                ));
            }
        }
        Ok(())
    }

    /// Whether any peer may be reached through VXLAN (the device is needed).
    pub fn uses_vxlan(&self) -> bool {
        self.encapsulation == Encapsulation::Vxlan
            || (self.encapsulation == Encapsulation::CrossSubnet
                && self.cross_subnet_tunnel == Tunnel::Vxlan)
    }

    /// Whether any peer may be reached through IPIP (the tunnel is needed).
    pub fn uses_ipip(&self) -> bool {
        self.encapsulation == Encapsulation::Ipip
            || (self.encapsulation == Encapsulation::CrossSubnet
                && self.cross_subnet_tunnel == Tunnel::Ipip)
    }

    /// The container MTU over an underlay of `underlay_mtu` (`ipv6_underlay` adds 20 bytes of
    /// VXLAN overhead).
    pub fn container_mtu(&self, underlay_mtu: u32, ipv6_underlay: bool) -> u32 {
        let overhead = if self.uses_vxlan() {
            if ipv6_underlay {
                70
            } else {
                50
            }
        } else if self.uses_ipip() {
            20
        } else {
            0
        };
        underlay_mtu.saturating_sub(overhead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_a_mesh_in_as_64512() {
        let c: BgpBackendConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, BgpBackendConfig::default());
        assert_eq!((c.asn, c.mesh, c.port), (64512, true, 179));
        assert_eq!(c.encapsulation, Encapsulation::None);
        c.validate().unwrap();
    }

    #[test]
    fn parses_the_documented_names() {
        let c: BgpBackendConfig = serde_json::from_str(
            r#"{"as": 65010, "encapsulation": "cross-subnet", "cross_subnet_tunnel": "vxlan",
                "mesh": false, "route_reflectors": ["192.168.0.10"],
                "external_peers": [{"address": "192.168.0.254", "as": 65000, "passive": true}],
                "hold_time": 9, "graceful_restart": 0}"#,
        )
        .unwrap();
        assert_eq!(c.asn, 65010);
        assert!(c.uses_vxlan() && !c.uses_ipip());
        assert_eq!(c.external_peers[0].port, 179);
        c.validate().unwrap();
        let e = serde_json::from_str::<BgpBackendConfig>(r#"{"encapsulation": "gre"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant"), "{e}");
        let e = serde_json::from_str::<BgpBackendConfig>(r#"{"meshh": true}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn contradictions_are_refused_with_a_fix() {
        let bad = |c: BgpBackendConfig, what: &str| {
            let e = c.validate().unwrap_err();
            assert!(e.contains(what), "{e}");
        };
        bad(
            BgpBackendConfig {
                route_reflector_cluster_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
                ..Default::default()
            },
            "turn mesh off",
        );
        bad(
            BgpBackendConfig {
                mesh: false,
                ..Default::default()
            },
            "would learn no routes",
        );
        bad(
            BgpBackendConfig {
                hold_time: 2,
                ..Default::default()
            },
            "at least 3",
        );
        bad(
            BgpBackendConfig {
                asn: 0,
                ..Default::default()
            },
            "AS 0",
        );
    }

    #[test]
    fn mtu_per_encapsulation() {
        let mtu = |e: Encapsulation, t: Tunnel| {
            BgpBackendConfig {
                encapsulation: e,
                cross_subnet_tunnel: t,
                ..Default::default()
            }
            .container_mtu(1500, false)
        };
        assert_eq!(mtu(Encapsulation::None, Tunnel::Ipip), 1500);
        assert_eq!(mtu(Encapsulation::Ipip, Tunnel::Ipip), 1480);
        assert_eq!(mtu(Encapsulation::Vxlan, Tunnel::Ipip), 1450);
        assert_eq!(mtu(Encapsulation::CrossSubnet, Tunnel::Ipip), 1480);
        assert_eq!(mtu(Encapsulation::CrossSubnet, Tunnel::Vxlan), 1450);
    }
}
