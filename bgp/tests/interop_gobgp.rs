//! Interop with GoBGP in network namespaces (root): weft active and passive, IPv4/IPv6 routes
//! both ways, withdrawals both ways.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use support::daemons::Gobgp;
use support::{wait_for, Topology, PEER_V4, WEFT_V4, WEFT_V6};
use weft_bgp::fsm::State;
use weft_bgp::{PeerConfig, Speaker, SpeakerConfig};

const T: Duration = Duration::from_secs(20);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn gobgp_conf(passive: bool) -> String {
    format!(
        r#"[global.config]
  as = 65002
  router-id = "{PEER_V4}"
  local-address-list = ["{PEER_V4}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{WEFT_V4}"
    peer-as = 65001
  [neighbors.transport.config]
    local-address = "{PEER_V4}"
    passive-mode = {passive}
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#
    )
}

fn weft_conf(passive: bool) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(
        65001,
        WEFT_V4.parse().unwrap(),
        Some(SocketAddr::new(ip(WEFT_V4), 179)),
    );
    c.connect_retry = Duration::from_secs(1);
    c.idle_hold = Duration::from_millis(500);
    let mut p = PeerConfig::new(ip(PEER_V4), 65002);
    p.passive = passive;
    p.local_address = Some(ip(WEFT_V4));
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

/// Runs the shared scenario with weft active (GoBGP passive) or passive (GoBGP active).
fn scenario(weft_passive: bool) {
    let topo = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let gobgp = Gobgp::start(&topo.peer_ns, dir.path(), &gobgp_conf(!weft_passive));
    gobgp.cli(&["global", "rib", "add", "10.80.0.0/16", "nexthop", PEER_V4]);
    gobgp.cli(&[
        "global",
        "rib",
        "-a",
        "ipv6",
        "add",
        "fd00:80::/48",
        "nexthop",
        "fd00::2",
    ]);
    topo.run_weft(move || async move {
        let s = Speaker::start(weft_conf(weft_passive)).await.unwrap();
        s.announce("10.244.1.0/24".parse().unwrap()).unwrap();
        s.announce("fd00:244:1::/64".parse().unwrap()).unwrap();
        wait_for("weft Established", T, || weft_up(&s)).await;
        assert!(gobgp.established(WEFT_V4));

        wait_for("GoBGP learns the IPv4 prefix", T, || async {
            gobgp.cli(&["global", "rib"]).contains("10.244.1.0/24")
        })
        .await;
        wait_for("GoBGP learns the IPv6 prefix", T, || async {
            gobgp
                .cli(&["global", "rib", "-a", "ipv6"])
                .contains("fd00:244:1::/64")
        })
        .await;
        let rib = gobgp.cli(&["global", "rib", "10.244.1.0/24"]);
        assert!(rib.contains(WEFT_V4) && rib.contains("65001"), "{rib}");
        wait_for("weft learns GoBGP's IPv4 prefix", T, || {
            weft_has(&s, "10.80.0.0/16")
        })
        .await;
        wait_for("weft learns GoBGP's IPv6 prefix", T, || {
            weft_has(&s, "fd00:80::/48")
        })
        .await;
        let loc = s.loc_rib().await.unwrap();
        let r = loc
            .iter()
            .find(|r| r.prefix == "10.80.0.0/16".parse().unwrap())
            .unwrap();
        assert_eq!(r.next_hops, vec![ip(PEER_V4)]);

        s.withdraw("fd00:244:1::/64".parse().unwrap()).unwrap();
        wait_for("GoBGP drops the IPv6 prefix", T, || async {
            !gobgp
                .cli(&["global", "rib", "-a", "ipv6"])
                .contains("fd00:244:1::/64")
        })
        .await;
        gobgp.cli(&["global", "rib", "del", "10.80.0.0/16"]);
        wait_for("weft drops GoBGP's withdrawn prefix", T, || async {
            !weft_has(&s, "10.80.0.0/16").await
        })
        .await;
        assert!(weft_has(&s, "fd00:80::/48").await);
        s.shutdown().await;
        wait_for("GoBGP sees the session end", T, || async {
            !gobgp.established(WEFT_V4)
        })
        .await;
    });
}

#[test]
fn gobgp_with_weft_active() {
    skip_unless!("gobgpd", "gobgp");
    scenario(false);
}

#[test]
fn gobgp_with_weft_passive() {
    skip_unless!("gobgpd", "gobgp");
    scenario(true);
}
