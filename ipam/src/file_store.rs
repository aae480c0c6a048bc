//! The embedded default `Store`: one file per key under a root directory (default
//! `/var/lib/weft`), written atomically (write temp, fsync, rename or link, fsync the directory)
//! and guarded by `flock` on `<root>/.lock` across processes.
//!
//! A crash can leave `.tmp-*` files behind; they are invisible to readers (every dot-file is) and
//! never reused, so they are harmless.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::reentrant::ReentrantLock;
use crate::store::{is_safe_segment, validate_key, validate_prefix, Store, StoreError, StoreLock};

/// Name of the lock file under the root.
const LOCK_FILE: &str = ".lock";
/// Prefix of temporary files; a dot-file, so listings skip it.
const TMP_PREFIX: &str = ".tmp-";

/// See the module docs.
pub struct FileStore {
    root: PathBuf,
    lock: Arc<FileLock>,
    /// How long `lock` waits for another process before giving up; `None` waits forever.
    lock_timeout: Option<Duration>,
}

/// The cross-process lock (`flock` on one open file description per store) under the
/// in-process re-entrant lock (`flock` alone would let two threads sharing the fd both in).
struct FileLock {
    file: File,
    path: PathBuf,
    threads: ReentrantLock,
}

/// What `FileStore::lock` hands out; dropping it gives back one level.
struct FileLockGuard(Arc<FileLock>);

impl Drop for FileLockGuard {
    fn drop(&mut self) {
        let lock = &self.0;
        lock.threads.release(|| {
            if let Err(e) = flock(&lock.file, libc::LOCK_UN) {
                // Closing the fd would release it too, but the fd lives as long as the store;
                // nothing better to do in a destructor than to say so.
                tracing::error!(path = %lock.path.display(), error = %e, "cannot release store lock");
            }
        });
    }
}

impl FileStore {
    /// Opens the store rooted at `root`, creating it with mode 0700 (whatever the umask) if it
    /// does not exist. An existing root must be owned by this process's user and writable by
    /// no one else ([`StoreError::UnsafeDir`] otherwise): anyone who can write there can forge
    /// the records weft acts on as root.
    pub fn open(root: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        let root = root.into();
        if !root.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&root)
                .map_err(|e| io_error(&root, e))?;
            // The umask may have taken bits away (mode 0700 & !umask): say it once more.
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
                .map_err(|e| io_error(&root, e))?;
        }
        check_private_dir(&root)?;
        let path = root.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        Ok(FileStore {
            root,
            lock_timeout: None,
            lock: Arc::new(FileLock {
                file,
                path,
                threads: ReentrantLock::default(),
            }),
        })
    }

    /// Makes `lock` give up with `StoreError::LockTimeout` after waiting `timeout` for another
    /// process (a CNI runtime would rather hear "try again later" than hang).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn key_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn prefix_path(&self, prefix: &str) -> Result<PathBuf, StoreError> {
        validate_prefix(prefix)?;
        Ok(if prefix.is_empty() {
            self.root.clone()
        } else {
            self.root.join(prefix)
        })
    }

    /// Creates `dir` and any missing ancestors below the root, each made durable by syncing its
    /// parent (otherwise a file renamed into a fresh directory could vanish in a crash).
    fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while cur != self.root && !cur.is_dir() {
            missing.push(cur);
            cur = match cur.parent() {
                Some(parent) => parent,
                None => break,
            };
        }
        for dir in missing.into_iter().rev() {
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists && dir.is_dir() => continue,
                Err(e) => return Err(io_error(dir, e)),
            }
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }
}

impl FileStore {
    /// Removes `dir` and its ancestors below the root while they are empty, so keys that come
    /// and go (ephemeral host ports, endpoints of removed networks) leave no directories behind.
    /// Best effort: a directory that is not empty, or already gone, ends the walk.
    /// Not flushed: an empty directory that comes back after a power loss holds nothing.
    fn prune_empty_dirs(&self, dir: &Path) {
        let mut cur = dir;
        while cur != self.root && cur.starts_with(&self.root) {
            if fs::remove_dir(cur).is_err() {
                return;
            }
            let Some(parent) = cur.parent() else { return };
            cur = parent;
        }
    }

    /// `write_temp` into `dir`, re-creating it once if a concurrent prune removed it between
    /// `ensure_dir` and the write.
    fn write_temp_in(
        &self,
        dir: &Path,
        value: &[u8],
        durable: bool,
    ) -> Result<PathBuf, StoreError> {
        self.ensure_dir(dir)?;
        match write_temp(dir, value, durable) {
            Err(StoreError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                self.ensure_dir(dir)?;
                write_temp(dir, value, durable)
            }
            other => other,
        }
    }
}

/// Refuses a state directory that this process's user does not own, or that its group or
/// others may write to (the check `open` makes; public for the CNI plugin and tests).
pub fn check_private_dir(root: &Path) -> Result<(), StoreError> {
    // Followed if a symlink: what matters is the directory the records are written in.
    let meta = fs::metadata(root).map_err(|e| io_error(root, e))?;
    if !meta.is_dir() {
        return Err(io_error(
            root,
            io::Error::new(ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    check_owner_and_mode(root, meta.uid(), meta.mode(), me)
}

/// The pure part of [`check_private_dir`]: `uid` and `mode` as `stat` gives them, `me` the
/// effective uid of this process.
pub fn check_owner_and_mode(root: &Path, uid: u32, mode: u32, me: u32) -> Result<(), StoreError> {
    let path = root.display().to_string();
    let found = format!("owned by uid {uid}, mode {:04o}", mode & 0o7777);
    if uid != me {
        let user = if me == 0 {
            "root".to_string()
        } else {
            me.to_string()
        };
        return Err(StoreError::UnsafeDir {
            fix: format!("run `chown {user} {path}` if its contents are yours, or use another state directory"),
            path,
            found,
            reason: if me == 0 {
                "weft runs as root and trusts only a state directory root owns"
            } else {
                "weft trusts only a state directory owned by the user it runs as"
            },
        });
    }
    if mode & 0o022 != 0 {
        return Err(StoreError::UnsafeDir {
            fix: format!("run `chmod go-w {path}`"),
            path,
            found,
            reason: "others could write records into it",
        });
    }
    Ok(())
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("root", &self.root)
            .finish()
    }
}

impl Store for FileStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.key_path(key)?;
        match fs::read(&path) {
            Ok(value) => Ok(Some(value)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let dir = self.prefix_path(prefix)?;
        let mut out = Vec::new();
        for (name, is_dir) in read_names(&dir)? {
            if is_dir {
                continue;
            }
            let path = dir.join(&name);
            match fs::read(&path) {
                Ok(value) => out.push((join_key(prefix, &name), value)),
                // Deleted between readdir and read by a writer not holding our lock.
                Err(e) if is_absent(&e) => {}
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Ok(out)
    }

    fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.prefix_path(prefix)?;
        Ok(read_names(&dir)?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.key_path(key)?;
        let dir = parent_of(&path);
        let tmp = self.write_temp_in(dir, value, true)?;
        if let Err(e) = fs::rename(&tmp, &path) {
            discard(&tmp);
            return Err(io_error(&path, e));
        }
        sync_dir(dir)
    }

    fn put_hint(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.key_path(key)?;
        let tmp = self.write_temp_in(parent_of(&path), value, false)?;
        fs::rename(&tmp, &path).map_err(|e| {
            discard(&tmp);
            io_error(&path, e)
        })
    }

    fn create(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let path = self.key_path(key)?;
        let dir = parent_of(&path);
        let tmp = self.write_temp_in(dir, value, true)?;
        // link(2) fails with EEXIST instead of replacing: the atomic "create if absent", and the
        // linked file is complete because it was fsynced before it got its name.
        let linked = fs::hard_link(&tmp, &path);
        discard(&tmp);
        match linked {
            Ok(()) => sync_dir(dir).map(|()| true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.key_path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(parent_of(&path))?;
                self.prune_empty_dirs(parent_of(&path));
                Ok(true)
            }
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn forget(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.key_path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    fn lock(&self) -> Result<StoreLock, StoreError> {
        let lock = &self.lock;
        lock.threads.acquire(|| match self.lock_timeout {
            None => flock(&lock.file, libc::LOCK_EX).map_err(|e| io_error(&lock.path, e)),
            Some(timeout) => flock_within(&lock.file, timeout).map_err(|e| {
                if e.kind() == ErrorKind::WouldBlock {
                    StoreError::LockTimeout {
                        path: lock.path.display().to_string(),
                        waited: timeout,
                    }
                } else {
                    io_error(&lock.path, e)
                }
            }),
        })?;
        Ok(StoreLock::new(Box::new(FileLockGuard(Arc::clone(lock)))))
    }
}

/// Names in `dir` that can be keys (dot-files and foreign names skipped), sorted, with whether
/// each is a directory. An absent directory has no names.
fn read_names(dir: &Path) -> Result<Vec<(String, bool)>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_safe_segment(&name) {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| io_error(&entry.path(), e))?;
        names.push((name, file_type.is_dir()));
    }
    names.sort();
    Ok(names)
}

/// Writes `value` to a fresh `.tmp-<random>` file in `dir` and fsyncs it.
/// A complete temporary file in `dir`, flushed to disk when `durable`.
fn write_temp(dir: &Path, value: &[u8], durable: bool) -> Result<PathBuf, StoreError> {
    let mut rng = rand::rng();
    loop {
        let path = dir.join(format!("{TMP_PREFIX}{:016x}", rng.random::<u64>()));
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&path, e)),
        };
        let written =
            file.write_all(value)
                .and_then(|()| if durable { file.sync_all() } else { Ok(()) });
        return match written {
            Ok(()) => Ok(path),
            Err(e) => {
                discard(&path);
                Err(io_error(&path, e))
            }
        };
    }
}

/// Makes renames, links and unlinks in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Best-effort removal of a temporary file; a leftover is harmless (readers skip it).
fn discard(tmp: &Path) {
    if let Err(e) = fs::remove_file(tmp) {
        tracing::warn!(path = %tmp.display(), error = %e, "cannot remove temporary store file");
    }
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock only reads the descriptor number, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `flock(LOCK_EX)` that gives up with `WouldBlock` after `timeout`: non-blocking attempts,
/// backing off from 1 ms to 20 ms between them.
fn flock_within(file: &File, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => return other,
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ErrorKind::WouldBlock.into());
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// "No value here": missing, a path through a value (ENOTDIR), or a prefix (EISDIR).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .expect("a key path always has the root as ancestor")
}

fn join_key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn io_error(path: &Path, source: io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(uid: u32, mode: u32, me: u32) -> String {
        check_owner_and_mode(Path::new("/var/lib/weft"), uid, mode, me)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn owner_only_directories_pass() {
        for mode in [0o40700, 0o40755, 0o40750, 0o40711] {
            check_owner_and_mode(Path::new("/s"), 0, mode, 0).unwrap();
        }
        check_owner_and_mode(Path::new("/s"), 1000, 0o40700, 1000).unwrap();
    }

    #[test]
    fn group_or_world_writable_is_refused_with_the_fix() {
        for mode in [0o40777, 0o40770, 0o40702, 0o41777, 0o40720] {
            let e = refused(0, mode, 0);
            assert!(e.contains("/var/lib/weft"), "{e}");
            assert!(e.contains(&format!("mode {:04o}", mode & 0o7777)), "{e}");
            assert!(e.contains("chmod go-w /var/lib/weft"), "{e}");
        }
    }

    #[test]
    fn another_owner_is_refused_with_the_fix() {
        let e = refused(65534, 0o40700, 0);
        assert!(e.contains("owned by uid 65534"), "{e}");
        assert!(e.contains("chown root /var/lib/weft"), "{e}");
        let e = refused(0, 0o40700, 1000);
        assert!(e.contains("chown 1000 /var/lib/weft"), "{e}");
    }

    #[test]
    fn open_creates_the_directory_owner_only_and_refuses_a_writable_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        FileStore::open(&root).unwrap();
        let mode = fs::metadata(&root).unwrap().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
        let e = FileStore::open(&root).unwrap_err();
        assert!(matches!(e, StoreError::UnsafeDir { .. }), "{e:?}");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        FileStore::open(&root).unwrap();
    }
}
