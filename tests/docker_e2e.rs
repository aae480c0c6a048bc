//! weft as Docker's network and IPAM plugin, end to end: a real dockerd (FORWARD policy DROP, as
//! stock) in a private world, `docker network create -d weft`, `docker run` containers, traffic.

mod support;

use std::time::Duration;

use support::docker::{docker_or_skip, http_get, plugin_call, DockerWorld};
use support::net::{sa, tcp_server};
use support::{eventually, UPLINK_HOST_V4, UPLINK_PEER_V4};

/// From inside a container: connect to ADDR:PORT and print what the server says.
fn nc(addr: &str, port: u16) -> String {
    format!("nc -w 3 {addr} {port} </dev/null")
}

#[test]
fn weft_networks_with_options_carry_traffic_and_leave_nothing() {
    if !docker_or_skip("docker networks with options") {
        return;
    }
    let mut d = DockerWorld::start();
    let inet = d.world.internet();
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.61.0.0/24",
        "--gateway",
        "10.61.0.254",
        "--ip-range",
        "10.61.0.128/26",
        "--aux-address",
        "reserved=10.61.0.130",
        "-o",
        "com.docker.network.bridge.name=wbr61",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "n1",
    ]);
    let id = d.network_id("n1");
    assert!(
        d.weft_cli(&["network", "ls"])
            .contains(&format!("docker-{}", &id[..12])),
        "weft network ls shows Docker's network"
    );
    assert!(d.host().sh("ip -o link show wbr61").contains("mtu 1400"));

    d.run_sleeper("c1", &["--network", "n1"]);
    d.run_sleeper("c2", &["--network", "n1"]);
    assert_eq!(
        d.address("c1", "n1", false),
        "10.61.0.128",
        "first of --ip-range"
    );
    assert_eq!(d.address("c2", "n1", false), "10.61.0.129");
    let (_, link) = d.exec("c1", "ip -o link show eth0; ip route");
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(link.contains("default via 10.61.0.254"), "{link}");
    assert!(d.ping_from("c1", "10.61.0.129"), "container to container");
    assert!(d.ping_from("c2", "10.61.0.254"), "container to gateway");

    // The outside answers the host's address: masquerade through a FORWARD chain that drops.
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    let (ok, out) = d.exec("c1", &nc(UPLINK_PEER_V4, 7000));
    assert!(
        ok && out.contains(&format!("internet from {UPLINK_HOST_V4}")),
        "{out}"
    );

    // Published ports from the outside and from 127.0.0.1 on the host.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--stop-signal",
        "KILL",
        "--network",
        "n1",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:8081:80",
        "bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let hostname = d.docker_ok(&["exec", "web", "hostname"]);
    let url = sa(&format!("{UPLINK_HOST_V4}:8080"));
    let mut reply = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            reply = http_get(&inet, url, "/hostname").unwrap_or_else(|e| e.to_string());
            reply.trim() == hostname
        }),
        "outside to -p 8080:80: {reply}"
    );
    let local = http_get(d.host(), sa("127.0.0.1:8081"), "/hostname").expect("127.0.0.1:8081");
    assert_eq!(local.trim(), hostname);
    let (ok, out) = d.exec(
        "c1",
        &format!("wget -qO- http://{UPLINK_HOST_V4}:8080/hostname"),
    );
    assert!(
        ok && out.trim() == hostname,
        "hairpin from a container: {out}"
    );

    for c in ["c1", "c2", "web"] {
        d.docker_ok(&["rm", "-f", c]);
    }
    d.docker_ok(&["network", "rm", "n1"]);
    assert_eq!(d.weft_traces(), "", "weft left objects behind");
    assert!(d
        .host()
        .sh("ip -o link")
        .lines()
        .all(|l| !l.contains("veth") && !l.contains("wbr61")));
}

#[test]
fn connect_disconnect_internal_and_ipv6() {
    if !docker_or_skip("docker connect, internal, ipv6") {
        return;
    }
    let mut d = DockerWorld::start();
    let inet = d.world.internet();
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    // Docker's own IPAM with weft's driver, dual stack.
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipv6",
        "--subnet",
        "10.62.0.0/24",
        "--subnet",
        "fd00:62::/64",
        "n6",
    ]);
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--internal",
        "--subnet",
        "10.63.0.0/24",
        "ni",
    ]);
    d.run_sleeper("ca", &["--network", "n6"]);
    d.run_sleeper("cb", &["--network", "n6"]);
    let b6 = d.address("cb", "n6", true);
    assert!(b6.starts_with("fd00:62::"), "{b6}");
    assert!(d.ping_from("ca", &b6), "IPv6 container to container");
    assert!(d.ping_from("ca", "fd00:62::1"), "IPv6 gateway");

    // A second network joins a running container and leaves it again.
    d.docker_ok(&["network", "connect", "ni", "ca"]);
    let ai = d.address("ca", "ni", false);
    assert!(ai.starts_with("10.63.0."), "{ai}");
    let (_, links) = d.exec("ca", "ip -o addr show");
    assert!(links.contains("eth1") && links.contains(&ai), "{links}");
    d.run_sleeper("ci", &["--network", "ni"]);
    assert!(
        d.ping_from("ci", &ai),
        "internal network members reach each other"
    );
    let (ok, out) = d.exec("ci", &nc(UPLINK_PEER_V4, 7000));
    assert!(
        !ok || !out.contains("internet"),
        "an internal network reached the outside: {out}"
    );
    let (ok, out) = d.exec("ca", &nc(UPLINK_PEER_V4, 7000));
    assert!(
        ok && out.contains("internet"),
        "n6 still routes out for a: {out}"
    );
    d.docker_ok(&["network", "disconnect", "ni", "ca"]);
    let (_, links) = d.exec("ca", "ip -o link show");
    assert!(!links.contains("eth1"), "{links}");
    assert!(!d.ping_from("ci", &ai));

    for c in ["ca", "cb", "ci"] {
        d.docker_ok(&["rm", "-f", c]);
    }
    d.docker_ok(&["network", "rm", "n6", "ni"]);
    assert_eq!(d.weft_traces(), "");
}

#[test]
fn a_failure_mid_join_leaves_nothing_and_the_daemon_keeps_serving() {
    if !docker_or_skip("docker injected join failure") {
        return;
    }
    let d = DockerWorld::start_with("", "NetworkDriver.Join");
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.64.0.0/24",
        "nf",
    ]);
    let before = d.weft_traces();
    let err = d.docker_err(&["run", "--rm", "--network", "nf", "bb", "true"]);
    assert!(
        err.contains("injected failure for /NetworkDriver.Join"),
        "{err}"
    );
    assert_eq!(d.weft_traces(), before, "the failed join left something");
    let inspect = d.weft_cli(&["network", "inspect", &d.network_id("nf")]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["endpoints"], serde_json::json!([]), "{inspect}");
    let allocated = v[0]["ipam"].to_string();
    assert!(
        !allocated.contains("10.64.0.2"),
        "address released: {allocated}"
    );
    d.docker_ok(&["network", "rm", "nf"]);
    assert_eq!(d.weft_traces(), "");
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    if !docker_or_skip("docker bad input") {
        return;
    }
    let d = DockerWorld::start();
    let sock = d.socket();
    for (path, body, status, text) in [
        (
            "/NetworkDriver.CreateNetwork",
            "{not json",
            400,
            "malformed NetworkDriver.CreateNetwork",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            "{}",
            400,
            "missing field `NetworkID`",
        ),
        (
            "/NetworkDriver.Join",
            r#"{"NetworkID": "00000000000000000000000000000000000000000000000000000000000000aa", "EndpointID": "00000000000000000000000000000000000000000000000000000000000000bb"}"#,
            400,
            "not found",
        ),
        (
            "/IpamDriver.RequestAddress",
            r#"{"PoolID": "10.9.9.0_24"}"#,
            400,
            "not found",
        ),
        (
            "/NetworkDriver.Frobnicate",
            "{}",
            404,
            "unknown plugin method",
        ),
    ] {
        let (got, reply) = plugin_call(&sock, path, body.as_bytes()).expect("plugin socket");
        assert_eq!(got, status, "{path} {body}: {reply}");
        assert!(reply.contains(text), "{path}: {reply}");
    }

    // Errors reach the user through dockerd.
    let err = d.docker_err(&[
        "network",
        "create",
        "-d",
        "weft",
        "-o",
        "com.docker.network.driver.mtu=huge",
        "bad",
    ]);
    assert!(err.contains("com.docker.network.driver.mtu"), "{err}");
    let err = d.docker_err(&[
        "network",
        "create",
        "-d",
        "weft",
        "-o",
        "com.docker.network.bridge.name=has space",
        "bad2",
    ]);
    assert!(err.contains("com.docker.network.bridge.name"), "{err}");
    assert_eq!(d.weft_traces(), "", "a refused network left something");

    // An exhausted pool: a /30 has two addresses, the gateway takes one.
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.65.0.0/30",
        "tiny",
    ]);
    d.run_sleeper("t1", &["--network", "tiny"]);
    let err = d.docker_err(&["run", "--rm", "--network", "tiny", "bb", "true"]);
    assert!(err.contains("exhausted"), "{err}");
    // A fixed address in use.
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.66.0.0/24",
        "fixed",
    ]);
    d.run_sleeper("f1", &["--network", "fixed", "--ip", "10.66.0.9"]);
    let err = d.docker_err(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        "10.66.0.9",
        "bb",
        "true",
    ]);
    assert!(err.contains("10.66.0.9") && err.contains("in use"), "{err}");
    // Overlapping subnets under weft's IPAM.
    let err = d.docker_err(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.66.0.0/24",
        "again",
    ]);
    assert!(err.contains("overlaps"), "{err}");

    // Still serving.
    assert!(d.ping_from("f1", "10.66.0.1"));
    for c in ["t1", "f1"] {
        d.docker_ok(&["rm", "-f", c]);
    }
    d.docker_ok(&["network", "rm", "tiny", "fixed"]);
    assert_eq!(d.weft_traces(), "");
}

#[test]
fn icc_off_masquerade_off_and_isolation_between_networks() {
    if !docker_or_skip("docker icc, masquerade, isolation") {
        return;
    }
    let mut d = DockerWorld::start();
    let inet = d.world.internet();
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--subnet",
        "10.68.0.0/24",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "com.docker.network.bridge.enable_ip_masquerade=false",
        "noicc",
    ]);
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--subnet",
        "10.69.0.0/24",
        "other",
    ]);
    d.run_sleeper("q1", &["--network", "noicc"]);
    d.run_sleeper("q2", &["--network", "noicc"]);
    d.run_sleeper("o1", &["--network", "other"]);
    let q2 = d.address("q2", "noicc", false);
    assert!(
        d.ping_from("q1", "10.68.0.1"),
        "the gateway stays reachable"
    );
    assert!(
        !d.ping_from("q1", &q2),
        "ICC off: containers do not reach each other"
    );
    assert!(
        !d.ping_from("o1", &q2),
        "networks are isolated from each other"
    );
    // No masquerade: the outside has no route back to 10.68.0.0/24.
    let (ok, out) = d.exec("q1", &nc(UPLINK_PEER_V4, 7000));
    assert!(!ok || !out.contains("internet"), "{out}");
    let (ok, out) = d.exec("o1", &nc(UPLINK_PEER_V4, 7000));
    assert!(ok && out.contains("internet"), "{out}");
    for c in ["q1", "q2", "o1"] {
        d.docker_ok(&["rm", "-f", c]);
    }
    d.docker_ok(&["network", "rm", "noicc", "other"]);
    assert_eq!(d.weft_traces(), "");
}
