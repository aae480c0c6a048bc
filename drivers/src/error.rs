use thiserror::Error;

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("netlink: {op} {object}: {message}")]
    Netlink {
        op: &'static str,
        object: String,
        message: String,
        /// Kernel errno when the kernel refused (e.g. `EEXIST`), 0 otherwise.
        errno: i32,
    },
    #[error("network namespace {path}: {message}")]
    Netns { path: String, message: String },
    #[error("sysctl {key}: {message}")]
    Sysctl { key: String, message: String },
    #[error("nft: {message}")]
    Firewall { message: String },
    #[error("invalid option {key}={value:?}: {reason}")]
    InvalidOption {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{object} already exists: {hint}")]
    Exists { object: String, hint: String },
    #[error("the kernel lacks {feature}: {hint}")]
    Unsupported { feature: String, hint: String },
    /// Several failures from a teardown that kept going.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<DriverError>),
}

impl DriverError {
    /// Folds a teardown's collected errors into one result.
    pub fn collect(mut errors: Vec<DriverError>) -> Result<(), DriverError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(DriverError::Many(errors)),
        }
    }

    /// The kernel errno behind a netlink failure, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DriverError::Netlink { errno, .. } if *errno != 0 => Some(*errno),
            _ => None,
        }
    }
}
