//! The RFC 4271 §8 session state machine, sans-IO: [`Session::handle`] takes an [`Event`] and
//! returns the [`Action`]s the driver must carry out. Sockets and clocks live in the driver.
//!
//! One session may own two TCP connections at once (both sides connected); they are told apart
//! by [`ConnId`] and the collision is resolved per RFC 4271 §6.8 as soon as the peer's BGP
//! identifier is known from either connection's OPEN.

mod negotiate;

pub use negotiate::{check_open, local_open, Negotiated};

use crate::codec::{
    CeaseSubcode, DecodeError, Family, FsmSubcode, Message, Notification, NotificationError, Update,
};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Driver-chosen identifier of one TCP connection.
pub type ConnId = u64;

/// Who opened a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// The session's timers. The driver runs one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TimerKind {
    /// Time between outgoing connection attempts.
    ConnectRetry,
    /// Time without a message from the peer before the session is declared dead.
    Hold,
    /// Time between our KEEPALIVEs.
    Keepalive,
    /// Delay before an automatic restart after the session went down.
    IdleHold,
    /// How long a restarting peer's stale routes are kept (RFC 4724).
    GracefulRestart,
}

/// Session configuration.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS.
    pub peer_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// Proposed hold time (0 or at least 3).
    pub hold_time: u16,
    /// Delay between connection attempts.
    pub connect_retry: Duration,
    /// Delay before restarting after an error.
    pub idle_hold: Duration,
    /// Never connect out; wait for the peer.
    pub passive: bool,
    /// Families to offer.
    pub families: Vec<Family>,
    /// Advertise graceful-restart (receiving side) with this restart time.
    pub graceful_restart: Option<u16>,
}

impl SessionConfig {
    /// Defaults: hold 90 s, connect retry 30 s, idle hold 5 s, IPv4 and IPv6 unicast, GR aware.
    pub fn new(local_as: u32, peer_as: u32, local_id: Ipv4Addr) -> Self {
        SessionConfig {
            local_as,
            peer_as,
            local_id,
            hold_time: 90,
            connect_retry: Duration::from_secs(30),
            idle_hold: Duration::from_secs(5),
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: Some(120),
        }
    }

    /// Checks RFC constraints on the configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(format!(
                "hold time {} is not allowed: use 0 or at least 3 seconds",
                self.hold_time
            ));
        }
        if self.local_id.is_unspecified() {
            return Err("router id 0.0.0.0 is not allowed".into());
        }
        if self.local_as == 0 || self.peer_as == 0 {
            return Err("AS number 0 is reserved".into());
        }
        if self.families.is_empty() {
            return Err("no address family enabled".into());
        }
        Ok(())
    }
}

/// RFC 4271 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// Not trying.
    Idle,
    /// Connecting out.
    Connect,
    /// Waiting for the peer to connect (or for the next retry).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

/// Inputs to the state machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// Start (or re-enable) the session.
    ManualStart,
    /// Stop the session and do not restart it.
    ManualStop,
    /// A TCP connection came up.
    TcpConnected {
        /// Its id.
        conn: ConnId,
        /// Who opened it.
        direction: Direction,
    },
    /// An outgoing connection attempt failed.
    TcpFailed,
    /// A connection closed or broke.
    TcpClosed {
        /// Its id.
        conn: ConnId,
    },
    /// A message (or a decoding error) arrived on a connection.
    MessageReceived {
        /// The connection.
        conn: ConnId,
        /// What was decoded.
        message: Result<Message, DecodeError>,
    },
    /// A timer fired.
    TimerExpired(TimerKind),
    /// The RIB counted more prefixes from this peer than allowed.
    MaxPrefixExceeded {
        /// Family over the limit.
        family: Family,
        /// The limit.
        limit: u32,
    },
}

/// Why an Established session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DownReason {
    /// We were told to stop.
    ManualStop,
    /// No message within the hold time.
    HoldTimerExpired,
    /// The peer sent a NOTIFICATION.
    NotificationReceived(String),
    /// We sent a NOTIFICATION (protocol error, max-prefix, ...).
    NotificationSent(String),
    /// The TCP connection closed without a NOTIFICATION.
    ConnectionClosed,
    /// The peer connected anew while the old session was up (it restarted).
    PeerRestarted,
}

/// Routes to keep as stale while a graceful-restart-capable peer comes back (RFC 4724 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GracefulRetention {
    /// Families whose routes are kept.
    pub families: Vec<Family>,
    /// How long, at most.
    pub restart_time: Duration,
}

/// Outputs the driver must carry out, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open an outgoing TCP connection; report [`Event::TcpConnected`] or [`Event::TcpFailed`].
    Connect,
    /// Send a message on a connection.
    SendMessage {
        /// The connection.
        conn: ConnId,
        /// The message.
        message: Message,
    },
    /// Close a connection (after sending what was queued).
    CloseTcp {
        /// The connection.
        conn: ConnId,
    },
    /// (Re)start a timer.
    StartTimer {
        /// Which.
        kind: TimerKind,
        /// When it fires from now.
        duration: Duration,
    },
    /// Stop a timer.
    StopTimer(TimerKind),
    /// The session is up on `conn`.
    Established {
        /// The winning connection.
        conn: ConnId,
        /// What was agreed.
        negotiated: Negotiated,
    },
    /// The peer sent routes (announcements and/or withdrawals) to apply to its Adj-RIB-In.
    RoutesReceived(Update),
    /// The peer finished its initial table for a family.
    EndOfRib(Family),
    /// The peer asks us to send a family's routes again.
    RouteRefreshRequested(Family),
    /// The Established session ended.
    PeerDown {
        /// Why.
        reason: DownReason,
        /// Set when the peer's routes are to be kept as stale (graceful restart).
        retain: Option<GracefulRetention>,
    },
    /// The graceful-restart timer ran out: stale routes must go.
    GracefulRestartExpired,
}

#[derive(Debug, Clone)]
enum ConnState {
    OpenSent,
    OpenConfirm(Negotiated),
    Established,
}

#[derive(Debug, Clone)]
struct Conn {
    id: ConnId,
    direction: Direction,
    state: ConnState,
}

/// Hold time while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
const LARGE_HOLD: Duration = Duration::from_secs(240);

/// One peer's BGP session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    /// State when no connection exists: Idle, Connect or Active.
    base: State,
    /// Whether the session should run (and restart automatically after errors).
    enabled: bool,
    conns: Vec<Conn>,
    negotiated: Option<Negotiated>,
    graceful_pending: bool,
}

impl Session {
    /// A session in Idle.
    pub fn new(cfg: SessionConfig) -> Self {
        Session {
            cfg,
            base: State::Idle,
            enabled: false,
            conns: Vec::new(),
            negotiated: None,
            graceful_pending: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The RFC 4271 state (the most advanced of its connections).
    pub fn state(&self) -> State {
        let mut s = self.base;
        for c in &self.conns {
            let cs = match c.state {
                ConnState::OpenSent => State::OpenSent,
                ConnState::OpenConfirm(_) => State::OpenConfirm,
                ConnState::Established => State::Established,
            };
            s = match (s, cs) {
                (State::Established, _) | (_, State::Established) => State::Established,
                (State::OpenConfirm, _) | (_, State::OpenConfirm) => State::OpenConfirm,
                _ => State::OpenSent,
            };
        }
        s
    }

    /// What the Established session agreed on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// How to decode messages from `conn` right now.
    pub fn codec_context(&self, conn: ConnId) -> crate::codec::CodecContext {
        let n = self
            .conns
            .iter()
            .find(|c| c.id == conn)
            .and_then(|c| match &c.state {
                ConnState::OpenConfirm(n) => Some(n),
                ConnState::Established => self.negotiated.as_ref(),
                ConnState::OpenSent => None,
            });
        n.map(|n| n.codec()).unwrap_or_default()
    }

    /// The connection carrying the Established session.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|c| matches!(c.state, ConnState::Established))
            .map(|c| c.id)
    }

    /// Feeds one event; returns what to do.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ManualStart => self.manual_start(&mut out),
            Event::ManualStop => self.manual_stop(&mut out),
            Event::TcpConnected { conn, direction } => {
                self.tcp_connected(conn, direction, &mut out)
            }
            Event::TcpFailed => self.tcp_failed(&mut out),
            Event::TcpClosed { conn } => {
                if self.has_conn(conn) {
                    self.drop_conn(conn, None, DownReason::ConnectionClosed, &mut out);
                }
            }
            Event::MessageReceived { conn, message } => {
                if self.has_conn(conn) {
                    self.message(conn, message, &mut out);
                }
            }
            Event::TimerExpired(kind) => self.timer(kind, &mut out),
            Event::MaxPrefixExceeded { family, limit } => self.max_prefix(family, limit, &mut out),
        }
        out
    }

    fn has_conn(&self, conn: ConnId) -> bool {
        self.conns.iter().any(|c| c.id == conn)
    }

    fn manual_start(&mut self, out: &mut Vec<Action>) {
        self.enabled = true;
        if self.base == State::Idle && self.conns.is_empty() {
            out.push(Action::StopTimer(TimerKind::IdleHold));
            self.start_connecting(out);
        }
    }

    fn start_connecting(&mut self, out: &mut Vec<Action>) {
        if self.cfg.passive {
            self.base = State::Active;
        } else {
            self.base = State::Connect;
            out.push(Action::Connect);
            out.push(Action::StartTimer {
                kind: TimerKind::ConnectRetry,
                duration: self.cfg.connect_retry,
            });
        }
    }

    fn manual_stop(&mut self, out: &mut Vec<Action>) {
        self.enabled = false;
        let cease = Notification::cease(CeaseSubcode::AdministrativeShutdown);
        for id in self.conn_ids() {
            self.drop_conn(id, Some(cease.clone()), DownReason::ManualStop, out);
        }
        self.base = State::Idle;
        for kind in [TimerKind::ConnectRetry, TimerKind::IdleHold] {
            out.push(Action::StopTimer(kind));
        }
    }

    fn conn_ids(&self) -> Vec<ConnId> {
        self.conns.iter().map(|c| c.id).collect()
    }

    fn tcp_connected(&mut self, conn: ConnId, direction: Direction, out: &mut Vec<Action>) {
        if !self.enabled || self.has_conn(conn) {
            out.push(Action::CloseTcp { conn });
            return;
        }
        if let Some(est) = self.established_conn() {
            // RFC 4724 §4.2: a new connection from a graceful-restart peer means it restarted.
            let restarted = direction == Direction::Incoming && self.peer_can_restart();
            if !restarted {
                out.push(Action::CloseTcp { conn });
                return;
            }
            self.drop_conn(est, None, DownReason::PeerRestarted, out);
        }
        let duplicate = self.conns.iter().any(|c| c.direction == direction);
        if duplicate || self.conns.len() >= 2 {
            out.push(Action::CloseTcp { conn });
            return;
        }
        self.conns.push(Conn {
            id: conn,
            direction,
            state: ConnState::OpenSent,
        });
        out.push(Action::StopTimer(TimerKind::ConnectRetry));
        out.push(Action::StopTimer(TimerKind::IdleHold));
        out.push(Action::SendMessage {
            conn,
            message: Message::Open(local_open(&self.cfg)),
        });
        out.push(Action::StartTimer {
            kind: TimerKind::Hold,
            duration: LARGE_HOLD,
        });
    }

    fn peer_can_restart(&self) -> bool {
        self.negotiated
            .as_ref()
            .and_then(|n| n.peer_graceful_restart.as_ref())
            .is_some()
    }

    fn tcp_failed(&mut self, out: &mut Vec<Action>) {
        if self.base == State::Connect && self.conns.is_empty() {
            self.base = State::Active;
            out.push(Action::StartTimer {
                kind: TimerKind::ConnectRetry,
                duration: self.cfg.connect_retry,
            });
        }
    }

    fn conn_mut(&mut self, conn: ConnId) -> &mut Conn {
        self.conns
            .iter_mut()
            .find(|c| c.id == conn)
            .expect("caller checked the connection exists")
    }

    fn fsm_error(&self, conn: ConnId) -> Notification {
        let sub = match self.conns.iter().find(|c| c.id == conn).map(|c| &c.state) {
            Some(ConnState::OpenSent) => FsmSubcode::UnexpectedMessageInOpenSent,
            Some(ConnState::OpenConfirm(_)) => FsmSubcode::UnexpectedMessageInOpenConfirm,
            _ => FsmSubcode::UnexpectedMessageInEstablished,
        };
        Notification::bare(NotificationError::Fsm(sub))
    }

    fn message(
        &mut self,
        conn: ConnId,
        message: Result<Message, DecodeError>,
        out: &mut Vec<Action>,
    ) {
        let established = self.established_conn() == Some(conn);
        let message = match message {
            Ok(m) => m,
            Err(DecodeError::TreatAsWithdraw { withdraw, cause }) if established => {
                tracing::warn!(%cause, "malformed UPDATE treated as withdraw (RFC 7606)");
                self.restart_hold(out);
                out.push(Action::RoutesReceived(*withdraw));
                return;
            }
            Err(e) => {
                let n = e.notification().unwrap_or_else(|| {
                    Notification::bare(NotificationError::Fsm(FsmSubcode::Unspecified))
                });
                let reason = DownReason::NotificationSent(format!("{e}"));
                self.drop_conn(conn, Some(n), reason, out);
                return;
            }
        };
        let state = self.conn_mut(conn).state.clone();
        match (state, message) {
            (_, Message::Notification(n)) => {
                let reason = DownReason::NotificationReceived(n.to_string());
                self.drop_conn(conn, None, reason, out);
            }
            (ConnState::OpenSent, Message::Open(open)) => match check_open(&self.cfg, &open) {
                Ok(neg) => self.open_received(conn, neg, out),
                Err(n) => {
                    let reason = DownReason::NotificationSent(n.to_string());
                    self.drop_conn(conn, Some(n), reason, out);
                }
            },
            (ConnState::OpenConfirm(neg), Message::Keepalive) => self.establish(conn, neg, out),
            (ConnState::Established, Message::Keepalive) => self.restart_hold(out),
            (ConnState::Established, Message::Update(u)) => {
                self.restart_hold(out);
                match u.as_end_of_rib() {
                    Some(f) => out.push(Action::EndOfRib(f)),
                    None => out.push(Action::RoutesReceived(u)),
                }
            }
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(out);
                let ok = self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.families.contains(&rr.family));
                if ok && rr.subtype == 0 {
                    out.push(Action::RouteRefreshRequested(rr.family));
                }
            }
            _ => {
                let n = self.fsm_error(conn);
                let reason = DownReason::NotificationSent(n.to_string());
                self.drop_conn(conn, Some(n), reason, out);
            }
        }
    }

    fn open_received(&mut self, conn: ConnId, neg: Negotiated, out: &mut Vec<Action>) {
        if let Some(loser) = self.collision_loser(conn, neg.peer_id) {
            let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
            let reason = DownReason::NotificationSent(cease.to_string());
            self.drop_conn(loser, Some(cease), reason, out);
            if loser == conn {
                return;
            }
        }
        out.push(Action::SendMessage {
            conn,
            message: Message::Keepalive,
        });
        match neg.hold_duration() {
            Some(d) => out.push(Action::StartTimer {
                kind: TimerKind::Hold,
                duration: d,
            }),
            None => out.push(Action::StopTimer(TimerKind::Hold)),
        }
        if let Some(k) = neg.keepalive_interval() {
            out.push(Action::StartTimer {
                kind: TimerKind::Keepalive,
                duration: k,
            });
        }
        self.conn_mut(conn).state = ConnState::OpenConfirm(neg);
    }

    /// RFC 4271 §6.8: with two connections, the one opened by the side with the higher BGP
    /// identifier survives. An Established connection always survives.
    fn collision_loser(&self, conn: ConnId, peer_id: Ipv4Addr) -> Option<ConnId> {
        let other = self.conns.iter().find(|c| c.id != conn)?;
        if matches!(other.state, ConnState::Established) {
            return Some(conn);
        }
        let keep = if u32::from(self.cfg.local_id) > u32::from(peer_id) {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        let this_dir = self.conn_mut_ref(conn).direction;
        Some(if this_dir == keep { other.id } else { conn })
    }

    fn conn_mut_ref(&self, conn: ConnId) -> &Conn {
        self.conns
            .iter()
            .find(|c| c.id == conn)
            .expect("caller checked the connection exists")
    }

    fn establish(&mut self, conn: ConnId, neg: Negotiated, out: &mut Vec<Action>) {
        let cease = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
        for other in self.conn_ids().into_iter().filter(|&c| c != conn) {
            let reason = DownReason::NotificationSent(cease.to_string());
            self.drop_conn(other, Some(cease.clone()), reason, out);
        }
        self.conn_mut(conn).state = ConnState::Established;
        self.restart_hold_for(&neg, out);
        if self.graceful_pending {
            self.graceful_pending = false;
            out.push(Action::StopTimer(TimerKind::GracefulRestart));
        }
        self.negotiated = Some(neg.clone());
        out.push(Action::Established {
            conn,
            negotiated: neg,
        });
    }

    fn restart_hold(&self, out: &mut Vec<Action>) {
        if let Some(n) = &self.negotiated {
            self.restart_hold_for(n, out);
        }
    }

    fn restart_hold_for(&self, n: &Negotiated, out: &mut Vec<Action>) {
        if let Some(d) = n.hold_duration() {
            out.push(Action::StartTimer {
                kind: TimerKind::Hold,
                duration: d,
            });
        }
    }

    fn timer(&mut self, kind: TimerKind, out: &mut Vec<Action>) {
        match kind {
            TimerKind::ConnectRetry => {
                let waiting = matches!(self.base, State::Connect | State::Active);
                if self.enabled && waiting && self.conns.is_empty() && !self.cfg.passive {
                    self.start_connecting(out);
                }
            }
            TimerKind::Hold => {
                let n = Notification::bare(NotificationError::HoldTimerExpired(0));
                for id in self.conn_ids() {
                    self.drop_conn(id, Some(n.clone()), DownReason::HoldTimerExpired, out);
                }
            }
            TimerKind::Keepalive => {
                let live: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|c| !matches!(c.state, ConnState::OpenSent))
                    .map(|c| c.id)
                    .collect();
                for conn in &live {
                    out.push(Action::SendMessage {
                        conn: *conn,
                        message: Message::Keepalive,
                    });
                }
                let interval = self
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.keepalive_interval());
                let interval = interval.or_else(|| {
                    self.conns.iter().find_map(|c| match &c.state {
                        ConnState::OpenConfirm(n) => n.keepalive_interval(),
                        _ => None,
                    })
                });
                if let (false, Some(d)) = (live.is_empty(), interval) {
                    out.push(Action::StartTimer {
                        kind: TimerKind::Keepalive,
                        duration: d,
                    });
                }
            }
            TimerKind::IdleHold => {
                if self.enabled && self.base == State::Idle && self.conns.is_empty() {
                    self.start_connecting(out);
                }
            }
            TimerKind::GracefulRestart => {
                if self.graceful_pending {
                    self.graceful_pending = false;
                    out.push(Action::GracefulRestartExpired);
                }
            }
        }
    }

    fn max_prefix(&mut self, family: Family, limit: u32, out: &mut Vec<Action>) {
        let Some(conn) = self.established_conn() else {
            return;
        };
        // RFC 4486 §4: data is AFI, SAFI and the limit.
        let mut data = family.afi.to_be_bytes().to_vec();
        data.push(family.safi);
        data.extend_from_slice(&limit.to_be_bytes());
        let n = Notification::new(
            NotificationError::Cease(CeaseSubcode::MaximumPrefixesReached),
            data,
        );
        // The peer stays down until restarted by hand: it would only overflow again.
        self.enabled = false;
        self.drop_conn(
            conn,
            Some(n.clone()),
            DownReason::NotificationSent(n.to_string()),
            out,
        );
    }

    /// Sends `notify` (if any) and closes `conn`; if it carried the session, the session goes
    /// down; if it was the last connection, the session falls back to Idle or Active.
    fn drop_conn(
        &mut self,
        conn: ConnId,
        notify: Option<Notification>,
        reason: DownReason,
        out: &mut Vec<Action>,
    ) {
        let Some(i) = self.conns.iter().position(|c| c.id == conn) else {
            return;
        };
        let removed = self.conns.remove(i);
        if let Some(n) = notify {
            out.push(Action::SendMessage {
                conn,
                message: Message::Notification(n),
            });
        }
        out.push(Action::CloseTcp { conn });
        let was_established = matches!(removed.state, ConnState::Established);
        if was_established {
            self.session_down(reason.clone(), out);
        }
        if !self.conns.is_empty() {
            return;
        }
        out.push(Action::StopTimer(TimerKind::Hold));
        out.push(Action::StopTimer(TimerKind::Keepalive));
        if !self.enabled {
            self.base = State::Idle;
        } else if reason == DownReason::ConnectionClosed && !was_established {
            // RFC 4271 §8.2.2: a connection lost before Established goes back to Active.
            self.base = State::Active;
            if !self.cfg.passive {
                out.push(Action::StartTimer {
                    kind: TimerKind::ConnectRetry,
                    duration: self.cfg.connect_retry,
                });
            }
        } else if reason == DownReason::PeerRestarted {
            // The peer's new connection follows at once; no pause.
            self.base = State::Active;
        } else {
            self.base = State::Idle;
            out.push(Action::StartTimer {
                kind: TimerKind::IdleHold,
                duration: self.cfg.idle_hold,
            });
        }
    }

    fn session_down(&mut self, reason: DownReason, out: &mut Vec<Action>) {
        let neg = self.negotiated.take();
        // RFC 4724 §4.2: routes survive only a loss of the transport without a NOTIFICATION.
        let graceful_cause = matches!(
            reason,
            DownReason::ConnectionClosed | DownReason::PeerRestarted
        );
        let retain = neg
            .as_ref()
            .and_then(|n| n.peer_graceful_restart.as_ref())
            .filter(|gr| graceful_cause && gr.restart_time > 0 && !gr.families.is_empty())
            .map(|gr| GracefulRetention {
                families: gr.families.iter().map(|f| f.family).collect(),
                restart_time: Duration::from_secs(u64::from(gr.restart_time)),
            });
        if let Some(r) = &retain {
            self.graceful_pending = true;
            out.push(Action::StartTimer {
                kind: TimerKind::GracefulRestart,
                duration: r.restart_time,
            });
        }
        out.push(Action::PeerDown { reason, retain });
    }
}

#[cfg(test)]
mod tests;
