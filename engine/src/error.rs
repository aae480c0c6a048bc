use thiserror::Error;
use weft_drivers::DriverError;
use weft_ipam::{IpamError, StoreError};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{kind} {name:?} not found{hint}")]
    NotFound {
        kind: &'static str,
        name: String,
        /// Starts with "; " when present.
        hint: String,
    },
    #[error("{kind} {name:?} already exists; {hint}")]
    Exists {
        kind: &'static str,
        name: String,
        hint: String,
    },
    #[error("{0}")]
    InUse(String),
    /// The system failed in a way no other variant describes (a runtime, a signal handler,
    /// several problems at once).
    #[error("{0}")]
    System(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{what} is ambiguous: it matches {matches}; give more of the id or the full name")]
    Ambiguous { what: String, matches: String },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// How a failure should end a command (the CLI's exit code, the CNI error code, the HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is wrong.
    Invalid,
    NotFound,
    /// A name, address or port is taken, or an object still in use.
    Conflict,
    /// The system failed (kernel, store, I/O).
    System,
}

impl EngineError {
    pub fn class(&self) -> ErrorClass {
        use weft_ipam::IpamError as I;
        match self {
            EngineError::NotFound { .. } => ErrorClass::NotFound,
            EngineError::Exists { .. } | EngineError::InUse(_) => ErrorClass::Conflict,
            EngineError::Invalid(_) | EngineError::Ambiguous { .. } => ErrorClass::Invalid,
            EngineError::Ipam(e) => match e {
                I::Store(_) => ErrorClass::System,
                I::UnknownPool { .. } => ErrorClass::NotFound,
                I::Overlap { .. }
                | I::Exhausted { .. }
                | I::AddressInUse { .. }
                | I::PoolInUse { .. }
                | I::NoDefaultPool { .. } => ErrorClass::Conflict,
                _ => ErrorClass::Invalid,
            },
            EngineError::Driver(e) => match e {
                DriverError::InvalidOption { .. } | DriverError::Invalid(_) => ErrorClass::Invalid,
                DriverError::Exists { .. } => ErrorClass::Conflict,
                DriverError::Netns { .. } => ErrorClass::Invalid,
                _ => ErrorClass::System,
            },
            EngineError::Store(_) | EngineError::Corrupt { .. } | EngineError::System(_) => {
                ErrorClass::System
            }
        }
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>, hint: &str) -> Self {
        EngineError::NotFound {
            kind,
            name: name.into(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!("; {hint}")
            },
        }
    }
}
