//! The vxlan backend against the kernel: two "hosts" (namespaces joined by a veth pair, the
//! underlay), each with a bridge holding the first address of its subnet, talk through the
//! VXLAN devices the backend makes. Runs as root; everything lives in namespaces the test
//! makes and removes.

use std::path::{Path, PathBuf};
use std::process::Command;

use weft_drivers::backend::{Backend, LocalNode, Peer, ROUTE_PROTOCOL};
use weft_drivers::netns::Netns;
use weft_overlay::{VxlanBackend, VxlanConfig};

struct Lab {
    dir: tempfile::TempDir,
    made: Vec<PathBuf>,
}

impl Lab {
    fn new(test: &str) -> Option<Lab> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP {test}: needs root to create network namespaces");
            return None;
        }
        Some(Lab {
            dir: tempfile::Builder::new()
                .prefix("weft-vxlan-")
                .tempdir()
                .unwrap(),
            made: Vec::new(),
        })
    }

    fn host(&mut self, name: &str) -> (Netns, PathBuf) {
        let path = self.dir.path().join(name);
        let ns = Netns::create_at(&path).expect("namespace");
        self.made.push(path.clone());
        (ns, path)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &self.made {
            let _ = Netns::remove_at(p);
        }
    }
}

fn sh(ns: &Path, script: &str) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pings(ns: &Path, from: &str, to: &str) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ping", "-c1", "-W1", "-n", "-I", from, to])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Two hosts on 192.168.77.0/24 with bridges holding 10.244.{1,2}.1/24.
fn two_hosts(lab: &mut Lab) -> [(Netns, PathBuf); 2] {
    let h1 = lab.host("h1");
    let h2 = lab.host("h2");
    sh(
        &h1.1,
        &format!(
            "ip link set lo up && ip link add eth0 type veth peer name eth0 netns {} && \
             ip addr add 192.168.77.1/24 dev eth0 && ip link set eth0 up && \
             ip link add br0 type bridge && ip addr add 10.244.1.1/24 dev br0 && ip link set br0 up && \
             echo 1 > /proc/sys/net/ipv4/ip_forward",
            h2.1.display()
        ),
    );
    sh(
        &h2.1,
        "ip link set lo up && ip addr add 192.168.77.2/24 dev eth0 && ip link set eth0 up && \
         ip link add br0 type bridge && ip addr add 10.244.2.1/24 dev br0 && ip link set br0 up && \
         echo 1 > /proc/sys/net/ipv4/ip_forward",
    );
    [h1, h2]
}

fn node(ns: &Netns, n: u8) -> LocalNode {
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

fn peer_of(node: &LocalNode, data: serde_json::Value) -> Peer {
    Peer {
        name: format!("h{}", node.public_ip),
        subnets: node.subnets.clone(),
        public_ip: node.public_ip,
        data,
    }
}

const CONFIG: VxlanConfig = VxlanConfig {
    vni: 7,
    port: 8472,
    direct_routing: false,
};

#[test]
fn peers_reach_each_other_through_the_vxlan_device_and_sync_removes_stale_entries() {
    let Some(mut lab) = Lab::new("vxlan peers") else {
        return;
    };
    let [(ns1, p1), (ns2, p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let (b1, b2) = (VxlanBackend::new(CONFIG), VxlanBackend::new(CONFIG));
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let i2 = ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    assert_eq!(i1.mtu, 1450, "underlay MTU minus 50");
    assert!(sh(&p1, "ip -d link show weft.7").contains("vxlan id 7"));
    assert!(sh(&p1, "ip -d link show weft.7").contains("nolearning"));
    assert!(sh(&p1, "ip addr show dev weft.7").contains("10.244.1.0/32"));

    assert!(
        !pings(&p1, "10.244.1.1", "10.244.2.1"),
        "no route before the peer is known"
    );
    ns1.run(|| b1.add_or_update_peer(&peer_of(&n2, i2.data.clone())))
        .unwrap()
        .unwrap();
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, i1.data.clone())))
        .unwrap()
        .unwrap();
    assert!(pings(&p1, "10.244.1.1", "10.244.2.1"), "h1 → h2 over VXLAN");
    assert!(pings(&p2, "10.244.2.1", "10.244.1.1"), "h2 → h1 over VXLAN");
    let routes = sh(&p1, &format!("ip route show proto {ROUTE_PROTOCOL}"));
    assert!(
        routes.contains("10.244.2.0/24 via 10.244.2.0 dev weft.7 onlink"),
        "{routes}"
    );
    let mac = i2.data["vtep_mac"].as_str().unwrap().to_string();
    assert!(
        sh(&p1, "ip neigh show dev weft.7").contains(&format!("10.244.2.0 lladdr {mac} PERMANENT"))
    );
    assert!(sh(&p1, "bridge fdb show dev weft.7")
        .contains(&format!("{mac} dst 192.168.77.2 self permanent")));

    // Leftovers of a peer that is gone (and one route that is not weft's) at start-up.
    sh(
        &p1,
        "ip route add 10.244.9.0/24 via 10.244.9.0 dev weft.7 onlink proto 87 && \
         ip neigh replace 10.244.9.0 lladdr 0a:07:01:02:03:04 dev weft.7 nud permanent && \
         bridge fdb append 0a:07:01:02:03:04 dst 192.168.77.9 dev weft.7 self permanent && \
         ip route add 10.244.10.0/24 via 192.168.77.2 proto static",
    );
    let b1_restarted = VxlanBackend::new(CONFIG);
    ns1.run(|| b1_restarted.init(&n1)).unwrap().unwrap();
    let report = ns1
        .run(|| b1_restarted.sync_peers(&[peer_of(&n2, i2.data.clone())]))
        .unwrap()
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let routes = sh(&p1, "ip route");
    assert!(
        !routes.contains("10.244.9.0"),
        "stale route removed: {routes}"
    );
    assert!(
        routes.contains("10.244.10.0/24"),
        "a route weft did not make stays: {routes}"
    );
    assert!(!sh(&p1, "ip neigh show dev weft.7").contains("10.244.9.0"));
    assert!(!sh(&p1, "bridge fdb show dev weft.7").contains("0a:07:01:02:03:04"));
    assert!(
        pings(&p1, "10.244.1.1", "10.244.2.1"),
        "the live peer still works"
    );

    // The peer's lease goes.
    ns1.run(|| b1_restarted.remove_peer(&peer_of(&n2, i2.data.clone())))
        .unwrap()
        .unwrap();
    assert!(!sh(&p1, "ip route").contains("10.244.2.0/24"));
    assert!(!pings(&p1, "10.244.1.1", "10.244.2.1"));
}

#[test]
fn deleted_device_is_recreated_with_the_same_mac() {
    let Some(mut lab) = Lab::new("vxlan repair") else {
        return;
    };
    let [(ns1, p1), (ns2, _p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let (b1, b2) = (VxlanBackend::new(CONFIG), VxlanBackend::new(CONFIG));
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let i2 = ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    let peers2 = [peer_of(&n2, i2.data.clone())];
    ns1.run(|| b1.sync_peers(&peers2)).unwrap().unwrap();
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, i1.data.clone())))
        .unwrap()
        .unwrap();
    assert!(pings(&p1, "10.244.1.1", "10.244.2.1"));
    assert!(
        ns1.run(|| b1.repair()).unwrap().unwrap().is_empty(),
        "nothing to repair"
    );

    sh(&p1, "ip link del weft.7");
    assert!(!pings(&p1, "10.244.1.1", "10.244.2.1"));
    let changes = ns1.run(|| b1.repair()).unwrap().unwrap();
    assert!(!changes.is_empty());
    ns1.run(|| b1.sync_peers(&peers2)).unwrap().unwrap();
    assert!(
        pings(&p1, "10.244.1.1", "10.244.2.1"),
        "works again, peers unchanged"
    );
    assert!(sh(&p1, "ip link show weft.7").contains(i1.data["vtep_mac"].as_str().unwrap()));

    ns1.run(|| b1.teardown()).unwrap().unwrap();
    assert!(!sh(&p1, "ip link").contains("weft.7"));
    assert!(sh(&p1, "ip route show proto 87").trim().is_empty());
}

#[test]
fn direct_routing_skips_encapsulation_on_the_same_segment() {
    let Some(mut lab) = Lab::new("vxlan direct routing") else {
        return;
    };
    let [(ns1, p1), (ns2, p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let config = VxlanConfig {
        direct_routing: true,
        ..CONFIG
    };
    let (b1, b2) = (VxlanBackend::new(config), VxlanBackend::new(config));
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let i2 = ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    ns1.run(|| b1.add_or_update_peer(&peer_of(&n2, i2.data.clone())))
        .unwrap()
        .unwrap();
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, i1.data.clone())))
        .unwrap()
        .unwrap();
    assert!(sh(&p1, "ip route show proto 87").contains("10.244.2.0/24 via 192.168.77.2 dev eth0"));
    assert!(pings(&p1, "10.244.1.1", "10.244.2.1"));
    assert!(pings(&p2, "10.244.2.1", "10.244.1.1"));
}
