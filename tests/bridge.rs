//! Bridge networks with real traffic: each test builds its own host, containers and internet
//! as network namespaces and drives the `weft` binary inside the host.

mod support;

use std::time::Duration;
use support::net::{sa, tcp_request, tcp_server, udp_request, udp_server};
use support::{
    addr_of, eventually, root_or_skip, World, UPLINK_HOST_V4, UPLINK_HOST_V6, UPLINK_PEER_V4,
    UPLINK_PEER_V6,
};

#[test]
fn containers_reach_each_other_the_gateway_and_the_internet_through_masquerade() {
    if !root_or_skip("masquerade") {
        return;
    }
    let mut w = World::new();
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.88.0.0/24"]);
    let e1 = w.connect("n1", &c1, &[]);
    let e2 = w.connect("n1", &c2, &[]);
    assert_eq!(addr_of(&e1, false), "10.88.0.2");
    assert_eq!(addr_of(&e2, false), "10.88.0.3");
    assert!(c1.ping("10.88.0.3"), "container to container");
    assert!(c2.ping("10.88.0.1"), "container to gateway");
    assert_eq!(
        c1.sh("cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6")
            .trim(),
        "1",
        "IPv6 off on an IPv4-only interface: no link-local DAD/MLD flooded to every container"
    );

    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    let reply = tcp_request(&c1, sa(&format!("{UPLINK_PEER_V4}:7000")))
        .expect("container reaches the internet");
    assert_eq!(
        reply,
        format!("internet from {UPLINK_HOST_V4}"),
        "the internet sees the host's address"
    );

    // Masquerade off: packets leave with the container's address and the internet (which has no
    // route back) never answers.
    w.weft_ok(&[
        "network",
        "create",
        "nomasq",
        "--subnet",
        "10.89.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
    ]);
    let c3 = w.ns("c3");
    w.connect("nomasq", &c3, &[]);
    assert!(tcp_request(&c3, sa(&format!("{UPLINK_PEER_V4}:7000"))).is_err());
}

#[test]
fn published_ports_answer_from_outside_localhost_and_hairpin() {
    if !root_or_skip("published ports") {
        return;
    }
    let mut w = World::new();
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&["network", "create", "web", "--subnet", "10.90.0.0/24"]);
    let e1 = w.connect(
        "web",
        &c1,
        &[
            "-p",
            "8080:80",
            "-p",
            "5353:53/udp",
            "-p",
            "127.0.0.1:9090:90",
            "-p",
            "9100-9101:100-101",
            "-p",
            "0:7777",
            "-p",
            "5000:5000/sctp",
        ],
    );
    w.connect("web", &c2, &[]);
    let c1_ip = addr_of(&e1, false);
    let _s80 = tcp_server(&c1, sa(&format!("{c1_ip}:80")), "c1");
    let _s90 = tcp_server(&c1, sa(&format!("{c1_ip}:90")), "c1-90");
    let _s101 = tcp_server(&c1, sa(&format!("{c1_ip}:101")), "c1-101");
    let _s7777 = tcp_server(&c1, sa(&format!("{c1_ip}:7777")), "c1-7777");
    let _u53 = udp_server(&c1, sa(&format!("{c1_ip}:53")), "c1-dns");

    // From outside the host: the server sees the client's real address (no source NAT).
    let r = tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080"))).expect("from outside");
    assert_eq!(r, format!("c1 from {UPLINK_PEER_V4}"));
    let r = udp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:5353"))).expect("udp from outside");
    assert_eq!(r, format!("c1-dns from {UPLINK_PEER_V4}"));
    assert_eq!(
        tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:9101"))).expect("range"),
        format!("c1-101 from {UPLINK_PEER_V4}")
    );
    // From the host itself, on 127.0.0.1 and on its own address.
    assert!(tcp_request(&w.host, sa("127.0.0.1:8080"))
        .expect("via 127.0.0.1")
        .starts_with("c1 from"));
    assert!(tcp_request(&w.host, sa(&format!("{UPLINK_HOST_V4}:8080")))
        .expect("via host address")
        .starts_with("c1 from"));
    // Bound to 127.0.0.1 only: answers there, not on the outside address.
    assert!(tcp_request(&w.host, sa("127.0.0.1:9090"))
        .expect("127.0.0.1 binding")
        .starts_with("c1-90"));
    assert!(
        tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:9090"))).is_err(),
        "127.0.0.1-only port reachable from outside"
    );
    // Hairpin: a container on the same network, and the container itself, via the host address.
    assert!(tcp_request(&c2, sa(&format!("{UPLINK_HOST_V4}:8080")))
        .expect("hairpin from c2")
        .starts_with("c1 from"));
    assert!(tcp_request(&c1, sa(&format!("{UPLINK_HOST_V4}:8080")))
        .expect("hairpin to itself")
        .starts_with("c1 from"));
    // Host port 0: one picked from the ephemeral range, and it works.
    let picked = e1["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["container_port"] == 7777)
        .unwrap()["host_port"]
        .as_u64()
        .unwrap();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let lo: u64 = range.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        picked >= lo,
        "picked port {picked} below the ephemeral range"
    );
    assert!(
        tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:{picked}")))
            .expect("picked port")
            .starts_with("c1-7777")
    );
    // SCTP: the mapping is in the kernel (this kernel may lack SCTP sockets to test traffic).
    let rules = w.host.sh("nft list map inet weft ports4_any");
    assert!(rules.contains("sctp . 5000 : 10.90.0.2 . 5000"), "{rules}");

    // Disconnect removes the mappings: nothing answers any more.
    w.weft_ok(&[
        "network",
        "disconnect",
        "web",
        "--netns",
        &c1.path.display().to_string(),
    ]);
    assert!(tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080"))).is_err());
    let rules = w.host.sh("nft list table inet weft");
    assert!(
        !rules.contains("10.90.0.2"),
        "mappings left after disconnect: {rules}"
    );
}

#[test]
fn icc_off_blocks_containers_but_not_the_gateway() {
    if !root_or_skip("icc") {
        return;
    }
    let mut w = World::new();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&[
        "network",
        "create",
        "noicc",
        "--subnet",
        "10.91.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
    ]);
    w.connect("noicc", &c1, &[]);
    w.connect("noicc", &c2, &[]);
    assert!(c1.ping("10.91.0.1"), "gateway reachable with ICC off");
    let _srv = tcp_server(&c2, sa("10.91.0.3:80"), "c2");
    assert!(
        tcp_request(&c1, sa("10.91.0.3:80")).is_err(),
        "ICC off must block container to container"
    );
    assert!(!c1.ping("10.91.0.3"));
}

#[test]
fn networks_are_isolated_from_each_other() {
    if !root_or_skip("isolation") {
        return;
    }
    let mut w = World::new();
    let (a, b) = (w.ns("a"), w.ns("b"));
    w.weft_ok(&["network", "create", "na", "--subnet", "10.92.0.0/24"]);
    w.weft_ok(&["network", "create", "nb", "--subnet", "10.93.0.0/24"]);
    w.connect("na", &a, &[]);
    w.connect("nb", &b, &[]);
    let _srv = tcp_server(&b, sa("10.93.0.2:80"), "b");
    assert!(a.ping("10.92.0.1"));
    assert!(
        tcp_request(&a, sa("10.93.0.2:80")).is_err(),
        "na reached nb"
    );
    assert!(!a.ping("10.93.0.2"));
    assert!(!b.ping("10.92.0.2"));
}

#[test]
fn internal_network_cannot_get_out_but_works_inside() {
    if !root_or_skip("internal") {
        return;
    }
    let mut w = World::new();
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&[
        "network",
        "create",
        "priv",
        "--internal",
        "--subnet",
        "10.94.0.0/24",
    ]);
    let e1 = w.connect("priv", &c1, &[]);
    assert!(
        e1["gateways"][0].is_null(),
        "internal networks give no default route"
    );
    w.connect("priv", &c2, &[]);
    assert!(c1.ping("10.94.0.3"));
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    // Even with a default route put in by hand, nothing leaves.
    c1.sh("ip route add default via 10.94.0.1");
    assert!(tcp_request(&c1, sa(&format!("{UPLINK_PEER_V4}:7000"))).is_err());
}

#[test]
fn ipv6_dual_stack_works() {
    if !root_or_skip("ipv6") {
        return;
    }
    let mut w = World::new();
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&[
        "network",
        "create",
        "dual",
        "--ipv6",
        "--subnet",
        "10.95.0.0/24",
        "--subnet",
        "fd00:95::/64",
    ]);
    let e1 = w.connect("dual", &c1, &["-p", "8080:80"]);
    let e2 = w.connect("dual", &c2, &[]);
    assert_eq!(addr_of(&e1, true), "fd00:95::2");
    assert!(c1.ping(&addr_of(&e2, true)), "v6 container to container");
    assert!(c1.ping("fd00:95::1"), "v6 gateway");
    assert!(c1.ping(&addr_of(&e2, false)), "v4 still works");
    // Published on both families.
    let _s = tcp_server(&c1, sa("[::]:80"), "c1");
    assert!(eventually(Duration::from_secs(3), || tcp_request(
        &inet,
        sa(&format!("[{UPLINK_HOST_V6}]:8080"))
    )
    .is_ok()));
    assert!(tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080")))
        .expect("v4 publish")
        .starts_with("c1"));
    // Outbound v6 is masqueraded too.
    let _o = tcp_server(&inet, sa(&format!("[{UPLINK_PEER_V6}]:7000")), "internet");
    assert_eq!(
        tcp_request(&c2, sa(&format!("[{UPLINK_PEER_V6}]:7000"))).expect("v6 out"),
        format!("internet from {UPLINK_HOST_V6}")
    );
    // A default ULA pool when no v6 subnet is given.
    let id = w.weft_ok(&["network", "create", "ula", "--ipv6"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&w.weft_ok(&["network", "inspect", id.trim()])).unwrap();
    let subnets = inspect[0]["network"]["subnets"].to_string();
    assert!(subnets.contains("\"fd"), "no ULA subnet: {subnets}");
}

#[test]
fn disconnect_and_rm_leave_nothing_behind() {
    if !root_or_skip("cleanup") {
        return;
    }
    let mut w = World::new();
    let before = w.snapshot();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    w.weft_ok(&[
        "network",
        "create",
        "tmp",
        "--ipv6",
        "-o",
        "com.docker.network.bridge.name=tmpbr",
    ]);
    w.connect("tmp", &c1, &["-p", "8080:80", "-p", "53:53/udp"]);
    w.connect("tmp", &c2, &["--ip", "172.17.0.200"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&w.weft_ok(&["network", "inspect", "tmp"])).unwrap();
    let kernel = &inspect[0]["kernel"];
    assert_eq!(kernel["bridge"]["name"], "tmpbr");
    assert_eq!(kernel["bridge"]["present"], true);
    assert_eq!(kernel["endpoints"].as_array().unwrap().len(), 2);
    assert!(kernel["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["present"] == true && e["attached"] == true));
    assert_eq!(
        kernel["published_ports"],
        kernel["expected_published_ports"]
    );
    for c in [&c1, &c2] {
        w.weft_ok(&[
            "network",
            "disconnect",
            "tmp",
            "--netns",
            &c.path.display().to_string(),
        ]);
    }
    // The containers keep only loopback.
    assert_eq!(c1.sh("ip -o link show | wc -l").trim(), "1");
    w.weft_ok(&["network", "rm", "tmp"]);
    // The host's ULA prefix stays: it is this host's identity, not a reservation.
    let after: String = w
        .snapshot()
        .lines()
        .filter(|l| !l.contains("/ipam/ula:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(after, before, "host kernel or store differs after rm");
}

#[test]
fn status_reports_what_the_kernel_lost() {
    if !root_or_skip("status") {
        return;
    }
    let mut w = World::new();
    let c1 = w.ns("c1");
    w.weft_ok(&["network", "create", "st", "--subnet", "10.96.0.0/24"]);
    let e1 = w.connect("st", &c1, &["-p", "8080:80"]);
    let healthy = w.weft_ok(&["status"]);
    assert!(
        healthy
            .lines()
            .any(|l| l.starts_with("st ") && l.ends_with("ok")),
        "{healthy}"
    );
    // Someone removes the container's host interface and a published port behind weft's back.
    w.host.sh(&format!(
        "ip link del {}",
        e1["host_ifname"].as_str().unwrap()
    ));
    w.host.sh("nft flush map inet weft ports4_any");
    let status: serde_json::Value =
        serde_json::from_str(&w.weft_ok(&["status", "--json"])).unwrap();
    let st = status["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "st")
        .unwrap();
    let problems = st["problems"].to_string();
    assert!(
        problems.contains("is missing") && problems.contains("published ports differ"),
        "{problems}"
    );
}
