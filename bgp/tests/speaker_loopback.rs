//! Two weft speakers over loopback (127.0.0.x, no root needed): sessions, route exchange,
//! withdrawal, the route-change stream and status.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use weft_bgp::rib::RouteChange;
use weft_bgp::{PeerConfig, Speaker, SpeakerConfig};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A speaker on `me:port` peering with `other:other_port`.
fn config(
    asn: u32,
    me: &str,
    port: u16,
    other: &str,
    other_as: u32,
    other_port: u16,
    passive: bool,
) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(
        asn,
        me.parse().unwrap(),
        Some(SocketAddr::new(ip(me), port)),
    );
    c.connect_retry = Duration::from_secs(1);
    c.idle_hold = Duration::from_millis(200);
    let mut p = PeerConfig::new(ip(other), other_as);
    p.port = other_port;
    p.local_address = Some(ip(me));
    p.passive = passive;
    p.hold_time = 9;
    c.peers.push(p);
    c
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn established(s: &Speaker) -> bool {
    s.status()
        .await
        .unwrap()
        .iter()
        .all(|p| p.state == weft_bgp::fsm::State::Established)
}

async fn has_route(s: &Speaker, prefix: &str) -> bool {
    let p: ipnet::IpNet = prefix.parse().unwrap();
    s.loc_rib().await.unwrap().iter().any(|r| r.prefix == p)
}

/// Free port pair: bind to port 0 on both addresses and reuse what the OS picked.
fn free_port(addr: &str) -> u16 {
    std::net::TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_exchange_and_withdraw_routes() {
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.2"));
    let mut a = Speaker::start(config(
        65001,
        "127.0.0.1",
        pa,
        "127.0.0.2",
        65002,
        pb,
        false,
    ))
    .await
    .unwrap();
    let mut b = Speaker::start(config(65002, "127.0.0.2", pb, "127.0.0.1", 65001, pa, true))
        .await
        .unwrap();
    let mut a_routes = a.take_route_changes().unwrap();
    assert!(
        a.take_route_changes().is_none(),
        "the stream is handed out once"
    );
    let _b_routes = b.take_route_changes().unwrap();

    a.announce("10.244.1.0/24".parse().unwrap()).unwrap();
    a.announce("fd00:244:1::/64".parse().unwrap()).unwrap();
    b.announce("10.244.2.0/24".parse().unwrap()).unwrap();
    wait_for("sessions", Duration::from_secs(10), || async {
        established(&a).await && established(&b).await
    })
    .await;
    wait_for("B learns A's IPv4 prefix", Duration::from_secs(5), || {
        has_route(&b, "10.244.1.0/24")
    })
    .await;
    wait_for("B learns A's IPv6 prefix", Duration::from_secs(5), || {
        has_route(&b, "fd00:244:1::/64")
    })
    .await;
    wait_for("A learns B's prefix", Duration::from_secs(5), || {
        has_route(&a, "10.244.2.0/24")
    })
    .await;

    let rib_b = b.loc_rib().await.unwrap();
    let r = rib_b
        .iter()
        .find(|r| r.prefix == "10.244.1.0/24".parse().unwrap())
        .unwrap();
    assert_eq!(r.attrs.as_path.segments[0].asns, vec![65001]);
    assert_eq!(r.next_hops, vec![ip("127.0.0.1")]);
    let v6 = rib_b
        .iter()
        .find(|r| r.prefix == "fd00:244:1::/64".parse().unwrap())
        .unwrap();
    assert_eq!(
        v6.next_hops,
        vec![ip("127.0.0.1")],
        "IPv4-mapped next hop given to the kernel as IPv4"
    );

    let change = tokio::time::timeout(Duration::from_secs(5), a_routes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        change,
        RouteChange::Install {
            prefix: "10.244.2.0/24".parse().unwrap(),
            next_hops: vec![ip("127.0.0.2")]
        }
    );

    let st = a.peer_status(ip("127.0.0.2")).await.unwrap();
    assert_eq!(st.prefixes_received, 1);
    assert_eq!(st.prefixes_sent, 2);
    assert!(st.uptime().is_some());
    assert_eq!(st.negotiated.as_ref().unwrap().hold_time, 9);

    b.withdraw("10.244.2.0/24".parse().unwrap()).unwrap();
    wait_for(
        "A drops the withdrawn prefix",
        Duration::from_secs(5),
        || async { !has_route(&a, "10.244.2.0/24").await },
    )
    .await;
    let change = tokio::time::timeout(Duration::from_secs(5), a_routes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        change,
        RouteChange::Remove {
            prefix: "10.244.2.0/24".parse().unwrap()
        }
    );

    // B shuts down with a Cease: A loses B's routes at once and keeps retrying.
    b.announce("10.244.3.0/24".parse().unwrap()).unwrap();
    wait_for("A learns 10.244.3.0/24", Duration::from_secs(5), || {
        has_route(&a, "10.244.3.0/24")
    })
    .await;
    b.shutdown().await;
    wait_for("A drops B's routes", Duration::from_secs(5), || async {
        !has_route(&a, "10.244.3.0/24").await
    })
    .await;
    let st = a.peer_status(ip("127.0.0.2")).await.unwrap();
    assert_ne!(st.state, weft_bgp::fsm::State::Established);
    assert!(st.last_error.unwrap().contains("NotificationReceived"));

    // B comes back (same addresses): the session returns by itself.
    let b = Speaker::start(config(65002, "127.0.0.2", pb, "127.0.0.1", 65001, pa, true))
        .await
        .unwrap();
    b.announce("10.244.4.0/24".parse().unwrap()).unwrap();
    wait_for("A learns from restarted B", Duration::from_secs(10), || {
        has_route(&a, "10.244.4.0/24")
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_active_resolve_collision_to_one_session() {
    let (pa, pb) = (free_port("127.0.0.3"), free_port("127.0.0.4"));
    let a = Speaker::start(config(
        65001,
        "127.0.0.3",
        pa,
        "127.0.0.4",
        65001,
        pb,
        false,
    ))
    .await
    .unwrap();
    let b = Speaker::start(config(
        65001,
        "127.0.0.4",
        pb,
        "127.0.0.3",
        65001,
        pa,
        false,
    ))
    .await
    .unwrap();
    a.announce("10.1.0.0/16".parse().unwrap()).unwrap();
    wait_for("iBGP sessions", Duration::from_secs(10), || async {
        established(&a).await && established(&b).await
    })
    .await;
    wait_for("route over iBGP", Duration::from_secs(5), || {
        has_route(&b, "10.1.0.0/16")
    })
    .await;
    let rib = b.loc_rib().await.unwrap();
    assert_eq!(rib[0].attrs.local_pref, Some(100));
    assert!(rib[0].attrs.as_path.segments.is_empty());
    // Stable: still one Established session a moment later (no flapping from the collision).
    let flaps = a.peer_status(ip("127.0.0.4")).await.unwrap().flaps;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(established(&a).await);
    assert_eq!(a.peer_status(ip("127.0.0.4")).await.unwrap().flaps, flaps);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn invalid_configuration_is_rejected_before_anything_starts() {
    let mut c = SpeakerConfig::new(65001, Ipv4Addr::new(1, 1, 1, 1), None);
    let mut p = PeerConfig::new(ip("127.0.0.9"), 65002);
    p.hold_time = 2;
    c.peers.push(p);
    let err = Speaker::start(c).await.err().expect("rejected");
    assert!(err.to_string().contains("hold time 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weft_reflects_between_two_weft_clients() {
    let (prr, p6, p7) = (
        free_port("127.0.0.5"),
        free_port("127.0.0.6"),
        free_port("127.0.0.7"),
    );
    let mut rr = SpeakerConfig::new(
        65000,
        "127.0.0.5".parse().unwrap(),
        Some(SocketAddr::new(ip("127.0.0.5"), prr)),
    );
    rr.connect_retry = Duration::from_secs(1);
    for (client, port) in [("127.0.0.6", p6), ("127.0.0.7", p7)] {
        let mut p = PeerConfig::new(ip(client), 65000);
        p.port = port;
        p.local_address = Some(ip("127.0.0.5"));
        p.rr_client = true;
        rr.peers.push(p);
    }
    let rr = Speaker::start(rr).await.unwrap();
    let c6 = Speaker::start(config(
        65000,
        "127.0.0.6",
        p6,
        "127.0.0.5",
        65000,
        prr,
        false,
    ))
    .await
    .unwrap();
    let c7 = Speaker::start(config(
        65000,
        "127.0.0.7",
        p7,
        "127.0.0.5",
        65000,
        prr,
        false,
    ))
    .await
    .unwrap();
    c6.announce("10.6.0.0/16".parse().unwrap()).unwrap();
    c7.announce("10.7.0.0/16".parse().unwrap()).unwrap();
    wait_for("all sessions", Duration::from_secs(10), || async {
        established(&rr).await && established(&c6).await && established(&c7).await
    })
    .await;
    wait_for(
        "client 7 gets client 6's route",
        Duration::from_secs(5),
        || has_route(&c7, "10.6.0.0/16"),
    )
    .await;
    wait_for(
        "client 6 gets client 7's route",
        Duration::from_secs(5),
        || has_route(&c6, "10.7.0.0/16"),
    )
    .await;
    let rib = c7.loc_rib().await.unwrap();
    let r = rib
        .iter()
        .find(|r| r.prefix == "10.6.0.0/16".parse().unwrap())
        .unwrap();
    assert_eq!(r.attrs.originator_id, Some("127.0.0.6".parse().unwrap()));
    assert_eq!(
        r.attrs.cluster_list,
        vec!["127.0.0.5".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        r.next_hops,
        vec![ip("127.0.0.6")],
        "the reflector keeps the next hop"
    );
    // The reflector itself installs both client routes toward the clients.
    let rr_rib = rr.loc_rib().await.unwrap();
    assert_eq!(rr_rib.len(), 2);
    // Client 6 does not receive its own route back (ORIGINATOR_ID check plus split horizon).
    assert_eq!(
        c6.peer_status(ip("127.0.0.5"))
            .await
            .unwrap()
            .prefixes_received,
        1
    );
    for s in [rr, c6, c7] {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_prefix_limit_ends_the_session_and_keeps_it_down() {
    let (pa, pb) = (free_port("127.0.0.8"), free_port("127.0.0.9"));
    let mut ca = config(65001, "127.0.0.8", pa, "127.0.0.9", 65002, pb, false);
    ca.peers[0].policy.max_prefixes = Some(1);
    let a = Speaker::start(ca).await.unwrap();
    let b = Speaker::start(config(
        65002,
        "127.0.0.9",
        pb,
        "127.0.0.8",
        65001,
        pa,
        false,
    ))
    .await
    .unwrap();
    b.announce("10.1.0.0/16".parse().unwrap()).unwrap();
    wait_for("sessions", Duration::from_secs(10), || async {
        established(&a).await
    })
    .await;
    wait_for("first prefix", Duration::from_secs(5), || {
        has_route(&a, "10.1.0.0/16")
    })
    .await;
    b.announce("10.2.0.0/16".parse().unwrap()).unwrap();
    wait_for("session cut", Duration::from_secs(5), || async {
        !established(&a).await
    })
    .await;
    let st = a.peer_status(ip("127.0.0.9")).await.unwrap();
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("MaximumPrefixesReached"),
        "{st:?}"
    );
    // B learns of the cut when the NOTIFICATION arrives, a moment after A sent it.
    wait_for("B got the Cease", Duration::from_secs(5), || async {
        b.peer_status(ip("127.0.0.8"))
            .await
            .unwrap()
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("MaximumPrefixesReached")
    })
    .await;
    assert!(a.loc_rib().await.unwrap().is_empty(), "B's routes left A");
    // A stays down even though B keeps trying.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        a.peer_status(ip("127.0.0.9")).await.unwrap().state,
        weft_bgp::fsm::State::Idle
    );
    a.shutdown().await;
    b.shutdown().await;
}
