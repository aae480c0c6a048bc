//! The lease keeper's state machine, driven by hand: no etcd, no clock.

use std::time::Duration;

use weft_ipam::cluster::keeper::{Expect, Kv, Snapshot, WatchEvent};
use weft_ipam::cluster::{
    Action, BackendConfig, ClusterConfig, Event, Input, Keeper, KeeperConfig, Keys, LeaseValue,
    Request,
};

const TTL: Duration = Duration::from_secs(9);

fn keeper(ip: &str, node: &str) -> Keeper {
    Keeper::new(KeeperConfig {
        prefix: "/weft".into(),
        cluster: "c1".into(),
        public_ip: ip.parse().unwrap(),
        node_id: node.into(),
        hostname: "h".into(),
        ttl: TTL,
        previous: None,
    })
}

fn keys() -> Keys {
    Keys::new("/weft", "c1")
}

fn config_kv() -> Kv {
    let config = ClusterConfig::new(
        "10.244.0.0/16".parse().unwrap(),
        BackendConfig::new("vxlan"),
    );
    Kv {
        key: keys().config(),
        value: config.encode(),
        mod_revision: 1,
    }
}

fn lease_kv(subnet: &str, ip: &str, node: &str, rev: i64) -> Kv {
    let value = LeaseValue {
        public_ip: ip.parse().unwrap(),
        node_id: node.into(),
        hostname: String::new(),
        subnet_v6: None,
        backend_data: serde_json::json!({"vtep_mac": "0a:00:00:00:00:01"}),
    };
    Kv {
        key: keys().subnet(subnet.parse().unwrap()),
        value: value.encode(),
        mod_revision: rev,
    }
}

fn snapshot(revision: i64, kvs: Vec<Kv>) -> Input {
    Input::Loaded(Ok(Snapshot { revision, kvs }))
}

fn requests(actions: &[Action]) -> Vec<Request> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Ticks, loads `kvs`, grants lease 7 and confirms the claim at revision 20: the keeper holds
/// the subnet it chose. Returns the claimed key.
fn join(k: &mut Keeper, kvs: Vec<Kv>) -> String {
    assert_eq!(
        requests(&k.handle(Input::Tick(secs(0.0)))),
        vec![Request::Load]
    );
    let out = k.handle(snapshot(10, kvs));
    assert!(
        requests(&out).contains(&Request::Grant { ttl_secs: 9 }),
        "{out:?}"
    );
    let out = k.handle(Input::Granted(Ok(7)));
    let Some(Request::Claim { key, lease: 7, .. }) = requests(&out).first().cloned() else {
        panic!("expected a claim: {out:?}");
    };
    k.handle(Input::Claimed(Ok((true, 20))));
    key
}

#[test]
fn joins_by_claiming_the_first_free_subnet_and_reports_peers() {
    let mut k = keeper("192.168.0.1", "a");
    k.handle(Input::Tick(secs(0.0)));
    let out = k.handle(snapshot(
        10,
        vec![
            config_kv(),
            lease_kv("10.244.1.0/24", "192.168.0.2", "b", 5),
            Kv {
                key: keys().subnet("10.244.2.0/24".parse().unwrap()),
                value: b"garbage".to_vec(),
                mod_revision: 6,
            },
        ],
    ));
    let ev = events(&out);
    assert!(
        matches!(&ev[..], [Event::MalformedLease { error }] if error.contains("10.244.2.0-24")),
        "{ev:?}"
    );
    assert_eq!(requests(&out), vec![Request::Grant { ttl_secs: 9 }]);
    let out = k.handle(Input::Granted(Ok(7)));
    let [Request::Claim {
        key,
        value,
        lease: 7,
        expect: Expect::Absent,
    }] = &requests(&out)[..]
    else {
        panic!("{out:?}");
    };
    // 10.244.1.0 is leased and 10.244.2.0 holds a malformed lease: neither is free.
    assert_eq!(key, &keys().subnet("10.244.3.0/24".parse().unwrap()));
    let value: LeaseValue = serde_json::from_slice(value).unwrap();
    assert_eq!(value.node_id, "a");
    let out = k.handle(Input::Claimed(Ok((true, 11))));
    let ev = events(&out);
    assert!(
        matches!(&ev[0], Event::LeaseAcquired { subnet, .. } if subnet.to_string() == "10.244.3.0/24"),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[1], Event::PeersSynced(peers) if peers.len() == 1 && peers[0].subnet.to_string() == "10.244.1.0/24"),
        "{ev:?}"
    );
    assert_eq!(requests(&out), vec![Request::Watch { from_revision: 11 }]);
    assert_eq!(k.state_name(), "held");
}

#[test]
fn etcd_down_at_start_is_retried_with_growing_backoff() {
    let mut k = keeper("192.168.0.1", "a");
    k.handle(Input::Tick(secs(0.0)));
    let mut delays = Vec::new();
    let mut now = 0.0;
    for _ in 0..6 {
        let out = k.handle(Input::Loaded(Err("connection refused".into())));
        let [Event::EtcdUnavailable {
            retry_in, error, ..
        }] = &events(&out)[..]
        else {
            panic!("{out:?}");
        };
        assert!(error.contains("connection refused"));
        delays.push(retry_in.as_secs_f64());
        // Not before the delay is over.
        assert!(
            requests(&k.handle(Input::Tick(secs(now + retry_in.as_secs_f64() / 2.0)))).is_empty()
        );
        now += retry_in.as_secs_f64();
        assert_eq!(
            requests(&k.handle(Input::Tick(secs(now)))),
            vec![Request::Load]
        );
    }
    assert_eq!(delays, vec![0.5, 1.0, 2.0, 4.0, 5.0, 5.0]);
    // etcd is back: the keeper joins.
    let out = k.handle(snapshot(3, vec![config_kv()]));
    assert_eq!(requests(&out), vec![Request::Grant { ttl_secs: 9 }]);
}

#[test]
fn missing_config_waits_with_a_clear_reason() {
    let mut k = keeper("192.168.0.1", "a");
    k.handle(Input::Tick(secs(0.0)));
    let out = k.handle(snapshot(3, vec![]));
    let [Event::Waiting { reason, .. }] = &events(&out)[..] else {
        panic!("{out:?}");
    };
    assert!(reason.contains("weft cluster init c1"), "{reason}");
    assert!(requests(&out).is_empty());
}

#[test]
fn second_daemon_with_the_same_address_waits_and_never_claims() {
    let mut k = keeper("192.168.0.1", "second");
    k.handle(Input::Tick(secs(0.0)));
    let out = k.handle(snapshot(
        3,
        vec![
            config_kv(),
            lease_kv("10.244.1.0/24", "192.168.0.1", "first", 2),
        ],
    ));
    let [Event::Waiting { reason, .. }] = &events(&out)[..] else {
        panic!("{out:?}");
    };
    assert!(
        reason.contains("another weft daemon (node first)"),
        "{reason}"
    );
    assert!(requests(&out).is_empty());
}

#[test]
fn restart_within_the_ttl_takes_over_its_own_lease() {
    let mut k = keeper("192.168.0.1", "a");
    k.handle(Input::Tick(secs(0.0)));
    k.handle(snapshot(
        30,
        vec![
            config_kv(),
            lease_kv("10.244.4.0/24", "192.168.0.1", "a", 25),
        ],
    ));
    let out = k.handle(Input::Granted(Ok(8)));
    assert!(
        matches!(&requests(&out)[..], [Request::Claim { key, expect: Expect::ModRevision(25), .. }]
            if key == &keys().subnet("10.244.4.0/24".parse().unwrap())),
        "{out:?}"
    );
}

#[test]
fn lost_claim_race_reloads() {
    let mut k = keeper("192.168.0.1", "a");
    k.handle(Input::Tick(secs(0.0)));
    k.handle(snapshot(3, vec![config_kv()]));
    k.handle(Input::Granted(Ok(7)));
    let out = k.handle(Input::Claimed(Ok((false, 4))));
    assert_eq!(requests(&out), vec![Request::Load]);
    assert!(events(&out).is_empty());
    // The next load shows the winner: the keeper picks another subnet with the same etcd lease.
    let out = k.handle(snapshot(
        4,
        vec![
            config_kv(),
            lease_kv("10.244.1.0/24", "192.168.0.2", "b", 4),
        ],
    ));
    assert!(
        matches!(&requests(&out)[..], [Request::Claim { key, lease: 7, .. }]
            if key == &keys().subnet("10.244.2.0/24".parse().unwrap())),
        "{out:?}"
    );
}

#[test]
fn renews_every_third_of_the_ttl_and_loses_the_lease_after_the_ttl() {
    let mut k = keeper("192.168.0.1", "a");
    let key = join(&mut k, vec![config_kv()]);
    assert!(requests(&k.handle(Input::Tick(secs(2.9)))).is_empty());
    assert_eq!(
        requests(&k.handle(Input::Tick(secs(3.0)))),
        vec![Request::KeepAlive { lease: 7 }]
    );
    // In flight: no second renewal.
    assert!(requests(&k.handle(Input::Tick(secs(3.2)))).is_empty());
    // The reply arrives at 3.2: the next renewal is a third of the TTL later.
    k.handle(Input::KeptAlive(Ok(9)));
    assert!(requests(&k.handle(Input::Tick(secs(6.1)))).is_empty());
    assert_eq!(
        requests(&k.handle(Input::Tick(secs(6.2)))),
        vec![Request::KeepAlive { lease: 7 }]
    );
    // etcd is unreachable from now on.
    let mut now = 6.2;
    let out = k.handle(Input::KeptAlive(Err("unavailable".into())));
    assert!(matches!(&events(&out)[..], [Event::EtcdUnavailable { .. }]));
    let mut lost = None;
    while now < 20.0 && lost.is_none() {
        now += 0.5;
        let out = k.handle(Input::Tick(secs(now)));
        if let Some(Event::LeaseLost { reason, .. }) = events(&out).first() {
            assert_eq!(requests(&out), vec![Request::Load], "re-acquire at once");
            lost = Some((now, reason.clone()));
        } else if requests(&out).contains(&Request::KeepAlive { lease: 7 }) {
            k.handle(Input::KeptAlive(Err("unavailable".into())));
        }
    }
    let (when, reason) = lost.expect("the lease is reported lost");
    assert!(
        when > 12.2 && when <= 12.7,
        "lost at {when}: the TTL after the last renewal (3.2 s)"
    );
    assert!(reason.contains("longer than its TTL"), "{reason}");
    // Back: its subnet is free again and it is claimed with a new etcd lease.
    let out = k.handle(snapshot(50, vec![config_kv()]));
    assert!(requests(&out).contains(&Request::Grant { ttl_secs: 9 }));
    let out = k.handle(Input::Granted(Ok(99)));
    assert!(
        matches!(&requests(&out)[..], [Request::Claim { key: k2, lease: 99, expect: Expect::Absent, .. }] if *k2 == key),
        "{out:?}"
    );
}

#[test]
fn subnet_taken_while_away_is_never_shared() {
    let mut k = keeper("192.168.0.1", "a");
    let key = join(&mut k, vec![config_kv()]);
    let out = k.handle(Input::KeptAlive(Ok(0)));
    assert!(
        matches!(&events(&out)[..], [Event::LeaseLost { .. }]),
        "{out:?}"
    );
    // Another host holds our old subnet now.
    let out = k.handle(snapshot(
        60,
        vec![
            config_kv(),
            lease_kv("10.244.1.0/24", "192.168.0.2", "b", 55),
        ],
    ));
    assert_eq!(requests(&out), vec![Request::Grant { ttl_secs: 9 }]);
    let out = k.handle(Input::Granted(Ok(100)));
    let [Request::Claim { key: new_key, .. }] = &requests(&out)[..] else {
        panic!("{out:?}");
    };
    assert_ne!(new_key, &key);
    assert_eq!(new_key, &keys().subnet("10.244.2.0/24".parse().unwrap()));
}

#[test]
fn watch_events_become_peer_events() {
    let mut k = keeper("192.168.0.1", "a");
    join(&mut k, vec![config_kv()]);
    let peer = lease_kv("10.244.5.0/24", "192.168.0.5", "e", 30);
    let out = k.handle(Input::Watched(WatchEvent::Put(peer.clone())));
    assert!(
        matches!(&events(&out)[..], [Event::PeerAdded(l)] if l.subnet.to_string() == "10.244.5.0/24")
    );
    // The same value again (e.g. a replayed event) changes nothing.
    assert!(k
        .handle(Input::Watched(WatchEvent::Put(peer.clone())))
        .is_empty());
    let moved = lease_kv("10.244.5.0/24", "192.168.0.55", "e", 31);
    let out = k.handle(Input::Watched(WatchEvent::Put(moved)));
    assert!(
        matches!(&events(&out)[..], [Event::PeerChanged(l)] if l.value.public_ip.to_string() == "192.168.0.55")
    );
    let garbage = Kv {
        value: b"{not json".to_vec(),
        ..peer.clone()
    };
    let out = k.handle(Input::Watched(WatchEvent::Put(garbage)));
    assert!(
        matches!(
            &events(&out)[..],
            [Event::MalformedLease { .. }, Event::PeerRemoved(_)]
        ),
        "{out:?}"
    );
    k.handle(Input::Watched(WatchEvent::Put(peer.clone())));
    let out = k.handle(Input::Watched(WatchEvent::Delete {
        key: peer.key.clone(),
        mod_revision: 40,
    }));
    assert!(
        matches!(&events(&out)[..], [Event::PeerRemoved(l)] if l.subnet.to_string() == "10.244.5.0/24")
    );
    assert_eq!(k.peers().count(), 0);
}

#[test]
fn own_key_deleted_is_a_loss_reported_and_reacquired() {
    let mut k = keeper("192.168.0.1", "a");
    let key = join(&mut k, vec![config_kv()]);
    // Our own put echoed by the watch is not a peer.
    let own = lease_kv("10.244.1.0/24", "192.168.0.1", "a", 20);
    assert!(events(&k.handle(Input::Watched(WatchEvent::Put(own)))).is_empty());
    let out = k.handle(Input::Watched(WatchEvent::Delete {
        key,
        mod_revision: 21,
    }));
    assert!(
        matches!(&events(&out)[..], [Event::LeaseLost { reason, .. }] if reason.contains("deleted")),
        "{out:?}"
    );
    assert_eq!(requests(&out), vec![Request::Load]);
}

#[test]
fn backend_data_is_published_in_the_lease() {
    let mut k = keeper("192.168.0.1", "a");
    let key = join(&mut k, vec![config_kv()]);
    let data = serde_json::json!({"vtep_mac": "0a:01:c0:a8:00:01"});
    let out = k.handle(Input::BackendData(data.clone()));
    let [Request::Claim {
        key: k2,
        value,
        lease: 7,
        expect: Expect::ModRevision(20),
    }] = &requests(&out)[..]
    else {
        panic!("{out:?}");
    };
    assert_eq!(k2, &key);
    let value: LeaseValue = serde_json::from_slice(value).unwrap();
    assert_eq!(value.backend_data, data);
    assert!(requests(&k.handle(Input::Claimed(Ok((true, 21))))).is_empty());
    // Unchanged data is not written again.
    assert!(requests(&k.handle(Input::BackendData(data))).is_empty());
}

#[test]
fn watch_failure_resyncs_without_giving_up_the_lease() {
    let mut k = keeper("192.168.0.1", "a");
    join(&mut k, vec![config_kv()]);
    let out = k.handle(Input::WatchFailed("etcd restarted".into()));
    assert!(matches!(&events(&out)[..], [Event::EtcdUnavailable { .. }]));
    assert!(requests(&k.handle(Input::Tick(secs(0.6)))).contains(&Request::Load));
    let out = k.handle(snapshot(
        90,
        vec![
            config_kv(),
            lease_kv("10.244.1.0/24", "192.168.0.1", "a", 20),
            lease_kv("10.244.8.0/24", "192.168.0.8", "h", 80),
        ],
    ));
    assert!(
        matches!(&events(&out)[..], [Event::PeersSynced(p)] if p.len() == 1),
        "{out:?}"
    );
    assert_eq!(requests(&out), vec![Request::Watch { from_revision: 91 }]);
    assert_eq!(k.state_name(), "held");
}
