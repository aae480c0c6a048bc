//! Bad configuration is fatal: the real `weft daemon` in a namespace exits 2 within seconds
//! with one message naming what is wrong, and releases its etcd lease first; etcd being down
//! stays a retried, transient problem (tests/multihost.rs).

mod cluster_world;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use cluster_world::{can_run, eventually, ClusterWorld, CLUSTER};

/// "Within a few seconds": the daemon joins (well under a second here), fails to start its
/// backend and revokes its lease.
const FAIL_WITHIN: Duration = Duration::from_secs(10);

fn leases(w: &ClusterWorld) -> String {
    let prefix = format!("/weft/clusters/{CLUSTER}/subnets/");
    String::from_utf8_lossy(
        &w.etcdctl(&["get", &prefix, "--prefix", "--keys-only"])
            .stdout,
    )
    .trim()
    .to_string()
}

/// Waits for host 0's daemon to exit; its exit code and log.
fn exited(w: &mut ClusterWorld) -> (Option<i32>, String) {
    let start = Instant::now();
    let mut status = None;
    eventually(FAIL_WITHIN, || {
        status = w.hosts[0].exit_status();
        status.is_some()
    });
    let log = w.hosts[0].log();
    let status = status
        .unwrap_or_else(|| panic!("the daemon still runs after {:?}:\n{log}", start.elapsed()));
    (status.code(), log)
}

#[test]
fn bgp_port_in_use_exits_2_naming_the_address_and_releases_the_lease() {
    if !can_run("bgp port in use") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    w.init_cluster("bgp", &["--encapsulation", "none"]);
    // Something else holds the BGP port on the host's address (a listener made inside the
    // host's namespace; it stays bound there).
    let addr: SocketAddr = format!("{}:0", w.hosts[0].ip).parse().unwrap();
    let holder = w.hosts[0]
        .ns
        .open()
        .run(move || TcpListener::bind(addr))
        .expect("enter the host")
        .expect("bind");
    let port = holder.local_addr().unwrap().port().to_string();
    w.start_daemon(0, 30, &["--bgp-port", &port]);
    let (code, log) = exited(&mut w);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("lease acquired"),
        "it had a lease to release: {log}"
    );
    let taken = format!("{}:{port}", w.hosts[0].ip);
    let message: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("weft: error:"))
        .collect();
    assert_eq!(message.len(), 1, "one message: {log}");
    assert!(
        message[0].contains(&taken) && message[0].contains("cannot listen for BGP"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(
        leases(&w),
        "",
        "the lease is revoked, not left to expire: {log}"
    );
    drop(holder);
}

#[test]
fn duplicate_bgp_peer_and_port_0_exit_2_before_taking_a_lease() {
    if !can_run("bad bgp flags") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    w.init_cluster("bgp", &["--encapsulation", "none"]);
    w.start_daemon(
        0,
        30,
        &[
            "--bgp-peer",
            "192.168.100.9:65000",
            "--bgp-peer",
            "192.168.100.9:65001",
        ],
    );
    let (code, log) = exited(&mut w);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--bgp-peer 192.168.100.9 is given twice"),
        "{log}"
    );
    assert_eq!(leases(&w), "", "{log}");

    let out = w.hosts[0].weft(&["daemon", "--bgp-port", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--bgp-port"), "{err}");
}

#[test]
fn missing_kernel_support_for_the_encapsulation_is_fatal() {
    if !can_run("ipip missing") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    let probe = w.hosts[0]
        .ns
        .cmd("ip")
        .args(["link", "add", "probe0", "type", "ipip"])
        .output()
        .unwrap();
    if probe.status.success() {
        eprintln!("skipped: this kernel has ipip; the failure this test needs cannot happen");
        return;
    }
    w.start_etcd();
    w.init_cluster("bgp", &["--encapsulation", "ipip"]);
    w.start_daemon(0, 30, &[]);
    let (code, log) = exited(&mut w);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("ipip"), "{log}");
    assert_eq!(leases(&w), "", "{log}");
}
