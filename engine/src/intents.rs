//! The intent log: what a mutating operation is about to claim and build, written before it
//! claims or builds anything, and forgotten once its records are committed.
//!
//! Every operation runs in four steps: **intent** (`intents/<object>`), **claims** (names,
//! pools, addresses, host ports — each idempotent for the same owner), **kernel** (through the
//! driver), **commit** (the record written or removed, then the intent forgotten). A process
//! killed anywhere in between leaves its intent behind.
//!
//! Every operation holds the store lock from its first read to its last write, and the lock
//! (an `flock`) dies with its process. So an intent found by whoever takes the lock next is
//! stale by construction: its writer is gone. [`Controller::change`] takes the lock for a
//! mutating operation and, in the outermost call of the thread, settles every stale intent
//! first (see `recovery`): a create or connect that did not commit is undone, a removal that
//! began is finished. The daemon's start-up reconciliation and `weft status --repair` do the
//! same; `weft status` lists what is pending.
//!
//! Forgetting an intent skips the flush (`Store::forget`): if a power loss brings one back after
//! its commit, recovery finds the committed record and only forgets it again. Forgetting leaves
//! the `intents/` directory in place, so operations do not create and prune it each time.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use weft_ipam::StoreLock;

use crate::error::EngineError;
use crate::records::{endpoint_intent_key, load, network_intent_key, now, save, INTENTS};
use crate::Controller;

/// What an operation is about to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Intent {
    /// A network with this id and name: the name claim, pools owned by
    /// `pool_owner`, the driver's kernel objects.
    CreateNetwork {
        id: String,
        name: String,
        driver: String,
        internal: bool,
        enable_ipv6: bool,
        options: BTreeMap<String, String>,
        pool_owner: String,
    },
    /// Removal of a network whose record exists.
    RemoveNetwork { id: String },
    /// An endpoint: addresses and host ports owned by its endpoint owner, its links and
    /// published ports in the kernel.
    Connect {
        network_id: String,
        endpoint_id: String,
        netns: Option<PathBuf>,
    },
    /// New published ports of an existing endpoint (Docker's ProgramExternalConnectivity).
    Publish {
        network_id: String,
        endpoint_id: String,
    },
    /// Removal of an endpoint whose record exists.
    Disconnect {
        network_id: String,
        endpoint_id: String,
    },
}

/// An intent as stored: what, by which process, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntentRecord {
    #[serde(flatten)]
    pub intent: Intent,
    pub pid: u32,
    /// Seconds since the epoch.
    pub started: u64,
}

impl Intent {
    /// One key per object: a retried operation on the same object replaces its intent.
    pub fn key(&self) -> String {
        match self {
            Intent::CreateNetwork { id, .. } | Intent::RemoveNetwork { id } => {
                network_intent_key(id)
            }
            Intent::Connect {
                network_id,
                endpoint_id,
                ..
            }
            | Intent::Publish {
                network_id,
                endpoint_id,
            }
            | Intent::Disconnect {
                network_id,
                endpoint_id,
            } => endpoint_intent_key(network_id, endpoint_id),
        }
    }

    /// For messages and `weft status`.
    pub fn describe(&self) -> String {
        let short = weft_drivers::names::short;
        match self {
            Intent::CreateNetwork { name, id, .. } => {
                format!("create network {name} ({})", short(id))
            }
            Intent::RemoveNetwork { id } => format!("remove network {}", short(id)),
            Intent::Connect {
                network_id,
                endpoint_id,
                ..
            } => format!(
                "connect endpoint {} to network {}",
                short(endpoint_id),
                short(network_id)
            ),
            Intent::Publish {
                network_id,
                endpoint_id,
            } => format!(
                "publish ports of endpoint {} on network {}",
                short(endpoint_id),
                short(network_id)
            ),
            Intent::Disconnect {
                network_id,
                endpoint_id,
            } => format!(
                "disconnect endpoint {} from network {}",
                short(endpoint_id),
                short(network_id)
            ),
        }
    }
}

/// An intent's key and its record, or why the record cannot be read.
pub type LoggedIntent = (String, Result<IntentRecord, EngineError>);

thread_local! {
    /// How many `Controller::change` guards this thread holds: recovery runs only in the
    /// outermost, where every intent found is stale (an inner call would find the outer
    /// operation's own intent).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// The store lock of a mutating operation (see the module docs).
pub struct ChangeGuard {
    _lock: StoreLock,
}

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl Controller {
    /// Takes the store lock for an operation that changes state; the outermost call in a thread
    /// first settles the intents that dead processes left.
    pub(crate) fn change(&self) -> Result<ChangeGuard, EngineError> {
        self.change_settling().map(|(guard, _)| guard)
    }

    /// [`Controller::change`], with one line per intent it settled.
    pub(crate) fn change_settling(&self) -> Result<(ChangeGuard, Vec<String>), EngineError> {
        let lock = self.store.lock()?;
        let outermost = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get() == 1
        });
        let guard = ChangeGuard { _lock: lock };
        let settled = if outermost {
            self.settle_stale_intents()
        } else {
            Vec::new()
        };
        Ok((guard, settled))
    }

    /// Durably records what the operation is about to do.
    pub(crate) fn record_intent(&self, intent: Intent) -> Result<Intent, EngineError> {
        let record = IntentRecord {
            intent,
            pid: std::process::id(),
            started: now(),
        };
        save(self.store(), &record.intent.key(), &record)?;
        Ok(record.intent)
    }

    /// [`Controller::record_intent`] for a removal, which must still work on a full disk
    /// (removing frees space and needs none): without room for the intent it goes ahead
    /// unrecorded, as removals did before the log — a crash in it is then repaired by
    /// reconciliation rather than settled.
    pub(crate) fn record_removal_intent(
        &self,
        intent: Intent,
    ) -> Result<Option<Intent>, EngineError> {
        match self.record_intent(intent) {
            Ok(intent) => Ok(Some(intent)),
            Err(EngineError::Store(weft_ipam::StoreError::Io { path, source }))
                if source.raw_os_error() == Some(libc::ENOSPC) =>
            {
                tracing::warn!(%path, "no space left for the intent of a removal; removing without it");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The operation committed (or was undone): its intent is done.
    pub(crate) fn forget_intent(&self, intent: &Intent) -> Result<(), EngineError> {
        self.store.forget(&intent.key())?;
        Ok(())
    }

    /// Every intent in the log, each with its key.
    pub fn intents(&self) -> Result<Vec<LoggedIntent>, EngineError> {
        let mut out = Vec::new();
        for (key, _) in self.store.list(INTENTS)? {
            let record = load::<IntentRecord>(self.store(), &key).and_then(|r| {
                r.ok_or_else(|| EngineError::System(format!("intent {key} vanished")))
            });
            out.push((key, record));
        }
        Ok(out)
    }
}
