//! The `bgp` backend on "hosts" in network namespaces (root): a BgpBackend per host, started
//! on a thread inside the host namespace and fed LocalNode/Peers directly (no etcd).
//! Containers behind a bridge on each host ping each other across the routes the backends
//! program.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use support::cluster::{in_ns, introduce, Host, HostOptions, World};
use support::{sh, wait_until};
use weft_bgp::backend::{BgpBackendConfig, Encapsulation};
use weft_bgp::fsm::State;
use weft_bgp::{BgpBackend, PeerConfig, Speaker, SpeakerConfig};
use weft_drivers::backend::{Backend, BackendInit};
use weft_drivers::DriverError;

const T: Duration = Duration::from_secs(30);

fn base() -> BgpBackendConfig {
    BgpBackendConfig {
        connect_retry: 1,
        startup_grace: 1,
        ..Default::default()
    }
}

fn start_all(hosts: &[Host], cfg: &BgpBackendConfig) -> Vec<(Arc<BgpBackend>, BackendInit)> {
    let backends: Vec<_> = hosts.iter().map(|h| h.start(cfg.clone())).collect();
    introduce(hosts, &backends);
    backends
}

fn ping_all(hosts: &[Host]) {
    for a in hosts {
        for b in hosts {
            if a.n != b.n {
                wait_until(
                    &format!("container {} pings container {}", a.n, b.n),
                    T,
                    || a.ping(&b.container_ip()),
                );
            }
        }
    }
}

#[test]
fn mesh_without_encapsulation_routes_pings_withdraws_and_tears_down() {
    skip_unless!();
    let (_world, hosts) = World::new(3);
    let h1 = &hosts[0];
    // Left over from an earlier run: weft's route into the cluster goes after the grace
    // period; another protocol's route and weft's route outside the cluster stay.
    sh(&[
        "ip",
        "-n",
        &h1.ns,
        "route",
        "add",
        "10.244.77.0/24",
        "via",
        "192.168.0.77",
        "dev",
        "eth0",
        "proto",
        "87",
    ]);
    sh(&[
        "ip",
        "-n",
        &h1.ns,
        "route",
        "add",
        "10.244.78.0/24",
        "via",
        "192.168.0.78",
        "dev",
        "eth0",
        "proto",
        "static",
    ]);
    sh(&[
        "ip",
        "-n",
        &h1.ns,
        "route",
        "add",
        "10.99.0.0/24",
        "via",
        "192.168.0.79",
        "dev",
        "eth0",
        "proto",
        "87",
    ]);

    let backends = start_all(&hosts, &base());
    assert_eq!(backends[0].1.mtu, 1500, "no encapsulation, no overhead");
    // init again with the same node converges to the same answer and changes nothing.
    let node = h1.node();
    let again = h1.run(|| backends[0].0.init(&node)).unwrap();
    assert_eq!(again, backends[0].1);
    for h in &hosts {
        for o in &hosts {
            if o.n != h.n {
                let want = format!("{} via {} dev eth0", o.subnet(), o.public_ip());
                h.wait_routes(&want, |r| r.contains(&want));
            }
        }
    }
    h1.wait_routes("the stale route is removed after the grace period", |r| {
        !r.contains("10.244.77.0/24")
    });
    let all = sh(&["ip", "-n", &h1.ns, "route"]);
    assert!(all.contains("10.244.78.0/24 via 192.168.0.78"), "{all}");
    assert!(all.contains("10.99.0.0/24 via 192.168.0.79"), "{all}");
    let holes = sh(&["ip", "-n", &h1.ns, "route", "show", "type", "blackhole"]);
    assert!(
        holes.contains("blackhole 10.244.1.0/24 proto 87 metric 1000000"),
        "{holes}"
    );
    ping_all(&hosts);

    let (b1, _) = &backends[0];
    let ns = b1.neighbours().unwrap();
    assert_eq!(ns.len(), 2, "{ns:?}");
    assert!(ns.iter().all(|n| n.state == State::Established
        && n.role == "mesh"
        && n.prefixes_received == 1
        && n.prefixes_sent == 1));
    let status = b1.status().unwrap();
    assert_eq!(status["routes"]["routes"], 2, "{status}");
    assert_eq!(status["routes"]["failed"], 0, "{status}");

    // The agent drops host 3: its neighbour goes and so does its route.
    b1.remove_peer(&hosts[2].peer(&backends[2].1.data)).unwrap();
    h1.wait_routes("host 3's route is withdrawn", |r| {
        !r.contains("10.244.3.0/24") && r.contains("10.244.2.0/24")
    });
    assert_eq!(b1.neighbours().unwrap().len(), 1);

    // Teardown leaves nothing of weft's in the cluster network.
    b1.teardown().unwrap();
    let left = sh(&["ip", "-n", &h1.ns, "route", "show", "proto", "87"]);
    assert!(
        !left.lines().any(|l| l.starts_with("10.244.")) && left.contains("10.99.0.0/24"),
        "only the route outside the cluster is left: {left}"
    );
    let holes = sh(&["ip", "-n", &h1.ns, "route", "show", "type", "blackhole"]);
    assert!(!holes.contains("10.244.1.0/24"), "{holes}");
    // Host 2 loses host 1's route when the session ends.
    hosts[1].wait_routes("host 1's route is withdrawn", |r| {
        !r.contains("10.244.1.0/24")
    });
    for (b, _) in &backends[1..] {
        b.teardown().unwrap();
    }
}

#[test]
fn mesh_over_vxlan_routes_through_the_device_and_pings() {
    skip_unless!();
    let (_world, hosts) = World::new(3);
    let cfg = BgpBackendConfig {
        encapsulation: Encapsulation::Vxlan,
        ..base()
    };
    let backends = start_all(&hosts, &cfg);
    assert_eq!(backends[0].1.mtu, 1450);
    assert_eq!(backends[1].1.data["vtep_mac"], "0e:00:c0:a8:00:02");
    for h in &hosts {
        for o in &hosts {
            if o.n != h.n {
                let want = format!(
                    "{} via {} dev weftbgp.vxlan onlink",
                    o.subnet(),
                    o.public_ip()
                );
                h.wait_routes(&want, |r| r.contains(&want));
            }
        }
    }
    let h1 = &hosts[0];
    let neigh = sh(&["ip", "-n", &h1.ns, "neigh", "show", "dev", "weftbgp.vxlan"]);
    assert!(
        neigh.contains("192.168.0.2 lladdr 0e:00:c0:a8:00:02 PERMANENT"),
        "{neigh}"
    );
    let fdb = sh(&[
        "bridge",
        "-n",
        &h1.ns,
        "fdb",
        "show",
        "dev",
        "weftbgp.vxlan",
    ]);
    assert!(fdb.contains("0e:00:c0:a8:00:03 dst 192.168.0.3"), "{fdb}");
    let tx_before = tx_packets(&h1.ns, "weftbgp.vxlan");
    ping_all(&hosts);
    assert!(
        tx_packets(&h1.ns, "weftbgp.vxlan") > tx_before,
        "the pings crossed the VXLAN device"
    );

    // Someone removes a route and an entry behind weft's back: a full sync puts them back.
    let (b1, _) = &backends[0];
    let peers: Vec<_> = hosts
        .iter()
        .zip(&backends)
        .map(|(h, (_, init))| h.peer(&init.data))
        .collect();
    sh(&["ip", "-n", &h1.ns, "route", "del", "10.244.2.0/24"]);
    sh(&[
        "ip",
        "-n",
        &h1.ns,
        "neigh",
        "del",
        "192.168.0.3",
        "dev",
        "weftbgp.vxlan",
    ]);
    let report = b1.sync_peers(&peers).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(
        h1.bgp_routes()
            .contains("10.244.2.0/24 via 192.168.0.2 dev weftbgp.vxlan onlink"),
        "{report:?}"
    );
    let neigh = sh(&["ip", "-n", &h1.ns, "neigh", "show", "dev", "weftbgp.vxlan"]);
    assert!(
        neigh.contains("192.168.0.3 lladdr 0e:00:c0:a8:00:03"),
        "{neigh}"
    );
    // In sync: nothing to do.
    assert!(b1.sync_peers(&peers).unwrap().changes.is_empty());

    // The device itself is deleted: repair re-creates it, a sync re-programs everything.
    sh(&["ip", "-n", &h1.ns, "link", "del", "weftbgp.vxlan"]);
    let repaired = b1.repair().unwrap();
    assert!(repaired[0].contains("re-created"), "{repaired:?}");
    b1.sync_peers(&peers).unwrap();
    h1.wait_routes("routes through the new device", |r| {
        r.contains("10.244.2.0/24 via 192.168.0.2 dev weftbgp.vxlan onlink")
            && r.contains("10.244.3.0/24 via 192.168.0.3 dev weftbgp.vxlan onlink")
    });
    wait_until("container 1 pings container 3 again", T, || {
        h1.ping(&hosts[2].container_ip())
    });
    assert!(b1.repair().unwrap().is_empty(), "nothing left to repair");
    for (b, _) in &backends {
        b.teardown().unwrap();
    }
    let links = sh(&["ip", "-n", &h1.ns, "link"]);
    assert!(!links.contains("weftbgp.vxlan"), "{links}");
}

#[test]
fn dual_stack_over_vxlan_routes_ipv6_via_mapped_next_hops() {
    skip_unless!();
    let (_world, hosts) = World::with_hosts(
        (1..=2)
            .map(|n| HostOptions {
                dual_stack: true,
                ..HostOptions::plain(n)
            })
            .collect(),
    );
    let cfg = BgpBackendConfig {
        encapsulation: Encapsulation::Vxlan,
        ..base()
    };
    let backends = start_all(&hosts, &cfg);
    let (h1, h2) = (&hosts[0], &hosts[1]);
    wait_until("host 1 has host 2's IPv6 subnet", T, || {
        h1.bgp_routes6()
            .contains("fd00:244:0:2::/64 via ::ffff:192.168.0.2 dev weftbgp.vxlan")
    });
    let holes = sh(&[
        "ip",
        "-n",
        &h1.ns,
        "-6",
        "route",
        "show",
        "type",
        "blackhole",
    ]);
    assert!(holes.contains("fd00:244:0:1::/64"), "{holes}");
    wait_until("container 1 pings container 2 over IPv6", T, || {
        h1.ping(&h2.container_ip6())
    });
    wait_until("and over IPv4", T, || h1.ping(&h2.container_ip()));
    for (b, _) in &backends {
        b.teardown().unwrap();
    }
}

#[test]
fn cross_subnet_encapsulates_only_toward_other_underlay_subnets() {
    skip_unless!();
    // Hosts 1 and 2 share 192.168.0.0/24; host 3 is on 192.168.1.0/24 (same wire, routed
    // by device routes, as across a router that does not know the container subnets).
    let near = |n: u8| HostOptions {
        underlay_routes: vec!["192.168.1.0/24 dev eth0".into()],
        ..HostOptions::plain(n)
    };
    let far = HostOptions {
        underlay: "192.168.1.3/24".into(),
        underlay_routes: vec!["192.168.0.0/24 dev eth0".into()],
        dual_stack: false,
    };
    let (_world, hosts) = World::with_hosts(vec![near(1), near(2), far]);
    let cfg = BgpBackendConfig {
        encapsulation: Encapsulation::CrossSubnet,
        cross_subnet_tunnel: weft_bgp::backend::Tunnel::Vxlan,
        ..base()
    };
    let backends = start_all(&hosts, &cfg);
    assert_eq!(backends[0].1.mtu, 1450, "some peers are tunnelled");
    hosts[0].wait_routes("native to the same subnet, VXLAN to the other", |r| {
        r.contains("10.244.2.0/24 via 192.168.0.2 dev eth0")
            && r.contains("10.244.3.0/24 via 192.168.1.3 dev weftbgp.vxlan onlink")
    });
    hosts[2].wait_routes("host 3 tunnels to both", |r| {
        r.contains("10.244.1.0/24 via 192.168.0.1 dev weftbgp.vxlan onlink")
            && r.contains("10.244.2.0/24 via 192.168.0.2 dev weftbgp.vxlan onlink")
    });
    ping_all(&hosts);
    for (b, _) in &backends {
        b.teardown().unwrap();
    }
}

fn tx_packets(ns: &str, dev: &str) -> u64 {
    let out = sh(&["ip", "-n", ns, "-j", "-s", "link", "show", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

#[test]
fn route_reflector_serves_clients_without_a_mesh() {
    skip_unless!();
    let (_world, hosts) = World::new(3);
    let client = BgpBackendConfig {
        mesh: false,
        route_reflectors: vec!["192.168.0.1".parse().unwrap()],
        ..base()
    };
    let reflector = BgpBackendConfig {
        route_reflector_cluster_id: Some("1.1.1.1".parse().unwrap()),
        ..client.clone()
    };
    let backends = vec![
        hosts[0].start(reflector),
        hosts[1].start(client.clone()),
        hosts[2].start(client),
    ];
    introduce(&hosts, &backends);
    // Clients learn each other's subnets through the reflector, next hop unchanged.
    hosts[1].wait_routes("host 3's route via the reflector", |r| {
        r.contains("10.244.3.0/24 via 192.168.0.3 dev eth0")
            && r.contains("10.244.1.0/24 via 192.168.0.1")
    });
    hosts[2].wait_routes("host 2's route via the reflector", |r| {
        r.contains("10.244.2.0/24 via 192.168.0.2 dev eth0")
    });
    ping_all(&hosts);
    let client_view = backends[1].0.neighbours().unwrap();
    assert_eq!(
        client_view.len(),
        1,
        "a client peers with the reflector only"
    );
    assert_eq!(client_view[0].role, "route-reflector");
    let rr_view = backends[0].0.neighbours().unwrap();
    assert_eq!(rr_view.len(), 2);
    assert!(rr_view.iter().all(|n| n.role == "rr-client"), "{rr_view:?}");
    for (b, _) in &backends {
        b.teardown().unwrap();
    }
}

#[test]
fn ipip_on_a_kernel_without_it_fails_clearly_and_makes_nothing() {
    skip_unless!();
    let (_world, hosts) = World::new(1);
    let h = &hosts[0];
    let cfg = BgpBackendConfig {
        encapsulation: Encapsulation::Ipip,
        ..base()
    };
    let node = h.node();
    let result = h.run(|| {
        let b = BgpBackend::new(cfg);
        b.init(&node).map(|init| (b, init))
    });
    let links = sh(&["ip", "-n", &h.ns, "link"]);
    match result {
        Err(e) => {
            assert!(
                matches!(&e, DriverError::Unsupported { feature, hint }
                    if feature == "ipip tunnels" && hint.contains("modprobe ipip")
                        && hint.contains("none/vxlan")),
                "{e:?}"
            );
            assert!(!links.contains("weftbgp"), "{links}");
            let routes = sh(&["ip", "-n", &h.ns, "route", "show", "proto", "87"]);
            assert!(routes.trim().is_empty(), "{routes}");
            let holes = sh(&["ip", "-n", &h.ns, "route", "show", "type", "blackhole"]);
            assert!(holes.trim().is_empty(), "{holes}");
            let listening = sh(&["ip", "netns", "exec", &h.ns, "ss", "-Hltn"]);
            assert!(
                !listening.contains(":179"),
                "no speaker was left: {listening}"
            );
        }
        Ok((b, init)) => {
            // A kernel with ipip: the tunnel is there and the MTU leaves room for it.
            assert!(links.contains("weftbgp.tunl"), "{links}");
            assert_eq!(init.mtu, 1480);
            b.teardown().unwrap();
        }
    }
}

/// A bare speaker in its own namespace on the underlay that plays a cluster host, for
/// feeding host 1 exactly the updates a test wants.
struct Generator {
    n: u8,
    ns: String,
    addr: IpAddr,
}

impl Generator {
    fn config(&self) -> SpeakerConfig {
        let mut c = SpeakerConfig::new(
            64512,
            match self.addr {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => unreachable!(),
            },
            Some(std::net::SocketAddr::new(self.addr, 179)),
        );
        c.connect_retry = Duration::from_secs(1);
        c.idle_hold = Duration::from_millis(500);
        let mut p = PeerConfig::new("192.168.0.1".parse().unwrap(), 64512);
        p.local_address = Some(self.addr);
        c.peers.push(p);
        c
    }

    /// Runs `f` with a started speaker on a runtime inside the generator's namespace.
    fn run<F, Fut>(&self, f: F)
    where
        F: FnOnce(Speaker) -> Fut + Send,
        Fut: std::future::Future<Output = ()>,
    {
        let cfg = self.config();
        in_ns(&self.ns, move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let s = Speaker::start(cfg).await.unwrap();
                f(s).await
            });
        })
    }

    fn peer(&self, subnet: &str) -> weft_drivers::backend::Peer {
        weft_drivers::backend::Peer {
            name: format!("generator {}", self.addr),
            subnets: vec![subnet.parse().unwrap()],
            public_ip: self.addr,
            data: serde_json::Value::Null,
        }
    }
}

async fn until_established(s: &Speaker) {
    support::wait_for("generator Established", T, || async {
        s.status()
            .await
            .unwrap()
            .iter()
            .all(|p| p.state == State::Established)
    })
    .await;
}

#[test]
fn ecmp_and_a_thousand_flaps_leave_the_kernel_consistent() {
    skip_unless!();
    let (mut world, hosts) = World::new(1);
    let h1 = hosts[0].clone();
    let gens: Vec<Generator> = [11u8, 12]
        .iter()
        .map(|n| Generator {
            n: *n,
            ns: world.attach(&format!("g{n}"), *n),
            addr: format!("192.168.0.{n}").parse().unwrap(),
        })
        .collect();
    let (b1, _) = h1.start(base());
    for g in &gens {
        b1.add_or_update_peer(&g.peer(&format!("10.244.{}.0/24", g.n)))
            .unwrap();
    }
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        // The second generator: announces the shared prefix, withdraws it when told.
        let g12 = &gens[1];
        scope.spawn(move || {
            g12.run(|s| async move {
                until_established(&s).await;
                s.announce("10.244.99.0/24".parse().unwrap()).unwrap();
                let _ = tokio::task::spawn_blocking(move || go_rx.recv()).await;
                s.withdraw("10.244.99.0/24".parse().unwrap()).unwrap();
                let _ = tokio::task::spawn_blocking(move || done_rx.recv()).await;
                s.shutdown().await;
            })
        });
        let g11 = &gens[0];
        let h1 = &h1;
        let b1 = &b1;
        scope.spawn(move || {
            g11.run(|s| async move {
                until_established(&s).await;
                s.announce("10.244.99.0/24".parse().unwrap()).unwrap();
                s.announce("10.244.11.0/24".parse().unwrap()).unwrap();
                // Two equal iBGP paths: one multipath route.
                let h = h1.clone();
                tokio::task::spawn_blocking(move || {
                    h.wait_routes("ECMP route over both generators", |r| {
                        r.contains("10.244.99.0/24 ")
                            && r.contains("nexthop via 192.168.0.11 dev eth0")
                            && r.contains("nexthop via 192.168.0.12 dev eth0")
                    })
                })
                .await
                .unwrap();
                go_tx.send(()).unwrap();
                let h = h1.clone();
                tokio::task::spawn_blocking(move || {
                    h.wait_routes("one path left", |r| {
                        r.contains("10.244.99.0/24 via 192.168.0.11 dev eth0")
                    })
                })
                .await
                .unwrap();
                // 1,000 flaps of two prefixes; the first ends withdrawn, the second announced.
                let (a, b) = (
                    "10.244.12.0/24".parse().unwrap(),
                    "10.244.13.0/24".parse().unwrap(),
                );
                for i in 0..1000 {
                    s.announce(a).unwrap();
                    s.withdraw(b).unwrap();
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                    s.withdraw(a).unwrap();
                    s.announce(b).unwrap();
                }
                // A last prefix after the flaps: once it is in the kernel, so is everything
                // before it (one session, one RIB, one programmer: all in order).
                s.announce("10.244.14.0/24".parse().unwrap()).unwrap();
                let h = h1.clone();
                tokio::task::spawn_blocking(move || {
                    h.wait_routes("the flapping settles", |r| r.contains("10.244.14.0/24"))
                })
                .await
                .unwrap();
                // The kernel holds exactly what the RIB says.
                b1.flush().unwrap();
                let view = b1.routes().unwrap();
                let mut rib: Vec<String> = view
                    .rib
                    .iter()
                    .filter(|r| !r.next_hops.is_empty())
                    .map(|r| r.prefix.to_string())
                    .collect();
                rib.sort();
                let mut kernel: Vec<String> = h1
                    .bgp_routes()
                    .lines()
                    .filter(|l| l.starts_with("10.244."))
                    .map(|l| l.split_whitespace().next().unwrap().to_string())
                    .collect();
                kernel.sort();
                assert_eq!(rib, kernel);
                assert_eq!(
                    rib,
                    vec![
                        "10.244.11.0/24",
                        "10.244.13.0/24",
                        "10.244.14.0/24",
                        "10.244.99.0/24"
                    ]
                );
                let st = b1.kernel_status().unwrap();
                assert_eq!(st.failed, 0, "{st:?}");
                done_tx.send(()).unwrap();
                s.shutdown().await;
            })
        });
    });
    h1.wait_routes("generators gone", |r| {
        !r.lines().any(|l| l.starts_with("10.244."))
    });
    b1.teardown().unwrap();
}

#[test]
fn without_blackhole_ownership_the_local_networks_blackhole_is_left_alone() {
    skip_unless!();
    let (_world, hosts) = World::new(1);
    let h1 = &hosts[0];
    let subnet = h1.subnet().to_string();
    // The local network's blackhole (the routed driver's has no metric; metric 0 is taken
    // here by the test bridge's own route), and one this backend left when it still owned the
    // subnet's blackhole (its metric).
    for extra in [&["metric", "7"][..], &["metric", "1000000"][..]] {
        let mut args = vec!["ip", "-n", &h1.ns, "route", "add", "blackhole", &subnet];
        args.extend_from_slice(&["proto", "87"]);
        args.extend_from_slice(extra);
        sh(&args);
    }
    let cfg = BgpBackendConfig {
        blackhole: false,
        ..base()
    };
    let (backend, _) = h1.start(cfg);
    let holes = || sh(&["ip", "-n", &h1.ns, "route", "show", "type", "blackhole"]);
    let after_init = holes();
    assert_eq!(
        after_init.trim(),
        format!("blackhole {subnet} proto 87 metric 7"),
        "only the driver's is left"
    );
    assert_eq!(backend.status().unwrap()["blackhole"], false);
    // A repair does not bring the backend's back; a teardown leaves the driver's.
    h1.run(|| backend.repair()).unwrap();
    h1.run(|| backend.teardown()).unwrap();
    assert_eq!(holes(), after_init);
}
