//! The speaker on a runtime of its own, driven from synchronous code.
//!
//! The backend contract is synchronous, while its caller (the agent) is async. Entering the
//! caller's runtime from here (`block_on`) would panic, and running the speaker on it would
//! tie BGP keepalives to whatever else the agent does. So the speaker gets its own small
//! multi-thread runtime, and every call from the backend is a task spawned there whose
//! answer comes back over a std channel: the calling thread waits for a channel, never
//! polls a future. The runtime's threads are created by the thread that starts the host and
//! so live in its network namespace, where the speaker's sockets are then made.

use crate::error::Error;
use crate::kernel::ChangeSender;
use crate::speaker::{Speaker, SpeakerConfig};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Longest wait for an answer from the speaker's runtime.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A running speaker and its runtime.
pub struct SpeakerHost {
    runtime: Option<Runtime>,
    speaker: Arc<Speaker>,
}

impl SpeakerHost {
    /// Builds the runtime, starts the speaker on it and forwards its route changes to
    /// `routes`.
    pub fn start(cfg: SpeakerConfig, routes: ChangeSender) -> Result<SpeakerHost, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weft-bgp")
            .enable_all()
            .build()
            .map_err(|e| Error::Config {
                what: format!("cannot start the BGP runtime: {e}"),
            })?;
        let mut speaker = match run(&runtime, Speaker::start(cfg)) {
            Ok(Ok(speaker)) => speaker,
            Ok(Err(e)) | Err(e) => {
                // Dropping a runtime blocks until its threads end, which panics inside the
                // caller's runtime ("Cannot drop a runtime in a context where blocking is not
                // allowed") and would hide `e` (e.g. the BGP port in use).
                runtime.shutdown_background();
                return Err(e);
            }
        };
        if let Some(rx) = speaker.take_route_changes() {
            runtime.spawn(routes.forward(rx));
        }
        Ok(SpeakerHost {
            runtime: Some(runtime),
            speaker: Arc::new(speaker),
        })
    }

    /// The speaker, for its synchronous calls (announce, peers, …).
    pub fn speaker(&self) -> &Speaker {
        &self.speaker
    }

    /// Runs an async call of the speaker on its runtime and waits for the answer.
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(Arc<Speaker>) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or(Error::Stopped)?;
        run(runtime, f(self.speaker.clone()))
    }

    /// Ends every session with a Cease, then stops the runtime without waiting for its
    /// threads (safe from inside another runtime).
    pub fn shutdown(mut self) {
        let _ = self.call(|s| async move { s.shutdown().await });
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for SpeakerHost {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn run<T: Send + 'static>(
    runtime: &Runtime,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, Error> {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv_timeout(CALL_TIMEOUT).map_err(|_| Error::Stopped)
}
