//! The CNI protocol (spec 1.1.0, and configs of 0.3.0, 0.3.1, 0.4.0 and 1.0.0 answered in their
//! own version): weft as a CNI plugin of type `weft`, as an IPAM plugin (`"ipam": {"type":
//! "weft"}` under another plugin, e.g. the reference `bridge`), and as a plugin that delegates
//! its addresses to another IPAM plugin found in `CNI_PATH`.
//!
//! A runtime runs the `weft` binary with `CNI_*` variables set and the network configuration on
//! stdin; [`run`] turns that [`Invocation`] into a [`Reply`]: a result (or nothing) on stdout
//! and exit code 0, or an error result and exit code 1.
//!
//! - ADD creates the network in weft's store on first use (origin `cni`, id derived from the
//!   name; a later config that contradicts it is refused, see `network`), then connects the
//!   container: veth, addresses, routes, published ports (`runtimeConfig.portMappings`), all or
//!   nothing. A config with `cluster` (see `config`) attaches to this host's part of a cluster
//!   network instead, which only `weft daemon --cluster` creates.
//! - DEL is idempotent: an unknown network or attachment, or a namespace that is gone, is fine.
//! - CHECK compares the kernel (links, addresses, routes, published ports) and the store's
//!   reservations with the record and with prevResult.
//! - GC takes down the network's CNI attachments not listed in `cni.dev/valid-attachments`
//!   (or `cni.dev/attachments`), then leaked interfaces and reservations; a network CNI made is
//!   removed with its last attachment.
//! - STATUS answers 50 when the state directory or nft is unusable.
//!
//! Every command serialises on the state directory's lock, so parallel invocations for
//! different containers never share an address; first ADDs racing to create a network agree on
//! it because its id derives from its name.

mod args;
mod attachment;
mod check;
#[cfg(test)]
mod cluster_tests;
mod config;
mod delegate;
mod env;
mod error;
mod fields;
mod ipam_mode;
mod network;
mod plugin;
mod result;
mod version;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use weft_engine::{Controller, EngineError};

pub use args::{parse as parse_cni_args, CniArgs};
pub use config::{parse_json, version_of, NetConf, WEFT_TYPE};
pub use env::{Command, Env};
pub use error::CniError;
pub use result::CniResult;
pub use version::{Version, LATEST, SUPPORTED};

use config::IpamKind;
use delegate::Delegate;

/// What a runtime hands a plugin.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The whole environment (`CNI_*` and the rest, which delegated plugins inherit).
    pub vars: BTreeMap<String, String>,
    /// The network configuration.
    pub stdin: Vec<u8>,
}

/// What the plugin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// A result, an error result, or nothing.
    pub stdout: String,
    /// 0 on success, 1 on failure.
    pub exit_code: u8,
}

/// How the binary wires weft for CNI.
pub struct Backend<'a> {
    /// The state directory when neither the config (`stateDir`) nor `WEFT_STATE_DIR` names one.
    pub default_state_dir: &'a Path,
    /// Builds the controller over a state directory, with the drivers registered and the
    /// store lock giving up after the given time.
    pub controller: &'a dyn Fn(&Path, Duration) -> Result<Controller, EngineError>,
}

/// Runs one CNI command.
pub fn run(inv: &Invocation, backend: &Backend) -> Reply {
    // Errors answer in the config's version when it can be read at all.
    let version = serde_json::from_slice::<Value>(&inv.stdin)
        .ok()
        .and_then(|v| config::version_of(&v).ok())
        .unwrap_or(LATEST);
    match dispatch(inv, backend) {
        Ok(None) => Reply {
            stdout: String::new(),
            exit_code: 0,
        },
        Ok(Some(v)) => Reply {
            stdout: format!("{v}\n"),
            exit_code: 0,
        },
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "CNI command failed");
            Reply {
                stdout: format!("{}\n", e.to_json(version)),
                exit_code: 1,
            }
        }
    }
}

fn dispatch(inv: &Invocation, backend: &Backend) -> Result<Option<Value>, CniError> {
    let env = Env::from_vars(&inv.vars)?;
    if env.command == Command::Version {
        return Ok(Some(version_reply(&inv.stdin)));
    }
    let root = config::parse_json(&inv.stdin)?;
    let conf = NetConf::parse(&root)?;
    for key in config::unknown_keys(&root) {
        tracing::warn!(%key, "the network configuration has a key weft does not know: {key}; weft ignores it (fine if another plugin or the runtime reads it, else check its spelling and place)");
    }
    // Misplaced keys refuse ADD and CHECK. DEL, GC and STATUS only warn: a container attached
    // under an older weft, which ignored them, must still be removable.
    if let Err(e) = config::misplaced_keys(&root) {
        match env.command {
            Command::Add | Command::Check => return Err(e),
            _ => tracing::warn!(error = %e, "the network configuration has misplaced keys"),
        }
    }
    check_command_version(env.command, conf.version)?;
    if let Some(dir) = conf.configured_state_dir().filter(|d| d.is_relative()) {
        // Relative to whatever directory the runtime happens to run plugins in: a different
        // store (or one another user controls) from one invocation to the next.
        return Err(CniError::InvalidConfig(format!(
            "stateDir {:?} is a relative path; give an absolute one such as \"/var/lib/weft\"",
            dir.display().to_string()
        )));
    }
    let state_dir = conf
        .configured_state_dir()
        .cloned()
        .or_else(|| {
            inv.vars
                .get("WEFT_STATE_DIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| backend.default_state_dir.to_path_buf());
    let cni_args = args::parse(&env.args)?;
    let ctx = Ctx {
        env,
        cni_args,
        conf,
        vars: &inv.vars,
        stdin: &inv.stdin,
        state_dir,
        backend,
    };
    if ctx.conf.plugin_type == WEFT_TYPE {
        plugin::run(&ctx)
    } else if root["ipam"]["type"] == WEFT_TYPE {
        ipam_mode::run(&ctx)
    } else {
        Err(CniError::InvalidConfig(format!(
            "weft was run for a plugin of type {:?} whose ipam.type is not \"weft\"; set \"type\": \"weft\" or \"ipam\": {{\"type\": \"weft\"}}",
            ctx.conf.plugin_type
        )))
    }
}

/// VERSION: answered in the version asked (when weft speaks it), else the latest.
fn version_reply(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| config::version_of(&v).ok())
        .unwrap_or(LATEST);
    json!({
        "cniVersion": asked.as_str(),
        "supportedVersions": SUPPORTED.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

fn check_command_version(command: Command, version: Version) -> Result<(), CniError> {
    let ok = match command {
        Command::Check => version.has_check(),
        Command::Status | Command::Gc => version.has_status_and_gc(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(CniError::IncompatibleVersion(format!(
            "{command} does not exist in CNI {version}; it needs cniVersion {} or later",
            if command == Command::Check {
                "0.4.0"
            } else {
                "1.1.0"
            }
        )))
    }
}

/// One command's inputs.
pub(crate) struct Ctx<'a> {
    pub env: Env,
    /// `CNI_ARGS`, parsed (unknown keys refused unless `IgnoreUnknown`).
    pub cni_args: args::CniArgs,
    pub conf: NetConf,
    pub vars: &'a BTreeMap<String, String>,
    pub stdin: &'a [u8],
    pub state_dir: PathBuf,
    pub backend: &'a Backend<'a>,
}

impl Ctx<'_> {
    /// The controller; its operations answer code 11 when another process holds the state
    /// directory for longer than `lockTimeout`.
    pub fn controller(&self) -> Result<Controller, CniError> {
        (self.backend.controller)(&self.state_dir, self.conf.lock_timeout).map_err(|e| {
            CniError::Io(format!(
                "cannot open weft's state directory {}: {e}",
                self.state_dir.display()
            ))
        })
    }

    /// Static addresses asked for: `runtimeConfig.ips`, else `args.cni.ips`, else `CNI_ARGS`
    /// `IP=`.
    pub fn static_ips(&self) -> Vec<std::net::IpAddr> {
        match self.conf.static_ips() {
            [] => self.cni_args.ips.clone(),
            some => some.to_vec(),
        }
    }

    /// The MAC asked for, from the same places in the same order.
    pub fn mac(&self) -> Option<weft_drivers::MacAddr> {
        self.conf.mac().or(self.cni_args.mac)
    }

    /// The delegated IPAM plugin, if the config names one.
    pub fn ipam_delegate(&self) -> Option<Delegate<'_>> {
        match &self.conf.ipam.kind {
            IpamKind::Weft => None,
            IpamKind::Plugin(p) => Some(Delegate {
                plugin: p,
                vars: self.vars,
                path: &self.env.path,
                stdin: self.stdin,
            }),
        }
    }

    /// The state directory for messages.
    pub fn state_dir_text(&self) -> String {
        self.state_dir.display().to_string()
    }

    /// The attachment for messages: `container c1, interface eth0`.
    pub fn attachment_text(&self) -> String {
        format!(
            "container {}, interface {}",
            self.env.container_id, self.env.ifname
        )
    }
}

/// Folds a teardown's collected errors into one that names them all, with the first one's code.
pub(crate) fn collect(mut errors: Vec<CniError>) -> Result<(), CniError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            let text = errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            Err(errors
                .remove(0)
                .map_message(|_| format!("{n} failures: {text}")))
        }
    }
}
