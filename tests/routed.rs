//! Routed (Calico-style) networks on one host: no bridge, /32 host routes, proxy ARP, a
//! link-local gateway; masquerade, published ports and isolation as on bridge networks.

mod support;

use support::net::{sa, tcp_request, tcp_server};
use support::{addr_of, root_or_skip, World, UPLINK_HOST_V4, UPLINK_PEER_V4};

#[test]
fn routed_containers_reach_each_other_the_outside_and_published_ports_without_a_bridge() {
    if !root_or_skip("routed") {
        return;
    }
    let mut w = World::new();
    let before = w.snapshot();
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&[
        "network",
        "create",
        "-d",
        "routed",
        "--ipv6",
        "--subnet",
        "10.33.0.0/24",
        "--subnet",
        "fd33::/64",
        "r1",
    ]);
    let e1 = w.connect("r1", &c1, &["-p", "8080:80"]);
    let e2 = w.connect("r1", &c2, &[]);
    let (a1, a2) = (addr_of(&e1, false), addr_of(&e2, false));

    // Inside: a /32, a default route via 169.254.1.1 that nothing owns.
    let inside = c1.sh("ip -4 -o addr show dev eth0; ip route");
    assert!(inside.contains(&format!("{a1}/32")), "{inside}");
    assert!(
        inside.contains("default via 169.254.1.1 dev eth0"),
        "{inside}"
    );
    // Host: no bridge, no address on the veth, a /32 route per container, proxy ARP on.
    let host = w
        .host
        .sh("ip -o link show type bridge; ip -4 -o addr; ip route");
    assert!(!host.contains("bridge"), "a bridge exists: {host}");
    assert!(
        host.contains(&format!("{a1} dev veth")),
        "no /32 route: {host}"
    );
    assert!(
        host.contains("blackhole 10.33.0.0/24"),
        "no blackhole route: {host}"
    );
    let veth = e1["host_ifname"].as_str().unwrap();
    assert_eq!(
        w.host
            .sh(&format!("cat /proc/sys/net/ipv4/conf/{veth}/proxy_arp"))
            .trim(),
        "1"
    );
    assert!(!w
        .host
        .sh(&format!("ip -4 -o addr show dev {veth}"))
        .contains("inet"));

    assert!(c1.ping(&a2), "routed container to container");
    assert!(
        c1.ping(&addr_of(&e2, true)),
        "routed container to container over IPv6"
    );
    let _out = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    assert_eq!(
        tcp_request(&c2, sa(&format!("{UPLINK_PEER_V4}:7000"))).expect("outbound"),
        format!("internet from {UPLINK_HOST_V4}"),
        "masqueraded to the host's address"
    );
    let _web = tcp_server(&c1, sa(&format!("{a1}:80")), "c1");
    assert_eq!(
        tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080"))).expect("published"),
        format!("c1 from {UPLINK_PEER_V4}")
    );
    assert!(tcp_request(&w.host, sa("127.0.0.1:8080"))
        .expect("via 127.0.0.1")
        .starts_with("c1"));
    assert!(tcp_request(&c2, sa(&format!("{UPLINK_HOST_V4}:8080")))
        .expect("hairpin")
        .starts_with("c1"));

    // Teardown: no /32 route, no veth, no blackhole, no rules left.
    for c in [&c1, &c2] {
        w.weft_ok(&[
            "network",
            "disconnect",
            "r1",
            "--netns",
            &c.path.display().to_string(),
        ]);
    }
    let routes = w.host.sh("ip route; ip -6 route");
    assert!(
        !routes.contains("10.33.0.") || routes.contains("blackhole 10.33.0.0/24"),
        "{routes}"
    );
    assert!(
        !routes.contains(&format!("{a1} dev")),
        "a /32 route was left: {routes}"
    );
    w.weft_ok(&["network", "rm", "r1"]);
    w.host.sh("ip link del uplink");
    let after: String = w
        .snapshot()
        .lines()
        .filter(|l| !l.contains("/ipam/ula:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(after == before, "{}", support::line_diff(&before, &after));
}

#[test]
fn routed_networks_are_isolated_from_bridge_networks_and_each_other() {
    if !root_or_skip("routed isolation") {
        return;
    }
    let mut w = World::new();
    let (r, b, s) = (w.ns("r"), w.ns("b"), w.ns("s"));
    w.weft_ok(&[
        "network",
        "create",
        "-d",
        "routed",
        "--subnet",
        "10.34.0.0/24",
        "ra",
    ]);
    w.weft_ok(&[
        "network",
        "create",
        "-d",
        "routed",
        "--subnet",
        "10.35.0.0/24",
        "rb",
    ]);
    w.weft_ok(&["network", "create", "--subnet", "10.36.0.0/24", "br"]);
    let er = w.connect("ra", &r, &[]);
    let es = w.connect("rb", &s, &[]);
    let eb = w.connect("br", &b, &[]);
    assert!(
        !r.ping(&addr_of(&es, false)),
        "routed to routed across networks"
    );
    assert!(!r.ping(&addr_of(&eb, false)), "routed to bridge");
    assert!(!b.ping(&addr_of(&er, false)), "bridge to routed");
}

#[test]
fn routed_refuses_bad_addresses_and_a_host_without_proxy_arp() {
    if !root_or_skip("routed bad input") {
        return;
    }
    let mut w = World::new();
    let c1 = w.ns("c1");
    let p1 = c1.path.display().to_string();
    w.weft_ok(&[
        "network",
        "create",
        "-d",
        "routed",
        "--subnet",
        "10.37.0.0/24",
        "r",
    ]);
    let before = w.snapshot();
    let (code, err) = w.weft_err(&[
        "network",
        "connect",
        "r",
        "--netns",
        &p1,
        "--ip",
        "10.99.0.5",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("10.99.0.5"), "{err}");
    let (code, err) = w.weft_err(&[
        "network",
        "create",
        "-d",
        "routed",
        "--subnet",
        "10.38.0.0/24",
        "--gateway",
        "10.38.0.1",
        "r2",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gateway"), "{err}");
    // Where /proc/sys cannot be written (like inside a container without privileges), proxy ARP
    // cannot be turned on: a clear error and nothing half-made.
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind -o ro /proc/sys /proc/sys && exec nsenter --net={} {} --state-dir {} network connect r --netns {p1}",
            w.host.path.display(),
            env!("CARGO_BIN_EXE_weft"),
            w.state.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "connect without writable /proc/sys succeeded"
    );
    assert!(err.contains("proxy ARP"), "{err}");
    let after = w.snapshot();
    assert!(after == before, "{}", support::line_diff(&before, &after));
}
