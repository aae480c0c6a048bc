//! Docker's Leave answered before the kernel has removed the endpoint's veth pair.
//!
//! Unregistering a veth waits out an RCU grace period (about 10 ms here), and dockerd spends
//! about as long between weft's answer to Leave and its DeleteEndpoint. Removing the pair in that
//! gap instead of before the answer takes it off `docker run`'s critical path. DeleteEndpoint,
//! DeleteNetwork and shutdown wait for the removals they depend on, so no link outlives its
//! endpoint; a removal that failed is done again by DeleteEndpoint's teardown.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::JoinHandle;

use tracing::warn;

/// Link removals still running, by endpoint id.
#[derive(Default)]
pub(super) struct Leaving {
    running: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Leaving {
    /// Runs `removal` for `endpoint` on a thread of its own.
    pub fn start(&self, endpoint: &str, removal: impl FnOnce() + Send + 'static) {
        let handle = std::thread::spawn(removal);
        if let Some(earlier) = self.running().insert(endpoint.to_string(), handle) {
            join(endpoint, earlier);
        }
    }

    /// Waits until `endpoint`'s removal, if one runs, is over.
    pub fn finish(&self, endpoint: &str) {
        let handle = self.running().remove(endpoint);
        if let Some(h) = handle {
            join(endpoint, h);
        }
    }

    /// Waits until every running removal is over.
    pub fn finish_all(&self) {
        let all: Vec<_> = self.running().drain().collect();
        for (endpoint, h) in all {
            join(&endpoint, h);
        }
    }

    /// The map; a panic elsewhere cannot leave it unusable.
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn join(endpoint: &str, handle: JoinHandle<()>) {
    if handle.join().is_err() {
        warn!(
            endpoint,
            "the link removal of a Docker Leave panicked; DeleteEndpoint removes the links"
        );
    }
}
