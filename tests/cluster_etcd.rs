//! The daemon and the CLI against a real etcd: the connection stays up on etcd's default
//! settings, `weft cluster reserve` refuses what would break a host, and etcd failures read
//! as one line naming the endpoint, the operation and the fix.

mod cluster_world;

use std::time::{Duration, Instant};

use cluster_world::{can_run, eventually, ClusterWorld, CLUSTER};

const JOIN: Duration = Duration::from_secs(20);

/// Log lines that say something went wrong (tracing's WARN and ERROR levels).
fn trouble(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(str::to_string)
        .collect()
}

#[test]
fn daemon_keeps_one_connection_for_a_minute_against_a_default_etcd() {
    if !can_run("etcd keepalive") {
        return;
    }
    // etcd with no flag of ours: its --grpc-keepalive-min-time is the default 5 s, and etcd
    // resets a connection whose client pings more often.
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    w.init_cluster("vxlan", &[]);
    // The default lease TTL (60 s): renewals every 20 s, so the connection is mostly idle
    // apart from keepalive pings, as on a real cluster.
    w.start_daemon(0, 60, &[]);
    w.hosts[0].wait_joined(JOIN);
    // Watch the log for a whole minute; stop at the first reconnect or exit.
    let start = Instant::now();
    let failed = eventually(Duration::from_secs(60), || {
        !trouble(&w.hosts[0].log()).is_empty() || !w.hosts[0].running()
    });
    let log = w.hosts[0].log();
    assert!(
        !failed,
        "after {:?} the daemon reconnected or exited:\n{}\nfull log:\n{log}",
        start.elapsed(),
        trouble(&log).join("\n")
    );
    assert!(w.hosts[0].subnet().is_some(), "{log}");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `weft cluster reserve CLUSTER SUBNET --public-ip IP EXTRA…` from host 0.
fn reserve(w: &ClusterWorld, subnet: &str, ip: &str, extra: &[&str]) -> std::process::Output {
    let endpoint = w.endpoint();
    let mut args = vec![
        "cluster",
        "reserve",
        CLUSTER,
        subnet,
        "--public-ip",
        ip,
        "--etcd-endpoints",
        &endpoint,
    ];
    args.extend_from_slice(extra);
    w.hosts[0].weft(&args)
}

/// The reservation of `subnet` as etcd has it ("" when none).
fn reservation(w: &ClusterWorld, subnet: &str) -> String {
    let key = format!(
        "/weft/clusters/{CLUSTER}/reservations/{}",
        subnet.replace('/', "-")
    );
    String::from_utf8_lossy(&w.etcdctl(&["get", &key, "--print-value-only"]).stdout)
        .trim()
        .to_string()
}

#[test]
fn reserve_refuses_a_live_lease_of_another_host_and_replaces_only_with_force() {
    if !can_run("cluster reserve") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("vxlan", &[]);
    for i in 0..2 {
        w.start_daemon(i, 10, &[]);
    }
    let _s0 = w.hosts[0].wait_joined(JOIN);
    let s1 = w.hosts[1].wait_joined(JOIN);
    // h2's live subnet for h1: refused, with who holds it and what to do; nothing written.
    let out = reserve(&w, &s1, &w.hosts[0].ip, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains(&s1) && err.contains(&w.hosts[1].ip) && err.contains("reserve a free subnet"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(reservation(&w, &s1), "", "nothing written");
    // --force does not override a live lease either.
    let out = reserve(&w, &s1, &w.hosts[0].ip, &["--force"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(reservation(&w, &s1), "");

    // h2 restarted keeps its subnet and its local network.
    w.hosts[1].stop();
    w.start_daemon(1, 10, &[]);
    assert_eq!(w.hosts[1].wait_joined(JOIN), s1);

    // Pinning a host's own live subnet is what reservations are for.
    let out = reserve(&w, &s1, &w.hosts[1].ip, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(reservation(&w, &s1).contains(&w.hosts[1].ip));

    // A free subnet: reserved; again for the same host: unchanged, fine.
    let free = "10.244.200.0/24";
    for _ in 0..2 {
        let out = reserve(&w, free, "192.168.100.9", &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // For another host: refused without --force, naming the subnet and the holder.
    let out = reserve(&w, free, "192.168.100.8", &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains(free) && err.contains("192.168.100.9") && err.contains("--force"),
        "{err}"
    );
    assert!(reservation(&w, free).contains("192.168.100.9"));
    let out = reserve(&w, free, "192.168.100.8", &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(reservation(&w, free).contains("192.168.100.8"));
}

#[test]
fn etcd_failures_are_one_line_naming_the_endpoint_the_operation_and_the_fix() {
    if !can_run("etcd errors") {
        return;
    }
    // etcd is never started: nothing listens on the endpoint.
    let mut w = ClusterWorld::new(1);
    let endpoint = w.endpoint();
    let raw = ["grpc", "tonic", "source:", "Os {", "code:"];
    let cases: [(&[&str], &str); 3] = [
        (
            &["cluster", "init", CLUSTER, "--network", "10.244.0.0/16"],
            "writing the cluster config",
        ),
        (
            &["cluster", "status", CLUSTER],
            "reading the cluster config",
        ),
        (
            &[
                "cluster",
                "reserve",
                CLUSTER,
                "10.244.9.0/24",
                "--public-ip",
                "192.168.100.9",
            ],
            "reading the cluster config",
        ),
    ];
    for (args, op) in cases {
        let mut args = args.to_vec();
        args.extend(["--etcd-endpoints", &endpoint]);
        let out = w.hosts[0].weft(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let want = format!(
            "weft: error: cannot reach etcd at {endpoint} (connection refused) while {op}: is etcd running and reachable from this host? check --etcd-endpoints"
        );
        assert_eq!(err.trim(), want, "{args:?}");
    }
    // The daemon says the same, once per retry, and keeps running.
    w.start_daemon(0, 10, &[]);
    let logged = eventually(Duration::from_secs(15), || {
        w.hosts[0].log().contains(&format!(
            "etcd unavailable: cannot reach etcd at {endpoint} (connection refused) while"
        ))
    });
    let log = w.hosts[0].log();
    assert!(logged, "{log}");
    for line in trouble(&log) {
        assert!(
            !raw.iter().any(|r| line.contains(r)),
            "raw client output: {line}"
        );
        assert!(line.contains("check --etcd-endpoints"), "no fix: {line}");
    }
    assert!(w.hosts[0].running(), "etcd down is retried: {log}");
}
