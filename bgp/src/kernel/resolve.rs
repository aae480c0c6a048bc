//! How packets toward a BGP next hop leave this host: natively, or into a tunnel.
//!
//! The RIB speaks in BGP next hops (a peer's underlay address); the kernel wants a gateway,
//! maybe a device and the onlink flag. With encapsulation the gateway stays the peer's
//! underlay address but sits "on" the tunnel device (`onlink`), so one device serves every
//! peer:
//!
//! ```text
//! native: ip route replace 10.244.2.0/24 via 192.168.0.2 proto 87
//! ipip:   ip route replace 10.244.2.0/24 via 192.168.0.2 dev weftbgp.tunl onlink proto 87
//! vxlan:  ip route replace 10.244.2.0/24 via 192.168.0.2 dev weftbgp.vxlan onlink proto 87
//!         ip route replace fd00:2::/64 via ::ffff:192.168.0.2 dev weftbgp.vxlan onlink proto 87
//! ```
//!
//! For VXLAN the backend adds the neighbour entries (gateway → the peer's VTEP MAC) and the
//! FDB entries (MAC → the peer's underlay address) that make those gateways reachable.

use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use weft_drivers::netlink::NextHop;

/// The way toward one next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Path {
    /// Plain routing via the next hop, which must be on a connected subnet (L2-adjacent).
    Native,
    /// Through the IPIP tunnel device: IPv4 destinations only.
    Ipip {
        /// The tunnel's ifindex.
        device: u32,
    },
    /// Through the VXLAN device.
    Vxlan {
        /// The VXLAN device's ifindex.
        device: u32,
    },
}

/// Next hop → path. Next hops it does not know are routed natively (an external router's
/// address, say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    paths: HashMap<IpAddr, Path>,
}

impl Resolver {
    /// Everything native.
    pub fn new() -> Self {
        Resolver::default()
    }

    /// Sets the path toward `next_hop` (an IPv4-mapped IPv6 address counts as its IPv4 form).
    pub fn set(&mut self, next_hop: IpAddr, path: Path) {
        let next_hop = unmapped(next_hop);
        match path {
            Path::Native => self.paths.remove(&next_hop),
            _ => self.paths.insert(next_hop, path),
        };
    }

    /// The path toward `next_hop`.
    pub fn path(&self, next_hop: IpAddr) -> Path {
        self.paths
            .get(&unmapped(next_hop))
            .copied()
            .unwrap_or(Path::Native)
    }

    /// The next hops whose path differs between `self` and `other`.
    pub fn changed(&self, other: &Resolver) -> BTreeSet<IpAddr> {
        self.paths
            .keys()
            .chain(other.paths.keys())
            .filter(|nh| self.path(**nh) != other.path(**nh))
            .copied()
            .collect()
    }

    /// The kernel next hop for `prefix` via `next_hop`, or why there is none.
    pub fn resolve(&self, prefix: &IpNet, next_hop: IpAddr) -> Result<NextHop, String> {
        let next_hop = unmapped(next_hop);
        let v6_prefix = matches!(prefix, IpNet::V6(_));
        match self.path(next_hop) {
            Path::Native => match (v6_prefix, next_hop) {
                (true, IpAddr::V4(_)) => Err(format!(
                    "{prefix} has the IPv4 next hop {next_hop} and the kernel cannot route \
                     IPv6 via an IPv4 gateway: peer over IPv6 or use encapsulation vxlan"
                )),
                _ => Ok(NextHop::via(next_hop, None)),
            },
            Path::Ipip { device } => match (v6_prefix, next_hop) {
                (false, IpAddr::V4(_)) => Ok(onlink(next_hop, device)),
                _ => Err(format!(
                    "{prefix} via {next_hop}: an IPIP tunnel carries only IPv4 over IPv4; use \
                     encapsulation vxlan for IPv6"
                )),
            },
            Path::Vxlan { device } => Ok(onlink(vxlan_gateway(prefix, next_hop), device)),
        }
    }
}

/// The gateway a VXLAN route uses toward `next_hop`: the next hop itself, or for an IPv6
/// destination behind an IPv4 next hop its IPv4-mapped form (IPv6 routes need an IPv6
/// gateway; on the VXLAN device it only has to resolve to the peer's MAC).
pub fn vxlan_gateway(prefix: &IpNet, next_hop: IpAddr) -> IpAddr {
    match (prefix, unmapped(next_hop)) {
        (IpNet::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        (_, nh) => nh,
    }
}

/// Every gateway a VXLAN route toward a peer at `public_ip` may use (its neighbour entries).
pub fn vxlan_gateways(public_ip: IpAddr) -> Vec<IpAddr> {
    match unmapped(public_ip) {
        IpAddr::V4(v4) => vec![IpAddr::V4(v4), IpAddr::V6(v4.to_ipv6_mapped())],
        v6 => vec![v6],
    }
}

fn onlink(gateway: IpAddr, device: u32) -> NextHop {
    NextHop {
        onlink: true,
        ..NextHop::via(gateway, Some(device))
    }
}

/// An IPv4-mapped IPv6 next hop (what an IPv4 route over an IPv6 session carries) as IPv4.
pub(super) fn unmapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unknown_next_hops_are_native() {
        let r = Resolver::new();
        let hop = r.resolve(&net("10.244.2.0/24"), ip("192.168.0.2")).unwrap();
        assert_eq!(hop, NextHop::via(ip("192.168.0.2"), None));
        let e = r
            .resolve(&net("fd00:2::/64"), ip("192.168.0.2"))
            .unwrap_err();
        assert!(e.contains("cannot route IPv6 via an IPv4 gateway"), "{e}");
        // A v6 next hop for a v6 prefix is fine.
        assert!(r.resolve(&net("fd00:2::/64"), ip("fd00::2")).is_ok());
    }

    #[test]
    fn tunnels_use_onlink_next_hops_on_their_device() {
        let mut r = Resolver::new();
        r.set(ip("192.168.1.2"), Path::Ipip { device: 7 });
        r.set(ip("192.168.0.3"), Path::Vxlan { device: 9 });
        let hop = r.resolve(&net("10.244.2.0/24"), ip("192.168.1.2")).unwrap();
        assert_eq!(
            (hop.gateway, hop.oif, hop.onlink),
            (Some(ip("192.168.1.2")), Some(7), true)
        );
        assert!(r.resolve(&net("fd00:2::/64"), ip("192.168.1.2")).is_err());
        let hop = r.resolve(&net("fd00:3::/64"), ip("192.168.0.3")).unwrap();
        assert_eq!(
            (hop.gateway, hop.oif, hop.onlink),
            (Some(ip("::ffff:192.168.0.3")), Some(9), true)
        );
        // The RIB may hand over a mapped next hop: it is the same peer.
        assert_eq!(r.path(ip("::ffff:192.168.0.3")), Path::Vxlan { device: 9 });
    }

    #[test]
    fn changed_lists_next_hops_whose_path_moved() {
        let mut a = Resolver::new();
        a.set(ip("192.168.0.2"), Path::Vxlan { device: 9 });
        a.set(ip("192.168.0.3"), Path::Vxlan { device: 9 });
        let mut b = a.clone();
        b.set(ip("192.168.0.3"), Path::Native);
        b.set(ip("192.168.0.4"), Path::Ipip { device: 7 });
        let changed: Vec<IpAddr> = a.changed(&b).into_iter().collect();
        assert_eq!(changed, vec![ip("192.168.0.3"), ip("192.168.0.4")]);
        assert!(a.changed(&a.clone()).is_empty());
    }

    #[test]
    fn vxlan_neighbours_cover_both_families() {
        assert_eq!(
            vxlan_gateways(ip("192.168.0.2")),
            vec![ip("192.168.0.2"), ip("::ffff:192.168.0.2")]
        );
        assert_eq!(vxlan_gateways(ip("fd00::2")), vec![ip("fd00::2")]);
    }
}
