//! CNI errors: the spec's well-known codes plus weft's own (100 and up), and the error result a
//! plugin prints on stdout before exiting non-zero.
//!
//! | code | meaning (spec)                          | weft uses it for                                     |
//! |------|-----------------------------------------|------------------------------------------------------|
//! | 1    | incompatible CNI version                | a cniVersion weft does not speak; CHECK before 0.4.0, STATUS/GC before 1.1.0 |
//! | 2    | unsupported field in the network config | a reference-bridge feature weft does not have (`vlan`, `promiscMode`, …) |
//! | 3    | container unknown or does not exist     | CHECK of an attachment weft has no record of; a namespace that is gone |
//! | 4    | invalid necessary environment variables | missing or malformed `CNI_*` variables, unknown `CNI_ARGS` keys |
//! | 5    | I/O failure                             | the kernel, nft or the state directory failed         |
//! | 6    | failed to decode content                | stdin is not JSON, a known field has the wrong type, a bad prevResult |
//! | 7    | invalid network config                  | values that cannot work (bad subnet, missing name), a config that contradicts the recorded network |
//! | 11   | try again later                         | the state directory stayed locked past `lockTimeout`; transient kernel errors |
//! | 50   | plugin not available                    | STATUS: the state directory or nft is unusable        |
//! | 100  | (weft) conflict                         | an address, host port or interface name is taken; a pool is exhausted |
//! | 101  | (weft) drift                            | CHECK found the kernel or the store differing from the record |
//!
//! A delegated IPAM plugin's error keeps that plugin's code.

use serde_json::{json, Value};
use thiserror::Error;
use weft_drivers::DriverError;
use weft_engine::{EngineError, ErrorClass};

use super::version::Version;

/// Why a CNI command failed. Each variant is one error code (see the module docs).
#[derive(Debug, Error)]
pub enum CniError {
    /// Code 1.
    #[error("{0}")]
    IncompatibleVersion(String),
    /// Code 2: the message names the key and its value, as the spec asks.
    #[error("unsupported field {key}={value}: {reason}")]
    UnsupportedField {
        key: String,
        value: String,
        reason: String,
    },
    /// Code 3.
    #[error("{0}")]
    UnknownContainer(String),
    /// Code 4.
    #[error("{0}")]
    Environment(String),
    /// Code 5.
    #[error("{0}")]
    Io(String),
    /// Code 6.
    #[error("{0}")]
    Decoding(String),
    /// Code 7.
    #[error("{0}")]
    InvalidConfig(String),
    /// Code 11.
    #[error("{0}")]
    TryAgainLater(String),
    /// Code 50.
    #[error("{0}")]
    NotAvailable(String),
    /// Code 100.
    #[error("{0}")]
    Conflict(String),
    /// Code 101.
    #[error("{0}")]
    Drift(String),
    /// An error result from a plugin weft delegated to, with that plugin's code.
    #[error("{plugin} plugin: {msg}")]
    Delegated {
        plugin: String,
        code: u32,
        msg: String,
        details: String,
    },
}

/// Spec code 1.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Spec code 2.
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Spec code 3.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Spec code 4.
pub const INVALID_ENVIRONMENT: u32 = 4;
/// Spec code 5.
pub const IO_FAILURE: u32 = 5;
/// Spec code 6.
pub const DECODING_FAILURE: u32 = 6;
/// Spec code 7.
pub const INVALID_CONFIG: u32 = 7;
/// Spec code 11.
pub const TRY_AGAIN_LATER: u32 = 11;
/// Spec code 50.
pub const NOT_AVAILABLE: u32 = 50;
/// weft: something the request needs is taken.
pub const CONFLICT: u32 = 100;
/// weft: CHECK found state differing from the record.
pub const DRIFT: u32 = 101;

impl CniError {
    /// The error code of the CNI error result.
    pub fn code(&self) -> u32 {
        match self {
            CniError::IncompatibleVersion(_) => INCOMPATIBLE_VERSION,
            CniError::UnsupportedField { .. } => UNSUPPORTED_FIELD,
            CniError::UnknownContainer(_) => UNKNOWN_CONTAINER,
            CniError::Environment(_) => INVALID_ENVIRONMENT,
            CniError::Io(_) => IO_FAILURE,
            CniError::Decoding(_) => DECODING_FAILURE,
            CniError::InvalidConfig(_) => INVALID_CONFIG,
            CniError::TryAgainLater(_) => TRY_AGAIN_LATER,
            CniError::NotAvailable(_) => NOT_AVAILABLE,
            CniError::Conflict(_) => CONFLICT,
            CniError::Drift(_) => DRIFT,
            CniError::Delegated { code, .. } => *code,
        }
    }

    /// The error result: `{"cniVersion", "code", "msg", "details"}`.
    pub fn to_json(&self, version: Version) -> Value {
        let details = match self {
            CniError::Delegated { details, .. } => details.clone(),
            _ => String::new(),
        };
        let mut v = json!({
            "cniVersion": version.as_str(),
            "code": self.code(),
            "msg": self.to_string(),
        });
        if !details.is_empty() {
            v["details"] = json!(details);
        }
        v
    }

    /// Prefixes the message with what was being done (`"DEL of eth0"`), keeping the code.
    pub fn context(self, what: &str) -> CniError {
        self.map_message(|m| format!("{what}: {m}"))
    }

    /// The same error (same code) with its message rewritten; the structured variants
    /// (unsupported field, delegated) keep theirs.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> CniError {
        match self {
            CniError::IncompatibleVersion(m) => CniError::IncompatibleVersion(f(m)),
            CniError::UnknownContainer(m) => CniError::UnknownContainer(f(m)),
            CniError::Environment(m) => CniError::Environment(f(m)),
            CniError::Io(m) => CniError::Io(f(m)),
            CniError::Decoding(m) => CniError::Decoding(f(m)),
            CniError::InvalidConfig(m) => CniError::InvalidConfig(f(m)),
            CniError::TryAgainLater(m) => CniError::TryAgainLater(f(m)),
            CniError::NotAvailable(m) => CniError::NotAvailable(f(m)),
            CniError::Conflict(m) => CniError::Conflict(f(m)),
            CniError::Drift(m) => CniError::Drift(f(m)),
            other => other,
        }
    }
}

/// Kernel answers that mean "busy right now": retrying later can succeed.
fn is_transient(e: &DriverError) -> bool {
    match e {
        DriverError::Many(all) => all.iter().all(is_transient),
        _ => matches!(
            e.errno(),
            Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR)
        ),
    }
}

impl From<EngineError> for CniError {
    fn from(e: EngineError) -> Self {
        if let EngineError::Store(weft_ipam::StoreError::LockTimeout { .. }) = &e {
            return CniError::TryAgainLater(e.to_string());
        }
        if let EngineError::Driver(d) = &e {
            if is_transient(d) {
                return CniError::TryAgainLater(format!("{e}; try again"));
            }
            if matches!(d, DriverError::Netns { .. }) {
                return CniError::UnknownContainer(e.to_string());
            }
        }
        let text = e.to_string();
        match e.class() {
            ErrorClass::Invalid => CniError::InvalidConfig(text),
            ErrorClass::NotFound => CniError::UnknownContainer(text),
            ErrorClass::Conflict => CniError::Conflict(text),
            ErrorClass::System => CniError::Io(text),
        }
    }
}

impl From<DriverError> for CniError {
    fn from(e: DriverError) -> Self {
        CniError::from(EngineError::Driver(e))
    }
}

impl From<weft_ipam::IpamError> for CniError {
    fn from(e: weft_ipam::IpamError) -> Self {
        CniError::from(EngineError::Ipam(e))
    }
}

impl From<weft_ipam::StoreError> for CniError {
    fn from(e: weft_ipam::StoreError) -> Self {
        CniError::from(EngineError::Store(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_result_has_the_spec_fields() {
        let e = CniError::UnsupportedField {
            key: "vlan".into(),
            value: "100".into(),
            reason: "weft bridges have no VLANs".into(),
        };
        let v = e.to_json(Version::V1_0_0);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 2);
        let msg = v["msg"].as_str().unwrap();
        assert!(msg.contains("vlan") && msg.contains("100"), "{msg}");
        assert!(v.get("details").is_none());
    }

    #[test]
    fn delegated_errors_keep_their_code_and_details() {
        let e = CniError::Delegated {
            plugin: "host-local".into(),
            code: 11,
            msg: "busy".into(),
            details: "lock".into(),
        };
        let v = e.to_json(Version::V0_4_0);
        assert_eq!(v["code"], 11);
        assert_eq!(v["details"], "lock");
        assert!(v["msg"].as_str().unwrap().starts_with("host-local plugin"));
    }

    #[test]
    fn engine_errors_map_by_class() {
        let invalid = CniError::from(EngineError::Invalid("x".into()));
        assert_eq!(invalid.code(), INVALID_CONFIG);
        let conflict = CniError::from(EngineError::InUse("port".into()));
        assert_eq!(conflict.code(), CONFLICT);
        let busy = CniError::from(DriverError::Netlink {
            op: "add",
            object: "veth".into(),
            message: "busy".into(),
            errno: libc::EBUSY,
        });
        assert_eq!(busy.code(), TRY_AGAIN_LATER);
        let gone = CniError::from(DriverError::Netns {
            path: "/x".into(),
            message: "gone".into(),
        });
        assert_eq!(gone.code(), UNKNOWN_CONTAINER);
        let io = CniError::from(DriverError::Firewall {
            message: "nft".into(),
        });
        assert_eq!(io.code(), IO_FAILURE);
    }
}
