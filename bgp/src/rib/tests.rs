use super::*;
use crate::codec::{AsPath, AttrValue, Attribute, Origin};
use crate::policy::{PolicyAction, PrefixList, PrefixRule};

const LOCAL_AS: u32 = 65000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn rib() -> Rib {
    Rib::new(RibConfig {
        local_as: LOCAL_AS,
        router_id: Ipv4Addr::new(10, 0, 0, 100),
        cluster_id: None,
    })
}

fn add(rib: &mut Rib, addr: &str, remote_as: u32, rr_client: bool) -> RibOutput {
    rib.add_peer(RibPeer {
        addr: ip(addr),
        remote_as,
        rr_client,
        next_hop_self: false,
        policy: PeerPolicy::default(),
    });
    up(rib, addr)
}

fn up(rib: &mut Rib, addr: &str) -> RibOutput {
    let IpAddr::V4(v4) = ip(addr) else { panic!() };
    let o = v4.octets();
    rib.peer_up(
        ip(addr),
        PeerSession {
            router_id: Ipv4Addr::new(10, 0, 0, o[3]),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            four_octet: true,
            next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 100)),
            next_hop_v6: Some("2001:db8::100".parse().unwrap()),
            forwarding_preserved: vec![Family::IPV4_UNICAST],
        },
    )
}

fn update(prefixes: &[&str], as_path: &[u32], next_hop: &str, extra: Vec<AttrValue>) -> Update {
    let mut attributes = vec![
        Attribute::new(AttrValue::Origin(Origin::Igp)),
        Attribute::new(AttrValue::AsPath(AsPath::sequence(as_path.to_vec()))),
        Attribute::new(AttrValue::NextHop(next_hop.parse().unwrap())),
    ];
    attributes.extend(extra.into_iter().map(Attribute::new));
    Update {
        withdrawn: Vec::new(),
        attributes,
        nlri: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        ..Update::default()
    }
}

/// UPDATEs sent to `peer` that announce `prefix`, as decoded path attributes.
fn sent_to(out: &RibOutput, peer: &str, prefix: &str) -> Option<PathAttrs> {
    out.updates.iter().find_map(|(p, u)| {
        (*p == ip(peer) && u.announced().contains(&net(prefix)))
            .then(|| PathAttrs::from_update(u, true).0.unwrap())
    })
}

fn withdrawn_to(out: &RibOutput, peer: &str, prefix: &str) -> bool {
    out.updates
        .iter()
        .any(|(p, u)| *p == ip(peer) && u.withdrawals().contains(&net(prefix)))
}

#[test]
fn ebgp_route_installed_and_passed_on_with_prepend_and_next_hop_self() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    add(&mut r, "192.0.2.2", 65002, false);
    let u = update(
        &["10.1.0.0/16"],
        &[65001],
        "192.0.2.1",
        vec![AttrValue::Med(5), AttrValue::LocalPref(999)],
    );
    let out = r.apply_update(ip("192.0.2.1"), &u);
    assert_eq!(
        out.routes,
        vec![RouteChange::Install {
            prefix: net("10.1.0.0/16"),
            next_hops: vec![ip("192.0.2.1")]
        }]
    );
    let sent = sent_to(&out, "192.0.2.2", "10.1.0.0/16").expect("exported to the other eBGP peer");
    assert_eq!(sent.as_path, AsPath::sequence(vec![LOCAL_AS, 65001]));
    assert_eq!(sent.next_hop, ip("192.0.2.100"));
    assert_eq!(sent.med, None, "MED is not passed to a third AS");
    assert_eq!(sent.local_pref, None);
    assert!(
        sent_to(&out, "192.0.2.1", "10.1.0.0/16").is_none(),
        "not sent back"
    );
    assert_eq!(
        r.loc_rib()[0].attrs.local_pref,
        None,
        "LOCAL_PREF from eBGP is ignored"
    );

    let out = r.apply_update(ip("192.0.2.1"), &withdraw(&["10.1.0.0/16"]));
    assert_eq!(
        out.routes,
        vec![RouteChange::Remove {
            prefix: net("10.1.0.0/16")
        }]
    );
    assert!(withdrawn_to(&out, "192.0.2.2", "10.1.0.0/16"));
    assert!(r.loc_rib().is_empty());
}

#[test]
fn as_path_loop_is_rejected_on_import() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    let out = r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.1.0.0/16"], &[65001, LOCAL_AS, 7], "192.0.2.1", vec![]),
    );
    assert!(out.routes.is_empty());
    assert!(r.loc_rib().is_empty());
}

#[test]
fn ecmp_set_programs_all_equal_next_hops_and_shrinks() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    add(&mut r, "192.0.2.2", 65002, false);
    r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.9.0.0/16"], &[65001], "192.0.2.1", vec![]),
    );
    let out = r.apply_update(
        ip("192.0.2.2"),
        &update(&["10.9.0.0/16"], &[65002], "192.0.2.2", vec![]),
    );
    assert_eq!(
        out.routes,
        vec![RouteChange::Replace {
            prefix: net("10.9.0.0/16"),
            next_hops: vec![ip("192.0.2.1"), ip("192.0.2.2")]
        }]
    );
    let out = r.apply_update(ip("192.0.2.1"), &withdraw(&["10.9.0.0/16"]));
    assert_eq!(
        out.routes,
        vec![RouteChange::Replace {
            prefix: net("10.9.0.0/16"),
            next_hops: vec![ip("192.0.2.2")]
        }]
    );
}

#[test]
fn ibgp_routes_not_sent_to_ibgp_without_reflection() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", LOCAL_AS, false);
    add(&mut r, "192.0.2.2", LOCAL_AS, false);
    add(&mut r, "192.0.2.3", 65003, false);
    let out = r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.1.0.0/16"], &[], "192.0.2.1", vec![]),
    );
    assert!(sent_to(&out, "192.0.2.2", "10.1.0.0/16").is_none());
    let ebgp = sent_to(&out, "192.0.2.3", "10.1.0.0/16").expect("to eBGP");
    assert_eq!(ebgp.as_path, AsPath::sequence(vec![LOCAL_AS]));
}

#[test]
fn reflector_reflects_client_routes_to_all_and_nonclient_routes_to_clients() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", LOCAL_AS, true); // client A
    add(&mut r, "192.0.2.2", LOCAL_AS, true); // client B
    add(&mut r, "192.0.2.3", LOCAL_AS, false); // non-client
    add(&mut r, "192.0.2.4", LOCAL_AS, false); // non-client
    let out = r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.1.0.0/16"], &[], "192.0.2.1", vec![]),
    );
    for peer in ["192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        let a = sent_to(&out, peer, "10.1.0.0/16").unwrap_or_else(|| panic!("reflected to {peer}"));
        assert_eq!(a.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(a.cluster_list, vec![Ipv4Addr::new(10, 0, 0, 100)]);
        assert_eq!(a.next_hop, ip("192.0.2.1"), "next hop kept on reflection");
        assert_eq!(a.local_pref, Some(100));
    }
    let out = r.apply_update(
        ip("192.0.2.3"),
        &update(&["10.3.0.0/16"], &[], "192.0.2.3", vec![]),
    );
    assert!(sent_to(&out, "192.0.2.1", "10.3.0.0/16").is_some());
    assert!(sent_to(&out, "192.0.2.2", "10.3.0.0/16").is_some());
    assert!(
        sent_to(&out, "192.0.2.4", "10.3.0.0/16").is_none(),
        "non-client to non-client"
    );
}

#[test]
fn reflection_loops_are_dropped() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", LOCAL_AS, true);
    let ours = Ipv4Addr::new(10, 0, 0, 100);
    let looped = update(
        &["10.1.0.0/16"],
        &[],
        "192.0.2.1",
        vec![AttrValue::OriginatorId(ours)],
    );
    r.apply_update(ip("192.0.2.1"), &looped);
    let cluster = update(
        &["10.2.0.0/16"],
        &[],
        "192.0.2.1",
        vec![
            AttrValue::OriginatorId(Ipv4Addr::new(10, 0, 0, 7)),
            AttrValue::ClusterList(vec![Ipv4Addr::new(1, 1, 1, 1), ours]),
        ],
    );
    r.apply_update(ip("192.0.2.1"), &cluster);
    assert!(r.loc_rib().is_empty());
    assert_eq!(r.prefixes_received(ip("192.0.2.1")), 0);
}

#[test]
fn local_routes_are_exported_with_next_hop_self_but_not_installed() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    add(&mut r, "192.0.2.2", LOCAL_AS, false);
    let out = r.announce_local(net("10.244.1.0/24"), PathAttrs::local(Origin::Igp));
    assert!(out.routes.is_empty());
    let e = sent_to(&out, "192.0.2.1", "10.244.1.0/24").unwrap();
    assert_eq!(e.as_path, AsPath::sequence(vec![LOCAL_AS]));
    assert_eq!(e.next_hop, ip("192.0.2.100"));
    let i = sent_to(&out, "192.0.2.2", "10.244.1.0/24").unwrap();
    assert_eq!(i.as_path, AsPath::default());
    assert_eq!(i.next_hop, ip("192.0.2.100"));
    let out = r.announce_local(net("fd00:244:1::/64"), PathAttrs::local(Origin::Igp));
    let (_, u) = out
        .updates
        .iter()
        .find(|(p, _)| *p == ip("192.0.2.1"))
        .unwrap();
    let reach = u.mp_reach().expect("IPv6 goes in MP_REACH_NLRI");
    assert_eq!(reach.next_hop.addr(), ip("2001:db8::100"));
    let out = r.withdraw_local(net("10.244.1.0/24"));
    assert!(withdrawn_to(&out, "192.0.2.1", "10.244.1.0/24"));
    assert!(withdrawn_to(&out, "192.0.2.2", "10.244.1.0/24"));
}

#[test]
fn peer_up_sends_full_table_then_end_of_rib() {
    let mut r = rib();
    r.announce_local(net("10.244.1.0/24"), PathAttrs::local(Origin::Igp));
    let out = add(&mut r, "192.0.2.1", 65001, false);
    assert!(sent_to(&out, "192.0.2.1", "10.244.1.0/24").is_some());
    let eors: Vec<Family> = out
        .updates
        .iter()
        .filter_map(|(_, u)| u.as_end_of_rib())
        .collect();
    assert_eq!(eors, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(
        out.updates.last().unwrap().1.as_end_of_rib().is_some(),
        "EoR comes last"
    );
    assert_eq!(r.prefixes_sent(ip("192.0.2.1")), 1);
}

#[test]
fn graceful_restart_keeps_stale_routes_until_end_of_rib() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    r.apply_update(
        ip("192.0.2.1"),
        &update(
            &["10.1.0.0/16", "10.2.0.0/16"],
            &[65001],
            "192.0.2.1",
            vec![],
        ),
    );
    let out = r.peer_down(ip("192.0.2.1"), &[Family::IPV4_UNICAST]);
    assert!(out.routes.is_empty(), "stale routes stay in the kernel");
    assert!(r.loc_rib().iter().all(|l| l.stale));
    up(&mut r, "192.0.2.1");
    // The restarted peer re-announces one of the two, then End-of-RIB.
    r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.1.0.0/16"], &[65001], "192.0.2.1", vec![]),
    );
    assert_eq!(r.loc_rib().iter().filter(|l| l.stale).count(), 1);
    let out = r.end_of_rib(ip("192.0.2.1"), Family::IPV4_UNICAST);
    assert_eq!(
        out.routes,
        vec![RouteChange::Remove {
            prefix: net("10.2.0.0/16")
        }]
    );
    assert_eq!(r.loc_rib().len(), 1);
    assert!(!r.loc_rib()[0].stale);
}

#[test]
fn graceful_restart_timer_flushes_stale_routes() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.1.0.0/16"], &[65001], "192.0.2.1", vec![]),
    );
    r.peer_down(ip("192.0.2.1"), &[Family::IPV4_UNICAST]);
    let out = r.graceful_restart_expired(ip("192.0.2.1"));
    assert_eq!(
        out.routes,
        vec![RouteChange::Remove {
            prefix: net("10.1.0.0/16")
        }]
    );
}

#[test]
fn peer_down_without_retention_removes_everything() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    add(&mut r, "192.0.2.2", 65002, false);
    r.apply_update(
        ip("192.0.2.1"),
        &update(&["10.1.0.0/16"], &[65001], "192.0.2.1", vec![]),
    );
    let out = r.peer_down(ip("192.0.2.1"), &[]);
    assert_eq!(
        out.routes,
        vec![RouteChange::Remove {
            prefix: net("10.1.0.0/16")
        }]
    );
    assert!(withdrawn_to(&out, "192.0.2.2", "10.1.0.0/16"));
}

#[test]
fn import_policy_and_max_prefix() {
    let mut r = rib();
    r.add_peer(RibPeer {
        addr: ip("192.0.2.1"),
        remote_as: 65001,
        rr_client: false,
        next_hop_self: false,
        policy: PeerPolicy {
            import: PrefixList {
                rules: vec![PrefixRule {
                    prefix: net("10.0.0.0/8"),
                    ge: None,
                    le: Some(24),
                    action: PolicyAction::Accept,
                }],
                default: PolicyAction::Reject,
            },
            export: PrefixList::accept_all(),
            max_prefixes: Some(3),
        },
    });
    up(&mut r, "192.0.2.1");
    let out = r.apply_update(
        ip("192.0.2.1"),
        &update(
            &["10.1.0.0/16", "192.168.0.0/16"],
            &[65001],
            "192.0.2.1",
            vec![],
        ),
    );
    assert_eq!(
        out.routes.len(),
        1,
        "only the prefix-list match is installed"
    );
    assert_eq!(out.max_prefix_exceeded, None);
    let out = r.apply_update(
        ip("192.0.2.1"),
        &update(
            &["10.2.0.0/16", "10.3.0.0/16"],
            &[65001],
            "192.0.2.1",
            vec![],
        ),
    );
    assert_eq!(
        out.max_prefix_exceeded,
        Some((Family::IPV4_UNICAST, 3)),
        "4 received > 3"
    );
}

#[test]
fn export_policy_filters_announcements() {
    let mut r = rib();
    r.add_peer(RibPeer {
        addr: ip("192.0.2.1"),
        remote_as: 65001,
        rr_client: false,
        next_hop_self: false,
        policy: PeerPolicy {
            export: PrefixList::reject_all(),
            ..PeerPolicy::default()
        },
    });
    let out = up(&mut r, "192.0.2.1");
    assert!(out.updates.iter().all(|(_, u)| u.as_end_of_rib().is_some()));
    let out = r.announce_local(net("10.244.1.0/24"), PathAttrs::local(Origin::Igp));
    assert!(out.updates.is_empty());
}

#[test]
fn unknown_transitive_attributes_pass_with_partial_bit() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    add(&mut r, "192.0.2.2", 65002, false);
    let mut u = update(&["10.1.0.0/16"], &[65001], "192.0.2.1", vec![]);
    u.attributes.push(Attribute {
        flags: 0xc0,
        value: AttrValue::Unknown {
            code: 99,
            data: vec![1, 2],
        },
    });
    u.attributes.push(Attribute {
        flags: 0x80,
        value: AttrValue::Unknown {
            code: 98,
            data: vec![3],
        },
    });
    let out = r.apply_update(ip("192.0.2.1"), &u);
    let (_, sent) = out
        .updates
        .iter()
        .find(|(p, _)| *p == ip("192.0.2.2"))
        .unwrap();
    let t = sent
        .attributes
        .iter()
        .find(|a| a.code() == 99)
        .expect("transitive kept");
    assert_eq!(t.flags & 0x20, 0x20, "partial bit set");
    assert!(
        sent.attributes.iter().all(|a| a.code() != 98),
        "non-transitive dropped"
    );
}

#[test]
fn many_prefixes_split_into_updates_that_fit() {
    let mut r = rib();
    add(&mut r, "192.0.2.1", 65001, false);
    let mut out = RibOutput::default();
    for i in 0..2000u32 {
        let p = IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap());
        let o = r.announce_local(p, PathAttrs::local(Origin::Igp));
        out.updates.extend(o.updates);
    }
    assert!(out.updates.iter().all(|(_, u)| path::fits(u, true)));
    let out = up(&mut r, "192.0.2.1");
    let n: usize = out.updates.iter().map(|(_, u)| u.nlri.len()).sum();
    assert_eq!(n, 2000);
    assert!(
        out.updates.len() < 10,
        "packed: {} updates",
        out.updates.len()
    );
    assert!(out.updates.iter().all(|(_, u)| path::fits(u, true)));
}
