//! The `CNI_*` environment a runtime sets: which command, for which container and interface,
//! in which namespace, and where other plugins live.
//!
//! Required per command (an empty variable counts as missing), as the spec and the reference
//! `skel` package have it:
//!
//! | variable          | ADD | DEL | CHECK | STATUS | GC | VERSION |
//! |-------------------|-----|-----|-------|--------|----|---------|
//! | `CNI_CONTAINERID` | yes | yes | yes   |        |    |         |
//! | `CNI_NETNS`       | yes |     | yes   |        |    |         |
//! | `CNI_IFNAME`      | yes | yes | yes   |        |    |         |
//! | `CNI_PATH`        | yes | yes | yes   | yes    | yes|         |

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::error::CniError;

/// The operation a runtime asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Detach it; idempotent.
    Del,
    /// Verify an attachment against what ADD made.
    Check,
    /// Report whether the plugin can serve ADDs.
    Status,
    /// Remove what belongs to attachments the runtime no longer knows.
    Gc,
    /// Report the spec versions the plugin speaks.
    Version,
}

impl Command {
    /// Parses `CNI_COMMAND`.
    pub fn parse(s: &str) -> Result<Command, CniError> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "STATUS" => Ok(Command::Status),
            "GC" => Ok(Command::Gc),
            "VERSION" => Ok(Command::Version),
            other => Err(CniError::Environment(format!(
                "CNI_COMMAND={other:?} is not a CNI command; use ADD, DEL, CHECK, STATUS, GC or VERSION"
            ))),
        }
    }

    fn needs_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }

    fn needs_netns(self) -> bool {
        matches!(self, Command::Add | Command::Check)
    }

    fn needs_path(self) -> bool {
        self != Command::Version
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        })
    }
}

/// The validated `CNI_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// `CNI_CONTAINERID`; empty for STATUS, GC and VERSION.
    pub container_id: String,
    /// `CNI_NETNS`; may be absent on DEL.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`; empty for STATUS, GC and VERSION.
    pub ifname: String,
    /// `CNI_ARGS`, unparsed (see `args`).
    pub args: String,
    /// `CNI_PATH`, split.
    pub path: Vec<PathBuf>,
}

impl Env {
    /// Reads and checks the variables `command` needs; every missing one is named at once.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Env, CniError> {
        let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let command = Command::parse(get("CNI_COMMAND").ok_or_else(|| {
            CniError::Environment(
                "CNI_COMMAND is not set: weft runs as a CNI plugin only when a runtime sets it"
                    .into(),
            )
        })?)?;
        let mut missing = Vec::new();
        let mut want = |k: &'static str, needed: bool| -> String {
            match get(k) {
                Some(v) => v.to_string(),
                None => {
                    if needed {
                        missing.push(k);
                    }
                    String::new()
                }
            }
        };
        let container_id = want("CNI_CONTAINERID", command.needs_attachment());
        let netns = want("CNI_NETNS", command.needs_netns());
        let ifname = want("CNI_IFNAME", command.needs_attachment());
        let path = want("CNI_PATH", command.needs_path());
        if !missing.is_empty() {
            return Err(CniError::Environment(format!(
                "{command} needs {} set",
                missing.join(", ")
            )));
        }
        if command.needs_attachment() {
            check_container_id(&container_id)?;
            check_ifname(&ifname)?;
        }
        Ok(Env {
            command,
            container_id,
            netns: (!netns.is_empty()).then(|| PathBuf::from(netns)),
            ifname,
            args: get("CNI_ARGS").unwrap_or_default().to_string(),
            path: std::env::split_paths(&path)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        })
    }
}

/// Longest container id weft accepts.
pub const MAX_CONTAINER_ID_LEN: usize = 256;

/// The spec's rule: an alphanumeric first character, then alphanumerics, `_`, `.` or `-`.
pub fn check_container_id(id: &str) -> Result<(), CniError> {
    // The spec gives no length; runtimes use 64 hex characters. Longer than this is not an id
    // but an attack on the store (weft records it with the endpoint).
    if id.len() > MAX_CONTAINER_ID_LEN {
        return Err(CniError::Environment(format!(
            "CNI_CONTAINERID is {} characters long (it starts {:?}); weft takes at most {MAX_CONTAINER_ID_LEN}",
            id.len(),
            id.chars().take(32).collect::<String>()
        )));
    }
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(CniError::Environment(format!(
            "CNI_CONTAINERID={id:?} is invalid: it must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        )))
    }
}

/// The spec's rule for `CNI_IFNAME`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn check_ifname(name: &str) -> Result<(), CniError> {
    let problem = if name.is_empty() || name.len() > 15 {
        Some("interface names are 1 to 15 bytes long")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are not interface names")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("'/', ':' and whitespace are not allowed")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(CniError::Environment(format!(
            "CNI_IFNAME={name:?} is invalid: {why}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::INVALID_ENVIRONMENT;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_needs_everything_and_names_what_is_missing() {
        let e = Env::from_vars(&vars(&[("CNI_COMMAND", "ADD"), ("CNI_NETNS", "")])).unwrap_err();
        assert_eq!(e.code(), INVALID_ENVIRONMENT);
        let m = e.to_string();
        for k in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
            assert!(m.contains(k), "{m}");
        }
    }

    #[test]
    fn del_does_without_a_namespace() {
        let env = Env::from_vars(&vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/a:/b"),
        ]))
        .unwrap();
        assert_eq!(env.netns, None);
        assert_eq!(env.path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn version_needs_only_the_command() {
        let env = Env::from_vars(&vars(&[("CNI_COMMAND", "VERSION")])).unwrap();
        assert_eq!(env.command, Command::Version);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Command::parse("FROB").is_err());
        assert!(Env::from_vars(&vars(&[])).is_err());
        for id in ["", "-x", "a b", "a/b", "é"] {
            assert!(check_container_id(id).is_err(), "{id:?}");
        }
        for n in ["", ".", "..", "a/b", "a:b", "a b", "0123456789abcdef"] {
            assert!(check_ifname(n).is_err(), "{n:?}");
        }
        check_container_id("f87764c3c173_a.b-c").unwrap();
        check_container_id(&"a".repeat(MAX_CONTAINER_ID_LEN)).unwrap();
        let e = check_container_id(&"a".repeat(100_000))
            .unwrap_err()
            .to_string();
        assert!(e.contains("100000 characters") && e.len() < 300, "{e}");
        check_ifname("eth0").unwrap();
    }
}
