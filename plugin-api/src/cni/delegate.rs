//! Running another plugin (a delegated IPAM plugin such as `host-local`) the way a runtime runs
//! weft: found in `CNI_PATH`, given the same environment and stdin, with `CNI_COMMAND` set to
//! the command wanted.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use super::env::Command;
use super::error::CniError;
use super::version::Version;

/// A plugin weft hands work to.
pub struct Delegate<'a> {
    /// The plugin's `type` (its executable's name).
    pub plugin: &'a str,
    /// The environment weft was given (forwarded whole; `CNI_COMMAND` is replaced).
    pub vars: &'a BTreeMap<String, String>,
    /// Directories of `CNI_PATH`.
    pub path: &'a [PathBuf],
    /// The network configuration weft was given.
    pub stdin: &'a [u8],
}

impl Delegate<'_> {
    /// The plugin's executable in `CNI_PATH`.
    pub fn find(&self) -> Result<PathBuf, CniError> {
        if self.plugin.is_empty() || self.plugin.contains('/') {
            return Err(CniError::InvalidConfig(format!(
                "ipam.type {:?} is not a plugin name",
                self.plugin
            )));
        }
        self.path
            .iter()
            .map(|dir| dir.join(self.plugin))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                CniError::InvalidConfig(format!(
                    "IPAM plugin {:?} is not in CNI_PATH ({}); install it or fix ipam.type",
                    self.plugin,
                    self.path
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                ))
            })
    }

    /// Runs `command` and returns what the plugin printed (`None` when it printed nothing, as
    /// DEL and CHECK do). A plugin's error result becomes `CniError::Delegated` with its code.
    pub fn run(&self, command: Command) -> Result<Option<Value>, CniError> {
        let exe = self.find()?;
        let mut child = Process::new(&exe)
            .env_clear()
            .envs(self.vars)
            .env("CNI_COMMAND", command.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CniError::Io(format!("cannot run {}: {e}", exe.display())))?;
        let fed = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(self.stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| CniError::Io(format!("waiting for {}: {e}", exe.display())))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(self.failure(&stdout, &String::from_utf8_lossy(&out.stderr), out.status));
        }
        fed.map_err(|e| CniError::Io(format!("writing to {}: {e}", exe.display())))?;
        if stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&stdout).map(Some).map_err(|e| {
            CniError::Decoding(format!(
                "{} plugin printed something that is not JSON ({e}): {}",
                self.plugin,
                stdout.trim()
            ))
        })
    }

    /// Whether the plugin speaks `version` (asked with VERSION).
    pub fn speaks(&self, version: Version) -> Result<bool, CniError> {
        let reply = self.run(Command::Version)?.unwrap_or(Value::Null);
        Ok(reply["supportedVersions"]
            .as_array()
            .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(version.as_str()))))
    }

    fn failure(&self, stdout: &str, stderr: &str, status: std::process::ExitStatus) -> CniError {
        match serde_json::from_str::<Value>(stdout) {
            Ok(v) if v["code"].is_u64() => CniError::Delegated {
                plugin: self.plugin.to_string(),
                code: v["code"].as_u64().unwrap_or(999) as u32,
                msg: v["msg"].as_str().unwrap_or("").to_string(),
                details: v["details"].as_str().unwrap_or("").to_string(),
            },
            _ => CniError::Io(format!(
                "{} plugin failed ({status}) without an error result: {}{}",
                self.plugin,
                stdout.trim(),
                stderr.trim()
            )),
        }
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn delegate<'a>(
        plugin: &'a str,
        vars: &'a BTreeMap<String, String>,
        path: &'a [PathBuf],
    ) -> Delegate<'a> {
        Delegate {
            plugin,
            vars,
            path,
            stdin: b"{\"cniVersion\":\"1.0.0\"}",
        }
    }

    #[test]
    fn runs_the_plugin_with_the_command_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "echoer",
            r#"read conf; printf '{"cmd":"%s","conf":%s,"x":"%s"}' "$CNI_COMMAND" "$conf" "$X""#,
        );
        let vars = BTreeMap::from([("X".to_string(), "kept".to_string())]);
        let path = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        let v = delegate("echoer", &vars, &path)
            .run(Command::Add)
            .unwrap()
            .unwrap();
        assert_eq!(v["cmd"], "ADD");
        assert_eq!(v["conf"]["cniVersion"], "1.0.0");
        assert_eq!(v["x"], "kept");
    }

    #[test]
    fn error_results_keep_the_plugins_code() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "busy",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"d"}'; exit 1"#,
        );
        script(dir.path(), "crash", "cat >/dev/null; echo boom >&2; exit 2");
        let vars = BTreeMap::new();
        let path = vec![dir.path().to_path_buf()];
        let e = delegate("busy", &vars, &path)
            .run(Command::Add)
            .unwrap_err();
        assert_eq!(e.code(), 11);
        let e = delegate("crash", &vars, &path)
            .run(Command::Add)
            .unwrap_err();
        assert_eq!(e.code(), crate::cni::error::IO_FAILURE);
        assert!(e.to_string().contains("boom"), "{e}");
    }

    #[test]
    fn missing_plugins_are_invalid_config() {
        let vars = BTreeMap::new();
        let path = vec![PathBuf::from("/nonexistent")];
        for name in ["nope", "../bin/sh", ""] {
            let e = delegate(name, &vars, &path).find().unwrap_err();
            assert_eq!(e.code(), crate::cni::error::INVALID_CONFIG, "{name}");
        }
    }
}
