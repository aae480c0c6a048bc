//! The bgp backend's settings on one host: the cluster-wide ones from the cluster config in
//! etcd, the per-host ones from `weft daemon` flags.

use std::net::{IpAddr, Ipv4Addr};

use clap::Args;
use ipnet::IpNet;
use weft_bgp::backend::{BgpBackendConfig, Encapsulation, ExternalPeer, Tunnel};
use weft_ipam::cluster::{Attachment, ClusterConfig};

/// `weft daemon` flags for a host of a cluster with the bgp backend.
#[derive(Args, Debug, Clone)]
pub struct BgpHostArgs {
    /// bgp backend: this host is a route reflector (besides the hosts the cluster config
    /// lists); the others find it through its lease. Needs a cluster made with --no-mesh.
    #[arg(long)]
    pub bgp_route_reflector: bool,
    /// bgp backend: the route reflector cluster id (default: the cluster config's, else this
    /// host's router id).
    #[arg(long, value_name = "IPV4")]
    pub bgp_cluster_id: Option<Ipv4Addr>,
    /// bgp backend: a router outside the cluster to peer with, e.g. a top-of-rack switch
    /// (repeatable): 192.168.0.254:65000, 192.168.0.254:65000:1179, [fd00::1]:65000.
    #[arg(long = "bgp-peer", value_name = "ADDR:AS[:PORT]", value_parser = parse_peer)]
    pub bgp_peers: Vec<ExternalPeer>,
    /// bgp backend: prefixes accepted from external peers besides the cluster networks
    /// (repeatable), e.g. 0.0.0.0/0 for a default route from the top of rack.
    #[arg(long = "bgp-accept", value_name = "PREFIX")]
    pub bgp_accept: Vec<IpNet>,
    /// bgp backend: the TCP port to listen on and to connect to the other hosts on; every
    /// host of the cluster must use the same.
    #[arg(long, default_value_t = weft_bgp::speaker::BGP_PORT,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub bgp_port: u16,
    /// bgp backend: the BGP identifier (default: the public IPv4 address; required with an
    /// IPv6 underlay).
    #[arg(long, value_name = "IPV4")]
    pub bgp_router_id: Option<Ipv4Addr>,
}

impl Default for BgpHostArgs {
    /// As with no flag given.
    fn default() -> Self {
        BgpHostArgs {
            bgp_route_reflector: false,
            bgp_cluster_id: None,
            bgp_peers: Vec::new(),
            bgp_accept: Vec::new(),
            bgp_port: weft_bgp::speaker::BGP_PORT,
            bgp_router_id: None,
        }
    }
}

impl BgpHostArgs {
    /// What is wrong with the flags whatever the cluster's backend: checked before the daemon
    /// joins, so a bad command line never takes a lease.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.bgp_peers {
            if !seen.insert(p.address) {
                return Err(format!(
                    "--bgp-peer {} is given twice; list each external peer once",
                    p.address
                ));
            }
        }
        Ok(())
    }
}

/// Who this host is, as the reflector list names hosts.
#[derive(Debug, Clone)]
pub struct Identity {
    pub hostname: String,
    pub node_id: String,
    pub public_ip: IpAddr,
}

/// The backend configuration for this host. The bgp backend checks the whole (`init`);
/// this only fails on what cannot be expressed at all.
pub fn backend_config(
    cluster: &ClusterConfig,
    args: &BgpHostArgs,
    me: &Identity,
) -> Result<BgpBackendConfig, String> {
    let bgp = cluster.backend.bgp_settings();
    let encapsulation = match bgp.encapsulation.as_str() {
        "none" => Encapsulation::None,
        "ipip" => Encapsulation::Ipip,
        "vxlan" => Encapsulation::Vxlan,
        "cross-subnet" => Encapsulation::CrossSubnet,
        other => return Err(format!("unknown encapsulation {other:?}")),
    };
    let cross_subnet_tunnel = match bgp.cross_subnet_tunnel.as_str() {
        "vxlan" => Tunnel::Vxlan,
        _ => Tunnel::Ipip,
    };
    let reflector =
        args.bgp_route_reflector || bgp.lists_reflector(&me.hostname, &me.node_id, me.public_ip);
    let router_id = args.bgp_router_id.or(match me.public_ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    });
    let cluster_id = if reflector {
        Some(args.bgp_cluster_id.or(bgp.cluster_id).or(router_id).ok_or(
            "this host is a route reflector but has no IPv4 router id to use as \
                        its cluster id: pass --bgp-router-id or --bgp-cluster-id",
        )?)
    } else {
        None
    };
    Ok(BgpBackendConfig {
        asn: bgp.asn,
        encapsulation,
        cross_subnet_tunnel,
        mesh: bgp.mesh,
        route_reflector_cluster_id: cluster_id,
        route_reflectors: bgp
            .route_reflectors
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect(),
        route_reflectors_from_hosts: !bgp.mesh,
        external_peers: args.bgp_peers.clone(),
        accept_from_external: args.bgp_accept.clone(),
        port: args.bgp_port,
        router_id: args.bgp_router_id,
        vxlan_vni: cluster.backend.vni,
        vxlan_port: cluster.backend.port,
        // The routed driver keeps the subnet's blackhole itself.
        blackhole: cluster.attachment == Attachment::Bridge,
        ..BgpBackendConfig::default()
    })
}

/// `ADDR:AS[:PORT]`, with an IPv6 address in brackets.
pub fn parse_peer(text: &str) -> Result<ExternalPeer, String> {
    let usage = || {
        format!(
            "{text:?}: expected ADDR:AS[:PORT], e.g. 192.168.0.254:65000 or [fd00::1]:65000:179"
        )
    };
    let (address, rest) = match text.strip_prefix('[') {
        Some(v6) => {
            let (addr, rest) = v6.split_once("]:").ok_or_else(usage)?;
            (addr, rest)
        }
        None => text.split_once(':').ok_or_else(usage)?,
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{}: {address:?} is not an IP address", usage()))?;
    let mut parts = rest.split(':');
    let asn: u32 = parts
        .next()
        .and_then(|a| a.parse().ok())
        .filter(|a| *a != 0)
        .ok_or_else(|| format!("{}: the AS must be a number from 1 to 4294967295", usage()))?;
    let port = match parts.next() {
        None => weft_bgp::speaker::BGP_PORT,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{}: {p:?} is not a port", usage()))?,
    };
    if parts.next().is_some() {
        return Err(usage());
    }
    Ok(ExternalPeer {
        address,
        asn,
        port,
        passive: false,
        max_prefixes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_ipam::cluster::{BackendConfig, BgpClusterConfig};

    fn me(ip: &str) -> Identity {
        Identity {
            hostname: "node-a".into(),
            node_id: "0123456789abcdef".into(),
            public_ip: ip.parse().unwrap(),
        }
    }

    fn cluster(bgp: BgpClusterConfig, attachment: Attachment) -> ClusterConfig {
        let mut c = ClusterConfig::new(
            "10.244.0.0/16".parse().unwrap(),
            BackendConfig {
                bgp: Some(bgp),
                ..BackendConfig::new("bgp")
            },
        );
        c.attachment = attachment;
        c
    }

    #[test]
    fn peers_parse_with_and_without_port_and_brackets() {
        let p = parse_peer("192.168.0.254:65000").unwrap();
        assert_eq!(
            (p.address, p.asn, p.port),
            ("192.168.0.254".parse().unwrap(), 65000, 179)
        );
        let p = parse_peer("[fd00::1]:65000:1179").unwrap();
        assert_eq!(
            (p.address, p.asn, p.port),
            ("fd00::1".parse().unwrap(), 65000, 1179)
        );
        for bad in [
            "192.168.0.254",
            "nope:1",
            "192.168.0.254:0",
            "192.168.0.254:1:0",
            "1.2.3.4:1:2:3",
            "fd00::1:65000",
        ] {
            let e = parse_peer(bad).unwrap_err();
            assert!(e.contains("ADDR:AS[:PORT]"), "{bad}: {e}");
        }
    }

    #[test]
    fn cluster_settings_and_flags_make_the_backend_config() {
        let c = cluster(
            BgpClusterConfig {
                asn: 65010,
                encapsulation: "vxlan".into(),
                ..BgpClusterConfig::default()
            },
            Attachment::Bridge,
        );
        let args = BgpHostArgs {
            bgp_peers: vec![parse_peer("192.168.0.254:65000").unwrap()],
            bgp_port: 1179,
            ..BgpHostArgs::default()
        };
        let b = backend_config(&c, &args, &me("192.168.0.1")).unwrap();
        assert_eq!(
            (b.asn, b.encapsulation, b.mesh, b.port),
            (65010, Encapsulation::Vxlan, true, 1179)
        );
        assert_eq!(
            (b.vxlan_vni, b.vxlan_port),
            (1, 8472),
            "the cluster's VXLAN id and port"
        );
        assert_eq!(b.external_peers.len(), 1);
        assert!(b.blackhole && b.route_reflector_cluster_id.is_none());
        b.validate().unwrap();
    }

    #[test]
    fn listed_hosts_reflect_and_routed_attachment_leaves_the_blackhole_to_the_driver() {
        let c = cluster(
            BgpClusterConfig {
                mesh: false,
                route_reflectors: vec!["node-a".into(), "192.168.0.9".into()],
                ..BgpClusterConfig::default()
            },
            Attachment::Routed,
        );
        let a = backend_config(&c, &BgpHostArgs::default(), &me("192.168.0.1")).unwrap();
        assert_eq!(
            a.route_reflector_cluster_id,
            Some("192.168.0.1".parse().unwrap())
        );
        assert!(!a.blackhole);
        assert!(a.route_reflectors_from_hosts);
        assert_eq!(
            a.route_reflectors,
            vec!["192.168.0.9".parse::<IpAddr>().unwrap()]
        );
        a.validate().unwrap();
        let other = Identity {
            hostname: "node-b".into(),
            ..me("192.168.0.2")
        };
        let b = backend_config(&c, &BgpHostArgs::default(), &other).unwrap();
        assert_eq!(b.route_reflector_cluster_id, None);
        b.validate().unwrap();
        // By flag, with its own cluster id.
        let args = BgpHostArgs {
            bgp_route_reflector: true,
            bgp_cluster_id: Some("1.0.0.1".parse().unwrap()),
            ..BgpHostArgs::default()
        };
        let f = backend_config(&c, &args, &other).unwrap();
        assert_eq!(
            f.route_reflector_cluster_id,
            Some("1.0.0.1".parse().unwrap())
        );
        // A reflector by flag in a mesh: the backend refuses with what to do.
        let mesh = cluster(BgpClusterConfig::default(), Attachment::Bridge);
        let e = backend_config(&mesh, &args, &other)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.contains("turn mesh off"), "{e}");
    }
}
