//! Waiting for a condition with a deadline. Tests poll for the state they expect rather than
//! sleeping a fixed time: a fixed sleep is too short on a loaded machine and wasted on an idle one.

use std::time::{Duration, Instant};

/// The pause between checks. Checks often start a process (ping, etcdctl, weft); polling faster
/// only loads the machine that the daemons under test share.
const INTERVAL: Duration = Duration::from_millis(50);

/// Polls `f` until it returns true or `timeout` passes; whether it did. `f` runs once more at the
/// deadline, so a slow check still gets its last chance.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(INTERVAL);
    }
}
