//! What one peer needs in the kernel (pure).
//!
//! flannel's L3 VXLAN: a peer's VTEP address is the network address of its subnet
//! (10.244.2.0), and reaching its subnet takes three entries on this host's VXLAN device:
//!
//! ```text
//! ip neigh replace 10.244.2.0 lladdr PEER_MAC dev weft.1 nud permanent
//! bridge fdb replace PEER_MAC dst PEER_PUBLIC_IP dev weft.1 self permanent
//! ip route replace 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink proto 87
//! ```
//!
//! With direct routing a peer on the same L2 segment gets `ip route replace 10.244.2.0/24 via
//! PEER_PUBLIC_IP dev UNDERLAY proto 87` instead: no encapsulation.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_drivers::backend::{is_connected, Objects, Peer, RouteObj};
use weft_drivers::{vxlan, DriverError, MacAddr};

pub use weft_drivers::vxlan::VTEP_MAC;

/// Where this host's VXLAN plumbing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// The VXLAN device.
    pub device: u32,
    /// The underlay device.
    pub underlay: u32,
    /// This host's public address (the VXLAN source).
    pub public_ip: IpAddr,
    /// The underlay's connected prefixes, for direct routing.
    pub connected: Vec<IpNet>,
    /// Whether direct routing is on.
    pub direct_routing: bool,
}

/// The objects `peer` needs, or why it cannot be programmed yet.
pub fn peer_objects(local: &Local, peer: &Peer) -> Result<Objects, DriverError> {
    let mut objects = Objects::default();
    if IpAddr::is_ipv4(&peer.public_ip) != local.public_ip.is_ipv4() {
        return Err(DriverError::Invalid(format!(
            "peer {}: its public address is of another family than this host's {}; give all hosts public addresses of one family",
            peer.describe(),
            local.public_ip
        )));
    }
    let direct = local.direct_routing && is_connected(&local.connected, peer.public_ip);
    let mut tunneled = Vec::new();
    for subnet in &peer.subnets {
        if direct && subnet.addr().is_ipv4() == peer.public_ip.is_ipv4() {
            objects.routes.insert(
                *subnet,
                RouteObj {
                    destination: *subnet,
                    gateway: peer.public_ip,
                    oif: local.underlay,
                    onlink: false,
                },
            );
        } else {
            tunneled.push(*subnet);
        }
    }
    if tunneled.is_empty() {
        return Ok(objects);
    }
    let mac = vxlan::peer_vtep_mac(peer)?;
    objects.fdb.insert((local.device, mac), peer.public_ip);
    for subnet in tunneled {
        let vtep = subnet.network();
        objects.neighbours.insert((local.device, vtep), mac);
        objects.routes.insert(
            subnet,
            RouteObj {
                destination: subnet,
                gateway: vtep,
                oif: local.device,
                onlink: true,
            },
        );
    }
    Ok(objects)
}

/// This host's VTEP MAC (first octet 0x0a marks the vxlan backend's device).
pub fn local_mac(vni: u32, public_ip: IpAddr) -> MacAddr {
    vxlan::local_vtep_mac(0x0a, vni, public_ip)
}

/// Device MTU: the underlay's minus the VXLAN overhead (50 bytes over IPv4, 70 over IPv6).
pub fn mtu(underlay_mtu: u32, public_ip: IpAddr) -> u32 {
    underlay_mtu.saturating_sub(vxlan::overhead(public_ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(direct: bool) -> Local {
        Local {
            device: 9,
            underlay: 2,
            public_ip: "192.168.0.1".parse().unwrap(),
            connected: vec!["192.168.0.0/24".parse().unwrap()],
            direct_routing: direct,
        }
    }

    fn peer(ip: &str, mac: Option<&str>) -> Peer {
        Peer {
            name: "h2".into(),
            subnets: vec!["10.244.2.0/24".parse().unwrap()],
            public_ip: ip.parse().unwrap(),
            data: match mac {
                Some(m) => serde_json::json!({ VTEP_MAC: m }),
                None => serde_json::Value::Null,
            },
        }
    }

    #[test]
    fn tunnel_needs_neighbour_fdb_and_onlink_route() {
        let o = peer_objects(
            &local(false),
            &peer("192.168.0.2", Some("0a:01:c0:a8:00:02")),
        )
        .unwrap();
        let mac: MacAddr = "0a:01:c0:a8:00:02".parse().unwrap();
        let vtep: IpAddr = "10.244.2.0".parse().unwrap();
        assert_eq!(o.neighbours.get(&(9, vtep)), Some(&mac));
        assert_eq!(o.fdb.get(&(9, mac)), Some(&"192.168.0.2".parse().unwrap()));
        let route = o.routes.values().next().unwrap();
        assert_eq!((route.gateway, route.oif, route.onlink), (vtep, 9, true));
    }

    #[test]
    fn direct_routing_only_for_the_same_segment() {
        let o = peer_objects(&local(true), &peer("192.168.0.2", None)).unwrap();
        let route = o.routes.values().next().unwrap();
        assert_eq!(
            (route.gateway, route.oif, route.onlink),
            ("192.168.0.2".parse().unwrap(), 2, false)
        );
        assert!(o.fdb.is_empty() && o.neighbours.is_empty());
        // Another segment: tunnel.
        let o = peer_objects(&local(true), &peer("172.16.0.2", Some("0a:01:ac:10:00:02"))).unwrap();
        assert_eq!(o.routes.values().next().unwrap().oif, 9);
    }

    #[test]
    fn missing_or_bad_mac_is_reported() {
        let e = peer_objects(&local(false), &peer("192.168.0.2", None)).unwrap_err();
        assert!(
            e.to_string().contains("has not published its VTEP MAC"),
            "{e}"
        );
        let e = peer_objects(&local(false), &peer("192.168.0.2", Some("zz"))).unwrap_err();
        assert!(e.to_string().contains("invalid MAC"), "{e}");
        let e =
            peer_objects(&local(false), &peer("fd00::2", Some("0a:01:c0:a8:00:02"))).unwrap_err();
        assert!(e.to_string().contains("family"), "{e}");
    }

    #[test]
    fn mac_and_mtu() {
        assert_eq!(
            local_mac(1, "192.168.0.1".parse().unwrap()).to_string(),
            "0a:01:c0:a8:00:01"
        );
        assert_eq!(mtu(1500, "192.168.0.1".parse().unwrap()), 1450);
        assert_eq!(mtu(1500, "fd00::1".parse().unwrap()), 1430);
    }
}
