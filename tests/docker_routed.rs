//! A routed (Calico-style) weft network under a real dockerd: `-o weft.mode=routed`.

mod support;

use support::docker::{docker_or_skip, DockerWorld};
use support::net::{sa, tcp_server};
use support::{UPLINK_HOST_V4, UPLINK_PEER_V4};

#[test]
fn docker_containers_on_a_routed_network_reach_each_other_and_the_outside() {
    if !docker_or_skip("docker routed network") {
        return;
    }
    let mut d = DockerWorld::start();
    let inet = d.world.internet();
    // Like any host Calico runs on, this one has a default route: proxy ARP answers for the
    // link-local gateway because the host routes it elsewhere.
    d.host()
        .sh(&format!("ip route add default via {UPLINK_PEER_V4}"));
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.62.0.0/24",
        "-o",
        "weft.mode=routed",
        "r1",
    ]);
    let inspect = d.weft_cli(&["network", "ls"]);
    assert!(inspect.contains("routed"), "{inspect}");
    d.run_sleeper("c1", &["--network", "r1"]);
    d.run_sleeper("c2", &["--network", "r1"]);
    let a2 = d.address("c2", "r1", false);
    let (_, inside) = d.exec("c1", "ip route");
    assert!(inside.contains("default via 169.254.1.1"), "{inside}");
    let host = d.host().sh("ip -o link show type bridge; ip route");
    assert!(
        !host.contains("bridge"),
        "a bridge exists on the host: {host}"
    );
    assert!(
        host.contains(&format!("{a2} dev veth")),
        "no host route to c2: {host}"
    );
    assert!(d.ping_from("c1", &a2), "routed container to container");
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    let (ok, out) = d.exec("c1", &format!("nc -w 3 {UPLINK_PEER_V4} 7000 </dev/null"));
    assert!(
        ok && out.contains(&format!("internet from {UPLINK_HOST_V4}")),
        "{out}"
    );

    d.docker_ok(&["rm", "-f", "c1", "c2"]);
    d.docker_ok(&["network", "rm", "r1"]);
    let routes = d.host().sh("ip route; ip -o link show");
    assert!(!routes.contains("10.62.0."), "left behind: {routes}");
}

/// `docker exec NAME ping -I SRC TO`: the reply must come back to SRC's interface.
fn ping_from_addr(d: &DockerWorld, name: &str, src: &str, to: &str) -> bool {
    d.exec(name, &format!("ping -c1 -W2 -I {src} {to}")).0
}

/// A container on two routed networks, and on a bridge plus a routed network, through
/// `docker network connect` (issue G3): before the fix the second connect failed with EEXIST
/// on 169.254.1.1/32.
#[test]
fn docker_containers_join_a_second_routed_network_with_network_connect() {
    if !docker_or_skip("docker routed multi") {
        return;
    }
    let mut d = DockerWorld::start();
    let _inet = d.world.internet();
    d.host()
        .sh(&format!("ip route add default via {UPLINK_PEER_V4}"));
    for (name, subnet, mode) in [
        ("ra", "10.65.0.0/24", Some("weft.mode=routed")),
        ("rb", "10.66.0.0/24", Some("weft.mode=routed")),
        ("bc", "10.67.0.0/24", None),
    ] {
        let mut args = vec![
            "network",
            "create",
            "-d",
            "weft",
            "--ipam-driver",
            "weft",
            "--subnet",
            subnet,
        ];
        if let Some(mode) = mode {
            args.extend(["-o", mode]);
        }
        args.push(name);
        d.docker_ok(&args);
    }
    d.run_sleeper("m1", &["--network", "ra"]);
    d.docker_ok(&["network", "connect", "rb", "m1"]);
    d.run_sleeper("m2", &["--network", "bc"]);
    d.docker_ok(&["network", "connect", "rb", "m2"]);
    d.run_sleeper("pa", &["--network", "ra"]);
    d.run_sleeper("pb", &["--network", "rb"]);
    d.run_sleeper("pc", &["--network", "bc"]);
    let addr = |c: &str, n: &str| d.address(c, n, false);
    let (m1a, m1b, m2b, m2c) = (
        addr("m1", "ra"),
        addr("m1", "rb"),
        addr("m2", "rb"),
        addr("m2", "bc"),
    );
    let (pa, pb, pc) = (addr("pa", "ra"), addr("pb", "rb"), addr("pc", "bc"));
    for (c, src, to, what) in [
        ("m1", &m1a, &pa, "m1 to pa on ra"),
        ("pa", &pa, &m1a, "pa to m1 on ra"),
        ("m1", &m1b, &pb, "m1 to pb on rb"),
        ("pb", &pb, &m1b, "pb to m1 on rb"),
        ("m2", &m2c, &pc, "m2 to pc on the bridge"),
        ("pc", &pc, &m2c, "pc to m2 on the bridge"),
        ("m2", &m2b, &pb, "m2 to pb on rb"),
        ("pb", &pb, &m2b, "pb to m2 on rb"),
        ("m1", &m1b, &m2b, "m1 to m2 on rb"),
    ] {
        assert!(ping_from_addr(&d, c, src, to), "{what}: {src} -> {to}");
    }
    assert!(d.host().ping_from(UPLINK_HOST_V4, &m1b), "host to m1 on rb");
    assert!(d.host().ping_from(UPLINK_HOST_V4, &m2b), "host to m2 on rb");
    // Leaving one network keeps the other working.
    d.docker_ok(&["network", "disconnect", "ra", "m1"]);
    // Docker moves the default route itself; it finds no route to 169.254.1.1 through the
    // remaining interface (README: "Routed networks"), so only rb's own subnet is checked.
    assert!(
        ping_from_addr(&d, "m1", &m1b, &pb),
        "m1 to pb after leaving ra"
    );
    assert!(
        ping_from_addr(&d, "pb", &pb, &m1b),
        "pb to m1 after leaving ra"
    );
    d.docker_ok(&["network", "disconnect", "bc", "m2"]);
    assert!(
        ping_from_addr(&d, "m2", &m2b, &pb),
        "m2 to pb after leaving bc"
    );
    d.docker_ok(&["rm", "-f", "m1", "m2", "pa", "pb", "pc"]);
    for n in ["ra", "rb", "bc"] {
        d.docker_ok(&["network", "rm", n]);
    }
}
