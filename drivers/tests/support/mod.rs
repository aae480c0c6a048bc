//! Test scaffolding: throwaway network namespaces that are removed even when a test fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use weft_drivers::netns::Netns;

/// A set of network namespaces bind-mounted in a temporary directory. Dropping the lab (also
/// while unwinding from a failed assert) unmounts and deletes them all.
pub struct Lab {
    dir: TempDir,
    made: Vec<PathBuf>,
}

impl Lab {
    /// `None` (after printing why) when the test cannot run here: it needs root to make
    /// namespaces.
    pub fn new(test: &str) -> Option<Lab> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP {test}: needs root to create network namespaces");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("weft-netns-")
            .tempdir()
            .expect("temporary directory");
        Some(Lab {
            dir,
            made: Vec::new(),
        })
    }

    /// Where `netns(name)` puts its namespace.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A fresh, empty network namespace (only `lo`, down).
    pub fn netns(&mut self, name: &str) -> Netns {
        let path = self.path(name);
        let ns = Netns::create_at(&path).expect("create a network namespace");
        self.made.push(path);
        ns
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for path in &self.made {
            if let Err(e) = Netns::remove_at(path) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Polls `check` until it returns true or `timeout` passes; returns the last answer.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
}
