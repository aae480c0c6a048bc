//! Two "hosts" on one underlay segment, for backend tests: namespaces `h1` and `h2` joined by a
//! veth pair (`eth0`, 192.168.77.N/24), each forwarding, with a bridge `br0` holding the first
//! address of its subnet 10.244.N.0/24. A backend that works routes between the two bridges.

use weft_drivers::backend::{LocalNode, Peer};
use weft_drivers::netns::Netns;

use crate::ns::{Lab, Ns};

/// Hosts 1 and 2; each as a handle to run the backend in and as a namespace to look into.
pub fn two_hosts(lab: &mut Lab) -> [(Netns, Ns); 2] {
    let h1 = lab.ns("h1");
    let h2 = lab.ns("h2");
    h1.sh(&format!(
        "ip link add eth0 type veth peer name eth0 netns {} && \
         ip addr add 192.168.77.1/24 dev eth0 && ip link set eth0 up && \
         ip link add br0 type bridge && ip addr add 10.244.1.1/24 dev br0 && ip link set br0 up && \
         echo 1 > /proc/sys/net/ipv4/ip_forward",
        h2.path.display()
    ));
    h2.sh(
        "ip addr add 192.168.77.2/24 dev eth0 && ip link set eth0 up && \
         ip link add br0 type bridge && ip addr add 10.244.2.1/24 dev br0 && ip link set br0 up && \
         echo 1 > /proc/sys/net/ipv4/ip_forward",
    );
    [(h1.open(), h1), (h2.open(), h2)]
}

/// Host `n` as its agent describes it to the backend (cluster `c1`, 10.244.0.0/16).
pub fn node(ns: &Netns, n: u8) -> LocalNode {
    let eth0 = ns
        .run(|| {
            weft_drivers::netlink::Netlink::open()
                .unwrap()
                .link_by_name("eth0")
                .unwrap()
                .unwrap()
        })
        .unwrap();
    LocalNode {
        cluster: "c1".into(),
        subnets: vec![format!("10.244.{n}.0/24").parse().unwrap()],
        public_ip: format!("192.168.77.{n}").parse().unwrap(),
        underlay_index: eth0.index,
        underlay_mtu: eth0.mtu,
        cluster_networks: vec!["10.244.0.0/16".parse().unwrap()],
    }
}

/// `node` as the other host's agent sees it, with the backend data it published.
pub fn peer_of(node: &LocalNode, data: serde_json::Value) -> Peer {
    Peer {
        name: format!("h{}", node.public_ip),
        subnets: node.subnets.clone(),
        public_ip: node.public_ip,
        data,
    }
}
