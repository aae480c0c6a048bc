//! Stopping a process the test started. Always by its PID, never by name: a name could match
//! the machine's own daemons or another test's.

use std::process::Child;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::poll::eventually;

/// Asks `child` to exit (SIGTERM), waits up to `grace`, then kills it; reaps it either way.
pub fn stop_child(mut child: Child, grace: Duration) {
    // Once reaped, its PID may already belong to someone else.
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = Pid::from_raw(child.id() as i32);
    // A test may have stopped it (SIGSTOP); a stopped process never acts on SIGTERM.
    let _ = kill(pid, Signal::SIGCONT);
    let _ = kill(pid, Signal::SIGTERM);
    if !eventually(grace, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A process the test started (a daemon), asked to stop with SIGTERM (by PID) and reaped when
/// dropped, also when the test fails.
pub struct StopOnDrop(pub Child);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.0.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
        let _ = self.0.wait();
    }
}
