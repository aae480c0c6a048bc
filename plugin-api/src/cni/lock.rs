//! Waiting for weft's state directory with a deadline.
//!
//! Every engine operation takes the store's lock (`flock` on `<state dir>/.lock`, see
//! `weft_ipam::FileStore`) and blocks until it gets it. A runtime would rather hear "try again
//! later" (code 11) than hang behind a stuck process, so before any work weft waits for the lock
//! to be free at most `lockTimeout`. The wait takes and drops the lock through its own file
//! description on a helper thread; the engine then takes it for real (another process may slip
//! in between, which costs one more ordinary wait, never correctness).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use super::error::CniError;

/// The lock file `weft_ipam::FileStore` keeps under its root.
const LOCK_FILE: &str = ".lock";

/// Returns once the store at `dir` is not locked by anyone, or `TryAgainLater` after `timeout`.
/// A store that does not exist yet is not locked.
pub fn wait_for_store(dir: &Path, timeout: Duration) -> Result<(), CniError> {
    let path = dir.join(LOCK_FILE);
    let Ok(file) = File::open(&path) else {
        return Ok(());
    };
    if try_lock(&file) {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0;
        if got {
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
        let _ = tx.send(got);
    });
    match rx.recv_timeout(timeout) {
        Ok(true) => Ok(()),
        Ok(false) => Err(CniError::Io(format!(
            "cannot lock {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ))),
        Err(_) => Err(CniError::TryAgainLater(format!(
            "weft's state directory {} has been locked by another process for more than {:.1}s; try again later",
            dir.display(),
            timeout.as_secs_f64()
        ))),
    }
}

fn try_lock(file: &File) -> bool {
    // SAFETY: as above.
    let got = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if got {
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn free_and_absent_stores_do_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        wait_for_store(&dir.path().join("nothing-here"), Duration::ZERO).unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), b"").unwrap();
        wait_for_store(dir.path(), Duration::ZERO).unwrap();
    }

    #[test]
    fn a_held_lock_times_out_with_try_again_later_and_a_released_one_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let holder = File::create(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
        let start = Instant::now();
        let e = wait_for_store(dir.path(), Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.code(), crate::cni::error::TRY_AGAIN_LATER);
        assert!(start.elapsed() >= Duration::from_millis(200));
        let (tx, rx) = mpsc::channel();
        let d = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            tx.send(()).unwrap();
            wait_for_store(&d, Duration::from_secs(30))
        });
        rx.recv().unwrap();
        drop(holder);
        waiter.join().unwrap().unwrap();
    }
}
