//! Interop with FRR (bgpd + zebra) in network namespaces (root). Both sides connect, so the
//! session also exercises collision resolution against a real implementation.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::daemons::Frr;
use support::{wait_for, Topology, PEER_V4, WEFT_V4, WEFT_V6};
use weft_bgp::fsm::State;
use weft_bgp::{PeerConfig, Speaker, SpeakerConfig};

const T: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bgpd_conf() -> String {
    format!(
        r#"frr defaults traditional
hostname frr
log stdout
router bgp 65003
 bgp router-id {PEER_V4}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {WEFT_V4} remote-as 65001
 neighbor {WEFT_V4} timers connect 1
 address-family ipv4 unicast
  network 10.70.0.0/16
 exit-address-family
 address-family ipv6 unicast
  neighbor {WEFT_V4} activate
  network fd00:70::/48
 exit-address-family
"#
    )
}

async fn weft_up(s: &Speaker) -> bool {
    s.peer_status(ip(PEER_V4)).await.unwrap().state == State::Established
}

async fn weft_has(s: &Speaker, prefix: &str) -> bool {
    let p: ipnet::IpNet = prefix.parse().unwrap();
    s.loc_rib().await.unwrap().iter().any(|r| r.prefix == p)
}

#[test]
fn frr_routes_both_ways_with_both_sides_connecting() {
    skip_unless!("vtysh", "/usr/lib/frr/bgpd", "/usr/lib/frr/zebra");
    let topo = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let mut frr = Frr::start(&topo.peer_ns, dir.path(), &bgpd_conf());
    topo.run_weft(move || async move {
        let mut c = SpeakerConfig::new(
            65001,
            WEFT_V4.parse().unwrap(),
            Some(SocketAddr::new(ip(WEFT_V4), 179)),
        );
        c.connect_retry = Duration::from_secs(1);
        c.idle_hold = Duration::from_millis(500);
        let mut p = PeerConfig::new(ip(PEER_V4), 65003);
        p.local_address = Some(ip(WEFT_V4));
        p.next_hop_v6 = Some(WEFT_V6.parse().unwrap());
        c.peers.push(p);
        let s = Speaker::start(c).await.unwrap();
        s.announce("10.244.1.0/24".parse().unwrap()).unwrap();
        s.announce("fd00:244:1::/64".parse().unwrap()).unwrap();
        wait_for("weft Established with FRR", T, || weft_up(&s)).await;
        wait_for("FRR Established", T, || async { frr.established(WEFT_V4) }).await;

        wait_for("FRR learns the IPv4 prefix", T, || async {
            frr.vtysh("show bgp ipv4 unicast").contains("10.244.1.0/24")
        })
        .await;
        wait_for("FRR learns the IPv6 prefix", T, || async {
            frr.vtysh("show bgp ipv6 unicast")
                .contains("fd00:244:1::/64")
        })
        .await;
        let detail = frr.vtysh("show bgp ipv4 unicast 10.244.1.0/24");
        assert!(
            detail.contains("65001") && detail.contains(WEFT_V4),
            "{detail}"
        );
        wait_for("weft learns FRR's IPv4 prefix", T, || {
            weft_has(&s, "10.70.0.0/16")
        })
        .await;
        wait_for("weft learns FRR's IPv6 prefix", T, || {
            weft_has(&s, "fd00:70::/48")
        })
        .await;

        s.withdraw("10.244.1.0/24".parse().unwrap()).unwrap();
        wait_for("FRR drops the withdrawn prefix", T, || async {
            !frr.vtysh("show bgp ipv4 unicast").contains("10.244.1.0/24")
        })
        .await;
        let flaps = s.peer_status(ip(PEER_V4)).await.unwrap().flaps;
        assert_eq!(
            flaps, 0,
            "the collision did not cost an Established session"
        );

        frr.stop();
        wait_for("FRR's routes leave weft", T, || async {
            !weft_has(&s, "10.70.0.0/16").await
        })
        .await;
        s.shutdown().await;
    });
}
