//! The embedded default `Store`: one file per key under a root directory (default
//! `/var/lib/weft`), written atomically (write temp, fsync, rename or link, fsync the directory)
//! and guarded by `flock` on `<root>/.lock` across processes.

/// Placeholder until implemented.
pub struct FileStore;
