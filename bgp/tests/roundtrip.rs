//! Property: any message encodes, decodes to the same value, and re-encodes to the same bytes.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use weft_bgp::codec::{
    Aggregator, AsPath, AsSegment, AttrValue, Attribute, Capability, CodecContext, Family,
    GrFamily, GracefulRestartCap, Message, MpNextHop, MpReach, MpUnreach, Notification,
    NotificationError, Open, Origin, RouteRefresh, SegmentKind, Update,
};

fn v4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

fn v6net() -> impl Strategy<Value = IpNet> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()))
}

fn family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi })
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::MultiProtocol),
        Just(Capability::RouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            0u8..16,
            0u16..4096,
            prop::collection::vec((family(), any::<u8>()), 0..3)
        )
            .prop_map(|(flags, restart_time, fs)| {
                Capability::GracefulRestart(GracefulRestartCap {
                    flags,
                    restart_time,
                    families: fs
                        .into_iter()
                        .map(|(family, flags)| GrFamily { family, flags })
                        .collect(),
                })
            }),
        (3u8..64, prop::collection::vec(any::<u8>(), 0..10))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Message> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        prop::collection::vec(prop::collection::vec(capability(), 0..4), 0..3),
    )
        .prop_map(|(my_as, hold_time, id, params)| {
            Message::Open(Open {
                version: 4,
                my_as,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                params,
            })
        })
}

fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    let asn = if four {
        any::<u32>().boxed()
    } else {
        (0u32..=0xffff).boxed()
    };
    let kind = prop_oneof![
        Just(SegmentKind::Set),
        Just(SegmentKind::Sequence),
        Just(SegmentKind::ConfedSequence),
        Just(SegmentKind::ConfedSet)
    ];
    prop::collection::vec((kind, prop::collection::vec(asn, 1..8)), 0..3).prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| AsSegment { kind, asns })
            .collect(),
    })
}

fn next_hop() -> impl Strategy<Value = Ipv4Addr> {
    (1u32..0xe000_0000).prop_map(Ipv4Addr::from)
}

fn optional_attrs(four: bool) -> impl Strategy<Value = Vec<AttrValue>> {
    let asn = if four {
        any::<u32>().boxed()
    } else {
        (0u32..=0xffff).boxed()
    };
    (
        prop::option::of(any::<u32>().prop_map(AttrValue::Med)),
        prop::option::of(any::<u32>().prop_map(AttrValue::LocalPref)),
        any::<bool>(),
        prop::option::of((asn, any::<u32>()).prop_map(|(asn, a)| {
            AttrValue::Aggregator(Aggregator {
                asn,
                address: Ipv4Addr::from(a),
            })
        })),
        prop::option::of(
            prop::collection::vec(any::<u32>(), 1..10).prop_map(AttrValue::Communities),
        ),
        prop::option::of(any::<u32>().prop_map(|a| AttrValue::OriginatorId(Ipv4Addr::from(a)))),
        prop::option::of(
            prop::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..5)
                .prop_map(AttrValue::ClusterList),
        ),
        prop::option::of(as_path(true).prop_map(AttrValue::As4Path)),
        prop::option::of(
            (
                any::<u128>(),
                prop::option::of(any::<u128>()),
                prop::collection::vec(v6net(), 0..8),
            )
                .prop_map(|(g, ll, nlri)| {
                    AttrValue::MpReach(MpReach {
                        family: Family::IPV6_UNICAST,
                        next_hop: MpNextHop::V6 {
                            global: Ipv6Addr::from(g),
                            link_local: ll.map(Ipv6Addr::from),
                        },
                        nlri,
                    })
                }),
        ),
        prop::option::of(prop::collection::vec(v6net(), 0..8).prop_map(|withdrawn| {
            AttrValue::MpUnreach(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn,
            })
        })),
        prop::option::of(
            (100u8..200, prop::collection::vec(any::<u8>(), 0..30))
                .prop_map(|(code, data)| AttrValue::Unknown { code, data }),
        ),
    )
        .prop_map(
            |(med, lp, atomic, ag, comm, orig, cl, as4, reach, unreach, unknown)| {
                let mut v: Vec<AttrValue> =
                    [med, lp, ag, comm, orig, cl, as4, reach, unreach, unknown]
                        .into_iter()
                        .flatten()
                        .collect();
                if atomic {
                    v.push(AttrValue::AtomicAggregate);
                }
                v
            },
        )
}

fn update(four: bool) -> impl Strategy<Value = Message> {
    (
        prop::collection::vec(v4net(), 0..10),
        prop::collection::vec(v4net(), 0..10),
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ],
        as_path(four),
        next_hop(),
        optional_attrs(four),
    )
        .prop_map(|(withdrawn, nlri, origin, path, nh, rest)| {
            let mut attributes = vec![
                Attribute::new(AttrValue::Origin(origin)),
                Attribute::new(AttrValue::AsPath(path)),
                Attribute::new(AttrValue::NextHop(nh)),
            ];
            attributes.extend(rest.into_iter().map(Attribute::new));
            Message::Update(Update {
                withdrawn,
                attributes,
                nlri,
            })
        })
}

fn any_message(four: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::Keepalive),
        open(),
        update(four),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(c, s, data)| {
                Message::Notification(Notification {
                    error: NotificationError::from_bytes(c, s),
                    data,
                })
            }),
        (family(), any::<u8>())
            .prop_map(|(family, subtype)| Message::RouteRefresh(RouteRefresh { family, subtype })),
    ]
}

fn roundtrip(m: &Message, ctx: CodecContext) -> Result<(), TestCaseError> {
    let bytes = m
        .encode(&ctx)
        .map_err(|e| TestCaseError::fail(format!("too long: {}", e.len)))?;
    let back = Message::decode(&bytes, &ctx).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(&back, m);
    prop_assert_eq!(back.encode(&ctx).unwrap(), bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn four_octet_sessions_round_trip(m in any_message(true)) {
        roundtrip(&m, CodecContext::FOUR_OCTET)?;
    }

    #[test]
    fn two_octet_sessions_round_trip(m in any_message(false)) {
        roundtrip(&m, CodecContext::default())?;
    }

    #[test]
    fn as4_translation_round_trips_through_two_octet_wire(path in as_path(true)) {
        // Confederation segments never leave a confederation, so they are not part of AS4_PATH.
        let path = AsPath { segments: path.segments.into_iter().filter(|s| matches!(s.kind, SegmentKind::Sequence | SegmentKind::Set)).collect() };
        let attrs = weft_bgp::rib::PathAttrs { as_path: path.clone(), next_hop: "192.0.2.1".parse().unwrap(), ..weft_bgp::rib::PathAttrs::local(Origin::Igp) };
        let (wire, _) = attrs.to_attributes(Family::IPV4_UNICAST, vec![], false);
        let u = Update { withdrawn: vec![], attributes: wire, nlri: vec!["10.0.0.0/8".parse().unwrap()] };
        let bytes = Message::Update(u).encode(&CodecContext::default()).unwrap();
        let Message::Update(back) = Message::decode(&bytes, &CodecContext::default()).unwrap() else { unreachable!() };
        let (got, _) = weft_bgp::rib::PathAttrs::from_update(&back, false);
        prop_assert_eq!(got.unwrap().as_path, path);
    }
}
