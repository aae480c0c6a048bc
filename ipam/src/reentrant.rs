//! A lock owned by one thread at a time that the owning thread may take again.
//!
//! Stores build their `lock()` on it: the first acquisition in a thread does the expensive part
//! (e.g. `flock`) through a hook, nested ones only count. The count, not the guard order, decides
//! when the lock is given back, so guards may be dropped in any order.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

#[derive(Default)]
struct Holder {
    owner: Option<ThreadId>,
    depth: usize,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct ReentrantLock {
    holder: Mutex<Holder>,
    released: Condvar,
}

impl ReentrantLock {
    /// Takes the lock for the calling thread, waiting while another thread holds it. When the
    /// thread did not hold it yet, `on_first` runs after the in-process lock is won; if it fails
    /// the acquisition is undone and its error returned.
    pub(crate) fn acquire<E>(&self, on_first: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let me = thread::current().id();
        let mut holder = self.holder();
        if holder.owner == Some(me) {
            holder.depth += 1;
            return Ok(());
        }
        while holder.owner.is_some() {
            holder = self
                .released
                .wait(holder)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        holder.owner = Some(me);
        holder.depth = 1;
        // The hook may block for long (another process holding a file lock): other threads of
        // this process wait on the condvar meanwhile, not on the mutex.
        drop(holder);
        if let Err(e) = on_first() {
            self.give_back();
            return Err(e);
        }
        Ok(())
    }

    /// Gives back one level. When it was the last one, `on_last` runs before another thread can
    /// take the lock.
    pub(crate) fn release(&self, on_last: impl FnOnce()) {
        let mut holder = self.holder();
        holder.depth = holder.depth.saturating_sub(1);
        if holder.depth == 0 {
            on_last();
            holder.owner = None;
            drop(holder);
            self.released.notify_one();
        }
    }

    fn give_back(&self) {
        let mut holder = self.holder();
        holder.owner = None;
        holder.depth = 0;
        drop(holder);
        self.released.notify_one();
    }

    /// The holder record is two plain fields that are never left half-updated, so a panic in
    /// another thread does not make it untrustworthy.
    fn holder(&self) -> MutexGuard<'_, Holder> {
        self.holder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    #[test]
    fn hooks_run_only_at_the_outermost_level() {
        let lock = ReentrantLock::default();
        let firsts = AtomicUsize::new(0);
        let lasts = AtomicUsize::new(0);
        for _ in 0..3 {
            lock.acquire(|| {
                firsts.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(())
            })
            .unwrap();
        }
        for _ in 0..3 {
            lock.release(|| {
                lasts.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(firsts.load(Ordering::SeqCst), 1);
        assert_eq!(lasts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn failed_hook_leaves_the_lock_free() {
        let lock = Arc::new(ReentrantLock::default());
        assert_eq!(lock.acquire(|| Err("nope")), Err("nope"));
        let other = Arc::clone(&lock);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            other.acquire(|| Ok::<_, ()>(())).unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("lock stayed taken after a failed acquisition");
    }

    #[test]
    fn another_thread_waits_until_released() {
        let lock = Arc::new(ReentrantLock::default());
        lock.acquire(|| Ok::<_, ()>(())).unwrap();
        let other = Arc::clone(&lock);
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            other.acquire(|| Ok::<_, ()>(())).unwrap();
            tx.send(()).unwrap();
            other.release(|| {});
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "second thread got a lock that was held"
        );
        lock.release(|| {});
        rx.recv_timeout(Duration::from_secs(10))
            .expect("second thread never got the released lock");
        waiter.join().unwrap();
    }
}
