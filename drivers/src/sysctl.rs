//! Sysctls as `/proc/sys` writes (never the `sysctl` program).
//!
//! `/proc/sys/net` shows the network namespace of the calling thread, so to change a sysctl in
//! another namespace call these from [`crate::netns::Netns::run`].
//!
//! Keys use the slash form, `net/ipv4/ip_forward`. The dotted form `net.ipv4.ip_forward` is
//! accepted as `sysctl(8)` accepts it (every `.` becomes `/`) when the key holds no `/`; an
//! interface name containing `.` (`eth0.100`) therefore needs the slash form — build those keys
//! with [`iface_key`].

use std::io::{self, Write};
use std::path::PathBuf;

use crate::error::DriverError;

type Result<T> = std::result::Result<T, DriverError>;

const PROC_SYS: &str = "/proc/sys";

/// Sets `key` to `value`, like `sysctl -w`. Does not write when the value is already set (a write
/// can have side effects, e.g. `forwarding` resets other per-interface settings).
pub fn write(key: &str, value: &str) -> Result<()> {
    let path = path_of(key)?;
    if read_path(key, &path)? == value.trim() {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| io_error(key, &e))?;
    file.write_all(value.as_bytes())
        .map_err(|e| sysctl_error(key, format!("cannot write {value:?}: {e}")))
}

/// The current value of `key`, trimmed, like `sysctl -n`.
pub fn read(key: &str) -> Result<String> {
    let path = path_of(key)?;
    read_path(key, &path)
}

/// Whether `key` exists here (a kernel built without IPv6 has no `net/ipv6`).
pub fn exists(key: &str) -> bool {
    path_of(key).is_ok_and(|p| p.exists())
}

/// The per-interface key `net/<family>/conf/<iface>/<name>`; `family` is `ipv4` or `ipv6`.
pub fn iface_key(family: &str, iface: &str, name: &str) -> String {
    format!("net/{family}/conf/{iface}/{name}")
}

/// The slash-form key with its dotted form translated, validated so it cannot escape /proc/sys.
fn normalize(key: &str) -> Result<String> {
    let key = key.trim();
    let key = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let well_formed = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if well_formed {
        Ok(key)
    } else {
        Err(sysctl_error(
            &key,
            "invalid key: use the form net/ipv4/ip_forward".into(),
        ))
    }
}

fn path_of(key: &str) -> Result<PathBuf> {
    Ok(PathBuf::from(PROC_SYS).join(normalize(key)?))
}

fn read_path(key: &str, path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|v| v.trim().to_string())
        .map_err(|e| io_error(key, &e))
}

fn io_error(key: &str, e: &io::Error) -> DriverError {
    let message = match e.kind() {
        io::ErrorKind::NotFound => "no such key in this network namespace: the interface may \
                                    not exist here, or the feature (e.g. IPv6) is disabled"
            .to_string(),
        io::ErrorKind::PermissionDenied => format!("{e}: this needs root"),
        _ => e.to_string(),
    };
    sysctl_error(key, message)
}

fn sysctl_error(key: &str, message: String) -> DriverError {
    DriverError::Sysctl {
        key: key.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slash_forms() {
        assert_eq!(
            normalize("net.ipv4.ip_forward").unwrap(),
            "net/ipv4/ip_forward"
        );
        assert_eq!(
            normalize("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            "net/ipv4/conf/eth0.100/forwarding"
        );
    }

    #[test]
    fn keys_cannot_escape_proc_sys() {
        for bad in [
            "",
            "/etc/passwd",
            "net/../../etc/passwd",
            "net//ipv4",
            "net/ipv4/",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn iface_key_keeps_dots() {
        assert_eq!(
            iface_key("ipv4", "br.1", "route_localnet"),
            "net/ipv4/conf/br.1/route_localnet"
        );
    }

    #[test]
    fn missing_key_is_named() {
        let err = read("net/ipv4/conf/weft-no-such-if/forwarding").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("weft-no-such-if"), "{text}");
        assert!(text.contains("no such key"), "{text}");
    }
}
