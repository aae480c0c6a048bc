//! Golden byte vectors: messages captured from GoBGP and BIRD (see fixtures/README.md) decode to
//! what the daemons meant and re-encode byte for byte; hand-made vectors cover the rest.

use std::net::{IpAddr, Ipv4Addr};
use weft_bgp::codec::{
    AttrValue, Capability, CodecContext, Family, Message, MpNextHop, Notification,
    NotificationError, OpenSubcode, Origin, AS_TRANS,
};

fn fixture(name: &str) -> Vec<(u8, Vec<u8>)> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| {
            let (t, hex) = l.split_once(' ').unwrap();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (t.parse().unwrap(), bytes)
        })
        .collect()
}

/// Decodes every message of a capture, checks the type and the exact re-encoding.
fn decode_all(name: &str, ctx: CodecContext) -> Vec<Message> {
    fixture(name)
        .into_iter()
        .map(|(ty, bytes)| {
            let m = Message::decode(&bytes, &ctx)
                .unwrap_or_else(|e| panic!("{name}: {e}: {bytes:02x?}"));
            assert_eq!(m.type_code(), ty);
            assert_eq!(
                m.encode(&ctx).unwrap(),
                bytes,
                "{name}: re-encoding differs for {m:?}"
            );
            m
        })
        .collect()
}

fn updates(msgs: &[Message]) -> Vec<&weft_bgp::codec::Update> {
    msgs.iter()
        .filter_map(|m| {
            if let Message::Update(u) = m {
                Some(u)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn gobgp_open_and_updates() {
    let msgs = decode_all("gobgp.txt", CodecContext::FOUR_OCTET);
    let Message::Open(open) = &msgs[0] else {
        panic!()
    };
    assert_eq!(open.asn(), 65002);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.bgp_id, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(
        open.families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(open.route_refresh());
    assert!(
        open.capabilities()
            .any(|c| matches!(c, Capability::Unknown { code: 73, .. })),
        "FQDN kept raw"
    );
    assert_eq!(msgs[1], Message::Keepalive);
    let ups = updates(&msgs);
    let v4 = ups.iter().find(|u| !u.nlri.is_empty()).unwrap();
    assert_eq!(v4.nlri, vec!["10.20.0.0/16".parse().unwrap()]);
    assert_eq!(v4.attr(4), Some(&AttrValue::Med(10)));
    assert_eq!(
        v4.attr(8),
        Some(&AttrValue::Communities(vec![(65002 << 16) | 100]))
    );
    assert_eq!(
        v4.attr(1),
        Some(&AttrValue::Origin(Origin::Incomplete)),
        "gobgp CLI default"
    );
    let v6 = ups.iter().find_map(|u| u.mp_reach()).unwrap();
    assert_eq!(v6.family, Family::IPV6_UNICAST);
    assert_eq!(v6.nlri, vec!["fd00:20::/48".parse().unwrap()]);
    assert_eq!(v6.next_hop.addr(), "fd00::2".parse::<IpAddr>().unwrap());
}

#[test]
fn gobgp_four_octet_as_toward_two_octet_peer() {
    let msgs = decode_all("gobgp_as4.txt", CodecContext::default());
    let Message::Open(open) = &msgs[0] else {
        panic!()
    };
    assert_eq!(u32::from(open.my_as), AS_TRANS);
    assert_eq!(open.asn(), 4200000002);
    let ups = updates(&msgs);
    let u = ups[0];
    let Some(AttrValue::AsPath(p)) = u.attr(2) else {
        panic!()
    };
    assert_eq!(p.segments[0].asns, vec![AS_TRANS]);
    let Some(AttrValue::As4Path(p4)) = u.attr(17) else {
        panic!()
    };
    assert_eq!(p4.segments[0].asns, vec![4200000002]);
    // The RIB's view merges them.
    let (attrs, _) = weft_bgp::rib::PathAttrs::from_update(u, false);
    assert_eq!(attrs.unwrap().as_path.segments[0].asns, vec![4200000002]);
}

#[test]
fn gobgp_notification_bad_peer_as() {
    let msgs = decode_all("gobgp_badas.txt", CodecContext::FOUR_OCTET);
    let Message::Notification(n) = &msgs[1] else {
        panic!("{msgs:?}")
    };
    assert_eq!(n.error, NotificationError::Open(OpenSubcode::BadPeerAs));
}

#[test]
fn bird_open_updates_end_of_rib_refresh_and_withdraw() {
    let msgs = decode_all("bird.txt", CodecContext::FOUR_OCTET);
    let Message::Open(open) = &msgs[0] else {
        panic!()
    };
    assert_eq!(open.hold_time, 240);
    let gr = open
        .graceful_restart()
        .expect("BIRD is GR-aware by default");
    assert_eq!(gr.restart_time, 120);
    assert!(gr.families.is_empty());
    let ups = updates(&msgs);
    let eors: Vec<Family> = ups.iter().filter_map(|u| u.as_end_of_rib()).collect();
    assert_eq!(eors, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    let reach = ups.iter().find_map(|u| u.mp_reach()).unwrap();
    let MpNextHop::V6 { global, link_local } = reach.next_hop else {
        panic!()
    };
    assert_eq!(global, "fd00::2".parse::<std::net::Ipv6Addr>().unwrap());
    assert!(
        link_local.unwrap().segments()[0] == 0xfe80,
        "32-byte next hop carries the link-local"
    );
    let refreshes: Vec<Family> = msgs
        .iter()
        .filter_map(|m| {
            if let Message::RouteRefresh(r) = m {
                Some(r.family)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(refreshes, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    let wd = ups.iter().find(|u| !u.withdrawn.is_empty()).unwrap();
    assert_eq!(wd.withdrawn.len(), 2);
    let comm = ups.iter().find_map(|u| u.attr(8)).unwrap();
    assert_eq!(comm, &AttrValue::Communities(vec![(65002 << 16) | 300]));
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hand_made_vectors_for_every_type() {
    let marker = "ffffffffffffffffffffffffffffffff";
    let cases: Vec<(String, Message)> = vec![
        (format!("{marker} 0013 04"), Message::Keepalive),
        (
            format!("{marker} 0015 03 0604"),
            Message::Notification(Notification::cease(
                weft_bgp::codec::CeaseSubcode::AdministrativeReset,
            )),
        ),
        (
            format!("{marker} 0017 03 0402 0102"),
            Message::Notification(Notification::new(
                NotificationError::HoldTimerExpired(2),
                vec![1, 2],
            )),
        ),
        (
            format!("{marker} 0017 05 0001 0001"),
            Message::RouteRefresh(weft_bgp::codec::RouteRefresh {
                family: Family::IPV4_UNICAST,
                subtype: 0,
            }),
        ),
    ];
    for (h, m) in cases {
        let bytes = hex(&h);
        assert_eq!(
            Message::decode(&bytes, &CodecContext::default()).unwrap(),
            m
        );
        assert_eq!(m.encode(&CodecContext::default()).unwrap(), bytes);
    }
}
