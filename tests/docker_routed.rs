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
