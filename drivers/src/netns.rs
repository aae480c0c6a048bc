//! Network namespace handles: open by path, run code inside one, create new ones.
//!
//! The calling thread never changes namespace: work that must happen "inside" a namespace (opening
//! a netlink socket there, writing its `/proc/sys/net` sysctls) runs on a short-lived scoped thread
//! that `setns`es first. Namespace switches are per thread, so the rest of the process (a tokio
//! runtime, other CNI requests) is unaffected.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::DriverError;

type Result<T> = std::result::Result<T, DriverError>;

/// The calling thread's own network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// An open network namespace (`/run/netns/x`, `/proc/PID/ns/net`, …).
///
/// Holding the file keeps the namespace alive even if its bind mount is removed meanwhile.
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens the network namespace at `path`, checking that it really is one.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| netns_error(path, open_failure(&e)))?;
        check_is_netns(&file, path)?;
        Ok(Netns {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The calling thread's current network namespace (`/proc/thread-self/ns/net`).
    pub fn current() -> Result<Netns> {
        Netns::open(THREAD_NETNS)
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` inside this namespace on a scoped helper thread and returns its result.
    ///
    /// The caller's thread never changes namespace. A panic in `f` is propagated to the caller.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let fd = self.file.as_fd();
        let joined = std::thread::scope(|scope| {
            scope
                .spawn(move || -> Result<R> {
                    setns(fd, CloneFlags::CLONE_NEWNET).map_err(|errno| {
                        netns_error(
                            &self.path,
                            format!("cannot enter it: {} ({errno:?})", errno.desc()),
                        )
                    })?;
                    Ok(f())
                })
                .join()
        });
        match joined {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Creates a NEW, empty network namespace kept alive by a bind mount at `path` (what
    /// `ip netns add` does, for any path).
    ///
    /// `path` must not exist yet; its parent directory must. On failure nothing is left behind.
    pub fn create_at(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => netns_error(
                    path,
                    "the file already exists: pick another path or remove the old namespace \
                     first"
                        .into(),
                ),
                _ => netns_error(path, format!("cannot create the mount point: {e}")),
            })?;
        let mounted = std::thread::scope(|scope| {
            scope
                .spawn(|| bind_new_netns(path))
                .join()
                .unwrap_or_else(|panic| {
                    let _ = std::fs::remove_file(path);
                    std::panic::resume_unwind(panic)
                })
        });
        if let Err(errno) = mounted {
            let _ = std::fs::remove_file(path);
            return Err(netns_error(
                path,
                format!(
                    "cannot create a network namespace there: {} ({errno:?}); \
                     this needs root (CAP_SYS_ADMIN)",
                    errno.desc()
                ),
            ));
        }
        Netns::open(path).inspect_err(|_| {
            let _ = Netns::remove_at(path);
        })
    }

    /// Removes a namespace made by [`Netns::create_at`]: detaches the bind mount and deletes the
    /// file (what `ip netns del` does). Idempotent: a missing path is not an error. The namespace
    /// itself lives on while anything (a process, an open [`Netns`]) still holds it.
    pub fn remove_at(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match umount2(path, MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point (already unmounted); ENOENT: already gone.
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(errno) => {
                return Err(netns_error(
                    path,
                    format!("cannot unmount it: {} ({errno:?})", errno.desc()),
                ))
            }
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(netns_error(path, format!("cannot remove the file: {e}"))),
        }
    }

    /// Whether this is the calling thread's current network namespace (same nsfs inode).
    pub fn same_as_current(&self) -> bool {
        let (Ok(mine), Ok(current)) = (self.file.metadata(), std::fs::metadata(THREAD_NETNS))
        else {
            return false;
        };
        mine.dev() == current.dev() && mine.ino() == current.ino()
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// Runs on a throwaway thread: a new namespace for this thread only, pinned by a bind mount.
fn bind_new_netns(path: &Path) -> std::result::Result<(), Errno> {
    unshare(CloneFlags::CLONE_NEWNET)?;
    mount(
        Some(THREAD_NETNS),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
}

/// Asks nsfs what kind of namespace the file is; anything else (a regular file, another
/// namespace type) is refused with a clear message.
fn check_is_netns(file: &File, path: &Path) -> Result<()> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the file descriptor.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind == libc::CLONE_NEWNET {
        return Ok(());
    }
    let what = if kind < 0 {
        "it is not a namespace file"
    } else {
        "it is a namespace, but not a network namespace"
    };
    Err(netns_error(
        path,
        format!("{what}: give a path like /run/netns/NAME or /proc/PID/ns/net"),
    ))
}

fn open_failure(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => {
            "does not exist: check that the container (or `ip netns`) still exists".into()
        }
        io::ErrorKind::PermissionDenied => format!("cannot open it: {e}; this needs root"),
        _ => format!("cannot open it: {e}"),
    }
}

fn netns_error(path: &Path, message: String) -> DriverError {
    DriverError::Netns {
        path: path.display().to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_names_the_path() {
        let err = Netns::open("/nonexistent/weft/ns").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/weft/ns"), "{text}");
        assert!(text.contains("does not exist"), "{text}");
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = Netns::open(file.path()).unwrap_err();
        assert!(err.to_string().contains("not a namespace"), "{err}");
    }

    #[test]
    fn current_is_current() {
        let ns = Netns::current().unwrap();
        assert!(ns.same_as_current());
        assert_eq!(ns.path(), Path::new(THREAD_NETNS));
    }

    #[test]
    fn remove_at_missing_path_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        Netns::remove_at(dir.path().join("never-made")).unwrap();
    }
}
