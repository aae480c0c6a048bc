//! The thin tokio driver: a task per peer (session, timers, TCP), a listener for passive
//! connections and one RIB task. The protocol logic lives in [`crate::fsm`] and [`crate::rib`].

pub mod config;
mod conn;
mod peer;
pub mod status;

pub use config::{PeerConfig, SpeakerConfig, BGP_PORT};
pub use status::PeerStatus;

use crate::codec::Origin;
use crate::error::Error;
use crate::fsm::SessionConfig;
use crate::rib::{LocRoute, PathAttrs, Rib, RibConfig, RibOutput, RibPeer, RouteChange};
use ipnet::IpNet;
use peer::{PeerCmd, PeerReport, PeerTask};
use status::StatusMap;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Requests from the API to the RIB task.
enum ApiCmd {
    Announce(IpNet, PathAttrs),
    Withdraw(IpNet),
    LocRib(oneshot::Sender<Vec<LocRoute>>),
    Counts(oneshot::Sender<HashMap<IpAddr, (usize, usize)>>),
    AddPeer(Box<PeerConfig>),
    RemovePeer(IpAddr),
}

/// A peer task and the way to reach it.
struct PeerHandle {
    tx: mpsc::UnboundedSender<PeerCmd>,
    task: JoinHandle<()>,
}

/// The running peer tasks, shared by the API, the RIB task and the listener. Only the RIB
/// task adds and removes entries, so the RIB always knows a peer before its task reports.
type PeerMap = Arc<Mutex<HashMap<IpAddr, PeerHandle>>>;

/// A running speaker. Dropping it without [`Speaker::shutdown`] aborts its tasks.
pub struct Speaker {
    api: mpsc::UnboundedSender<ApiCmd>,
    status: StatusMap,
    routes: Option<mpsc::UnboundedReceiver<RouteChange>>,
    local_addr: Option<std::net::SocketAddr>,
    listening: bool,
    /// The peers as the API has configured them so far (the RIB task catches up in order).
    configured: Mutex<BTreeMap<IpAddr, PeerConfig>>,
    peers: PeerMap,
    /// The RIB task and the listener, which run until aborted.
    service_tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Speaker {
    /// Validates the configuration, binds the listener and starts every peer.
    pub async fn start(cfg: SpeakerConfig) -> Result<Speaker, Error> {
        cfg.validate().map_err(|what| Error::Config { what })?;
        let listener = match cfg.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Listen { addr, source })?,
            ),
            None => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let status: StatusMap = Arc::new(Mutex::new(BTreeMap::new()));
        let peers: PeerMap = Arc::new(Mutex::new(HashMap::new()));
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let (api_tx, api_rx) = mpsc::unbounded_channel();
        let (route_tx, route_rx) = mpsc::unbounded_channel();
        let rib = Rib::new(RibConfig {
            local_as: cfg.local_as,
            router_id: cfg.router_id,
            cluster_id: cfg.cluster_id,
        });
        let mut core = Core {
            rib,
            base: SpeakerConfig {
                peers: Vec::new(),
                ..cfg.clone()
            },
            peers: peers.clone(),
            status: status.clone(),
            reports: report_tx,
            generations: HashMap::new(),
            routes: route_tx,
        };
        for p in &cfg.peers {
            core.add_peer(p.clone());
        }
        let mut service_tasks = vec![tokio::spawn(core.run(report_rx, api_rx))];
        if let Some(l) = listener {
            service_tasks.push(tokio::spawn(accept_loop(l, peers.clone())));
        }
        Ok(Speaker {
            api: api_tx,
            status,
            routes: Some(route_rx),
            local_addr,
            listening: cfg.listen.is_some(),
            configured: Mutex::new(cfg.peers.iter().map(|p| (p.address, p.clone())).collect()),
            peers,
            service_tasks: Mutex::new(service_tasks),
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    /// Takes the stream of kernel route changes (install/replace/remove with next hops).
    /// Only the first call gets it. Changes queue up until it is taken (or dropped, which
    /// discards them), so a caller that does not program routes should take and drop it.
    pub fn take_route_changes(&mut self) -> Option<mpsc::UnboundedReceiver<RouteChange>> {
        self.routes.take()
    }

    /// Originates a prefix (ORIGIN IGP) toward every peer its export policy allows.
    pub fn announce(&self, prefix: IpNet) -> Result<(), Error> {
        self.announce_with(prefix, PathAttrs::local(Origin::Igp))
    }

    /// Originates a prefix with the given attributes (next hop and AS path are set on export).
    pub fn announce_with(&self, prefix: IpNet, attrs: PathAttrs) -> Result<(), Error> {
        if !attrs.as_path.segments.is_empty() {
            return Err(Error::Announce {
                prefix,
                why: "a locally originated route must have an empty AS path; \
                      the AS is prepended on export"
                    .into(),
            });
        }
        self.api
            .send(ApiCmd::Announce(prefix, attrs))
            .map_err(|_| Error::Stopped)
    }

    /// Stops originating a prefix.
    pub fn withdraw(&self, prefix: IpNet) -> Result<(), Error> {
        self.api
            .send(ApiCmd::Withdraw(prefix))
            .map_err(|_| Error::Stopped)
    }

    /// The Loc-RIB: best route per prefix with its ECMP next hops.
    pub async fn loc_rib(&self) -> Result<Vec<LocRoute>, Error> {
        let (tx, rx) = oneshot::channel();
        self.api
            .send(ApiCmd::LocRib(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Every peer's state, uptime and prefix counts.
    pub async fn status(&self) -> Result<Vec<PeerStatus>, Error> {
        let (tx, rx) = oneshot::channel();
        self.api
            .send(ApiCmd::Counts(tx))
            .map_err(|_| Error::Stopped)?;
        let counts = rx.await.map_err(|_| Error::Stopped)?;
        let mut v: Vec<PeerStatus> = self
            .status
            .lock()
            .expect("status lock")
            .values()
            .cloned()
            .collect();
        for s in &mut v {
            if let Some((rx, tx)) = counts.get(&s.address) {
                s.prefixes_received = *rx;
                s.prefixes_sent = *tx;
            }
        }
        Ok(v)
    }

    /// One peer's status.
    pub async fn peer_status(&self, addr: IpAddr) -> Result<PeerStatus, Error> {
        self.status()
            .await?
            .into_iter()
            .find(|s| s.address == addr)
            .ok_or(Error::UnknownPeer { addr })
    }

    /// Re-enables a peer's session (after [`Speaker::stop_peer`] or a maximum-prefix cut).
    pub fn start_peer(&self, addr: IpAddr) -> Result<(), Error> {
        self.peer_cmd(addr, PeerCmd::Start)
    }

    /// Ends a peer's session with Cease / Administrative Shutdown; it stays down until
    /// [`Speaker::start_peer`].
    pub fn stop_peer(&self, addr: IpAddr) -> Result<(), Error> {
        self.peer_cmd(addr, PeerCmd::Stop)
    }

    /// Adds a neighbour to the running speaker; its session starts at once. The
    /// configuration is checked first; an address that is already a peer is refused (use
    /// [`Speaker::set_peer`] to change one).
    pub fn add_peer(&self, peer: PeerConfig) -> Result<(), Error> {
        if self.configured().contains_key(&peer.address) {
            return Err(Error::Config {
                what: format!(
                    "peer {} is already configured; remove it first or use set_peer",
                    peer.address
                ),
            });
        }
        self.set_peer(peer)
    }

    /// Adds a neighbour, or replaces one with other settings (its session restarts and its
    /// routes are relearned). Setting a peer to the settings it has changes nothing.
    pub fn set_peer(&self, peer: PeerConfig) -> Result<(), Error> {
        peer.validate(self.listening)
            .map_err(|what| Error::Config { what })?;
        let mut configured = self.configured();
        if configured.get(&peer.address) == Some(&peer) {
            return Ok(());
        }
        configured.insert(peer.address, peer.clone());
        self.api
            .send(ApiCmd::AddPeer(Box::new(peer)))
            .map_err(|_| Error::Stopped)
    }

    /// Removes a neighbour: its session ends with a Cease and every route it gave us is
    /// withdrawn (and removed from the kernel by whoever programs it).
    pub fn remove_peer(&self, addr: IpAddr) -> Result<(), Error> {
        if self.configured().remove(&addr).is_none() {
            return Err(Error::UnknownPeer { addr });
        }
        self.api
            .send(ApiCmd::RemovePeer(addr))
            .map_err(|_| Error::Stopped)
    }

    /// The configured peers, by address.
    pub fn peers(&self) -> BTreeMap<IpAddr, PeerConfig> {
        self.configured().clone()
    }

    fn configured(&self) -> std::sync::MutexGuard<'_, BTreeMap<IpAddr, PeerConfig>> {
        self.configured.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peer_map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, PeerHandle>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peer_cmd(&self, addr: IpAddr, cmd: PeerCmd) -> Result<(), Error> {
        self.peer_map()
            .get(&addr)
            .ok_or(Error::UnknownPeer { addr })?
            .tx
            .send(cmd)
            .map_err(|_| Error::Stopped)
    }

    /// Stops every session with Cease / Administrative Shutdown and ends all tasks.
    pub async fn shutdown(&self) {
        let handles: Vec<PeerHandle> = self.peer_map().drain().map(|(_, h)| h).collect();
        for h in &handles {
            let _ = h.tx.send(PeerCmd::Shutdown);
        }
        // Peer tasks end after sending their Cease; bound the wait all the same.
        for h in handles {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), h.task).await;
        }
        // Waiting for the aborted tasks means the listening socket is closed on return, so
        // a new speaker can bind the same address at once.
        let services = std::mem::take(&mut *self.services());
        for t in services {
            t.abort();
            let _ = t.await;
        }
    }

    fn services(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.service_tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        for h in self.peer_map().values() {
            h.task.abort();
        }
        for t in self.services().iter() {
            t.abort();
        }
    }
}

async fn accept_loop(l: TcpListener, peers: PeerMap) {
    loop {
        let (stream, remote) = match l.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a BGP connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = match remote.ip() {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        let tx = peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .map(|h| h.tx.clone());
        match tx {
            Some(tx) => {
                let _ = tx.send(PeerCmd::Incoming(stream));
            }
            None => tracing::info!(%remote, "refusing BGP connection from an unconfigured address"),
        }
    }
}

/// The RIB task.
struct Core {
    rib: Rib,
    /// The speaker's settings (without peers), for sessions of peers added later.
    base: SpeakerConfig,
    peers: PeerMap,
    status: StatusMap,
    reports: mpsc::UnboundedSender<PeerReport>,
    generations: HashMap<IpAddr, u64>,
    routes: mpsc::UnboundedSender<RouteChange>,
}

impl Core {
    /// Registers a peer with the RIB and the status table, then starts its task. A peer
    /// of the same address is removed first.
    fn add_peer(&mut self, p: PeerConfig) {
        if self.known(p.address) {
            self.remove_peer(p.address);
        }
        self.rib.add_peer(RibPeer {
            addr: p.address,
            remote_as: p.remote_as,
            rr_client: p.rr_client,
            next_hop_self: p.next_hop_self,
            policy: p.policy.clone(),
        });
        self.status
            .lock()
            .expect("status lock")
            .insert(p.address, PeerStatus::new(p.address, p.remote_as));
        let session = SessionConfig {
            local_as: self.base.local_as,
            peer_as: p.remote_as,
            local_id: self.base.router_id,
            hold_time: p.hold_time,
            connect_retry: self.base.connect_retry,
            idle_hold: self.base.idle_hold,
            passive: p.passive,
            families: p.families.clone(),
            graceful_restart: self.base.graceful_restart,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let address = p.address;
        let task = PeerTask::new(p, session, rx, self.reports.clone(), self.status.clone());
        let handle = PeerHandle {
            tx,
            task: tokio::spawn(task.run()),
        };
        let old = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(address, handle);
        if let Some(old) = old {
            old.task.abort();
        }
    }

    /// Ends a peer's session and task and forgets its routes.
    fn remove_peer(&mut self, addr: IpAddr) {
        let handle = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&addr);
        if let Some(h) = handle {
            // The task sends its Cease and ends; its last report finds the peer gone.
            let _ = h.tx.send(PeerCmd::Shutdown);
        }
        self.generations.remove(&addr);
        self.status.lock().expect("status lock").remove(&addr);
        let out = self.rib.remove_peer(addr);
        self.emit(out);
    }

    async fn run(
        mut self,
        mut reports: mpsc::UnboundedReceiver<PeerReport>,
        mut api: mpsc::UnboundedReceiver<ApiCmd>,
    ) {
        loop {
            tokio::select! {
                Some(r) = reports.recv() => self.report(r),
                Some(c) = api.recv() => self.api(c),
                else => break,
            }
        }
    }

    fn report(&mut self, r: PeerReport) {
        if !self.known(r.peer()) {
            return; // the last words of a removed peer's task
        }
        let (peer, out) = match r {
            PeerReport::Up {
                peer,
                generation,
                session,
            } => {
                self.generations.insert(peer, generation);
                (peer, self.rib.peer_up(peer, session))
            }
            PeerReport::Down { peer, retain } => (peer, self.rib.peer_down(peer, &retain)),
            PeerReport::Update { peer, update } => (peer, self.rib.apply_update(peer, &update)),
            PeerReport::EndOfRib { peer, family } => (peer, self.rib.end_of_rib(peer, family)),
            PeerReport::RouteRefresh { peer, family } => {
                (peer, self.rib.route_refresh(peer, family))
            }
            PeerReport::GracefulRestartExpired { peer } => {
                (peer, self.rib.graceful_restart_expired(peer))
            }
        };
        if let Some((family, limit)) = out.max_prefix_exceeded {
            self.send_to(peer, PeerCmd::MaxPrefix { family, limit });
        }
        self.emit(out);
    }

    fn api(&mut self, c: ApiCmd) {
        match c {
            ApiCmd::Announce(p, a) => {
                let out = self.rib.announce_local(p, a);
                self.emit(out);
            }
            ApiCmd::Withdraw(p) => {
                let out = self.rib.withdraw_local(p);
                self.emit(out);
            }
            ApiCmd::LocRib(tx) => {
                let _ = tx.send(self.rib.loc_rib());
            }
            ApiCmd::AddPeer(p) => self.add_peer(*p),
            ApiCmd::RemovePeer(addr) => self.remove_peer(addr),
            ApiCmd::Counts(tx) => {
                let addrs: Vec<IpAddr> = self
                    .peers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .copied()
                    .collect();
                let counts = addrs
                    .into_iter()
                    .map(|a| {
                        (
                            a,
                            (self.rib.prefixes_received(a), self.rib.prefixes_sent(a)),
                        )
                    })
                    .collect();
                let _ = tx.send(counts);
            }
        }
    }

    fn emit(&mut self, out: RibOutput) {
        for r in out.routes {
            let _ = self.routes.send(r);
        }
        let mut per_peer: BTreeMap<IpAddr, Vec<crate::codec::Update>> = BTreeMap::new();
        for (peer, u) in out.updates {
            per_peer.entry(peer).or_default().push(u);
        }
        for (peer, updates) in per_peer {
            let generation = self.generations.get(&peer).copied().unwrap_or(0);
            self.send_to(
                peer,
                PeerCmd::Send {
                    generation,
                    updates,
                },
            );
        }
    }

    fn known(&self, peer: IpAddr) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&peer)
    }

    fn send_to(&self, peer: IpAddr, cmd: PeerCmd) {
        if let Some(h) = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
        {
            let _ = h.tx.send(cmd);
        }
    }
}
