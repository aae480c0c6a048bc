//! The key-value contract every piece of weft state goes through.
//!
//! Keys are `/`-separated paths of safe segments (`[A-Za-z0-9._:@-]` plus `_`, not `.` or `..`,
//! not starting with `.`), e.g. `ipam/addrs/172.18.0.0_16/172.18.0.5`. Values are opaque bytes
//! (weft writes JSON). Segments starting with `.` are reserved for a store's own bookkeeping
//! (temporary files, the lock file), which is why they are refused as keys.

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The key is not a path of safe segments.
    #[error("store key {key:?} is invalid: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// The backing medium failed.
    #[error("store I/O on {path}: {source}; check that the state directory is writable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A value could not be decoded.
    #[error("store value at {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// The state directory exists but others could change it: its records would be theirs to
    /// forge (a bad configuration, refused before anything is read).
    #[error("state directory {path} is {found}: {reason}; {fix}")]
    UnsafeDir {
        path: String,
        /// Its owner and mode, e.g. `owned by uid 65534, mode 0777`.
        found: String,
        reason: &'static str,
        /// What the user can run, e.g. `chmod go-w /var/lib/weft`.
        fix: String,
    },
    #[error("the state directory lock {path} has been held by another process for more than {:.1}s; try again later", waited.as_secs_f64())]
    LockTimeout {
        path: String,
        waited: std::time::Duration,
    },
}

/// Held while a multi-key read-modify-write must not interleave with any other process or thread.
/// Dropping it releases the lock.
pub struct StoreLock {
    _inner: Box<dyn Send>,
}

impl StoreLock {
    /// Wraps a store-specific guard whose `Drop` releases the lock.
    pub fn new(inner: Box<dyn Send>) -> Self {
        StoreLock { _inner: inner }
    }
}

/// A durable, lockable key-value store (see the module docs for the key syntax).
pub trait Store: Send + Sync {
    /// The value at `key`, or `None` when absent.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Direct children of `prefix` (a key path without trailing `/`) that hold values:
    /// `(full key, value)`, sorted by key. An absent prefix lists as empty.
    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Names of the direct children of `prefix` (values and sub-prefixes alike), sorted.
    fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Atomically and durably sets `key` (a reader sees the old or the new value, never a mix).
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Atomically sets a key whose loss costs nothing but time (an allocation cursor): a
    /// reader sees the old or the new value, but a power loss may bring back the old one. Stores
    /// skip the flushes that `put` pays for.
    fn put_hint(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put(key, value)
    }
    /// Atomically and durably creates `key`; `Ok(false)` if it already exists (value unchanged).
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Durably removes `key`; `Ok(false)` if it was absent.
    fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Removes a key whose return after a power loss costs nothing (a finished operation's
    /// intent: recovery finds its commit and forgets it again). Stores skip the flush that
    /// `delete` pays for.
    fn forget(&self, key: &str) -> Result<bool, StoreError> {
        self.delete(key)
    }
    /// Exclusive lock over the whole store, across threads and processes. Re-entrant within a
    /// thread: a thread that holds it may take it again (the inner guard is a no-op).
    fn lock(&self) -> Result<StoreLock, StoreError>;
}

/// Longest segment a key may have (Linux `NAME_MAX`, so a segment is always a valid file name).
pub const MAX_SEGMENT_LEN: usize = 255;

/// Checks that `key` is a non-empty path of safe segments; every `Store` calls this first.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(invalid(key, "a key must not be empty"));
    }
    validate_path(key)
}

/// Like [`validate_key`], but the empty string (the store's root) is allowed: it is what `list`
/// and `children` take.
pub fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_path(prefix)
}

/// Whether `segment` is one safe path segment (usable as a file name and as part of a key).
pub fn is_safe_segment(segment: &str) -> bool {
    segment_problem(segment).is_none()
}

fn validate_path(key: &str) -> Result<(), StoreError> {
    match key.split('/').find_map(segment_problem) {
        Some(reason) => Err(invalid(key, reason)),
        None => Ok(()),
    }
}

fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        return Some("empty segment (leading, trailing or doubled '/')");
    }
    if segment == "." || segment == ".." {
        return Some("'.' and '..' segments are not allowed");
    }
    if segment.starts_with('.') {
        return Some("segments starting with '.' are reserved for the store itself");
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Some("a segment is longer than 255 bytes");
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
    if !segment.chars().all(safe) {
        return Some("only A-Z a-z 0-9 . _ : @ - are allowed in a segment");
    }
    None
}

fn invalid(key: &str, reason: &'static str) -> StoreError {
    StoreError::InvalidKey {
        key: key.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ipam_keys() {
        for key in [
            "ipam/addrs/172.18.0.0_16/172.18.0.5",
            "ipam/pools/fd12:3456:789a:1::_64",
            "ipam/addrs/fd12:3456:789a:1::_64/fd12:3456:789a:1::5",
            "a",
            "net@host-1/x",
        ] {
            validate_key(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn rejects_unsafe_keys() {
        for key in [
            "",
            "/abs",
            "trail/",
            "a//b",
            ".",
            "..",
            "a/../b",
            "a/./b",
            ".lock",
            "a/.tmp-123",
            "a b",
            "a\\b",
            "a\0b",
            "ü",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(validate_key(key), Err(StoreError::InvalidKey { .. })),
                "{key:?} should be rejected"
            );
        }
    }

    #[test]
    fn prefix_may_be_root() {
        validate_prefix("").unwrap();
        validate_prefix("ipam/pools").unwrap();
        assert!(validate_prefix("ipam/").is_err());
    }
}
