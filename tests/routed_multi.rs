//! A container on several networks where at least one is routed (issue G3): routed+routed and
//! bridge+routed, through the CLI, with pings in each direction; leaving one network keeps the
//! other working (and moves the default route when its holder leaves). Then drift: each kernel
//! object or setting a routed endpoint depends on, broken by hand, is reported by `weft status`
//! and put back by a daemon start.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{addr_of, eventually, root_or_skip, Ns, World, UPLINK_HOST_V4};

fn create_routed(w: &World, name: &str, v4: &str, v6: Option<&str>) {
    let mut args = vec!["network", "create", "-d", "routed", "--subnet", v4];
    if let Some(v6) = v6 {
        args.extend(["--ipv6", "--subnet", v6]);
    }
    args.push(name);
    w.weft_ok(&args);
}

fn disconnect(w: &World, net: &str, ns: &Ns) {
    disconnect_if(w, net, ns, "eth0");
}

fn disconnect_if(w: &World, net: &str, ns: &Ns, ifname: &str) {
    w.weft_ok(&[
        "network",
        "disconnect",
        net,
        "--netns",
        &ns.path.display().to_string(),
        "--ifname",
        ifname,
    ]);
}

/// Pings `to` from `from`'s address `src`, so the reply must come back through the route under
/// test.
fn pings(ns: &Ns, src: &str, to: &str) -> bool {
    ns.ping_from(src, to)
}

#[test]
fn a_container_joins_two_routed_networks_and_each_works_in_both_directions() {
    if !root_or_skip("routed+routed") {
        return;
    }
    let mut w = World::new();
    // The host's own address (on the "internet" link) is the source of its pings.
    let _inet = w.internet();
    let (m, a, b) = (w.ns("m"), w.ns("a"), w.ns("b"));
    create_routed(&w, "ra", "10.41.0.0/24", Some("fd41::/64"));
    create_routed(&w, "rb", "10.42.0.0/24", Some("fd42::/64"));
    let ma = w.connect("ra", &m, &[]);
    // Before the fix this second connect failed with EEXIST on 169.254.1.1/32 (exit 1).
    let mb = w.connect("rb", &m, &["--ifname", "eth1"]);
    let ea = w.connect("ra", &a, &[]);
    let eb = w.connect("rb", &b, &[]);
    let (ma4, mb4, ea4, eb4) = (
        addr_of(&ma, false),
        addr_of(&mb, false),
        addr_of(&ea, false),
        addr_of(&eb, false),
    );
    let (ma6, mb6, ea6, eb6) = (
        addr_of(&ma, true),
        addr_of(&mb, true),
        addr_of(&ea, true),
        addr_of(&eb, true),
    );

    // The first network keeps Calico's shape and the default route; the second gets its
    // subnets via the same gateway as onlink next hops on its own interface.
    let routes = m.sh("ip route; ip -6 route");
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("169.254.1.1 dev eth0 scope link"),
        "{routes}"
    );
    assert!(
        routes.contains("10.42.0.0/24 via 169.254.1.1 dev eth1 onlink"),
        "{routes}"
    );
    assert!(
        routes.contains("fd42::/64 via fe80::ecee:eeff:feee:eeee dev eth1"),
        "{routes}"
    );
    assert!(
        !routes.contains("default via 169.254.1.1 dev eth1"),
        "{routes}"
    );

    for (ns, src, to, what) in [
        (&m, &ma4, &ea4, "m to a on ra"),
        (&a, &ea4, &ma4, "a to m on ra"),
        (&m, &mb4, &eb4, "m to b on rb"),
        (&b, &eb4, &mb4, "b to m on rb"),
        (&m, &ma6, &ea6, "m to a on ra, IPv6"),
        (&a, &ea6, &ma6, "a to m on ra, IPv6"),
        (&m, &mb6, &eb6, "m to b on rb, IPv6"),
        (&b, &eb6, &mb6, "b to m on rb, IPv6"),
    ] {
        assert!(pings(ns, src, to), "{what}: {src} -> {to}");
    }
    assert!(w.host.ping_from(UPLINK_HOST_V4, &ma4), "host to m on ra");
    assert!(w.host.ping_from(UPLINK_HOST_V4, &mb4), "host to m on rb");
    // Still isolated: a container of one network does not reach the other network.
    assert!(!pings(&a, &ea4, &eb4), "ra reached rb");

    // The network with the default route leaves: rb keeps working and gets the default route.
    disconnect(&w, "ra", &m);
    let routes = m.sh("ip route; ip -6 route");
    assert!(
        routes.contains("default via 169.254.1.1 dev eth1 onlink"),
        "the default route did not move to eth1: {routes}"
    );
    assert!(
        routes.contains("default via fe80::ecee:eeff:feee:eeee dev eth1"),
        "the IPv6 default route did not move to eth1: {routes}"
    );
    assert!(pings(&m, &mb4, &eb4), "m to b after leaving ra");
    assert!(pings(&b, &eb4, &mb4), "b to m after leaving ra");
    assert!(pings(&m, &mb6, &eb6), "m to b after leaving ra, IPv6");
    assert!(
        w.host.ping_from(UPLINK_HOST_V4, &mb4),
        "host to m after leaving ra"
    );
    assert!(
        m.ping_from(&mb4, UPLINK_HOST_V4),
        "m to the host's address through the moved default route"
    );
    // Joining ra again: ra is now the later network (no default route of its own).
    let ma = w.connect("ra", &m, &[]);
    let ma4 = addr_of(&ma, false);
    assert!(pings(&m, &ma4, &ea4), "m to a after joining ra again");
    assert!(pings(&a, &ea4, &ma4), "a to m after joining ra again");
    disconnect_if(&w, "ra", &m, "eth0");
    disconnect_if(&w, "rb", &m, "eth1");
    disconnect(&w, "ra", &a);
    disconnect(&w, "rb", &b);
}

#[test]
fn a_container_on_a_bridge_and_a_routed_network_reaches_both_in_either_order() {
    if !root_or_skip("bridge+routed") {
        return;
    }
    let mut w = World::new();
    let _inet = w.internet();
    let (m, n, br_peer, r_peer) = (w.ns("m"), w.ns("n"), w.ns("bp"), w.ns("rp"));
    w.weft_ok(&["network", "create", "--subnet", "10.43.0.0/24", "bn"]);
    create_routed(&w, "rc", "10.44.0.0/24", None);
    let ebp = w.connect("bn", &br_peer, &[]);
    let erp = w.connect("rc", &r_peer, &[]);
    let (bp4, rp4) = (addr_of(&ebp, false), addr_of(&erp, false));

    // m: bridge first (it has the default route), routed second.
    let mb = w.connect("bn", &m, &[]);
    let mr = w.connect("rc", &m, &["--ifname", "eth1"]);
    let (mb4, mr4) = (addr_of(&mb, false), addr_of(&mr, false));
    let routes = m.sh("ip route");
    assert!(
        routes.contains("default via 10.43.0.1 dev eth0"),
        "{routes}"
    );
    // Before the fix m had no route to 10.44.0.0/24 at all: the interface was useless.
    assert!(
        routes.contains("10.44.0.0/24 via 169.254.1.1 dev eth1"),
        "{routes}"
    );
    // n: routed first (default via 169.254.1.1), bridge second.
    let nr = w.connect("rc", &n, &[]);
    let nb = w.connect("bn", &n, &["--ifname", "eth1"]);
    let (nr4, nb4) = (addr_of(&nr, false), addr_of(&nb, false));
    let routes = n.sh("ip route");
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );

    for (ns, src, to, what) in [
        (&m, &mb4, &bp4, "m to its bridge peer"),
        (&br_peer, &bp4, &mb4, "bridge peer to m"),
        (&m, &mr4, &rp4, "m to its routed peer"),
        (&r_peer, &rp4, &mr4, "routed peer to m"),
        (&n, &nb4, &bp4, "n to its bridge peer"),
        (&br_peer, &bp4, &nb4, "bridge peer to n"),
        (&n, &nr4, &rp4, "n to its routed peer"),
        (&r_peer, &rp4, &nr4, "routed peer to n"),
        (&m, &mr4, &nr4, "m to n on the routed network"),
        (&n, &nb4, &mb4, "n to m on the bridge network"),
    ] {
        assert!(pings(ns, src, to), "{what}: {src} -> {to}");
    }
    assert!(w.host.ping_from(UPLINK_HOST_V4, &mr4), "host to m, routed");
    assert!(w.host.ping_from(UPLINK_HOST_V4, &nr4), "host to n, routed");

    // Leaving the bridge network keeps m's routed interface working.
    disconnect(&w, "bn", &m);
    assert!(
        pings(&m, &mr4, &rp4),
        "m to its routed peer after leaving bn"
    );
    assert!(
        pings(&r_peer, &rp4, &mr4),
        "routed peer to m after leaving bn"
    );
    // Leaving the routed network keeps n's bridge interface working.
    disconnect(&w, "rc", &n);
    assert!(
        pings(&n, &nb4, &bp4),
        "n to its bridge peer after leaving rc"
    );
    disconnect_if(&w, "rc", &m, "eth1");
    disconnect_if(&w, "bn", &n, "eth1");
    disconnect(&w, "bn", &br_peer);
    disconnect(&w, "rc", &r_peer);
}

/// The daemon, stopped with SIGTERM (by PID) when dropped.
use weft_testkit::StopOnDrop as Daemon;

/// Starts `weft daemon` (which reconciles at start) and waits until its socket exists, i.e.
/// until reconciliation is over.
fn daemon_start(w: &World) -> Daemon {
    let socket = w.dir().join("weft.sock");
    let _ = std::fs::remove_file(&socket);
    let child = w
        .host
        .cmd(env!("CARGO_BIN_EXE_weft"))
        .arg("--state-dir")
        .arg(&w.state)
        .args(["daemon", "--no-default-network", "--socket"])
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start weft daemon");
    let d = Daemon(child);
    assert!(
        eventually(Duration::from_secs(20), || socket.exists()),
        "the daemon never opened {}",
        socket.display()
    );
    d
}

fn problems(w: &World) -> Vec<String> {
    let status: serde_json::Value =
        serde_json::from_str(&w.weft_ok(&["status", "--json"])).expect("status prints JSON");
    find_problems(&status["networks"])
}

/// Every `problems` array anywhere in a status entry (the driver's report sits under the
/// network's kernel view).
fn find_problems(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| {
                if k == "problems" {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p.as_str().map(String::from))
                        .collect()
                } else {
                    find_problems(v)
                }
            })
            .collect(),
        serde_json::Value::Array(a) => a.iter().flat_map(find_problems).collect(),
        _ => Vec::new(),
    }
}

/// One kind of drift: a routed endpoint (IPv4 and IPv6) is made, `break_it` breaks something
/// with `ip` or a /proc/sys write, `weft status` must name it (`expect` in a problem), a daemon
/// start must put it back (`repaired` then holds) and the container must work again.
fn drift(name: &str, break_it: &str, expect: &str, repaired: &str) {
    if !root_or_skip(name) {
        return;
    }
    let mut w = World::new();
    let _inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    create_routed(&w, "rd", "10.45.0.0/24", Some("fd45::/64"));
    let e1 = w.connect("rd", &c1, &[]);
    let e2 = w.connect("rd", &c2, &[]);
    let (a1, a2) = (addr_of(&e1, false), addr_of(&e2, false));
    let (a16, a26) = (addr_of(&e1, true), addr_of(&e2, true));
    assert!(c2.ping(&a1) && c2.ping(&a16), "works before the drift");
    assert_eq!(
        problems(&w),
        Vec::<String>::new(),
        "problems before the drift"
    );
    let veth = e1["host_ifname"].as_str().unwrap().to_string();
    let fill = |s: &str| {
        s.replace("{veth}", &veth)
            .replace("{a1}", &a1)
            .replace("{a16}", &a16)
    };
    w.host.sh(&fill(break_it));
    let found = problems(&w);
    assert!(
        found.iter().any(|p| p.contains(&fill(expect))),
        "weft status does not report the drift ({}): {found:?}",
        fill(expect)
    );
    {
        let _d = daemon_start(&w);
        let check = fill(repaired);
        assert!(
            eventually(Duration::from_secs(10), || w
                .host
                .cmd("sh")
                .args(["-c", &check])
                .status()
                .is_ok_and(|s| s.success())),
            "a daemon start did not repair it: `{check}` fails"
        );
    }
    assert_eq!(
        problems(&w),
        Vec::<String>::new(),
        "problems after the repair"
    );
    assert!(c2.ping(&a1), "c2 to c1 after the repair");
    assert!(c1.ping(&a2), "c1 to c2 after the repair");
    assert!(c2.ping(&a16), "c2 to c1 over IPv6 after the repair");
    assert!(c1.ping(&a26), "c1 to c2 over IPv6 after the repair");
    disconnect(&w, "rd", &c1);
    disconnect(&w, "rd", &c2);
}

#[test]
fn drift_host_route_v4_missing_is_reported_and_repaired() {
    drift(
        "drift /32",
        "ip route del {a1}/32 dev {veth}",
        "host route {a1}/32",
        "ip route show {a1}/32 | grep -q 'dev {veth}'",
    );
}

#[test]
fn drift_host_route_v6_missing_is_reported_and_repaired() {
    drift(
        "drift /128",
        "ip -6 route del {a16}/128 dev {veth}",
        "host route {a16}/128",
        "ip -6 route show {a16}/128 | grep -q 'dev {veth}'",
    );
}

#[test]
fn drift_proxy_arp_off_is_reported_and_repaired() {
    drift(
        "drift proxy_arp",
        "echo 0 > /proc/sys/net/ipv4/conf/{veth}/proxy_arp",
        "net/ipv4/conf/{veth}/proxy_arp is 0",
        "grep -qx 1 /proc/sys/net/ipv4/conf/{veth}/proxy_arp",
    );
}

#[test]
fn drift_proxy_ndp_off_is_reported_and_repaired() {
    drift(
        "drift proxy_ndp",
        "echo 0 > /proc/sys/net/ipv6/conf/{veth}/proxy_ndp",
        "net/ipv6/conf/{veth}/proxy_ndp is 0",
        "grep -qx 1 /proc/sys/net/ipv6/conf/{veth}/proxy_ndp",
    );
}

#[test]
fn drift_ipv4_forwarding_off_on_the_veth_is_reported_and_repaired() {
    drift(
        "drift ipv4 forwarding",
        "echo 0 > /proc/sys/net/ipv4/conf/{veth}/forwarding",
        "net/ipv4/conf/{veth}/forwarding is 0",
        "grep -qx 1 /proc/sys/net/ipv4/conf/{veth}/forwarding",
    );
}

#[test]
fn drift_ipv6_forwarding_off_on_the_veth_is_reported_and_repaired() {
    drift(
        "drift ipv6 forwarding",
        "echo 0 > /proc/sys/net/ipv6/conf/{veth}/forwarding",
        "net/ipv6/conf/{veth}/forwarding is 0",
        "grep -qx 1 /proc/sys/net/ipv6/conf/{veth}/forwarding",
    );
}

#[test]
fn drift_blackhole_missing_is_reported_and_repaired() {
    drift(
        "drift blackhole",
        "ip route del blackhole 10.45.0.0/24",
        "blackhole route for 10.45.0.0/24 is missing",
        "ip route show type blackhole | grep -q '10.45.0.0/24'",
    );
}
