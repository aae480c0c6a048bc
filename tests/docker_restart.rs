//! State survives restarts: weft stopped gracefully while containers run, weft killed and
//! restarted over leaked kernel objects, then dockerd restarted (it replays neither CreateNetwork
//! nor RequestPool). Containers keep their connectivity, new ones work, removal cleans up.

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::docker::{docker_or_skip, http_get, DockerWorld};
use support::eventually;
use support::net::sa;

const LEAKED_EP: &str = "dead00000000000000000000000000000000000000000000000000000000beef";

#[test]
fn containers_keep_their_network_across_restarts_of_weft_and_dockerd() {
    if !docker_or_skip("docker restarts") {
        return;
    }
    let mut d = DockerWorld::start_with("--live-restore", "");
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.67.0.0/24",
        "keep",
    ]);
    let id = d.network_id("keep");
    let bridge = format!("br-{}", &id[..12]);
    d.run_sleeper("c1", &["--network", "keep"]);
    d.run_sleeper("c2", &["--network", "keep"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--stop-signal",
        "KILL",
        "--network",
        "keep",
        "-p",
        "8090:80",
        "bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let c2 = d.address("c2", "keep", false);
    let web = d.docker_ok(&["exec", "web", "hostname"]);
    let served = |d: &DockerWorld| {
        eventually(Duration::from_secs(5), || {
            http_get(d.host(), sa("127.0.0.1:8090"), "/hostname").is_ok_and(|r| r.trim() == web)
        })
    };
    assert!(served(&d));

    // A graceful stop leaves the kernel as it is and removes the socket.
    assert_eq!(d.stop_weft(Signal::SIGTERM), Some(0), "{}", d.weft_log());
    assert!(!d.socket().exists(), "the socket file is removed");
    assert!(
        d.ping_from("c1", &c2),
        "containers keep talking without weft"
    );
    assert!(served(&d), "published port without weft");

    // Leaks while weft is down: a veth of an endpoint nobody knows, a DNAT entry of it, and one of
    // weft's DOCKER-USER rules gone.
    d.host().sh(&format!(
        "ip link add vleak0 type veth peer name vleak1 && \
         ip link set vleak0 alias weft:ep:{id}:{LEAKED_EP} && ip link set vleak0 master {bridge} && \
         nft add element inet weft ports4_any '{{ tcp . 9999 : 10.67.0.200 . 80 }}' && \
         iptables -D DOCKER-USER -i {bridge} -m comment --comment weft:{} -j ACCEPT",
        &id[..12]
    ));
    d.start_weft();
    let links = d.host().sh("ip -o link show");
    assert!(!links.contains("vleak0"), "leaked veth removed: {links}");
    let ports = d.host().sh("nft list map inet weft ports4_any");
    assert!(!ports.contains("9999"), "stale DNAT removed: {ports}");
    assert!(ports.contains("8090"), "live DNAT kept: {ports}");
    let rules = d.host().sh("iptables -S DOCKER-USER");
    assert!(
        rules.contains(&format!("-i {bridge}")),
        "DOCKER-USER rule restored: {rules}"
    );
    assert!(
        d.weft_log().contains("removed leaked interface vleak0"),
        "{}",
        d.weft_log()
    );
    assert!(d.ping_from("c1", &c2));

    // dockerd restarts (containers live on) and only asks weft for new work.
    d.restart_dockerd();
    assert!(d.ping_from("c1", &c2), "after dockerd's restart");
    assert!(served(&d));
    d.run_sleeper("c3", &["--network", "keep"]);
    let c3 = d.address("c3", "keep", false);
    assert!(c3.starts_with("10.67.0.") && c3 != c2, "{c3}");
    assert!(d.ping_from("c3", &c2), "a new container on the old network");

    for c in ["c1", "c2", "c3", "web"] {
        d.docker_ok(&["rm", "-f", c]);
    }
    d.docker_ok(&["network", "rm", "keep"]);
    assert_eq!(d.weft_traces(), "");
}
