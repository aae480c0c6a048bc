//! Test worlds: a "host" network namespace that runs `weft`, "containers" and an "internet"
//! as further namespaces, and in-process TCP/UDP peers bound inside them. Everything a world
//! makes is removed when it drops, also when a test fails.
#![allow(dead_code)]

pub mod docker;
pub mod net;
pub mod podman;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use weft_testkit::{cli, Lab};

pub const UPLINK_HOST_V4: &str = "203.0.113.1";
pub const UPLINK_PEER_V4: &str = "203.0.113.2";
pub const UPLINK_HOST_V6: &str = "2001:db8:1::1";
pub const UPLINK_PEER_V6: &str = "2001:db8:1::2";

pub use weft_testkit::{eventually, root_or_skip, Ns};

pub struct World {
    lab: Lab,
    pub host: Ns,
    pub state: PathBuf,
}

impl World {
    /// A fresh host namespace with loopback up and forwarding off (weft must turn it on).
    pub fn new() -> World {
        let mut lab = Lab::new("weft-test-");
        let host = lab.ns("host");
        let state = lab.dir().join("state");
        World { lab, host, state }
    }

    pub fn dir(&self) -> &Path {
        self.lab.dir()
    }

    /// A new namespace with loopback up.
    pub fn ns(&mut self, name: &str) -> Ns {
        self.lab.ns(name)
    }

    /// An "internet" namespace linked to the host by a veth pair (203.0.113.0/24,
    /// 2001:db8:1::/64). It has no route to container subnets: replies only come back if weft
    /// masquerades.
    pub fn internet(&mut self) -> Ns {
        let inet = self.ns("internet");
        self.host.sh(&format!(
            "ip link add uplink type veth peer name wan netns {inet} && \
             ip addr add {UPLINK_HOST_V4}/24 dev uplink && ip -6 addr add {UPLINK_HOST_V6}/64 dev uplink nodad && \
             ip link set uplink up",
            inet = inet.path.display()
        ));
        inet.sh(&format!(
            "ip addr add {UPLINK_PEER_V4}/24 dev wan && ip -6 addr add {UPLINK_PEER_V6}/64 dev wan nodad && ip link set wan up"
        ));
        inet
    }

    /// `weft ARGS` run inside the host namespace against this world's state directory.
    pub fn weft(&self, args: &[&str]) -> Output {
        cli::weft(&self.host, env!("CARGO_BIN_EXE_weft"), &self.state, args)
    }

    /// Runs weft and returns stdout; panics with stderr on failure.
    pub fn weft_ok(&self, args: &[&str]) -> String {
        cli::weft_ok(&self.host, env!("CARGO_BIN_EXE_weft"), &self.state, args)
    }

    /// Runs weft expecting failure; returns (exit code, stderr).
    pub fn weft_err(&self, args: &[&str]) -> (i32, String) {
        let out = self.weft(args);
        assert!(
            !out.status.success(),
            "weft {} unexpectedly succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `weft network connect NET --netns NS ARGS`, returning the JSON it prints.
    pub fn connect(&self, net: &str, ns: &Ns, args: &[&str]) -> serde_json::Value {
        let path = ns.path.display().to_string();
        let mut all = vec!["network", "connect", net, "--netns", &path];
        all.extend_from_slice(args);
        serde_json::from_str(&self.weft_ok(&all)).expect("connect prints JSON")
    }

    /// Everything observable that weft may change: links, addresses and routes of the host,
    /// its nft ruleset, and the store's files. Used to show a failed command changed nothing.
    pub fn snapshot(&self) -> String {
        // Carrier state, DAD progress and IPv6 link-local addresses change on their own: leave
        // them out.
        let kernel = self.host.sh(
            "ip -o link show | sed -E 's/^[0-9]+: //; s/NO-CARRIER,//; s/,?LOWER_UP//; s/state [A-Z]+//'; \
             ip -o addr | grep -v ' fe80:' | sed -E 's/ tentative//; s/^[0-9]+: //'; \
             ip route | sed 's/ linkdown//'; ip -6 route | grep -v '^fe80:'; nft list ruleset",
        );
        let mut files = Vec::new();
        list_files(&self.state, &mut files);
        files.sort();
        let mut out = kernel;
        // Allocation cursors are hints (where the next search starts), not reservations.
        files.retain(|f| {
            !f.to_string_lossy().contains("/ipam/cursor/") && !f.ends_with("ports-cursor")
        });
        for f in files {
            let content = std::fs::read_to_string(&f).unwrap_or_default();
            out.push_str(&format!("{}: {content}\n", f.display()));
        }
        out
    }
}

/// Lines only in `a` and lines only in `b`, for assertion messages.
pub fn line_diff(a: &str, b: &str) -> String {
    let only = |x: &str, y: &str| -> Vec<String> {
        x.lines()
            .filter(|l| !y.lines().any(|m| m == *l))
            .map(str::to_string)
            .collect()
    };
    format!(
        "before only: {:#?}\nafter only: {:#?}",
        only(a, b),
        only(b, a)
    )
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            list_files(&p, out);
        } else if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The first address of `family` in a connect result.
pub fn addr_of(ep: &serde_json::Value, v6: bool) -> String {
    ep["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .map(|a| a.as_str().unwrap().split('/').next().unwrap().to_string())
        .find(|a| a.contains(':') == v6)
        .expect("address of family")
}
