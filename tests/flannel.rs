//! What a flannel user reaches for, against real etcd and daemons in namespaces: the leased
//! range (SubnetMin/SubnetMax), masquerade off, picking the public interface by regex or by
//! reachability, the subnet.env file, `weft cluster leave|rm`, and the health endpoint.

mod cluster_world;
mod support;

use std::time::Duration;

use cluster_world::{can_run, eventually, ClusterWorld, CLUSTER};
use support::net::{sa, tcp_request, tcp_server};

const TTL: u64 = 3;
const JOIN: Duration = Duration::from_secs(20);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn start(address: &str) -> u32 {
    u32::from(
        address
            .split('/')
            .next()
            .unwrap()
            .parse::<std::net::Ipv4Addr>()
            .unwrap(),
    )
}

#[test]
fn subnet_min_and_max_bound_the_leases_and_bad_bounds_name_the_flag() {
    if !can_run("subnet min/max") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    let endpoint = w.endpoint();
    for (flag, value, needle) in [
        (
            "--subnet-min",
            "10.245.0.0",
            "--subnet-min 10.245.0.0 is outside",
        ),
        (
            "--subnet-max",
            "10.244.3.7",
            "--subnet-max 10.244.3.7 is not the start",
        ),
        (
            "--subnet-min",
            "10.244.3.0/25",
            "--subnet-min 10.244.3.0/25",
        ),
    ] {
        let out = w.hosts[0].weft(&[
            "cluster",
            "init",
            CLUSTER,
            "--network",
            "10.244.0.0/16",
            flag,
            value,
            "--etcd-endpoints",
            &endpoint,
        ]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    let out = w.hosts[0].weft(&[
        "cluster",
        "init",
        CLUSTER,
        "--network",
        "10.244.0.0/16",
        "--subnet-min",
        "10.244.9.0",
        "--subnet-max",
        "10.244.3.0",
        "--etcd-endpoints",
        &endpoint,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("above --subnet-max"),
        "{}",
        stderr(&out)
    );

    w.init_cluster(
        "host-gw",
        &[
            "--subnet-min",
            "10.244.10.0/24",
            "--subnet-max",
            "10.244.20.0",
        ],
    );
    for i in 0..2 {
        w.start_daemon(i, TTL, &[]);
    }
    let (min, max) = (start("10.244.10.0"), start("10.244.20.0"));
    for i in 0..2 {
        let subnet = w.hosts[i].wait_joined(JOIN);
        assert!(
            (min..=max).contains(&start(&subnet)),
            "host {i} leased {subnet}, outside 10.244.10.0 ..= 10.244.20.0"
        );
    }
}

#[test]
fn no_masquerade_keeps_the_container_address_toward_the_outside() {
    if !can_run("no masquerade") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    w.init_cluster("host-gw", &["--no-masquerade"]);
    w.start_daemon(0, TTL, &[]);
    w.hosts[0].wait_joined(JOIN);
    // "The outside": a namespace on the underlay, outside the cluster network, that routes
    // the cluster network back through host 0.
    let outside = w.ns("outside");
    w.underlay.sh(&format!(
        "ip link add out0 type veth peer name eth0 netns {} && ip link set out0 master ul up",
        outside.path.display()
    ));
    outside.sh(&format!(
        "ip addr add 192.168.100.200/24 dev eth0 && ip link set eth0 up && \
         ip route add 10.244.0.0/16 via {}",
        w.hosts[0].ip
    ));
    let (c0, a0) = w.container(0, "c0");
    let _srv = tcp_server(&outside, sa("192.168.100.200:7000"), "outside");
    let mut reply = String::new();
    let answered = eventually(Duration::from_secs(10), || {
        reply = tcp_request(&c0, sa("192.168.100.200:7000")).unwrap_or_default();
        !reply.is_empty()
    });
    assert!(
        answered,
        "no answer from the outside; log:\n{}",
        w.hosts[0].log()
    );
    assert_eq!(
        reply,
        format!("outside from {a0}"),
        "masqueraded although turned off"
    );
}
