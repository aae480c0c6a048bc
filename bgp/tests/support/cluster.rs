//! A cluster of "hosts" in network namespaces for backend tests, built with `ip` (test-only
//! plumbing; the library never spawns it):
//!
//! ```text
//!   ns <p>u: bridge br0 ─┬─ h1 ⇄ eth0 192.168.0.1/24  ns <p>h1: cbr0 10.244.1.1/24 ─ c0 ⇄ eth0 10.244.1.2  ns <p>c1
//!                        ├─ h2 ⇄ eth0 192.168.0.2/24  ns <p>h2: cbr0 10.244.2.1/24 ─ …              ns <p>c2
//!                        ├─ …
//!                        └─ rN ⇄ eth0 192.168.0.N     ns <p>rN  (a router: BIRD, a generator)
//! ```
//!
//! Each host has forwarding on and a container namespace behind a bridge, so pings between
//! containers cross the hosts' routes. Every namespace is deleted on drop.

use super::sh;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weft_bgp::{BgpBackend, BgpBackendConfig};
use weft_drivers::backend::{Backend, BackendInit, LocalNode, Peer};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The cluster network.
pub const CLUSTER: &str = "10.244.0.0/16";

/// The namespaces of one test.
pub struct World {
    prefix: String,
    /// Every namespace made, deleted on drop.
    namespaces: Vec<String>,
}

/// One host: its namespace, its container's and its addresses.
#[derive(Debug, Clone)]
pub struct Host {
    /// Number (1-based): 192.168.0.N, 10.244.N.0/24.
    pub n: u8,
    /// The host namespace.
    pub ns: String,
    /// The container namespace.
    pub container: String,
}

impl Host {
    /// 192.168.0.N.
    pub fn public_ip(&self) -> IpAddr {
        format!("192.168.0.{}", self.n).parse().unwrap()
    }

    /// 10.244.N.0/24.
    pub fn subnet(&self) -> ipnet::IpNet {
        format!("10.244.{}.0/24", self.n).parse().unwrap()
    }

    /// The container's address, 10.244.N.2.
    pub fn container_ip(&self) -> String {
        format!("10.244.{}.2", self.n)
    }

    /// The node as the agent would describe it.
    pub fn node(&self) -> LocalNode {
        LocalNode {
            cluster: "test".into(),
            subnets: vec![self.subnet()],
            public_ip: self.public_ip(),
            underlay_index: ifindex(&self.ns, "eth0"),
            underlay_mtu: 1500,
            cluster_networks: vec![CLUSTER.parse().unwrap()],
        }
    }

    /// The peer as the other hosts' agents would describe it.
    pub fn peer(&self, data: &serde_json::Value) -> Peer {
        Peer {
            name: format!("host{}", self.n),
            subnets: vec![self.subnet()],
            public_ip: self.public_ip(),
            data: data.clone(),
        }
    }

    /// `ip route show proto 87` in the host.
    pub fn bgp_routes(&self) -> String {
        sh(&["ip", "-n", &self.ns, "route", "show", "proto", "87"])
    }

    /// `ip -6 route show proto 87` in the host.
    pub fn bgp_routes6(&self) -> String {
        sh(&["ip", "-n", &self.ns, "-6", "route", "show", "proto", "87"])
    }

    /// Waits until `ip route show proto 87` satisfies `f`; the panic shows the routes.
    pub fn wait_routes(&self, what: &str, f: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let routes = self.bgp_routes();
            if f(&routes) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "host{}: timed out waiting for {what}; proto 87 routes:\n{routes}",
                self.n
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One ping from this host's container to `ip`.
    pub fn ping(&self, ip: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.container, "ping", "-c1", "-W1", ip])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Runs `f` on a thread inside the host namespace (what the backend starts there stays
    /// there).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_ns(&self.ns, f)
    }

    /// Creates and initializes a backend inside the host.
    pub fn start(&self, cfg: BgpBackendConfig) -> (Arc<BgpBackend>, BackendInit) {
        let node = self.node();
        self.run(move || {
            let b = BgpBackend::new(cfg);
            let init = b.init(&node).expect("bgp backend init");
            (Arc::new(b), init)
        })
    }
}

impl World {
    /// The underlay and `hosts` hosts with their containers.
    pub fn new(hosts: u8) -> (World, Vec<Host>) {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("wbk{}x{n}", std::process::id() % 100_000);
        let mut w = World {
            prefix,
            namespaces: Vec::new(),
        };
        let u = w.ns("u");
        sh(&["ip", "-n", &u, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &u, "link", "set", "br0", "up"]);
        let hosts = (1..=hosts).map(|i| w.add_host(i)).collect();
        (w, hosts)
    }

    fn ns(&mut self, suffix: &str) -> String {
        let name = format!("{}{suffix}", self.prefix);
        sh(&["ip", "netns", "add", &name]);
        self.namespaces.push(name.clone());
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A namespace on the underlay with address 192.168.0.`n` on its `eth0`.
    pub fn attach(&mut self, suffix: &str, n: u8) -> String {
        let ns = self.ns(suffix);
        let u = format!("{}u", self.prefix);
        let port = format!("p{n}");
        sh(&[
            "ip", "link", "add", &port, "netns", &u, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        sh(&["ip", "-n", &u, "link", "set", &port, "master", "br0", "up"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("192.168.0.{n}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    fn add_host(&mut self, n: u8) -> Host {
        let ns = self.attach(&format!("h{n}"), n);
        let container = self.ns(&format!("c{n}"));
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        sh(&["ip", "-n", &ns, "link", "add", "cbr0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.244.{n}.1/24"),
            "dev",
            "cbr0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "cbr0", "up"]);
        sh(&[
            "ip", "link", "add", "c0", "netns", &ns, "type", "veth", "peer", "name", "eth0",
            "netns", &container,
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "c0", "master", "cbr0", "up"]);
        sh(&[
            "ip",
            "-n",
            &container,
            "addr",
            "add",
            &format!("10.244.{n}.2/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &container, "link", "set", "eth0", "up"]);
        sh(&[
            "ip",
            "-n",
            &container,
            "route",
            "add",
            "default",
            "via",
            &format!("10.244.{n}.1"),
        ]);
        Host { n, ns, container }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// The ifindex of `dev` in `ns`.
pub fn ifindex(ns: &str, dev: &str) -> u32 {
    let out = sh(&["ip", "-n", ns, "-o", "link", "show", dev]);
    out.split(':').next().unwrap().trim().parse().unwrap()
}

/// Runs `f` on a scoped thread that entered `/run/netns/<ns>` first.
pub fn in_ns<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = std::fs::File::open(&path).expect("netns file");
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Feeds every host the others as peers.
pub fn introduce(hosts: &[Host], backends: &[(Arc<BgpBackend>, BackendInit)]) {
    for (i, (b, _)) in backends.iter().enumerate() {
        for (j, h) in hosts.iter().enumerate() {
            if i != j {
                b.add_or_update_peer(&h.peer(&backends[j].1.data))
                    .expect("add peer");
            }
        }
    }
}
