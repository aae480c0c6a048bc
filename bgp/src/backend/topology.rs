//! Who this host's BGP neighbours are (pure): the cluster's hosts in a full mesh, or only the
//! route reflectors (a reflector takes every host as its client), plus the external peers.
//! Reflectors are listed by address, or (with `route_reflectors_from_hosts`) found among the
//! cluster's hosts by what they publish.

use super::config::BgpBackendConfig;
use super::encap;
use crate::codec::Family;
use crate::policy::{PeerPolicy, PolicyAction, PrefixList, PrefixRule};
use crate::speaker::PeerConfig;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use weft_drivers::backend::{LocalNode, Peer};

/// The neighbours for `local` given the cluster's other hosts, by address. External peers
/// win over a cluster host of the same address.
pub fn neighbours(
    cfg: &BgpBackendConfig,
    local: &LocalNode,
    hosts: &[Peer],
) -> BTreeMap<IpAddr, PeerConfig> {
    let mut out = BTreeMap::new();
    let others = hosts
        .iter()
        .map(|h| h.public_ip)
        .filter(|ip| *ip != local.public_ip);
    let cluster = cluster_policy(cfg, local);
    let ibgp = |address: IpAddr, rr_client: bool| PeerConfig {
        port: cfg.port,
        rr_client,
        policy: cluster.clone(),
        ..session(cfg, local, address, cfg.asn)
    };
    let reflectors = reflectors(cfg, hosts);
    if cfg.mesh {
        for ip in others {
            out.insert(ip, ibgp(ip, false));
        }
    } else if cfg.route_reflector_cluster_id.is_some() {
        // A reflector serves every host; fellow reflectors are plain iBGP neighbours.
        for ip in others.chain(reflectors.iter().copied()) {
            if ip != local.public_ip {
                out.insert(ip, ibgp(ip, !reflectors.contains(&ip)));
            }
        }
    } else {
        for ip in &reflectors {
            if *ip != local.public_ip {
                out.insert(*ip, ibgp(*ip, false));
            }
        }
    }
    for p in &cfg.external_peers {
        let mut c = session(cfg, local, p.address, p.asn);
        c.port = p.port;
        c.passive = p.passive;
        c.policy = external_policy(cfg, local, p.max_prefixes);
        out.insert(p.address, c);
    }
    out
}

/// The route reflectors: the configured addresses, and the cluster hosts that publish
/// themselves as one when the configuration says to look.
pub fn reflectors(cfg: &BgpBackendConfig, hosts: &[Peer]) -> BTreeSet<IpAddr> {
    let mut out: BTreeSet<IpAddr> = cfg.route_reflectors.iter().copied().collect();
    if cfg.route_reflectors_from_hosts && !cfg.mesh {
        out.extend(
            hosts
                .iter()
                .filter(|h| encap::is_reflector(h))
                .map(|h| h.public_ip),
        );
    }
    out
}

/// The router id: configured, else the public IPv4 address.
pub fn router_id(cfg: &BgpBackendConfig, local: &LocalNode) -> Result<Ipv4Addr, String> {
    match (cfg.router_id, local.public_ip) {
        (Some(id), _) => Ok(id),
        (None, IpAddr::V4(v4)) => Ok(v4),
        (None, IpAddr::V6(_)) => Err(format!(
            "this host's public address {} is IPv6, so BGP needs an IPv4 router id: set \
             router_id",
            local.public_ip
        )),
    }
}

fn session(cfg: &BgpBackendConfig, local: &LocalNode, address: IpAddr, asn: u32) -> PeerConfig {
    let mut c = PeerConfig::new(address, asn);
    c.hold_time = cfg.hold_time;
    c.local_address = Some(local.public_ip);
    if let IpAddr::V4(v4) = local.public_ip {
        c.next_hop_v4 = Some(v4);
    }
    c.families = families(local);
    c
}

/// IPv4 unicast, and IPv6 unicast when a cluster network is IPv6.
fn families(local: &LocalNode) -> Vec<Family> {
    let mut f = vec![Family::IPV4_UNICAST];
    if local
        .cluster_networks
        .iter()
        .any(|n| matches!(n, IpNet::V6(_)))
    {
        f.push(Family::IPV6_UNICAST);
    }
    f
}

/// Cluster hosts exchange only routes inside the cluster networks.
fn cluster_policy(cfg: &BgpBackendConfig, local: &LocalNode) -> PeerPolicy {
    let inside = within(&local.cluster_networks);
    PeerPolicy {
        import: inside.clone(),
        export: inside,
        max_prefixes: cfg.max_prefixes,
    }
}

/// External routers get the cluster networks' routes and may send those plus what
/// `accept_from_external` lists.
fn external_policy(
    cfg: &BgpBackendConfig,
    local: &LocalNode,
    max_prefixes: Option<u32>,
) -> PeerPolicy {
    let accepted: Vec<IpNet> = local
        .cluster_networks
        .iter()
        .chain(&cfg.accept_from_external)
        .copied()
        .collect();
    PeerPolicy {
        import: within(&accepted),
        export: within(&local.cluster_networks),
        max_prefixes,
    }
}

/// Accepts every prefix inside one of `nets` (any length), rejects the rest.
fn within(nets: &[IpNet]) -> PrefixList {
    PrefixList {
        rules: nets
            .iter()
            .map(|n| PrefixRule {
                prefix: n.trunc(),
                ge: None,
                le: Some(n.max_prefix_len()),
                action: PolicyAction::Accept,
            })
            .collect(),
        default: PolicyAction::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::ExternalPeer;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn node(public: &str) -> LocalNode {
        LocalNode {
            cluster: "c".into(),
            subnets: vec!["10.244.1.0/24".parse().unwrap()],
            public_ip: ip(public),
            underlay_index: 2,
            underlay_mtu: 1500,
            cluster_networks: vec!["10.244.0.0/16".parse().unwrap()],
        }
    }
    fn host(public: &str) -> Peer {
        Peer {
            name: public.into(),
            subnets: vec![],
            public_ip: ip(public),
            data: serde_json::Value::Null,
        }
    }
    fn hosts() -> Vec<Peer> {
        ["192.168.0.1", "192.168.0.2", "192.168.0.3"]
            .iter()
            .map(|h| host(h))
            .collect()
    }

    #[test]
    fn mesh_peers_with_every_other_host() {
        let n = neighbours(&BgpBackendConfig::default(), &node("192.168.0.1"), &hosts());
        let addrs: Vec<IpAddr> = n.keys().copied().collect();
        assert_eq!(addrs, vec![ip("192.168.0.2"), ip("192.168.0.3")]);
        let p = &n[&ip("192.168.0.2")];
        assert_eq!((p.remote_as, p.rr_client, p.port), (64512, false, 179));
        assert_eq!(p.local_address, Some(ip("192.168.0.1")));
        assert_eq!(p.next_hop_v4, Some("192.168.0.1".parse().unwrap()));
        assert!(p.policy.import.accepts(&"10.244.7.0/24".parse().unwrap()));
        assert!(!p.policy.import.accepts(&"10.9.0.0/24".parse().unwrap()));
        assert_eq!(p.families, vec![Family::IPV4_UNICAST]);
    }

    #[test]
    fn clients_peer_with_reflectors_only_and_reflectors_with_everyone() {
        let client = BgpBackendConfig {
            mesh: false,
            route_reflectors: vec![ip("192.168.0.1")],
            ..Default::default()
        };
        let n = neighbours(&client, &node("192.168.0.2"), &hosts());
        assert_eq!(
            n.keys().copied().collect::<Vec<_>>(),
            vec![ip("192.168.0.1")]
        );
        assert!(!n[&ip("192.168.0.1")].rr_client);
        let reflector = BgpBackendConfig {
            route_reflector_cluster_id: Some(Ipv4Addr::new(1, 0, 0, 1)),
            ..client
        };
        let n = neighbours(&reflector, &node("192.168.0.1"), &hosts());
        assert_eq!(n.len(), 2);
        assert!(n.values().all(|p| p.rr_client));
    }

    #[test]
    fn reflectors_are_found_among_the_hosts_by_what_they_publish() {
        let mut all = hosts();
        all[0].data = encap::published(None, true);
        let client = BgpBackendConfig {
            mesh: false,
            route_reflectors_from_hosts: true,
            ..Default::default()
        };
        client.validate().unwrap();
        let n = neighbours(&client, &node("192.168.0.2"), &all);
        assert_eq!(
            n.keys().copied().collect::<Vec<_>>(),
            vec![ip("192.168.0.1")]
        );
        // The reflector itself: the other hosts are its clients.
        let reflector = BgpBackendConfig {
            route_reflector_cluster_id: Some(Ipv4Addr::new(1, 0, 0, 1)),
            ..client.clone()
        };
        let n = neighbours(&reflector, &node("192.168.0.1"), &all);
        assert_eq!(n.len(), 2);
        assert!(n.values().all(|p| p.rr_client));
        // Not looking: a publishing host is not taken.
        let blind = BgpBackendConfig {
            route_reflectors_from_hosts: false,
            external_peers: vec![ExternalPeer {
                address: ip("192.168.0.254"),
                asn: 65000,
                port: 179,
                passive: false,
                max_prefixes: None,
            }],
            ..client.clone()
        };
        let n = neighbours(&blind, &node("192.168.0.2"), &all);
        assert_eq!(
            n.keys().copied().collect::<Vec<_>>(),
            vec![ip("192.168.0.254")]
        );
        // No reflector has published yet: a client waits with no cluster neighbour.
        let n = neighbours(&client, &node("192.168.0.2"), &hosts());
        assert!(n.is_empty());
    }

    #[test]
    fn two_reflectors_are_each_others_plain_neighbours() {
        let mut all = hosts();
        all[0].data = encap::published(None, true);
        all[1].data = encap::published(None, true);
        let reflector = BgpBackendConfig {
            mesh: false,
            route_reflectors_from_hosts: true,
            route_reflector_cluster_id: Some(Ipv4Addr::new(1, 0, 0, 1)),
            ..Default::default()
        };
        let n = neighbours(&reflector, &node("192.168.0.1"), &all);
        assert!(!n[&ip("192.168.0.2")].rr_client, "fellow reflector");
        assert!(n[&ip("192.168.0.3")].rr_client, "client");
    }

    #[test]
    fn external_peers_have_their_as_and_a_wider_import() {
        let cfg = BgpBackendConfig {
            external_peers: vec![ExternalPeer {
                address: ip("192.168.0.254"),
                asn: 65000,
                port: 1179,
                passive: true,
                max_prefixes: Some(10),
            }],
            accept_from_external: vec!["0.0.0.0/0".parse().unwrap()],
            ..Default::default()
        };
        let n = neighbours(&cfg, &node("192.168.0.1"), &hosts());
        let tor = &n[&ip("192.168.0.254")];
        assert_eq!((tor.remote_as, tor.port, tor.passive), (65000, 1179, true));
        assert_eq!(tor.policy.max_prefixes, Some(10));
        assert!(tor.policy.import.accepts(&"0.0.0.0/0".parse().unwrap()));
        assert!(!tor.policy.export.accepts(&"0.0.0.0/0".parse().unwrap()));
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn router_id_needs_ipv4() {
        let cfg = BgpBackendConfig::default();
        assert_eq!(
            router_id(&cfg, &node("192.168.0.1")).unwrap(),
            Ipv4Addr::new(192, 168, 0, 1)
        );
        assert!(router_id(&cfg, &node("fd00::1"))
            .unwrap_err()
            .contains("set router_id"));
    }
}
