//! What one peer needs (pure): `ip route replace PEER_SUBNET via PEER_PUBLIC_IP dev UNDERLAY
//! proto 87` for each of its subnets of the public address's family.
//!
//! host-gw only works when every host is on one L2 segment: a peer whose public address is in
//! none of the underlay's connected prefixes is refused with an error (a route via it would be
//! a black hole, or worse, go out the default route).

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
    fn unreachable_peer_is_an_error_not_a_route() {
        let e = peer_objects(&local(), &peer("172.16.0.2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not directly reachable"), "{e}");
        assert!(e.contains("eth0") && e.contains("192.168.0.0/24"), "{e}");
    }
}
