//! The programmer thread: drains route changes in batches, coalesces them in the
//! [`RouteTable`] and writes them with pipelined netlink requests.
//!
//! It is a plain OS thread, not a tokio task: netlink writes block, and a speaker's runtime
//! must stay free to answer keepalives while 100,000 routes go into the kernel. The thread
//! is created by the thread that starts it and therefore works in that thread's network
//! namespace.

use super::resolve::Resolver;
use super::table::{ProgrammedRoute, RouteTable, Scope};
use crate::error::Error;
use crate::rib::RouteChange;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use weft_drivers::backend::MAIN_TABLE;
use weft_drivers::netlink::batch::{RouteBatch, RouteOp};
use weft_drivers::netlink::Netlink;
use weft_drivers::DriverError;

/// Most route changes coalesced into one batch.
const MAX_BATCH: usize = 16_384;
/// How long a caller waits for the thread to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings of a programmer.
#[derive(Debug, Clone)]
pub struct ProgrammerConfig {
    /// Which routes are the programmer's.
    pub scope: Scope,
    /// After start, owned routes the RIB does not know are kept this long (the RIB is still
    /// filling up; a restarted weft must not cut traffic it will route again a moment
    /// later); then a full sync removes them.
    pub startup_grace: Duration,
}

/// What one full sync did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SyncSummary {
    /// Routes replaced (missing or different in the kernel).
    pub replaced: usize,
    /// Owned routes removed because the RIB lacks them.
    pub removed: usize,
    /// Routes the kernel does not have because it refused them (or they cannot be built).
    pub failed: usize,
}

/// Counters for `weft bgp status`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ProgrammerStatus {
    /// Routes the RIB wants in the kernel.
    pub routes: usize,
    /// Of those, how many the kernel refused (or could not be built).
    pub failed: usize,
    /// A few failures with their reasons.
    pub failures: Vec<(String, String)>,
    /// Changes outside the managed prefixes, dropped.
    pub ignored: u64,
    /// Route changes received.
    pub changes: u64,
    /// Kernel operations sent.
    pub kernel_ops: u64,
    /// Batches written.
    pub batches: u64,
    /// Whether the start-up grace period is over (unknown owned routes are removed).
    pub synced: bool,
}

enum Input {
    Changes(Vec<RouteChange>),
    Resolver(Resolver),
    Sync(Sender<Result<SyncSummary, Error>>),
    Status(Sender<ProgrammerStatus>),
    Routes(Sender<Vec<ProgrammedRoute>>),
    Flush(Sender<()>),
    Stop {
        remove: bool,
        reply: Sender<Result<(), Error>>,
    },
}

/// A handle on the programmer thread.
#[derive(Debug)]
pub struct RouteProgrammer {
    tx: Sender<Input>,
    thread: Option<JoinHandle<()>>,
}

/// Feeds route changes to a programmer; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct ChangeSender {
    tx: Sender<Input>,
}

impl ChangeSender {
    /// Queues changes (in order). Fails only when the programmer has stopped.
    pub fn send(&self, changes: Vec<RouteChange>) -> Result<(), Error> {
        self.tx
            .send(Input::Changes(changes))
            .map_err(|_| Error::Stopped)
    }

    /// Forwards a speaker's route-change stream until it ends, gathering what is queued into
    /// batches. Spawn it on the speaker's runtime.
    pub async fn forward(self, mut rx: UnboundedReceiver<RouteChange>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            if self.send(batch).is_err() {
                return;
            }
        }
    }
}

impl RouteProgrammer {
    /// Opens the netlink sockets in the calling thread's network namespace and starts the
    /// thread there.
    pub fn start(cfg: ProgrammerConfig, resolver: Resolver) -> Result<RouteProgrammer, Error> {
        let netlink = Netlink::open().map_err(kernel("open a netlink socket"))?;
        let batch = RouteBatch::open().map_err(kernel("open a netlink batch socket"))?;
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            table: RouteTable::new(cfg.scope),
            resolver,
            netlink,
            batch,
            status: ProgrammerStatus::default(),
            grace_until: Some(Instant::now() + cfg.startup_grace),
            queued: VecDeque::new(),
        };
        let thread = std::thread::Builder::new()
            .name("weft-bgp-routes".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| Error::Config {
                what: format!("cannot start the route programmer thread: {e}"),
            })?;
        Ok(RouteProgrammer {
            tx,
            thread: Some(thread),
        })
    }

    /// A sender for route changes.
    pub fn sender(&self) -> ChangeSender {
        ChangeSender {
            tx: self.tx.clone(),
        }
    }

    /// Replaces the next-hop paths; routes whose path changed are re-programmed.
    pub fn set_resolver(&self, resolver: Resolver) -> Result<(), Error> {
        self.tx
            .send(Input::Resolver(resolver))
            .map_err(|_| Error::Stopped)
    }

    /// Makes the kernel's owned routes equal to the RIB's (missing ones added, wrong ones
    /// replaced, and — once the start-up grace is over — unknown ones removed).
    pub fn sync(&self) -> Result<SyncSummary, Error> {
        self.ask(Input::Sync)?
    }

    /// Counters.
    pub fn status(&self) -> Result<ProgrammerStatus, Error> {
        self.ask(Input::Status)
    }

    /// Every route the RIB wants in the kernel, with its error if the kernel refused it.
    pub fn routes(&self) -> Result<Vec<ProgrammedRoute>, Error> {
        self.ask(Input::Routes)
    }

    /// Returns once everything queued before the call is in the kernel.
    pub fn flush(&self) -> Result<(), Error> {
        self.ask(Input::Flush)
    }

    /// Stops the thread; with `remove`, first deletes every owned route from the kernel.
    pub fn stop(mut self, remove: bool) -> Result<(), Error> {
        let result = self.ask(|reply| Input::Stop { remove, reply });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        result?
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Input) -> Result<T, Error> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(make(tx)).map_err(|_| Error::Stopped)?;
        rx.recv_timeout(REPLY_TIMEOUT).map_err(|_| Error::Stopped)
    }
}

impl Drop for RouteProgrammer {
    fn drop(&mut self) {
        // The thread ends when every sender is gone; routes stay in the kernel (a restarted
        // weft takes them over).
        let _ = self.thread.take();
    }
}

struct Worker {
    table: RouteTable,
    resolver: Resolver,
    netlink: Netlink,
    batch: RouteBatch,
    status: ProgrammerStatus,
    grace_until: Option<Instant>,
    /// An input read while draining changes, handled next.
    queued: VecDeque<Input>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Input>) {
        loop {
            let input = match self.queued.pop_front() {
                Some(i) => i,
                None => match self.next(&rx) {
                    Some(i) => i,
                    None => return,
                },
            };
            match input {
                Input::Changes(mut changes) => {
                    while changes.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Input::Changes(more)) => changes.extend(more),
                            Ok(other) => {
                                self.queued.push_back(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.status.changes += changes.len() as u64;
                    let ops = self.table.apply(changes, &self.resolver);
                    self.write(&ops);
                }
                Input::Resolver(resolver) => {
                    let changed = self.resolver.changed(&resolver);
                    self.resolver = resolver;
                    let ops = self.table.reresolve(&changed, &self.resolver);
                    self.write(&ops);
                }
                Input::Sync(reply) => {
                    let _ = reply.send(self.sync());
                }
                Input::Status(reply) => {
                    let _ = reply.send(self.status());
                }
                Input::Routes(reply) => {
                    let _ = reply.send(self.table.routes());
                }
                Input::Flush(reply) => {
                    let _ = reply.send(());
                }
                Input::Stop { remove, reply } => {
                    let result = if remove { self.remove_all() } else { Ok(()) };
                    let _ = reply.send(result);
                    return;
                }
            }
        }
    }

    /// The next input; runs the first full sync when the grace period ends while waiting.
    fn next(&mut self, rx: &Receiver<Input>) -> Option<Input> {
        loop {
            let Some(deadline) = self.grace_until else {
                return rx.recv().ok();
            };
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(i) => return Some(i),
                Err(RecvTimeoutError::Timeout) => {
                    self.grace_until = None;
                    match self.sync() {
                        Ok(s) => tracing::info!(
                            replaced = s.replaced,
                            removed = s.removed,
                            failed = s.failed,
                            "start-up route sync done"
                        ),
                        Err(e) => tracing::warn!(error = %e, "start-up route sync failed"),
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn sync(&mut self) -> Result<SyncSummary, Error> {
        let remove_unknown = self.grace_until.is_none_or(|d| Instant::now() >= d);
        if remove_unknown {
            self.grace_until = None;
        }
        let actual = self
            .netlink
            .routes(None, Some(MAIN_TABLE))
            .map_err(kernel("read the kernel's routes"))?;
        let ops = self
            .table
            .reconcile(&actual, &self.resolver, remove_unknown);
        self.write(&ops);
        Ok(SyncSummary {
            replaced: ops
                .iter()
                .filter(|o| matches!(o, RouteOp::Replace(_)))
                .count(),
            removed: ops
                .iter()
                .filter(|o| matches!(o, RouteOp::Delete(_)))
                .count(),
            failed: self.table.failed().len(),
        })
    }

    fn remove_all(&mut self) -> Result<(), Error> {
        let actual = self
            .netlink
            .routes(None, Some(MAIN_TABLE))
            .map_err(kernel("read the kernel's routes"))?;
        let ops: Vec<RouteOp> = actual
            .into_iter()
            .filter(|r| self.table.scope().owns(r))
            .map(|r| RouteOp::Delete(super::table::delete_route(r.destination)))
            .collect();
        let failures = self
            .batch
            .apply(&ops)
            .map_err(kernel("remove the BGP routes"))?;
        let errors: Vec<DriverError> = failures
            .into_iter()
            .filter(|(_, e)| e.errno() != Some(libc::ESRCH))
            .map(|(_, e)| e)
            .collect();
        DriverError::collect(errors).map_err(kernel("remove the BGP routes"))
    }

    /// Sends `ops`; refusals are recorded per route (deleting what is already gone is fine).
    fn write(&mut self, ops: &[RouteOp]) {
        if ops.is_empty() {
            return;
        }
        self.status.batches += 1;
        self.status.kernel_ops += ops.len() as u64;
        match self.batch.apply(ops) {
            Ok(failures) => {
                let refused: Vec<(usize, String)> = failures
                    .into_iter()
                    .filter(|(i, e)| {
                        !(matches!(ops[*i], RouteOp::Delete(_)) && e.errno() == Some(libc::ESRCH))
                    })
                    .map(|(i, e)| {
                        tracing::warn!(error = %e, "the kernel refused a BGP route");
                        (i, e.to_string())
                    })
                    .collect();
                self.table.record_failures(ops, refused);
            }
            Err(e) => {
                // The socket failed: which changes landed is unknown, so read the kernel
                // back and make it right.
                tracing::error!(error = %e, "writing BGP routes failed; resyncing");
                if let Err(e) = self.sync_after_failure() {
                    tracing::error!(error = %e, "resync after a failed write failed");
                }
            }
        }
    }

    fn sync_after_failure(&mut self) -> Result<(), Error> {
        self.batch = RouteBatch::open().map_err(kernel("reopen the netlink batch socket"))?;
        let actual = self
            .netlink
            .routes(None, Some(MAIN_TABLE))
            .map_err(kernel("read the kernel's routes"))?;
        let ops = self.table.reconcile(&actual, &self.resolver, false);
        let failures = self.batch.apply(&ops).map_err(kernel("write BGP routes"))?;
        let refused = failures
            .into_iter()
            .map(|(i, e)| (i, e.to_string()))
            .collect();
        self.table.record_failures(&ops, refused);
        Ok(())
    }

    fn status(&self) -> ProgrammerStatus {
        let mut s = self.status.clone();
        s.routes = self.table.len();
        s.failed = self.table.failed().len();
        let mut failures: Vec<(String, String)> = self
            .table
            .failed()
            .iter()
            .map(|(p, e)| (p.to_string(), e.clone()))
            .collect();
        failures.sort();
        failures.truncate(20);
        s.failures = failures;
        s.ignored = self.table.ignored();
        s.synced = self.grace_until.is_none();
        s
    }
}

fn kernel(what: &'static str) -> impl Fn(DriverError) -> Error {
    move |source| Error::Kernel {
        what: what.into(),
        source,
    }
}
