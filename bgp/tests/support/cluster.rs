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
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weft_bgp::{BgpBackend, BgpBackendConfig};
use weft_drivers::backend::{Backend, BackendInit, LocalNode, Peer};
use weft_drivers::netns::Netns;
use weft_testkit::eventually;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The cluster network.
pub const CLUSTER: &str = "10.244.0.0/16";
/// The IPv6 cluster network of dual-stack worlds.
pub const CLUSTER6: &str = "fd00:244::/48";

/// How to build one host.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Its underlay address with prefix length (`192.168.0.N/24` by default).
    pub underlay: String,
    /// Extra `ip route add` arguments in the host (e.g. a route to another underlay subnet).
    pub underlay_routes: Vec<String>,
    /// IPv6 subnets and container addresses too.
    pub dual_stack: bool,
}

impl HostOptions {
    /// Host `n` on 192.168.0.0/24, IPv4 only.
    pub fn plain(n: u8) -> Self {
        HostOptions {
            underlay: format!("192.168.0.{n}/24"),
            underlay_routes: Vec::new(),
            dual_stack: false,
        }
    }
}

/// The namespaces of one test.
pub struct World {
    prefix: String,
    /// Every namespace made, deleted on drop.
    namespaces: Vec<String>,
}

/// One host: its namespace, its container's and its addresses.
#[derive(Debug, Clone)]
pub struct Host {
    /// Number (1-based): 10.244.N.0/24 (and fd00:244:0:N::/64).
    pub n: u8,
    /// The host namespace.
    pub ns: String,
    /// The container namespace.
    pub container: String,
    /// The underlay address.
    pub public: IpAddr,
    /// Whether it has IPv6 subnets too.
    pub dual_stack: bool,
}

impl Host {
    /// The underlay address.
    pub fn public_ip(&self) -> IpAddr {
        self.public
    }

    /// 10.244.N.0/24.
    pub fn subnet(&self) -> ipnet::IpNet {
        format!("10.244.{}.0/24", self.n).parse().unwrap()
    }

    /// fd00:244:0:N::/64.
    pub fn subnet6(&self) -> ipnet::IpNet {
        format!("fd00:244:0:{}::/64", self.n).parse().unwrap()
    }

    /// The container's address, 10.244.N.2.
    pub fn container_ip(&self) -> String {
        format!("10.244.{}.2", self.n)
    }

    /// The container's IPv6 address, fd00:244:0:N::2.
    pub fn container_ip6(&self) -> String {
        format!("fd00:244:0:{}::2", self.n)
    }

    fn subnets(&self) -> Vec<ipnet::IpNet> {
        let mut v = vec![self.subnet()];
        if self.dual_stack {
            v.push(self.subnet6());
        }
        v
    }

    /// The node as the agent would describe it.
    pub fn node(&self) -> LocalNode {
        let mut networks = vec![CLUSTER.parse().unwrap()];
        if self.dual_stack {
            networks.push(CLUSTER6.parse().unwrap());
        }
        LocalNode {
            cluster: "test".into(),
            subnets: self.subnets(),
            public_ip: self.public_ip(),
            underlay_index: ifindex(&self.ns, "eth0"),
            underlay_mtu: 1500,
            cluster_networks: networks,
        }
    }

    /// The peer as the other hosts' agents would describe it.
    pub fn peer(&self, data: &serde_json::Value) -> Peer {
        Peer {
            name: format!("host{}", self.n),
            subnets: self.subnets(),
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
        let mut routes = String::new();
        let ok = eventually(Duration::from_secs(30), || {
            routes = self.bgp_routes();
            f(&routes)
        });
        assert!(
            ok,
            "host{}: timed out waiting for {what}; proto 87 routes:\n{routes}",
            self.n
        );
    }

    /// One ping from this host's container to `ip` (IPv4 or IPv6).
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
    /// The underlay and `hosts` hosts on 192.168.0.0/24 with their containers.
    pub fn new(hosts: u8) -> (World, Vec<Host>) {
        World::with_hosts((1..=hosts).map(HostOptions::plain).collect())
    }

    /// The underlay and one host per entry (host N is the N-th, from 1).
    pub fn with_hosts(options: Vec<HostOptions>) -> (World, Vec<Host>) {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("wbk{}x{n}", std::process::id() % 100_000);
        let mut w = World {
            prefix,
            namespaces: Vec::new(),
        };
        let u = w.ns("u");
        sh(&["ip", "-n", &u, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &u, "link", "set", "br0", "up"]);
        let hosts = options
            .into_iter()
            .enumerate()
            .map(|(i, o)| w.add_host(i as u8 + 1, o))
            .collect();
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
        self.attach_with(suffix, &format!("192.168.0.{n}/24"))
    }

    /// A namespace on the underlay with `address` (with prefix length) on its `eth0`.
    pub fn attach_with(&mut self, suffix: &str, address: &str) -> String {
        let n = self.namespaces.len();
        let ns = self.ns(suffix);
        let u = format!("{}u", self.prefix);
        let port = format!("p{n}");
        sh(&[
            "ip", "link", "add", &port, "netns", &u, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        sh(&["ip", "-n", &u, "link", "set", &port, "master", "br0", "up"]);
        sh(&["ip", "-n", &ns, "addr", "add", address, "dev", "eth0"]);
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    fn add_host(&mut self, n: u8, o: HostOptions) -> Host {
        let ns = self.attach_with(&format!("h{n}"), &o.underlay);
        for r in &o.underlay_routes {
            let mut args = vec!["ip", "-n", &ns, "route", "add"];
            args.extend(r.split_whitespace());
            sh(&args);
        }
        let container = self.ns(&format!("c{n}"));
        for key in ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"] {
            sh(&["ip", "netns", "exec", &ns, "sysctl", "-qw", key]);
        }
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
        if o.dual_stack {
            let gw = format!("fd00:244:0:{n}::1");
            sh(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{gw}/64"),
                "dev",
                "cbr0",
                "nodad",
            ]);
            sh(&[
                "ip",
                "-n",
                &container,
                "addr",
                "add",
                &format!("fd00:244:0:{n}::2/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            sh(&[
                "ip", "-n", &container, "-6", "route", "add", "default", "via", &gw,
            ]);
        }
        let public = o.underlay.split('/').next().unwrap().parse().unwrap();
        Host {
            n,
            ns,
            container,
            public,
            dual_stack: o.dual_stack,
        }
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

/// Runs `f` on a thread inside `/run/netns/<ns>`.
pub fn in_ns<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    Netns::open(format!("/run/netns/{ns}"))
        .expect("netns file")
        .run(f)
        .expect("setns")
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
