//! Helpers for interop tests: throw-away network namespaces joined by a veth pair, a way to run
//! async test code inside one, and handles for BIRD, GoBGP and FRR that stop by PID.
//!
//! Topology built with `ip` (test-only plumbing; the library itself never spawns it):
//!
//! ```text
//!   ns "<name>a" (weft)                 ns "<name>b" (daemon)
//!   veth 10.0.0.1/24 fd00::1/64  <--->  veth 10.0.0.2/24 fd00::2/64
//! ```
#![allow(dead_code)]

pub mod cluster;
pub mod daemons;

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use weft_drivers::netns::Netns;
use weft_testkit::eventually;

/// Address of the weft side.
pub const WEFT_V4: &str = "10.0.0.1";
/// Address of the daemon side.
pub const PEER_V4: &str = "10.0.0.2";
/// IPv6 address of the weft side.
pub const WEFT_V6: &str = "fd00::1";
/// IPv6 address of the daemon side.
pub const PEER_V6: &str = "fd00::2";

/// Why an interop test cannot run here, if it cannot. `ip` builds every topology.
pub fn skip_reason(programs: &[&str]) -> Option<String> {
    weft_testkit::skip_reason(&[programs, &["ip"]].concat())
}

/// Skips the calling test (with the reason printed) when prerequisites are missing.
#[macro_export]
macro_rules! skip_unless {
    ($($prog:expr),*) => {
        if let Some(why) = support::skip_reason(&[$($prog),*]) {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// Runs a command and panics with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair; deleted (with the veth) on drop.
pub struct Topology {
    /// Namespace of the weft speaker.
    pub weft_ns: String,
    /// Namespace of the third-party daemon.
    pub peer_ns: String,
}

impl Topology {
    /// Creates both namespaces and the link between them.
    pub fn new() -> Topology {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("wbgp{}x{n}", std::process::id());
        let t = Topology {
            weft_ns: format!("{base}a"),
            peer_ns: format!("{base}b"),
        };
        // From here on, Drop cleans up whatever was created.
        sh(&["ip", "netns", "add", &t.weft_ns]);
        sh(&["ip", "netns", "add", &t.peer_ns]);
        let (va, vb) = (
            format!("vb{n}a{}", std::process::id() % 10000),
            format!("vb{n}b{}", std::process::id() % 10000),
        );
        sh(&[
            "ip", "link", "add", &va, "netns", &t.weft_ns, "type", "veth", "peer", "name", &vb,
            "netns", &t.peer_ns,
        ]);
        for (ns, dev, v4, v6) in [
            (&t.weft_ns, &va, WEFT_V4, WEFT_V6),
            (&t.peer_ns, &vb, PEER_V4, PEER_V6),
        ] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                dev,
            ]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        t
    }

    /// `ip netns exec <peer ns>` prefix for commands.
    pub fn in_peer(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.peer_ns.clone(),
        ]
    }

    /// Runs `fut` on a tokio runtime whose threads all live in the weft namespace.
    pub fn run_weft<F, Fut>(&self, f: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let ns = Netns::open(format!("/run/netns/{}", self.weft_ns)).expect("netns file");
        ns.run(|| {
            // Runtime threads are created from this thread and so inherit its namespace.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f());
        })
        .expect("setns");
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.weft_ns, &self.peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Polls `f` until it returns true or the deadline passes (then panics naming `what`).
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Blocking variant of [`wait_for`] for code outside a runtime.
pub fn wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    assert!(
        eventually(timeout, f),
        "timed out after {timeout:?} waiting for {what}"
    );
}
