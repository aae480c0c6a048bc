use super::*;
use crate::codec::{Capability, GrFamily, GracefulRestartCap, Open, OpenSubcode, UpdateSubcode};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const THEM: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn cfg(local_as: u32, peer_as: u32) -> SessionConfig {
    SessionConfig::new(local_as, peer_as, US)
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr, extra: Vec<Capability>) -> Message {
    let mut caps = vec![
        Capability::MultiProtocol(Family::IPV4_UNICAST),
        Capability::FourOctetAs(asn),
    ];
    caps.extend(extra);
    Message::Open(Open::new(asn, hold, id, caps))
}

fn recv(s: &mut Session, conn: ConnId, m: Message) -> Vec<Action> {
    s.handle(Event::MessageReceived {
        conn,
        message: Ok(m),
    })
}

fn sent(actions: &[Action]) -> Vec<(ConnId, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendMessage { conn, message } => Some((*conn, message.clone())),
            _ => None,
        })
        .collect()
}

fn notification_sent(actions: &[Action]) -> Option<NotificationError> {
    sent(actions).into_iter().find_map(|(_, m)| match m {
        Message::Notification(n) => Some(n.error),
        _ => None,
    })
}

fn timer_started(actions: &[Action], kind: TimerKind) -> Option<Duration> {
    actions.iter().find_map(|a| match a {
        Action::StartTimer { kind: k, duration } if *k == kind => Some(*duration),
        _ => None,
    })
}

/// Drives a session to Established on connection 1 (outgoing).
fn established(config: SessionConfig, peer: Message) -> Session {
    let mut s = Session::new(config);
    s.handle(Event::ManualStart);
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Outgoing,
    });
    recv(&mut s, 1, peer);
    let a = recv(&mut s, 1, Message::Keepalive);
    assert!(
        a.iter().any(|a| matches!(a, Action::Established { .. })),
        "{a:?}"
    );
    s
}

#[test]
fn active_open_walks_every_state_to_established() {
    let mut s = Session::new(cfg(65001, 65002));
    assert_eq!(s.state(), State::Idle);
    let a = s.handle(Event::ManualStart);
    assert_eq!(s.state(), State::Connect);
    assert!(a.contains(&Action::Connect));
    assert_eq!(
        timer_started(&a, TimerKind::ConnectRetry),
        Some(Duration::from_secs(30))
    );

    let a = s.handle(Event::TcpConnected {
        conn: 7,
        direction: Direction::Outgoing,
    });
    assert_eq!(s.state(), State::OpenSent);
    let msgs = sent(&a);
    assert!(matches!(&msgs[..], [(7, Message::Open(o))] if o.asn() == 65001 && o.hold_time == 90));
    assert_eq!(
        timer_started(&a, TimerKind::Hold),
        Some(Duration::from_secs(240))
    );

    let a = recv(&mut s, 7, peer_open(65002, 30, THEM, vec![]));
    assert_eq!(s.state(), State::OpenConfirm);
    assert_eq!(sent(&a), vec![(7, Message::Keepalive)]);
    assert_eq!(
        timer_started(&a, TimerKind::Hold),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        timer_started(&a, TimerKind::Keepalive),
        Some(Duration::from_secs(10))
    );

    let a = recv(&mut s, 7, Message::Keepalive);
    assert_eq!(s.state(), State::Established);
    let neg = a
        .iter()
        .find_map(|a| match a {
            Action::Established {
                conn: 7,
                negotiated,
            } => Some(negotiated.clone()),
            _ => None,
        })
        .expect("Established action");
    assert_eq!(neg.hold_time, 30, "hold time is the minimum of both");
    assert!(neg.four_octet_as);
    assert_eq!(
        neg.families,
        vec![Family::IPV4_UNICAST],
        "intersection of families"
    );
    assert_eq!(s.established_conn(), Some(7));
}

#[test]
fn passive_session_waits_and_never_connects() {
    let mut c = cfg(65001, 65002);
    c.passive = true;
    let mut s = Session::new(c);
    let a = s.handle(Event::ManualStart);
    assert_eq!(s.state(), State::Active);
    assert!(!a.contains(&Action::Connect));
    assert!(s
        .handle(Event::TimerExpired(TimerKind::ConnectRetry))
        .is_empty());
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Incoming,
    });
    assert_eq!(s.state(), State::OpenSent);
}

#[test]
fn tcp_failure_goes_active_and_retries() {
    let mut s = Session::new(cfg(65001, 65002));
    s.handle(Event::ManualStart);
    let a = s.handle(Event::TcpFailed);
    assert_eq!(s.state(), State::Active);
    assert!(timer_started(&a, TimerKind::ConnectRetry).is_some());
    let a = s.handle(Event::TimerExpired(TimerKind::ConnectRetry));
    assert_eq!(s.state(), State::Connect);
    assert!(a.contains(&Action::Connect));
}

#[test]
fn hold_timer_expiry_sends_notification_and_goes_down() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let a = s.handle(Event::TimerExpired(TimerKind::Hold));
    assert_eq!(
        notification_sent(&a),
        Some(NotificationError::HoldTimerExpired(0))
    );
    assert!(a.contains(&Action::CloseTcp { conn: 1 }));
    assert!(a.contains(&Action::PeerDown {
        reason: DownReason::HoldTimerExpired,
        retain: None
    }));
    assert_eq!(s.state(), State::Idle);
    assert!(
        timer_started(&a, TimerKind::IdleHold).is_some(),
        "restarts automatically"
    );
    let a = s.handle(Event::TimerExpired(TimerKind::IdleHold));
    assert!(a.contains(&Action::Connect));
}

#[test]
fn keepalive_timer_sends_keepalive_and_rearms() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 9, THEM, vec![]));
    let a = s.handle(Event::TimerExpired(TimerKind::Keepalive));
    assert_eq!(sent(&a), vec![(1, Message::Keepalive)]);
    assert_eq!(
        timer_started(&a, TimerKind::Keepalive),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn hold_time_zero_disables_keepalives_and_hold_timer() {
    let mut s = Session::new(cfg(65001, 65002));
    s.handle(Event::ManualStart);
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Outgoing,
    });
    let a = recv(&mut s, 1, peer_open(65002, 0, THEM, vec![]));
    assert_eq!(timer_started(&a, TimerKind::Keepalive), None);
    assert!(a.contains(&Action::StopTimer(TimerKind::Hold)));
    let a = recv(&mut s, 1, Message::Keepalive);
    assert_eq!(timer_started(&a, TimerKind::Hold), None);
    assert_eq!(s.negotiated().unwrap().hold_time, 0);
}

fn open_rejected(c: SessionConfig, open: Message) -> NotificationError {
    let mut s = Session::new(c);
    s.handle(Event::ManualStart);
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Outgoing,
    });
    let a = recv(&mut s, 1, open);
    assert!(a.contains(&Action::CloseTcp { conn: 1 }));
    assert_ne!(s.state(), State::OpenConfirm);
    notification_sent(&a).expect("a NOTIFICATION")
}

#[test]
fn open_checks_reject_with_the_right_subcode() {
    use NotificationError::Open as O;
    assert_eq!(
        open_rejected(cfg(65001, 65002), peer_open(65003, 90, THEM, vec![])),
        O(OpenSubcode::BadPeerAs)
    );
    // A 4-octet peer AS checked through the capability, not the AS_TRANS field.
    assert_eq!(
        open_rejected(
            cfg(65001, 4200000002),
            peer_open(4200000003, 90, THEM, vec![])
        ),
        O(OpenSubcode::BadPeerAs)
    );
    assert_eq!(
        open_rejected(cfg(65001, 65002), peer_open(65002, 2, THEM, vec![])),
        O(OpenSubcode::UnacceptableHoldTime)
    );
    assert_eq!(
        open_rejected(
            cfg(65001, 65002),
            peer_open(65002, 90, Ipv4Addr::UNSPECIFIED, vec![])
        ),
        O(OpenSubcode::BadBgpIdentifier)
    );
    assert_eq!(
        open_rejected(cfg(65001, 65001), peer_open(65001, 90, US, vec![])),
        O(OpenSubcode::BadBgpIdentifier),
        "iBGP peer with our own identifier"
    );
    // A peer without the 4-octet capability but AS_TRANS in the header is not AS 4200000002.
    let old = Message::Open(Open::new(65002, 90, THEM, vec![]));
    assert_eq!(
        open_rejected(cfg(65001, 4200000002), old),
        O(OpenSubcode::BadPeerAs)
    );
}

#[test]
fn four_octet_peer_as_accepted_via_capability() {
    let s = established(
        cfg(65001, 4200000002),
        peer_open(4200000002, 90, THEM, vec![]),
    );
    assert_eq!(s.negotiated().unwrap().peer_as, 4200000002);
}

#[test]
fn peer_without_four_octet_capability_gets_two_octet_codec() {
    let open = Message::Open(Open::new(65002, 90, THEM, vec![]));
    let s = established(cfg(65001, 65002), open);
    let n = s.negotiated().unwrap();
    assert!(!n.four_octet_as);
    assert!(!s.codec_context(1).four_octet_as);
    assert_eq!(
        n.families,
        vec![Family::IPV4_UNICAST],
        "no MP capability means IPv4 only"
    );
}

#[test]
fn config_rejects_hold_time_below_three() {
    let mut c = cfg(65001, 65002);
    c.hold_time = 2;
    assert!(c.validate().is_err());
    c.hold_time = 0;
    assert!(c.validate().is_ok());
}

/// Both sides connected; the peer's OPEN arrives on each connection.
fn collide(local_id: Ipv4Addr, peer_id: Ipv4Addr) -> (Session, Vec<Action>) {
    let mut s = Session::new(SessionConfig::new(65001, 65002, local_id));
    s.handle(Event::ManualStart);
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Outgoing,
    });
    let a = s.handle(Event::TcpConnected {
        conn: 2,
        direction: Direction::Incoming,
    });
    assert!(
        matches!(&sent(&a)[..], [(2, Message::Open(_))]),
        "OPEN on the second connection too"
    );
    let mut all = recv(&mut s, 1, peer_open(65002, 90, peer_id, vec![]));
    all.extend(recv(&mut s, 2, peer_open(65002, 90, peer_id, vec![])));
    (s, all)
}

fn collision_loser(actions: &[Action]) -> Vec<ConnId> {
    sent(actions)
        .into_iter()
        .filter(|(_, m)| {
            matches!(m, Message::Notification(n)
                if n.error == NotificationError::Cease(CeaseSubcode::ConnectionCollisionResolution))
        })
        .map(|(c, _)| c)
        .collect()
}

#[test]
fn collision_higher_local_id_keeps_our_connection() {
    let (mut s, a) = collide(Ipv4Addr::new(10, 0, 0, 9), THEM);
    assert_eq!(collision_loser(&a), vec![2]);
    assert!(a.contains(&Action::CloseTcp { conn: 2 }));
    recv(&mut s, 1, Message::Keepalive);
    assert_eq!(s.established_conn(), Some(1));
}

#[test]
fn collision_lower_local_id_keeps_peer_connection() {
    let (mut s, a) = collide(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9));
    assert_eq!(collision_loser(&a), vec![1]);
    recv(&mut s, 2, Message::Keepalive);
    assert_eq!(s.established_conn(), Some(2));
    // The loser's late messages are ignored.
    assert!(recv(&mut s, 1, Message::Keepalive).is_empty());
}

#[test]
fn new_connection_while_established_is_refused() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let a = s.handle(Event::TcpConnected {
        conn: 5,
        direction: Direction::Incoming,
    });
    assert_eq!(a, vec![Action::CloseTcp { conn: 5 }]);
    assert_eq!(s.established_conn(), Some(1));
}

fn gr_cap(time: u16) -> Capability {
    Capability::GracefulRestart(GracefulRestartCap {
        flags: 0,
        restart_time: time,
        families: vec![GrFamily {
            family: Family::IPV4_UNICAST,
            flags: 0x80,
        }],
    })
}

#[test]
fn graceful_restart_retains_routes_until_timer() {
    let mut s = established(
        cfg(65001, 65002),
        peer_open(65002, 90, THEM, vec![gr_cap(60)]),
    );
    let a = s.handle(Event::TcpClosed { conn: 1 });
    let retain = a.iter().find_map(|a| match a {
        Action::PeerDown { retain, .. } => Some(retain.clone()),
        _ => None,
    });
    assert_eq!(
        retain,
        Some(Some(GracefulRetention {
            families: vec![Family::IPV4_UNICAST],
            restart_time: Duration::from_secs(60)
        }))
    );
    assert_eq!(
        timer_started(&a, TimerKind::GracefulRestart),
        Some(Duration::from_secs(60))
    );
    let a = s.handle(Event::TimerExpired(TimerKind::GracefulRestart));
    assert_eq!(a, vec![Action::GracefulRestartExpired]);
    // Expired once: a second expiry is a no-op.
    assert!(s
        .handle(Event::TimerExpired(TimerKind::GracefulRestart))
        .is_empty());
}

#[test]
fn graceful_restart_timer_stops_when_session_returns() {
    let mut s = established(
        cfg(65001, 65002),
        peer_open(65002, 90, THEM, vec![gr_cap(60)]),
    );
    // The peer reconnects while we still think the session is up: it restarted.
    let a = s.handle(Event::TcpConnected {
        conn: 2,
        direction: Direction::Incoming,
    });
    assert!(a.iter().any(|a| matches!(
        a,
        Action::PeerDown {
            reason: DownReason::PeerRestarted,
            retain: Some(_)
        }
    )));
    assert!(a.contains(&Action::CloseTcp { conn: 1 }));
    recv(&mut s, 2, peer_open(65002, 90, THEM, vec![gr_cap(60)]));
    let a = recv(&mut s, 2, Message::Keepalive);
    assert!(a.contains(&Action::StopTimer(TimerKind::GracefulRestart)));
    assert!(s
        .handle(Event::TimerExpired(TimerKind::GracefulRestart))
        .is_empty());
}

#[test]
fn notification_from_peer_ends_session_without_retention() {
    let mut s = established(
        cfg(65001, 65002),
        peer_open(65002, 90, THEM, vec![gr_cap(60)]),
    );
    let a = recv(
        &mut s,
        1,
        Message::Notification(Notification::cease(CeaseSubcode::AdministrativeShutdown)),
    );
    assert!(a.iter().any(|a| matches!(
        a,
        Action::PeerDown {
            reason: DownReason::NotificationReceived(_),
            retain: None
        }
    )));
    assert_eq!(
        notification_sent(&a),
        None,
        "never answer a NOTIFICATION with one"
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut s = Session::new(cfg(65001, 65002));
    s.handle(Event::ManualStart);
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Outgoing,
    });
    let a = recv(&mut s, 1, Message::Update(Update::default()));
    assert_eq!(
        notification_sent(&a),
        Some(NotificationError::Fsm(
            FsmSubcode::UnexpectedMessageInOpenSent
        ))
    );
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let a = recv(&mut s, 1, peer_open(65002, 90, THEM, vec![]));
    assert_eq!(
        notification_sent(&a),
        Some(NotificationError::Fsm(
            FsmSubcode::UnexpectedMessageInEstablished
        ))
    );
}

#[test]
fn decode_errors_reset_or_withdraw() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let withdraw = Update {
        withdrawn: vec!["10.1.0.0/16".parse().unwrap()],
        ..Update::default()
    };
    let a = s.handle(Event::MessageReceived {
        conn: 1,
        message: Err(DecodeError::TreatAsWithdraw {
            cause: Box::new(DecodeError::MissingWellKnown { code: 1 }),
            withdraw: Box::new(withdraw.clone()),
        }),
    });
    assert!(a.contains(&Action::RoutesReceived(withdraw)));
    assert_eq!(s.state(), State::Established);

    let a = s.handle(Event::MessageReceived {
        conn: 1,
        message: Err(DecodeError::MalformedAttributeList { reason: "test" }),
    });
    assert_eq!(
        notification_sent(&a),
        Some(NotificationError::Update(
            UpdateSubcode::MalformedAttributeList
        ))
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn updates_and_end_of_rib_are_passed_up() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let a = recv(&mut s, 1, Message::Update(Update::default()));
    assert!(a.contains(&Action::EndOfRib(Family::IPV4_UNICAST)));
    let u = Update {
        withdrawn: vec!["10.2.0.0/16".parse().unwrap()],
        ..Update::default()
    };
    let a = recv(&mut s, 1, Message::Update(u.clone()));
    assert!(a.contains(&Action::RoutesReceived(u)));
    assert!(
        timer_started(&a, TimerKind::Hold).is_some(),
        "an UPDATE restarts the hold timer"
    );
}

#[test]
fn max_prefix_sends_cease_and_stays_down() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let a = s.handle(Event::MaxPrefixExceeded {
        family: Family::IPV4_UNICAST,
        limit: 10,
    });
    let n = sent(&a)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        n.error,
        NotificationError::Cease(CeaseSubcode::MaximumPrefixesReached)
    );
    assert_eq!(n.data, vec![0, 1, 1, 0, 0, 0, 10]);
    assert!(a.iter().any(|a| matches!(a, Action::PeerDown { .. })));
    assert_eq!(
        timer_started(&a, TimerKind::IdleHold),
        None,
        "no automatic restart"
    );
    assert!(s
        .handle(Event::TimerExpired(TimerKind::IdleHold))
        .is_empty());
}

#[test]
fn manual_stop_sends_cease_admin_shutdown() {
    let mut s = established(cfg(65001, 65002), peer_open(65002, 90, THEM, vec![]));
    let a = s.handle(Event::ManualStop);
    assert_eq!(
        notification_sent(&a),
        Some(NotificationError::Cease(
            CeaseSubcode::AdministrativeShutdown
        ))
    );
    assert_eq!(s.state(), State::Idle);
    // Disabled: incoming connections are refused.
    let a = s.handle(Event::TcpConnected {
        conn: 9,
        direction: Direction::Incoming,
    });
    assert_eq!(a, vec![Action::CloseTcp { conn: 9 }]);
}

#[test]
fn connection_loss_before_established_returns_to_active() {
    let mut s = Session::new(cfg(65001, 65002));
    s.handle(Event::ManualStart);
    s.handle(Event::TcpConnected {
        conn: 1,
        direction: Direction::Outgoing,
    });
    let a = s.handle(Event::TcpClosed { conn: 1 });
    assert_eq!(s.state(), State::Active);
    assert!(timer_started(&a, TimerKind::ConnectRetry).is_some());
    assert!(!a.iter().any(|a| matches!(a, Action::PeerDown { .. })));
}
