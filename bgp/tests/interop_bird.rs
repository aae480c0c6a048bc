//! Interop with BIRD 2 in network namespaces (root): sessions with weft active and passive,
//! IPv4/IPv6 routes both ways, withdrawals, peer restart, hold-timer expiry, and weft as a
//! route-reflector client of BIRD.

mod support;

use nix::sys::signal::Signal;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::daemons::Bird;
use support::{wait_for, Topology, PEER_V4, WEFT_V4, WEFT_V6};
use weft_bgp::fsm::State;
use weft_bgp::{PeerConfig, Speaker, SpeakerConfig};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bird_conf(local_as: u32, weft_as: u32, extra_bgp: &str) -> String {
    format!(
        r#"router id {PEER_V4};
protocol device {{ scan time 1; }}
protocol direct {{ ipv4; ipv6; }}
protocol static s4 {{ ipv4; route 10.50.0.0/16 blackhole; }}
protocol static s6 {{ ipv6; route fd00:50::/48 blackhole; }}
protocol bgp weft {{
  local {PEER_V4} as {local_as};
  neighbor {WEFT_V4} as {weft_as};
  connect delay time 1; connect retry time 2; error wait time 1, 2;
  {extra_bgp}
  ipv4 {{ import all; export all; }};
  ipv6 {{ import all; export all; next hop address fd00::2; }};
}}
"#
    )
}

fn weft_conf(me: &str, asn: u32, peer_as: u32, passive: bool, hold: u16) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(asn, me.parse().unwrap(), Some(SocketAddr::new(ip(me), 179)));
    c.connect_retry = Duration::from_secs(1);
    c.idle_hold = Duration::from_millis(500);
    let mut p = PeerConfig::new(ip(PEER_V4), peer_as);
    p.passive = passive;
    p.hold_time = hold;
    p.local_address = Some(ip(me));
    p.next_hop_v6 = Some(WEFT_V6.parse().unwrap());
    c.peers.push(p);
    c
}

async fn weft_up(s: &Speaker) -> bool {
    s.peer_status(ip(PEER_V4)).await.unwrap().state == State::Established
}

async fn weft_has(s: &Speaker, prefix: &str) -> bool {
    let p: ipnet::IpNet = prefix.parse().unwrap();
    s.loc_rib().await.unwrap().iter().any(|r| r.prefix == p)
}

const T: Duration = Duration::from_secs(20);

#[test]
fn bird_weft_active_routes_withdraw_restart_and_hold_timer() {
    skip_unless!("bird", "birdc");
    let topo = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    // BIRD never connects: the session can only come from weft's side.
    let mut bird = Bird::start(
        &topo.peer_ns,
        dir.path(),
        &bird_conf(65002, 65001, "passive on;"),
    );
    topo.run_weft(move || async move {
        let s = Speaker::start(weft_conf(WEFT_V4, 65001, 65002, false, 3))
            .await
            .unwrap();
        s.announce("10.244.1.0/24".parse().unwrap()).unwrap();
        s.announce("fd00:244:1::/64".parse().unwrap()).unwrap();
        wait_for("weft Established (active)", T, || weft_up(&s)).await;
        assert!(
            bird.established("weft"),
            "{}",
            bird.birdc("show protocols all weft")
        );

        wait_for("BIRD learns weft's IPv4 prefix", T, || async {
            bird.routes("master4").contains("10.244.1.0/24")
        })
        .await;
        wait_for("BIRD learns weft's IPv6 prefix", T, || async {
            bird.routes("master6").contains("fd00:244:1::/64")
        })
        .await;
        let r4 = bird.routes("master4");
        assert!(
            r4.contains("via 10.0.0.1"),
            "next hop self toward eBGP: {r4}"
        );
        assert!(r4.contains("BGP.as_path: 65001"), "{r4}");
        wait_for("weft learns BIRD's IPv4 prefix", T, || {
            weft_has(&s, "10.50.0.0/16")
        })
        .await;
        wait_for("weft learns BIRD's IPv6 prefix", T, || {
            weft_has(&s, "fd00:50::/48")
        })
        .await;
        let rib = s.loc_rib().await.unwrap();
        let r = rib
            .iter()
            .find(|r| r.prefix == "10.50.0.0/16".parse().unwrap())
            .unwrap();
        assert_eq!(r.next_hops, vec![ip(PEER_V4)]);
        assert_eq!(r.attrs.as_path.first_as(), Some(65002));
        let r6 = rib
            .iter()
            .find(|r| r.prefix == "fd00:50::/48".parse().unwrap())
            .unwrap();
        assert_eq!(r6.next_hops, vec![ip("fd00::2")]);

        // Withdrawals both ways.
        s.withdraw("10.244.1.0/24".parse().unwrap()).unwrap();
        wait_for("BIRD drops the withdrawn prefix", T, || async {
            !bird.routes("master4").contains("10.244.1.0/24")
        })
        .await;
        bird.birdc("disable s4");
        wait_for("weft drops BIRD's withdrawn prefix", T, || async {
            !weft_has(&s, "10.50.0.0/16").await
        })
        .await;
        assert!(weft_has(&s, "fd00:50::/48").await);

        // Peer restart: BIRD stops (Cease), weft drops its routes, and the session returns.
        bird.proc.stop();
        wait_for("weft notices BIRD stopped", T, || async {
            !weft_up(&s).await
        })
        .await;
        wait_for("BIRD's routes leave weft", T, || async {
            !weft_has(&s, "fd00:50::/48").await
        })
        .await;
        bird.restart();
        wait_for("session back after BIRD restart", T, || weft_up(&s)).await;
        wait_for("BIRD's routes back", T, || weft_has(&s, "fd00:50::/48")).await;
        wait_for("weft's IPv6 prefix back in BIRD", T, || async {
            bird.routes("master6").contains("fd00:244:1::/64")
        })
        .await;

        // Hold timer: a frozen BIRD sends no KEEPALIVE; weft (hold time 3) tears the session down.
        let flaps = s.peer_status(ip(PEER_V4)).await.unwrap().flaps;
        bird.proc.signal(Signal::SIGSTOP);
        wait_for("hold timer expiry", Duration::from_secs(10), || async {
            !weft_up(&s).await
        })
        .await;
        let st = s.peer_status(ip(PEER_V4)).await.unwrap();
        assert_eq!(st.flaps, flaps + 1);
        assert!(
            st.last_error
                .as_deref()
                .unwrap_or("")
                .contains("HoldTimerExpired"),
            "{st:?}"
        );
        assert!(
            !weft_has(&s, "fd00:50::/48").await,
            "the frozen peer's routes left the RIB"
        );
        bird.proc.signal(Signal::SIGCONT);
        wait_for(
            "session back after SIGCONT",
            Duration::from_secs(30),
            || weft_up(&s),
        )
        .await;
        s.shutdown().await;
    });
}

#[test]
fn bird_weft_passive() {
    skip_unless!("bird", "birdc");
    let topo = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let bird = Bird::start(&topo.peer_ns, dir.path(), &bird_conf(65002, 65001, ""));
    topo.run_weft(move || async move {
        let s = Speaker::start(weft_conf(WEFT_V4, 65001, 65002, true, 90))
            .await
            .unwrap();
        s.announce("10.244.2.0/24".parse().unwrap()).unwrap();
        wait_for("weft Established (passive)", T, || weft_up(&s)).await;
        wait_for("BIRD learns weft's prefix", T, || async {
            bird.routes("master4").contains("10.244.2.0/24")
        })
        .await;
        wait_for("weft learns BIRD's prefix", T, || {
            weft_has(&s, "10.50.0.0/16")
        })
        .await;
        let st = s.peer_status(ip(PEER_V4)).await.unwrap();
        assert_eq!(st.negotiated.unwrap().hold_time, 90, "min(90, BIRD's 240)");
        s.shutdown().await;
        wait_for("BIRD sees weft's Cease", T, || async {
            !bird.established("weft")
        })
        .await;
    });
}

#[test]
fn weft_as_route_reflector_client_of_bird() {
    skip_unless!("bird", "birdc");
    let topo = Topology::new();
    // A second weft speaker on another address of the same namespace.
    let dev = support::sh(&[
        "ip",
        "-n",
        &topo.weft_ns,
        "-o",
        "link",
        "show",
        "type",
        "veth",
    ]);
    let dev = dev
        .split(':')
        .nth(1)
        .unwrap()
        .trim()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    support::sh(&[
        "ip",
        "-n",
        &topo.weft_ns,
        "addr",
        "add",
        "10.0.0.3/24",
        "dev",
        &dev,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        r#"router id {PEER_V4};
protocol device {{ scan time 1; }}
protocol direct {{ ipv4; }}
protocol static s4 {{ ipv4; route 10.60.0.0/16 blackhole; }}
template bgp rrc {{
  local {PEER_V4} as 65000;
  rr client; rr cluster id 1.1.1.1; direct;
  connect delay time 1; connect retry time 2; error wait time 1, 2;
  ipv4 {{ import all; export all; gateway direct; }};
}}
protocol bgp c1 from rrc {{ neighbor 10.0.0.1 as 65000; }}
protocol bgp c2 from rrc {{ neighbor 10.0.0.3 as 65000; }}
"#
    );
    let bird = Bird::start(&topo.peer_ns, dir.path(), &conf);
    topo.run_weft(move || async move {
        let a = Speaker::start(weft_conf("10.0.0.1", 65000, 65000, false, 90))
            .await
            .unwrap();
        let b = Speaker::start(weft_conf("10.0.0.3", 65000, 65000, false, 90))
            .await
            .unwrap();
        a.announce("10.244.1.0/24".parse().unwrap()).unwrap();
        let up = tokio::time::timeout(T, async {
            while !(weft_up(&a).await && weft_up(&b).await) {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
        })
        .await;
        assert!(
            up.is_ok(),
            "{:?} {:?} {}",
            a.status().await,
            b.status().await,
            bird.birdc("show protocols all")
        );
        wait_for("BIRD reflects A's prefix to B", T, || {
            weft_has(&b, "10.244.1.0/24")
        })
        .await;
        let rib = b.loc_rib().await.unwrap();
        let r = rib
            .iter()
            .find(|r| r.prefix == "10.244.1.0/24".parse().unwrap())
            .unwrap();
        assert_eq!(
            r.attrs.originator_id,
            Some("10.0.0.1".parse().unwrap()),
            "ORIGINATOR_ID set by the reflector"
        );
        assert_eq!(
            r.attrs.cluster_list,
            vec!["1.1.1.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            r.next_hops,
            vec![ip("10.0.0.1")],
            "next hop kept on reflection"
        );
        assert_eq!(r.attrs.local_pref, Some(100));
        wait_for("BIRD's own route reaches A", T, || {
            weft_has(&a, "10.60.0.0/16")
        })
        .await;
        // A's own route stays local; from BIRD it accepts only 10.60.0.0/16 and BIRD's
        // connected 10.0.0.0/24.
        let a_rib = a.loc_rib().await.unwrap();
        let own = a_rib
            .iter()
            .find(|r| r.prefix == "10.244.1.0/24".parse().unwrap())
            .unwrap();
        assert_eq!(own.source, weft_bgp::rib::Source::Local);
        assert_eq!(
            a.peer_status(ip(PEER_V4)).await.unwrap().prefixes_received,
            2
        );
        assert!(bird.established("c1") && bird.established("c2"));
        a.shutdown().await;
        b.shutdown().await;
    });
}
