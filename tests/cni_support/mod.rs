//! Running CNI plugins exactly as a runtime does: the `CNI_*` environment, the network
//! configuration on stdin, inside the test world's host namespace; and the configs the tests
//! share.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use weft_drivers::netns::Netns;

use crate::support::{Ns, World};

/// The reference plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// What a plugin answered.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The result of a successful command (panics with the output otherwise).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: {}{}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.stdout).expect("stdout is JSON")
        }
    }

    /// The error result of a failed command, checked to carry `code` (and to be a well-formed
    /// CNI error: cniVersion, code, msg).
    pub fn err(&self, code: u64) -> Value {
        assert_ne!(
            self.code, 0,
            "plugin unexpectedly succeeded: {}",
            self.stdout
        );
        let v: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("error result is not JSON ({e}): {:?}", self.stdout));
        assert_eq!(
            v["code"], code,
            "wrong error code: {v}\nstderr: {}",
            self.stderr
        );
        assert!(v["cniVersion"].is_string(), "{v}");
        assert!(!v["msg"].as_str().unwrap_or("").is_empty(), "{v}");
        v
    }
}

/// One invocation's environment.
#[derive(Clone, Debug)]
pub struct Call {
    pub command: String,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: Option<String>,
    pub path: Option<String>,
    /// Variables to leave out entirely (to test their absence).
    pub unset: Vec<&'static str>,
}

impl Call {
    /// `command` for container `cid` in `ns` on `eth0`, with CNI_PATH holding weft and the
    /// reference plugins.
    pub fn new(command: &str, cid: &str, ns: Option<&Ns>) -> Call {
        Call {
            command: command.into(),
            container_id: cid.into(),
            netns: ns.map(|n| n.path.clone()),
            ifname: "eth0".into(),
            args: None,
            path: None,
            unset: Vec::new(),
        }
    }

    pub fn ifname(mut self, name: &str) -> Call {
        self.ifname = name.into();
        self
    }

    pub fn args(mut self, args: &str) -> Call {
        self.args = Some(args.into());
        self
    }
}

/// A world's host namespace as a CNI runtime: runs plugins there, against the world's state.
pub struct Runtime {
    pub host: Netns,
    /// weft and the reference plugins.
    pub bin_dir: PathBuf,
    pub state: PathBuf,
}

impl Runtime {
    /// A CNI plugin directory holding `weft` (a link to the built binary) next to the world.
    pub fn new(w: &World) -> Runtime {
        let bin_dir = w.dir().join("cni-bin");
        std::fs::create_dir_all(&bin_dir).expect("mkdir cni-bin");
        let link = bin_dir.join("weft");
        if !link.exists() {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_weft"), &link).expect("link weft");
        }
        Runtime {
            host: w.host.open(),
            bin_dir,
            state: w.state.clone(),
        }
    }

    /// `CNI_PATH`: weft's directory, then the reference plugins'.
    pub fn cni_path(&self) -> String {
        format!("{}:{REFERENCE_DIR}", self.bin_dir.display())
    }

    /// Runs `plugin` (a name in CNI_PATH or a path) with `call`'s environment and `conf` on stdin.
    pub fn exec(&self, plugin: &str, call: &Call, conf: &Value) -> Out {
        self.exec_raw(plugin, call, conf.to_string().as_bytes())
    }

    /// Like `exec`, with any bytes on stdin.
    pub fn exec_raw(&self, plugin: &str, call: &Call, stdin: &[u8]) -> Out {
        let exe = if plugin.contains('/') {
            PathBuf::from(plugin)
        } else {
            [self.bin_dir.as_path(), Path::new(REFERENCE_DIR)]
                .iter()
                .map(|d| d.join(plugin))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("plugin {plugin} not found"))
        };
        let mut cmd = Command::new(exe);
        cmd.env_remove("WEFT_STATE_DIR")
            .env("CNI_COMMAND", &call.command)
            .env("CNI_CONTAINERID", &call.container_id)
            .env("CNI_IFNAME", &call.ifname)
            .env(
                "CNI_PATH",
                call.path.clone().unwrap_or_else(|| self.cni_path()),
            );
        if let Some(ns) = &call.netns {
            cmd.env("CNI_NETNS", ns);
        }
        if let Some(a) = &call.args {
            cmd.env("CNI_ARGS", a);
        }
        for k in &call.unset {
            cmd.env_remove(k);
        }
        spawn_in(&self.host, cmd, stdin)
    }

    /// Runs weft.
    pub fn weft(&self, call: &Call, conf: &Value) -> Out {
        self.exec("weft", call, conf)
    }

    /// `weft ARGS` (the CLI) against this world's state, inside the host namespace.
    pub fn cli(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
        cmd.env_remove("CNI_COMMAND")
            .arg("--state-dir")
            .arg(&self.state)
            .args(args);
        spawn_in(&self.host, cmd, b"")
    }
}

/// Runs `cmd` with the test's namespaces except the network one, which is `host`.
pub fn spawn_in(host: &Netns, mut cmd: Command, stdin: &[u8]) -> Out {
    let stdin = stdin.to_vec();
    host.run(move || {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn plugin");
        let mut pipe = child.stdin.take().expect("stdin");
        // A plugin may exit before reading (bad environment): a broken pipe is fine.
        let _ = pipe.write_all(&stdin);
        drop(pipe);
        let out = child.wait_with_output().expect("wait for plugin");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .expect("enter the host namespace")
}

/// A weft config: `cniVersion` `version`, network `name`, the world's state directory, and
/// `extra` keys merged in.
pub fn conf(version: &str, name: &str, state: &Path, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": name,
        "type": "weft",
        "stateDir": state,
    });
    merge(&mut c, extra);
    c
}

/// Sets `extra`'s keys on `base` (objects only).
pub fn merge(base: &mut Value, extra: Value) {
    if let Value::Object(m) = extra {
        for (k, v) in m {
            base[k] = v;
        }
    }
}

/// `conf` with `prevResult` set.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The container-interface addresses of a result.
pub fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .map(|ip| ip["address"].as_str().expect("address").to_string())
        .collect()
}

/// The first IPv4 address of a result, without its prefix length.
pub fn v4(result: &Value) -> String {
    addresses(result)
        .into_iter()
        .find(|a| !a.contains(':'))
        .expect("an IPv4 address")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Whether the reference plugins are installed; prints why not.
pub fn reference_or_skip(test: &str) -> bool {
    if Path::new(REFERENCE_DIR).join("bridge").exists() {
        true
    } else {
        eprintln!("SKIP {test}: the reference CNI plugins are missing from {REFERENCE_DIR} (scripts/install-deps)");
        false
    }
}
