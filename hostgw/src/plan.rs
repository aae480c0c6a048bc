//! What one peer needs (pure): `ip route replace PEER_SUBNET via PEER_PUBLIC_IP dev UNDERLAY
//! proto 87` for each of its subnets of the public address's family.
//!
//! host-gw only works when every host is on one L2 segment: a peer whose public address is in
//! none of the underlay's connected prefixes is refused with an error (a route via it would be
//! a black hole, or worse, go out the default route). Its subnets get `ip route replace
//! unreachable PEER_SUBNET proto 87` instead: without one, traffic to them would follow this
//! host's default route and vanish upstream, and senders would wait for a time-out; with one,
//! they fail at once (EHOSTUNREACH locally, ICMP host unreachable for forwarded packets).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use weft_drivers::backend::{is_connected, Objects, Peer, RouteObj};
use weft_drivers::DriverError;

/// Where this host's underlay is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// Underlay interface.
    pub underlay: u32,
    /// Its name, for messages.
    pub underlay_name: String,
    /// Its connected prefixes.
    pub connected: Vec<IpNet>,
}

/// The routes `peer` needs, or why it cannot be reached.
pub fn peer_objects(local: &Local, peer: &Peer) -> Result<Objects, DriverError> {
    if !is_connected(&local.connected, peer.public_ip) {
        return Err(DriverError::Invalid(format!(
            "peer {} is not directly reachable: {} is in none of {}'s subnets ({}); host-gw needs all hosts on one L2 segment, use the vxlan backend otherwise",
            peer.describe(),
            peer.public_ip,
            local.underlay_name,
            local
                .connected
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut objects = Objects::default();
    for subnet in peer
        .subnets
        .iter()
        .filter(|s| same_family(s, peer.public_ip))
    {
        objects.routes.insert(
            *subnet,
            RouteObj {
                destination: *subnet,
                gateway: peer.public_ip,
                oif: local.underlay,
                onlink: false,
            },
        );
    }
    Ok(objects)
}

/// The subnets that get an unreachable route because `peer` is off the segment: those of its
/// public address's family (the ones host-gw would route); none for a reachable peer.
pub fn unreachable_subnets(local: &Local, peer: &Peer) -> BTreeSet<IpNet> {
    if is_connected(&local.connected, peer.public_ip) {
        return BTreeSet::new();
    }
    peer.subnets
        .iter()
        .filter(|s| same_family(s, peer.public_ip))
        .copied()
        .collect()
}

/// How the kernel's unreachable routes (`actual`) become `desired`: (to add, to remove).
pub fn unreachable_diff(
    actual: &BTreeSet<IpNet>,
    desired: &BTreeSet<IpNet>,
) -> (Vec<IpNet>, Vec<IpNet>) {
    (
        desired.difference(actual).copied().collect(),
        actual.difference(desired).copied().collect(),
    )
}

fn same_family(subnet: &IpNet, ip: IpAddr) -> bool {
    subnet.addr().is_ipv4() == ip.is_ipv4()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            underlay: 2,
            underlay_name: "eth0".into(),
            connected: vec!["192.168.0.0/24".parse().unwrap()],
        }
    }

    fn peer(ip: &str) -> Peer {
        Peer {
            name: "h2".into(),
            subnets: vec!["10.244.2.0/24".parse().unwrap()],
            public_ip: ip.parse().unwrap(),
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn route_via_the_peer_on_the_underlay() {
        let o = peer_objects(&local(), &peer("192.168.0.2")).unwrap();
        let r = o.routes.values().next().unwrap();
        assert_eq!(r.gateway, "192.168.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((r.oif, r.onlink), (2, false));
        assert!(o.neighbours.is_empty() && o.fdb.is_empty());
    }

    #[test]
    fn off_segment_peer_gets_unreachable_routes_for_its_subnets_of_that_family() {
        let mut far = peer("172.16.0.2");
        far.subnets.push("fd00:244:2::/64".parse().unwrap());
        let got = unreachable_subnets(&local(), &far);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec!["10.244.2.0/24".parse::<IpNet>().unwrap()]
        );
        assert!(unreachable_subnets(&local(), &peer("192.168.0.2")).is_empty());
    }

    #[test]
    fn unreachable_diff_adds_what_is_missing_and_removes_what_is_stale() {
        let set =
            |v: &[&str]| -> BTreeSet<IpNet> { v.iter().map(|s| s.parse().unwrap()).collect() };
        let (add, remove) = unreachable_diff(
            &set(&["10.244.3.0/24", "10.244.4.0/24"]),
            &set(&["10.244.4.0/24", "10.244.5.0/24"]),
        );
        assert_eq!(add, vec!["10.244.5.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(remove, vec!["10.244.3.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(
            unreachable_diff(&set(&["10.244.3.0/24"]), &set(&["10.244.3.0/24"])),
            (vec![], vec![])
        );
    }

    #[test]
    fn unreachable_peer_is_an_error_not_a_route() {
        let e = peer_objects(&local(), &peer("172.16.0.2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not directly reachable"), "{e}");
        assert!(e.contains("eth0") && e.contains("192.168.0.0/24"), "{e}");
    }
}
