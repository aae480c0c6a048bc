//! The host-gw backend against the kernel: two "hosts" (namespaces joined by a veth pair) with
//! a bridge each holding the first address of its subnet. Runs as root in namespaces the test
//! makes and removes.

use std::path::{Path, PathBuf};
use std::process::Command;

use weft_drivers::backend::{Backend, LocalNode, Peer, ROUTE_PROTOCOL};
use weft_drivers::netns::Netns;
use weft_hostgw::HostGwBackend;

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
                .prefix("weft-hostgw-")
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

#[test]
fn routes_via_peers_on_the_segment_and_refuses_unreachable_ones() {
    let Some(mut lab) = Lab::new("host-gw") else {
        return;
    };
    let [(ns1, p1), (ns2, p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let (b1, b2) = (HostGwBackend::new(), HostGwBackend::new());
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    assert_eq!(i1.mtu, n1.underlay_mtu, "no encapsulation, no MTU loss");
    let far = Peer {
        name: "far".into(),
        subnets: vec!["10.244.3.0/24".parse().unwrap()],
        public_ip: "172.16.5.5".parse().unwrap(),
        data: serde_json::Value::Null,
    };
    let peers1 = [peer_of(&n2, serde_json::Value::Null), far.clone()];
    let report = ns1.run(|| b1.sync_peers(&peers1)).unwrap().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0]
        .to_string()
        .contains("not directly reachable"));
    let e = ns1
        .run(|| b1.add_or_update_peer(&far))
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("172.16.5.5"), "{e}");
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, serde_json::Value::Null)))
        .unwrap()
        .unwrap();
    let routes = sh(&p1, &format!("ip route show proto {ROUTE_PROTOCOL}"));
    assert!(
        routes.contains("10.244.2.0/24 via 192.168.77.2 dev eth0"),
        "{routes}"
    );
    assert!(
        !routes.contains("10.244.3.0"),
        "no black hole for the unreachable peer: {routes}"
    );
    assert!(pings(&p1, "10.244.1.1", "10.244.2.1"));
    assert!(pings(&p2, "10.244.2.1", "10.244.1.1"));

    ns1.run(|| b1.remove_peer(&peer_of(&n2, serde_json::Value::Null)))
        .unwrap()
        .unwrap();
    assert!(sh(&p1, "ip route show proto 87").trim().is_empty());
    ns2.run(|| b2.teardown()).unwrap().unwrap();
    assert!(sh(&p2, "ip route show proto 87").trim().is_empty());
}
