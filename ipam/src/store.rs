//! The key-value contract every piece of weft state goes through.
//!
//! Keys are `/`-separated paths of safe segments (`[A-Za-z0-9._:@-]`, not `.` or `..`), e.g.
//! `ipam/addrs/172.18.0.0_16/172.18.0.5`. Values are opaque bytes (weft writes JSON).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store key {key:?} is invalid: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("store I/O on {path}: {source}; check that the state directory is writable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store value at {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Held while a multi-key read-modify-write must not interleave with any other process or thread.
/// Dropping it releases the lock.
pub struct StoreLock {
    _inner: Box<dyn Send>,
}

impl StoreLock {
    pub fn new(inner: Box<dyn Send>) -> Self {
        StoreLock { _inner: inner }
    }
}

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
    /// Atomically and durably creates `key`; `Ok(false)` if it already exists (value unchanged).
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, StoreError>;
    /// Durably removes `key`; `Ok(false)` if it was absent.
    fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Exclusive lock over the whole store, across threads and processes. Re-entrant within a
    /// thread: a thread that holds it may take it again (the inner guard is a no-op).
    fn lock(&self) -> Result<StoreLock, StoreError>;
}
