//! What can go wrong serving Docker, and the HTTP status each failure answers with.

use thiserror::Error;
use weft_engine::{EngineError, ErrorClass};
use weft_ipam::IpamError;

/// A failed plugin call. Its text is the `Err` dockerd shows the user.
#[derive(Debug, Error)]
pub enum DockerError {
    /// The path names no method of the protocol.
    #[error("unknown plugin method {0:?}: weft implements Plugin.Activate, NetworkDriver.* and IpamDriver.*")]
    UnknownMethod(String),
    /// The body is not the JSON the method takes, or a field in it is malformed.
    #[error("malformed {method} request: {reason}")]
    BadRequest { method: String, reason: String },
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// weft's IPAM refused or failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A failure injected for tests (`WEFT_DOCKER_FAIL`), after the work was rolled back.
    #[error("injected failure for /{0}")]
    Injected(String),
    /// The plugin socket cannot be served.
    #[error("cannot serve the Docker plugin socket {path}: {reason}")]
    Socket { path: String, reason: String },
}

impl DockerError {
    /// The HTTP status of the reply. Docker treats 404 as "the plugin does not implement this
    /// method" and silently skips optional calls, so 404 is kept for unknown paths; an unknown
    /// network or endpoint is the request's fault (400).
    pub fn status(&self) -> u16 {
        match self {
            DockerError::UnknownMethod(_) => 404,
            DockerError::BadRequest { .. } => 400,
            DockerError::Engine(e) => class_status(e.class()),
            DockerError::Ipam(e) => ipam_status(e),
            DockerError::Injected(_) | DockerError::Socket { .. } => 500,
        }
    }

    pub(crate) fn bad(method: &str, reason: impl Into<String>) -> Self {
        DockerError::BadRequest {
            method: method.to_string(),
            reason: reason.into(),
        }
    }
}

fn class_status(class: ErrorClass) -> u16 {
    match class {
        ErrorClass::Invalid | ErrorClass::NotFound => 400,
        ErrorClass::Conflict => 409,
        ErrorClass::System => 500,
    }
}

/// Mirrors `EngineError::class` for IPAM failures that did not go through the engine.
fn ipam_status(e: &IpamError) -> u16 {
    match e {
        IpamError::Store(_) => 500,
        IpamError::Overlap { .. }
        | IpamError::Exhausted { .. }
        | IpamError::AddressInUse { .. }
        | IpamError::PoolInUse { .. }
        | IpamError::NoDefaultPool { .. } => 409,
        _ => 400,
    }
}
