//! The daemon and the CLI against a real etcd: the connection stays up on etcd's default
//! settings.

mod cluster_world;

use std::time::{Duration, Instant};

use cluster_world::{can_run, eventually, ClusterWorld};

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
