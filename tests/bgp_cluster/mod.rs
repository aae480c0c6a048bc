//! Helpers for cluster tests with the bgp backend and routed attachment, on top of
//! [`crate::cluster_world`]: daemons with their own control socket, `weft bgp` answers as
//! JSON, and what a host's kernel shows.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use crate::cluster_world::{eventually, ClusterWorld};

/// Lease TTL of the daemons: short, so a departed host is noticed quickly.
pub const TTL: u64 = 3;
/// Longest wait for a host to join (etcd, lease, backend, sessions).
pub const JOIN: Duration = Duration::from_secs(30);

/// Host `i`'s control socket: the daemon and the CLI find it in the host's state directory
/// (never the machine's /run/weft) without being told.
pub fn control_socket(w: &ClusterWorld, i: usize) -> PathBuf {
    w.hosts[i].state.join("control.sock")
}

/// Starts host `i`'s daemon with `extra` flags.
pub fn start(w: &mut ClusterWorld, i: usize, extra: &[&str]) {
    w.start_daemon(i, TTL, extra);
}

/// etcd, `weft cluster init c1 --backend BACKEND INIT…`, and every host's daemon (with
/// `per_host(i)` flags), joined. Returns the world and each host's subnet.
pub fn world(
    hosts: usize,
    backend: &str,
    init: &[&str],
    per_host: impl Fn(usize) -> Vec<String>,
) -> (ClusterWorld, Vec<String>) {
    let mut w = ClusterWorld::new(hosts);
    w.start_etcd();
    w.init_cluster(backend, init);
    for i in 0..hosts {
        let extra = per_host(i);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        start(&mut w, i, &extra);
    }
    let subnets = (0..hosts).map(|i| w.hosts[i].wait_joined(JOIN)).collect();
    (w, subnets)
}

/// `weft bgp WHAT --json` on host `i`: the answer, or the error text.
pub fn bgp(w: &ClusterWorld, i: usize, what: &str) -> Result<serde_json::Value, String> {
    let out = w.hosts[i].weft(&["bgp", what, "--json"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("not JSON: {e}"))
}

/// `weft bgp WHAT` (the table) on host `i`.
pub fn bgp_text(w: &ClusterWorld, i: usize, what: &str) -> String {
    let socket = control_socket(w, i).display().to_string();
    w.hosts[i].weft_ok(&["bgp", what, "--control-socket", &socket])
}

/// The neighbours host `i` reports, once every one of them is Established (and there are
/// `count`); panics with the last answer otherwise.
pub fn established(w: &ClusterWorld, i: usize, count: usize) -> Vec<serde_json::Value> {
    let mut last = Err(String::new());
    let ok = eventually(JOIN, || {
        last = bgp(w, i, "status");
        last.as_ref().is_ok_and(|s| {
            let n = s["neighbours"].as_array().cloned().unwrap_or_default();
            n.len() == count && n.iter().all(|n| n["state"] == "Established")
        })
    });
    assert!(
        ok,
        "host {} has not {count} established neighbours: {last:?}\n{}",
        i + 1,
        w.hosts[i].log()
    );
    last.unwrap()["neighbours"].as_array().cloned().unwrap()
}

/// The first address of a subnet, e.g. `10.244.2.0` of `10.244.2.0/24`.
pub fn base(subnet: &str) -> &str {
    subnet.split('/').next().unwrap()
}
