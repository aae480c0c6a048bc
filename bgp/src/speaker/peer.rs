//! The per-peer task: owns the session state machine, its timers and its TCP connections, and
//! reports to the RIB task.

use super::config::PeerConfig;
use super::conn::{spawn_connect, ConnEvent, ConnHandle};
use super::status::{PeerStatus, StatusMap};
use crate::codec::{Family, Message, Update};
use crate::fsm::{Action, ConnId, Direction, Event, Session, SessionConfig, TimerKind};
use crate::rib::PeerSession;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Commands from the RIB task (and the listener) to a peer task.
#[derive(Debug)]
pub(crate) enum PeerCmd {
    /// Send these UPDATEs if session generation `generation` is still up.
    Send {
        generation: u64,
        updates: Vec<Update>,
    },
    /// The peer exceeded its prefix limit.
    MaxPrefix { family: Family, limit: u32 },
    /// The listener accepted a connection from this peer.
    Incoming(TcpStream),
    /// Enable the session again (after a stop or a maximum-prefix cut).
    Start,
    /// Stop the session with Cease / Administrative Shutdown but keep the task.
    Stop,
    /// Stop the session (Cease) and end the task.
    Shutdown,
}

/// What a peer task tells the RIB task.
#[derive(Debug)]
pub(crate) enum PeerReport {
    /// Session `generation` is up.
    Up {
        peer: IpAddr,
        generation: u64,
        session: PeerSession,
    },
    /// The session went down; keep these families' routes as stale.
    Down { peer: IpAddr, retain: Vec<Family> },
    /// Routes arrived.
    Update { peer: IpAddr, update: Update },
    /// End-of-RIB arrived.
    EndOfRib { peer: IpAddr, family: Family },
    /// The peer asked for a route refresh.
    RouteRefresh { peer: IpAddr, family: Family },
    /// The graceful-restart timer ran out.
    GracefulRestartExpired { peer: IpAddr },
}

impl PeerReport {
    /// The peer the report is about.
    pub(crate) fn peer(&self) -> IpAddr {
        match self {
            PeerReport::Up { peer, .. }
            | PeerReport::Down { peer, .. }
            | PeerReport::Update { peer, .. }
            | PeerReport::EndOfRib { peer, .. }
            | PeerReport::RouteRefresh { peer, .. }
            | PeerReport::GracefulRestartExpired { peer } => *peer,
        }
    }
}

pub(crate) struct PeerTask {
    cfg: PeerConfig,
    session: Session,
    conns: HashMap<ConnId, ConnHandle>,
    next_conn: ConnId,
    timers: HashMap<TimerKind, Instant>,
    connecting: Option<JoinHandle<()>>,
    generation: u64,
    conn_tx: mpsc::UnboundedSender<ConnEvent>,
    conn_rx: mpsc::UnboundedReceiver<ConnEvent>,
    cmd_rx: mpsc::UnboundedReceiver<PeerCmd>,
    report: mpsc::UnboundedSender<PeerReport>,
    status: StatusMap,
}

impl PeerTask {
    pub(crate) fn new(
        cfg: PeerConfig,
        session_cfg: SessionConfig,
        cmd_rx: mpsc::UnboundedReceiver<PeerCmd>,
        report: mpsc::UnboundedSender<PeerReport>,
        status: StatusMap,
    ) -> Self {
        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        PeerTask {
            cfg,
            session: Session::new(session_cfg),
            conns: HashMap::new(),
            next_conn: 1,
            timers: HashMap::new(),
            connecting: None,
            generation: 0,
            conn_tx,
            conn_rx,
            cmd_rx,
            report,
            status,
        }
    }

    fn addr(&self) -> IpAddr {
        self.cfg.address
    }

    pub(crate) async fn run(mut self) {
        self.feed(Event::ManualStart);
        loop {
            let deadline = self.timers.values().min().copied();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(PeerCmd::Shutdown) => break,
                    Some(cmd) => self.command(cmd),
                },
                Some(ev) = self.conn_rx.recv() => self.conn_event(ev),
                _ = sleep => self.fire_timers(),
            }
        }
        self.feed(Event::ManualStop);
        if let Some(c) = self.connecting.take() {
            c.abort();
        }
    }

    fn command(&mut self, cmd: PeerCmd) {
        match cmd {
            PeerCmd::Send {
                generation,
                updates,
            } => {
                let Some(conn) = self.session.established_conn() else {
                    return;
                };
                if generation != self.generation {
                    return; // computed for an earlier session
                }
                let ctx = self.session.codec_context(conn);
                for u in updates {
                    self.send(conn, &Message::Update(u), ctx);
                }
            }
            PeerCmd::MaxPrefix { family, limit } => {
                tracing::warn!(peer = %self.addr(), %family, limit, "maximum prefixes exceeded");
                self.feed(Event::MaxPrefixExceeded { family, limit });
            }
            PeerCmd::Incoming(stream) => self.attach(stream, Direction::Incoming),
            PeerCmd::Start => self.feed(Event::ManualStart),
            PeerCmd::Stop => self.feed(Event::ManualStop),
            PeerCmd::Shutdown => {}
        }
    }

    fn conn_event(&mut self, ev: ConnEvent) {
        match ev {
            ConnEvent::Connected(stream, dir) => {
                self.connecting = None;
                self.attach(stream, dir);
            }
            ConnEvent::ConnectFailed(why) => {
                self.connecting = None;
                tracing::debug!(peer = %self.addr(), %why, "connect failed");
                self.set_error(format!("connect failed: {why}"));
                self.feed(Event::TcpFailed);
            }
            ConnEvent::Frame(conn, bytes) => {
                if !self.conns.contains_key(&conn) {
                    return;
                }
                let ctx = self.session.codec_context(conn);
                let message = Message::decode(&bytes, &ctx);
                self.feed(Event::MessageReceived { conn, message });
            }
            ConnEvent::FrameError(conn, e) => {
                if self.conns.contains_key(&conn) {
                    self.feed(Event::MessageReceived {
                        conn,
                        message: Err(e),
                    });
                }
            }
            ConnEvent::Closed(conn) => {
                if self.conns.contains_key(&conn) {
                    self.feed(Event::TcpClosed { conn });
                }
            }
        }
    }

    fn attach(&mut self, stream: TcpStream, direction: Direction) {
        let id = self.next_conn;
        self.next_conn += 1;
        match ConnHandle::start(id, stream, self.conn_tx.clone()) {
            Ok(h) => {
                self.conns.insert(id, h);
                self.feed(Event::TcpConnected {
                    conn: id,
                    direction,
                });
            }
            Err(e) => tracing::warn!(peer = %self.addr(), error = %e, "cannot use connection"),
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<TimerKind> = self
            .timers
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.timers.remove(&k);
            self.feed(Event::TimerExpired(k));
        }
    }

    fn send(&mut self, conn: ConnId, m: &Message, ctx: crate::codec::CodecContext) {
        let Some(h) = self.conns.get(&conn) else {
            return;
        };
        match m.encode(&ctx) {
            Ok(bytes) => {
                let _ = h.tx.send(bytes);
            }
            Err(e) => {
                tracing::error!(peer = %self.cfg.address, len = e.len, "message too long, not sent")
            }
        }
    }

    fn feed(&mut self, ev: Event) {
        let actions = self.session.handle(ev);
        for a in actions {
            self.act(a);
        }
        let state = self.session.state();
        self.update_status(|s| s.state = state);
    }

    fn act(&mut self, a: Action) {
        let peer = self.addr();
        match a {
            Action::Connect => {
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                let remote = SocketAddr::new(self.cfg.address, self.cfg.port);
                let timeout = self
                    .session
                    .config()
                    .connect_retry
                    .max(Duration::from_secs(1));
                self.connecting = Some(spawn_connect(
                    remote,
                    self.cfg.local_address,
                    timeout,
                    self.conn_tx.clone(),
                ));
            }
            Action::SendMessage { conn, message } => {
                let ctx = self.session.codec_context(conn);
                if let Message::Notification(n) = &message {
                    tracing::info!(%peer, notification = %n, "sending NOTIFICATION");
                    self.set_error(format!("sent NOTIFICATION {n}"));
                }
                self.send(conn, &message, ctx);
            }
            Action::CloseTcp { conn } => {
                self.conns.remove(&conn);
            }
            Action::StartTimer { kind, duration } => {
                self.timers.insert(kind, Instant::now() + duration);
            }
            Action::StopTimer(kind) => {
                self.timers.remove(&kind);
            }
            Action::Established { conn, negotiated } => {
                self.generation += 1;
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                let local = self.conns.get(&conn).map(|h| h.local.ip());
                let session = self.peer_session(local, &negotiated);
                tracing::info!(%peer, peer_as = negotiated.peer_as, hold = negotiated.hold_time, "session established");
                self.update_status(|s| {
                    s.established_since = Some(SystemTime::now());
                    s.negotiated = Some(negotiated.clone());
                });
                let _ = self.report.send(PeerReport::Up {
                    peer,
                    generation: self.generation,
                    session,
                });
            }
            Action::RoutesReceived(update) => {
                let _ = self.report.send(PeerReport::Update { peer, update });
            }
            Action::EndOfRib(family) => {
                let _ = self.report.send(PeerReport::EndOfRib { peer, family });
            }
            Action::RouteRefreshRequested(family) => {
                let _ = self.report.send(PeerReport::RouteRefresh { peer, family });
            }
            Action::PeerDown { reason, retain } => {
                tracing::info!(%peer, ?reason, "session down");
                let why = format!("{reason:?}");
                self.update_status(|s| {
                    s.established_since = None;
                    s.negotiated = None;
                    s.last_error = Some(why);
                    s.flaps += 1;
                });
                let retain = retain.map(|r| r.families).unwrap_or_default();
                let _ = self.report.send(PeerReport::Down { peer, retain });
            }
            Action::GracefulRestartExpired => {
                let _ = self
                    .report
                    .send(PeerReport::GracefulRestartExpired { peer });
            }
        }
    }

    fn peer_session(&self, local: Option<IpAddr>, n: &crate::fsm::Negotiated) -> PeerSession {
        let (v4, v6) = match local {
            Some(IpAddr::V4(a)) => (Some(a), Some(a.to_ipv6_mapped())),
            Some(IpAddr::V6(a)) => (a.to_ipv4_mapped(), Some(a)),
            None => (None, None),
        };
        let forwarding_preserved = n
            .peer_graceful_restart
            .as_ref()
            .map(|g| {
                g.families
                    .iter()
                    .filter(|f| f.forwarding_preserved())
                    .map(|f| f.family)
                    .collect()
            })
            .unwrap_or_default();
        PeerSession {
            router_id: n.peer_id,
            families: n.families.clone(),
            four_octet: n.four_octet_as,
            next_hop_v4: self.cfg.next_hop_v4.or(v4),
            next_hop_v6: self.cfg.next_hop_v6.or(v6),
            forwarding_preserved,
        }
    }

    fn set_error(&self, e: String) {
        self.update_status(|s| s.last_error = Some(e));
    }

    fn update_status(&self, f: impl FnOnce(&mut PeerStatus)) {
        if let Some(s) = self
            .status
            .lock()
            .expect("status lock")
            .get_mut(&self.cfg.address)
        {
            f(s);
        }
    }
}
