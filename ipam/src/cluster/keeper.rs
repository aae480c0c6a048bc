//! The lease keeper: a sans-IO state machine that joins a cluster, holds one subnet lease and
//! tracks the other hosts' leases.
//!
//! Inputs are etcd replies, watch events and clock ticks ([`Input`]); outputs are requests for
//! the I/O layer to make and events for the agent ([`Action`]). It never sleeps or touches a
//! socket, so every path (etcd down at start, a renewal that keeps failing past the TTL, a lease
//! deleted under us, a racing claim) is a unit test.
//!
//! ```text
//!  Backoff ──tick──▶ Loading ──loaded──▶ Granting ──granted──▶ Claiming ──claimed──▶ Held
//!     ▲                 │ no config / conflict / etcd error          │ lost the race  │
//!     └─────────────────┴─────────────────────────────────────────────┘◀── lease lost ┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};

use super::carve;
use super::choose::{choose_subnet, ChoiceInput, Claim};
use super::config::ClusterConfig;
use super::error::ClusterError;
use super::lease::{parse_lease, parse_reservation, KeyKind, Keys, Lease, LeaseValue, Reservation};

/// First retry delay after a failure; doubled per failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long after a failed renewal the next one is tried.
pub const RENEW_RETRY: Duration = Duration::from_millis(500);

/// Who this host is and how long its lease lives.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// etcd key prefix (default `/weft`).
    pub prefix: String,
    /// Cluster network name.
    pub cluster: String,
    /// This host's public (underlay) address.
    pub public_ip: IpAddr,
    /// This host's persisted node id.
    pub node_id: String,
    /// For people reading etcd.
    pub hostname: String,
    /// Lease TTL; renewals happen every third of it.
    pub ttl: Duration,
    /// The subnet this host had before (local state).
    pub previous: Option<Ipv4Net>,
}

/// One key and value as etcd returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// Full key.
    pub key: String,
    /// Raw value.
    pub value: Vec<u8>,
    /// etcd's mod_revision.
    pub mod_revision: i64,
}

/// Everything under the cluster prefix at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The store revision the read saw; the watch starts after it.
    pub revision: i64,
    /// Every key under `<prefix>/clusters/<name>/`.
    pub kvs: Vec<Kv>,
}

/// A change seen by the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or changed.
    Put(Kv),
    /// A key was deleted (or its etcd lease expired).
    Delete {
        /// Full key.
        key: String,
        /// Revision of the delete.
        mod_revision: i64,
    },
}

/// What happened outside.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The clock: time since the agent started.
    Tick(Duration),
    /// Reply to [`Request::Load`].
    Loaded(Result<Snapshot, String>),
    /// Reply to [`Request::Grant`]: the etcd lease id.
    Granted(Result<i64, String>),
    /// Reply to [`Request::Claim`]: whether the transaction succeeded, and the revision.
    Claimed(Result<(bool, i64), String>),
    /// Reply to [`Request::KeepAlive`]: the remaining TTL in seconds (0: the lease is gone).
    KeptAlive(Result<i64, String>),
    /// The watch saw a change.
    Watched(WatchEvent),
    /// The watch ended or failed; a resync follows.
    WatchFailed(String),
    /// The backend's data to publish in the lease changed.
    BackendData(serde_json::Value),
}

/// A condition on the claim transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `create_revision == 0`: the key does not exist.
    Absent,
    /// `mod_revision == n`: nobody changed the key since we read it.
    ModRevision(i64),
}

/// What the I/O layer is asked to do; each reply comes back as an [`Input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Range-get everything under the cluster prefix → [`Input::Loaded`].
    Load,
    /// Grant an etcd lease with this TTL → [`Input::Granted`].
    Grant {
        /// Seconds.
        ttl_secs: i64,
    },
    /// Transaction: if `expect` holds, put `value` at `key` attached to `lease` →
    /// [`Input::Claimed`].
    Claim {
        /// Lease key.
        key: String,
        /// Encoded [`LeaseValue`].
        value: Vec<u8>,
        /// etcd lease id.
        lease: i64,
        /// The condition.
        expect: Expect,
    },
    /// Renew the etcd lease once → [`Input::KeptAlive`].
    KeepAlive {
        /// etcd lease id.
        lease: i64,
    },
    /// (Re)start the watch of the cluster prefix from this revision → [`Input::Watched`].
    Watch {
        /// First revision to report.
        from_revision: i64,
    },
}

/// What the agent should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// etcd failed; the keeper retries after `retry_in`.
    EtcdUnavailable {
        /// What was tried.
        op: &'static str,
        /// The error.
        error: String,
        /// When the next try happens.
        retry_in: Duration,
    },
    /// Joining is not possible right now (no config, a duplicate, no free subnet); retried.
    Waiting {
        /// Why, with what the user can do.
        reason: String,
        /// When the next try happens.
        retry_in: Duration,
    },
    /// This host holds `subnet` now.
    LeaseAcquired {
        /// The IPv4 subnet.
        subnet: Ipv4Net,
        /// The IPv6 subnet when the cluster has an IPv6 network.
        subnet_v6: Option<Ipv6Net>,
        /// The cluster config the lease was taken under.
        config: ClusterConfig,
    },
    /// This host no longer holds `subnet`; it is being re-acquired.
    LeaseLost {
        /// The subnet that was held.
        subnet: Ipv4Net,
        /// Why.
        reason: String,
    },
    /// The complete set of peers after a (re)load: reconcile everything against it.
    PeersSynced(Vec<Lease>),
    /// A new peer.
    PeerAdded(Lease),
    /// A peer's address or backend data changed.
    PeerChanged(Lease),
    /// A peer's lease is gone.
    PeerRemoved(Lease),
    /// A lease was malformed and is ignored.
    MalformedLease {
        /// The error naming the key.
        error: String,
    },
    /// The cluster config in etcd changed; it applies when the agent restarts.
    ConfigChanged,
}

/// One output of the keeper.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask the I/O layer.
    Request(Request),
    /// Tell the agent.
    Event(Event),
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Waiting until the deadline, then loading.
    Backoff {
        until: Duration,
    },
    Loading,
    Granting {
        claim: Claim,
    },
    Claiming {
        claim: Claim,
    },
    Held(Held),
}

#[derive(Debug, Clone, PartialEq)]
struct Held {
    subnet: Ipv4Net,
    subnet_v6: Option<Ipv6Net>,
    mod_revision: i64,
    /// Last successful renewal.
    renewed_at: Duration,
    next_renewal: Duration,
    renewing: bool,
    /// A value update (new backend data) in flight.
    updating: bool,
    /// Resync (reload and rewatch) due at this time.
    resync_at: Option<Duration>,
    resyncing: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct Keeper {
    cfg: KeeperConfig,
    keys: Keys,
    state: State,
    now: Duration,
    failures: u32,
    lease_id: Option<i64>,
    config: Option<ClusterConfig>,
    peers: BTreeMap<Ipv4Net, Lease>,
    backend_data: serde_json::Value,
    published_data: serde_json::Value,
    previous: Option<Ipv4Net>,
    /// Revision of the last load: the watch starts after it.
    pending_revision: i64,
}

impl Keeper {
    /// A keeper that loads at the first tick.
    pub fn new(cfg: KeeperConfig) -> Keeper {
        Keeper {
            keys: Keys::new(&cfg.prefix, &cfg.cluster),
            previous: cfg.previous,
            cfg,
            state: State::Backoff {
                until: Duration::ZERO,
            },
            now: Duration::ZERO,
            failures: 0,
            lease_id: None,
            config: None,
            peers: BTreeMap::new(),
            backend_data: serde_json::Value::Null,
            published_data: serde_json::Value::Null,
            pending_revision: 0,
        }
    }

    /// The keys this keeper reads and writes.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The subnet held now.
    pub fn subnet(&self) -> Option<Ipv4Net> {
        match &self.state {
            State::Held(h) => Some(h.subnet),
            _ => None,
        }
    }

    /// The etcd lease id in use.
    pub fn lease_id(&self) -> Option<i64> {
        self.lease_id
    }

    /// The known peers.
    pub fn peers(&self) -> impl Iterator<Item = &Lease> {
        self.peers.values()
    }

    /// The cluster config as last loaded.
    pub fn config(&self) -> Option<&ClusterConfig> {
        self.config.as_ref()
    }

    /// A word for status output.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Backoff { .. } => "waiting",
            State::Loading => "loading",
            State::Granting { .. } | State::Claiming { .. } => "claiming",
            State::Held(_) => "held",
        }
    }

    /// Feeds one input; returns what to do.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Tick(now) => {
                self.now = self.now.max(now);
                self.on_tick(&mut out);
            }
            Input::Loaded(result) => self.on_loaded(result, &mut out),
            Input::Granted(result) => self.on_granted(result, &mut out),
            Input::Claimed(result) => self.on_claimed(result, &mut out),
            Input::KeptAlive(result) => self.on_kept_alive(result, &mut out),
            Input::Watched(event) => self.on_watched(event, &mut out),
            Input::WatchFailed(error) => self.on_watch_failed(error, &mut out),
            Input::BackendData(data) => {
                self.backend_data = data;
                self.publish_if_needed(&mut out);
            }
        }
        out
    }

    fn on_tick(&mut self, out: &mut Vec<Action>) {
        let now = self.now;
        match &mut self.state {
            State::Backoff { until } if now >= *until => {
                self.state = State::Loading;
                out.push(Action::Request(Request::Load));
            }
            State::Held(held) => {
                if let Some(lost) = lost_by_timeout(held, now, self.cfg.ttl) {
                    let subnet = held.subnet;
                    self.lose(subnet, lost, out);
                    return;
                }
                if !held.renewing && now >= held.next_renewal {
                    if let Some(lease) = self.lease_id {
                        held.renewing = true;
                        out.push(Action::Request(Request::KeepAlive { lease }));
                    }
                }
                if !held.resyncing && held.resync_at.is_some_and(|at| now >= at) {
                    held.resyncing = true;
                    held.resync_at = None;
                    out.push(Action::Request(Request::Load));
                }
            }
            _ => {}
        }
    }

    fn on_loaded(&mut self, result: Result<Snapshot, String>, out: &mut Vec<Action>) {
        let snapshot = match result {
            Ok(s) => s,
            Err(error) => {
                if let State::Held(held) = &mut self.state {
                    held.resyncing = false;
                    let retry = backoff(self.failures);
                    self.failures += 1;
                    held.resync_at = Some(self.now + retry);
                    out.push(unavailable("load cluster state", error, retry));
                } else {
                    self.retry_later("load cluster state", error, out);
                }
                return;
            }
        };
        match &self.state {
            State::Loading => self.choose_and_claim(snapshot, out),
            State::Held(_) => self.resync(snapshot, out),
            _ => {}
        }
    }

    fn choose_and_claim(&mut self, snapshot: Snapshot, out: &mut Vec<Action>) {
        let config = match self.read_config(&snapshot) {
            Ok(c) => c,
            Err(e) => return self.wait(e.to_string(), out),
        };
        let parsed = self.parse_snapshot(&config, &snapshot, out);
        let choice = choose_subnet(&ChoiceInput {
            config: &config,
            leases: &parsed.leases,
            occupied: &parsed.occupied,
            reservations: &parsed.reservations,
            public_ip: self.cfg.public_ip,
            node_id: &self.cfg.node_id,
            previous: self.previous,
        });
        self.config = Some(config);
        self.peers = parsed
            .leases
            .into_iter()
            .filter(|l| l.value.node_id != self.cfg.node_id)
            .map(|l| (l.subnet, l))
            .collect();
        self.pending_revision = snapshot.revision;
        match choice {
            Err(e) => self.wait(e.to_string(), out),
            Ok(claim) => match self.lease_id {
                Some(lease) => self.claim(claim, lease, out),
                None => {
                    self.state = State::Granting { claim };
                    out.push(Action::Request(Request::Grant {
                        ttl_secs: self.cfg.ttl.as_secs().max(1) as i64,
                    }));
                }
            },
        }
    }

    fn on_granted(&mut self, result: Result<i64, String>, out: &mut Vec<Action>) {
        let State::Granting { claim } = self.state.clone() else {
            return;
        };
        match result {
            Ok(lease) => {
                self.lease_id = Some(lease);
                self.claim(claim, lease, out);
            }
            Err(error) => self.retry_later("grant a lease", error, out),
        }
    }

    fn claim(&mut self, claim: Claim, lease: i64, out: &mut Vec<Action>) {
        let (subnet, expect) = match claim {
            Claim::Create(s) => (s, Expect::Absent),
            Claim::TakeOver {
                subnet,
                mod_revision,
            } => (subnet, Expect::ModRevision(mod_revision)),
        };
        let value = self.lease_value(subnet);
        self.state = State::Claiming { claim };
        out.push(Action::Request(Request::Claim {
            key: self.keys.subnet(subnet),
            value: value.encode(),
            lease,
            expect,
        }));
    }

    fn on_claimed(&mut self, result: Result<(bool, i64), String>, out: &mut Vec<Action>) {
        match (&mut self.state, result) {
            (State::Claiming { claim }, Ok((true, revision))) => {
                let subnet = claim.subnet();
                let subnet_v6 = self.v6_of(subnet);
                let config = self.config.clone().expect("config loaded before claiming");
                self.failures = 0;
                self.previous = Some(subnet);
                self.published_data = self.backend_data.clone();
                self.state = State::Held(Held {
                    subnet,
                    subnet_v6,
                    mod_revision: revision,
                    renewed_at: self.now,
                    next_renewal: self.now + self.cfg.ttl / 3,
                    renewing: false,
                    updating: false,
                    resync_at: None,
                    resyncing: false,
                });
                out.push(Action::Event(Event::LeaseAcquired {
                    subnet,
                    subnet_v6,
                    config,
                }));
                out.push(Action::Event(Event::PeersSynced(
                    self.peers.values().cloned().collect(),
                )));
                out.push(Action::Request(Request::Watch {
                    from_revision: self.pending_revision + 1,
                }));
                self.publish_if_needed(out);
            }
            // Someone changed the key between our read and our claim: read again at once.
            (State::Claiming { .. }, Ok((false, _))) => {
                self.state = State::Loading;
                out.push(Action::Request(Request::Load));
            }
            (State::Claiming { .. }, Err(error)) => self.retry_later("claim a subnet", error, out),
            (State::Held(held), Ok((true, revision))) if held.updating => {
                held.updating = false;
                held.mod_revision = revision;
                self.publish_if_needed(out);
            }
            (State::Held(held), Ok((false, _))) if held.updating => {
                let subnet = held.subnet;
                self.lose(
                    subnet,
                    "the lease key was changed by someone else".into(),
                    out,
                );
            }
            (State::Held(held), Err(error)) if held.updating => {
                held.updating = false;
                self.published_data = serde_json::Value::Null;
                held.resync_at = Some(self.now + RENEW_RETRY);
                out.push(unavailable("update the lease", error, RENEW_RETRY));
            }
            _ => {}
        }
    }

    fn on_kept_alive(&mut self, result: Result<i64, String>, out: &mut Vec<Action>) {
        let now = self.now;
        let State::Held(held) = &mut self.state else {
            return;
        };
        held.renewing = false;
        match result {
            Ok(ttl) if ttl > 0 => {
                held.renewed_at = now;
                held.next_renewal = now + self.cfg.ttl / 3;
            }
            Ok(_) => {
                let subnet = held.subnet;
                self.lease_id = None;
                self.lose(subnet, "etcd says its lease has expired".into(), out);
            }
            Err(error) => {
                held.next_renewal = now + RENEW_RETRY;
                out.push(unavailable("renew the lease", error, RENEW_RETRY));
            }
        }
    }

    fn on_watched(&mut self, event: WatchEvent, out: &mut Vec<Action>) {
        let (key, put) = match &event {
            WatchEvent::Put(kv) => (kv.key.as_str(), Some(kv)),
            WatchEvent::Delete { key, .. } => (key.as_str(), None),
        };
        match self.keys.classify(key) {
            KeyKind::Config => {
                let changed = put
                    .map(|kv| ClusterConfig::decode(&kv.value).ok() != self.config)
                    .unwrap_or(true);
                if changed {
                    out.push(Action::Event(Event::ConfigChanged));
                }
            }
            KeyKind::Lease(subnet) => self.on_lease_event(subnet, put, out),
            KeyKind::Reservation(_) | KeyKind::Other => {}
        }
    }

    fn on_lease_event(&mut self, subnet: Option<Ipv4Net>, put: Option<&Kv>, out: &mut Vec<Action>) {
        let held = self.subnet();
        if subnet.is_some() && subnet == held {
            let held = held.expect("checked");
            match put.map(|kv| self.parse(kv)) {
                Some(Ok(lease)) if lease.value.node_id == self.cfg.node_id => {
                    if let State::Held(h) = &mut self.state {
                        h.mod_revision = h.mod_revision.max(lease.mod_revision);
                    }
                }
                Some(_) => self.lose(held, "another host wrote its lease key".into(), out),
                None => self.lose(
                    held,
                    "its lease key was deleted (expired or removed by hand)".into(),
                    out,
                ),
            }
            return;
        }
        let Some(kv) = put else {
            if let Some(old) = subnet.and_then(|s| self.peers.remove(&s)) {
                out.push(Action::Event(Event::PeerRemoved(old)));
            }
            return;
        };
        match self.parse(kv) {
            Ok(lease) if lease.value.node_id == self.cfg.node_id => {}
            Ok(lease) => match self.peers.insert(lease.subnet, lease.clone()) {
                None => out.push(Action::Event(Event::PeerAdded(lease))),
                Some(old) if old.value != lease.value => {
                    out.push(Action::Event(Event::PeerChanged(lease)))
                }
                Some(_) => {}
            },
            // A malformed value where a peer was: the peer no longer says where it is.
            Err(e) => {
                out.push(Action::Event(Event::MalformedLease {
                    error: e.to_string(),
                }));
                if let Some(old) = subnet.and_then(|s| self.peers.remove(&s)) {
                    out.push(Action::Event(Event::PeerRemoved(old)));
                }
            }
        }
    }

    fn on_watch_failed(&mut self, error: String, out: &mut Vec<Action>) {
        let retry = backoff(self.failures);
        if let State::Held(held) = &mut self.state {
            if !held.resyncing && held.resync_at.is_none() {
                held.resync_at = Some(self.now + retry);
            }
        }
        out.push(unavailable("watch the cluster", error, retry));
    }

    /// A reload while holding the lease: check the lease is still ours, replace the peer set,
    /// rewatch.
    fn resync(&mut self, snapshot: Snapshot, out: &mut Vec<Action>) {
        let Some(config) = self.config.clone() else {
            return;
        };
        let parsed = self.parse_snapshot(&config, &snapshot, out);
        let State::Held(held) = &mut self.state else {
            return;
        };
        held.resyncing = false;
        self.failures = 0;
        let subnet = held.subnet;
        match parsed.leases.iter().find(|l| l.subnet == subnet) {
            Some(l) if l.value.node_id == self.cfg.node_id => {
                held.mod_revision = l.mod_revision;
            }
            _ => {
                self.pending_revision = snapshot.revision;
                self.peers = others(parsed.leases, &self.cfg.node_id);
                return self.lose(subnet, "its lease key is gone from etcd".into(), out);
            }
        }
        self.peers = others(parsed.leases, &self.cfg.node_id);
        out.push(Action::Event(Event::PeersSynced(
            self.peers.values().cloned().collect(),
        )));
        out.push(Action::Request(Request::Watch {
            from_revision: snapshot.revision + 1,
        }));
    }

    /// Reports the loss loudly and starts over (previous subnet first).
    fn lose(&mut self, subnet: Ipv4Net, reason: String, out: &mut Vec<Action>) {
        out.push(Action::Event(Event::LeaseLost { subnet, reason }));
        self.previous = Some(subnet);
        self.published_data = serde_json::Value::Null;
        // The old etcd lease may be gone or about to be: a fresh one avoids sharing its fate.
        self.lease_id = None;
        self.state = State::Loading;
        out.push(Action::Request(Request::Load));
    }

    fn publish_if_needed(&mut self, out: &mut Vec<Action>) {
        let (Some(lease), State::Held(held)) = (self.lease_id, &mut self.state) else {
            return;
        };
        if held.updating || self.backend_data == self.published_data {
            return;
        }
        held.updating = true;
        self.published_data = self.backend_data.clone();
        let (subnet, expect) = (held.subnet, Expect::ModRevision(held.mod_revision));
        out.push(Action::Request(Request::Claim {
            key: self.keys.subnet(subnet),
            value: self.lease_value(subnet).encode(),
            lease,
            expect,
        }));
    }

    fn lease_value(&self, subnet: Ipv4Net) -> LeaseValue {
        LeaseValue {
            public_ip: self.cfg.public_ip,
            node_id: self.cfg.node_id.clone(),
            hostname: self.cfg.hostname.clone(),
            subnet_v6: self.v6_of(subnet),
            backend_data: self.backend_data.clone(),
        }
    }

    fn v6_of(&self, subnet: Ipv4Net) -> Option<Ipv6Net> {
        let c = self.config.as_ref()?;
        carve::v6_for(
            c.network,
            c.subnet_len,
            subnet,
            c.network_v6?,
            c.subnet_len_v6,
        )
    }

    fn read_config(&self, snapshot: &Snapshot) -> Result<ClusterConfig, ClusterError> {
        let key = self.keys.config();
        match snapshot.kvs.iter().find(|kv| kv.key == key) {
            Some(kv) => ClusterConfig::decode(&kv.value),
            None => Err(ClusterError::NoConfig {
                cluster: self.cfg.cluster.clone(),
                key,
            }),
        }
    }

    fn parse(&self, kv: &Kv) -> Result<Lease, ClusterError> {
        let config = self.config.as_ref().ok_or_else(|| ClusterError::NoConfig {
            cluster: self.cfg.cluster.clone(),
            key: self.keys.config(),
        })?;
        parse_lease(config, &self.keys, &kv.key, &kv.value, kv.mod_revision)
    }

    fn parse_snapshot(
        &self,
        config: &ClusterConfig,
        snapshot: &Snapshot,
        out: &mut Vec<Action>,
    ) -> Parsed {
        let mut parsed = Parsed::default();
        for kv in &snapshot.kvs {
            match self.keys.classify(&kv.key) {
                KeyKind::Lease(subnet) => {
                    match parse_lease(config, &self.keys, &kv.key, &kv.value, kv.mod_revision) {
                        Ok(lease) => parsed.leases.push(lease),
                        Err(e) => {
                            parsed.occupied.extend(subnet);
                            out.push(Action::Event(Event::MalformedLease {
                                error: e.to_string(),
                            }));
                        }
                    }
                }
                KeyKind::Reservation(_) => {
                    match parse_reservation(config, &self.keys, &kv.key, &kv.value) {
                        Ok(r) => parsed.reservations.push(r),
                        Err(e) => out.push(Action::Event(Event::MalformedLease {
                            error: e.to_string(),
                        })),
                    }
                }
                KeyKind::Config | KeyKind::Other => {}
            }
        }
        parsed
    }

    fn wait(&mut self, reason: String, out: &mut Vec<Action>) {
        let retry = backoff(self.failures);
        self.failures += 1;
        self.state = State::Backoff {
            until: self.now + retry,
        };
        out.push(Action::Event(Event::Waiting {
            reason,
            retry_in: retry,
        }));
    }

    fn retry_later(&mut self, op: &'static str, error: String, out: &mut Vec<Action>) {
        let retry = backoff(self.failures);
        self.failures += 1;
        self.state = State::Backoff {
            until: self.now + retry,
        };
        out.push(unavailable(op, error, retry));
    }
}

#[derive(Default)]
struct Parsed {
    leases: Vec<Lease>,
    occupied: BTreeSet<Ipv4Net>,
    reservations: Vec<Reservation>,
}

fn others(leases: Vec<Lease>, node_id: &str) -> BTreeMap<Ipv4Net, Lease> {
    leases
        .into_iter()
        .filter(|l| l.value.node_id != node_id)
        .map(|l| (l.subnet, l))
        .collect()
}

/// Renewals failed for longer than the TTL: etcd has dropped the lease by now.
fn lost_by_timeout(held: &Held, now: Duration, ttl: Duration) -> Option<String> {
    (now.saturating_sub(held.renewed_at) > ttl).then(|| {
        format!(
            "it could not be renewed for {} s, longer than its TTL of {} s (etcd unreachable)",
            now.saturating_sub(held.renewed_at).as_secs(),
            ttl.as_secs()
        )
    })
}

fn backoff(failures: u32) -> Duration {
    MIN_BACKOFF
        .saturating_mul(1 << failures.min(10))
        .min(MAX_BACKOFF)
}

fn unavailable(op: &'static str, error: String, retry_in: Duration) -> Action {
    Action::Event(Event::EtcdUnavailable {
        op,
        error,
        retry_in,
    })
}
