//! Network namespaces a test makes and throws away, and commands run inside them.
//!
//! They are bind-mounted in a temporary directory of the test's own, not in `/run/netns`: tests
//! running in parallel cannot pick the same name, and nothing outside the test is touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use weft_drivers::netns::Netns;

use crate::skip::root_or_skip;

/// A network namespace bind-mounted at `path`.
#[derive(Clone, Debug)]
pub struct Ns {
    /// What failure messages call it.
    pub name: String,
    pub path: PathBuf,
}

impl Ns {
    /// `program` run inside the namespace. Through `nsenter`, so that the test's own threads
    /// stay where they are and the program can be anything, the `weft` binary included.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path.display())).arg(program);
        c
    }

    /// `sh -c script` inside; its stdout. Panics with the output when it fails: plumbing a test
    /// relies on must not fail quietly.
    pub fn sh(&self, script: &str) -> String {
        let out = self
            .cmd("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "in {}: `{script}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether one ping to `to` gets an answer within a second.
    pub fn ping(&self, to: &str) -> bool {
        self.pings(&[to])
    }

    /// [`Ns::ping`] from the address `from`: a host's bridge address, so that the reply has to
    /// come back through the route under test.
    pub fn ping_from(&self, from: &str, to: &str) -> bool {
        self.pings(&["-I", from, to])
    }

    fn pings(&self, args: &[&str]) -> bool {
        self.cmd("ping")
            .args(["-c1", "-W1", "-n"])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A handle for running code of the test inside ([`Netns::run`]).
    pub fn open(&self) -> Netns {
        Netns::open(&self.path).expect("open test namespace")
    }
}

/// The namespaces of one test, in a temporary directory that other files of the test can share.
/// Dropping it (also while unwinding from a failed assert) removes every namespace, then the
/// directory.
pub struct Lab {
    dir: tempfile::TempDir,
    made: Vec<PathBuf>,
}

impl Lab {
    /// An empty lab whose directory's name starts with `prefix`, which tells whose leftovers
    /// they are should a test be killed before it cleans up.
    pub fn new(prefix: &str) -> Lab {
        Lab {
            dir: tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("temporary directory"),
            made: Vec::new(),
        }
    }

    /// [`Lab::new`], or `None` (after printing why) when `test` cannot make namespaces here.
    pub fn for_test(test: &str, prefix: &str) -> Option<Lab> {
        root_or_skip(test).then(|| Lab::new(prefix))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new namespace with loopback up.
    pub fn ns(&mut self, name: &str) -> Ns {
        // The prefix keeps namespaces apart from the other files a test keeps here.
        let path = self.dir.path().join(format!("ns-{name}"));
        Netns::create_at(&path).expect("create namespace");
        self.made.push(path.clone());
        let ns = Ns {
            name: name.to_string(),
            path,
        };
        ns.sh("ip link set lo up");
        ns
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            if let Err(e) = Netns::remove_at(p) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
