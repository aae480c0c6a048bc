//! The vxlan backend against the kernel: two "hosts" (namespaces joined by a veth pair, the
//! underlay), each with a bridge holding the first address of its subnet, talk through the
//! VXLAN devices the backend makes. Runs as root; everything lives in namespaces the test
//! makes and removes.

use weft_drivers::backend::{Backend, ROUTE_PROTOCOL};
use weft_overlay::{VxlanBackend, VxlanConfig};
use weft_testkit::two_hosts::{node, peer_of, two_hosts};
use weft_testkit::Lab;

const CONFIG: VxlanConfig = VxlanConfig {
    vni: 7,
    port: 8472,
    direct_routing: false,
};

#[test]
fn peers_reach_each_other_through_the_vxlan_device_and_sync_removes_stale_entries() {
    let Some(mut lab) = Lab::for_test("vxlan peers", "weft-vxlan-") else {
        return;
    };
    let [(ns1, p1), (ns2, p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let (b1, b2) = (VxlanBackend::new(CONFIG), VxlanBackend::new(CONFIG));
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let i2 = ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    assert_eq!(i1.mtu, 1450, "underlay MTU minus 50");
    assert!(p1.sh("ip -d link show weft.7").contains("vxlan id 7"));
    assert!(p1.sh("ip -d link show weft.7").contains("nolearning"));
    assert!(p1.sh("ip addr show dev weft.7").contains("10.244.1.0/32"));

    assert!(
        !p1.ping_from("10.244.1.1", "10.244.2.1"),
        "no route before the peer is known"
    );
    ns1.run(|| b1.add_or_update_peer(&peer_of(&n2, i2.data.clone())))
        .unwrap()
        .unwrap();
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, i1.data.clone())))
        .unwrap()
        .unwrap();
    assert!(
        p1.ping_from("10.244.1.1", "10.244.2.1"),
        "h1 → h2 over VXLAN"
    );
    assert!(
        p2.ping_from("10.244.2.1", "10.244.1.1"),
        "h2 → h1 over VXLAN"
    );
    let routes = p1.sh(&format!("ip route show proto {ROUTE_PROTOCOL}"));
    assert!(
        routes.contains("10.244.2.0/24 via 10.244.2.0 dev weft.7 onlink"),
        "{routes}"
    );
    let mac = i2.data["vtep_mac"].as_str().unwrap().to_string();
    assert!(p1
        .sh("ip neigh show dev weft.7")
        .contains(&format!("10.244.2.0 lladdr {mac} PERMANENT")));
    assert!(p1
        .sh("bridge fdb show dev weft.7")
        .contains(&format!("{mac} dst 192.168.77.2 self permanent")));

    // Leftovers of a peer that is gone (and one route that is not weft's) at start-up.
    p1.sh(
        "ip route add 10.244.9.0/24 via 10.244.9.0 dev weft.7 onlink proto 87 && \
         ip neigh replace 10.244.9.0 lladdr 0a:07:01:02:03:04 dev weft.7 nud permanent && \
         bridge fdb append 0a:07:01:02:03:04 dst 192.168.77.9 dev weft.7 self permanent && \
         ip route add 10.244.10.0/24 via 192.168.77.2 proto static",
    );
    let b1_restarted = VxlanBackend::new(CONFIG);
    ns1.run(|| b1_restarted.init(&n1)).unwrap().unwrap();
    let report = ns1
        .run(|| b1_restarted.sync_peers(&[peer_of(&n2, i2.data.clone())]))
        .unwrap()
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let routes = p1.sh("ip route");
    assert!(
        !routes.contains("10.244.9.0"),
        "stale route removed: {routes}"
    );
    assert!(
        routes.contains("10.244.10.0/24"),
        "a route weft did not make stays: {routes}"
    );
    assert!(!p1.sh("ip neigh show dev weft.7").contains("10.244.9.0"));
    assert!(!p1
        .sh("bridge fdb show dev weft.7")
        .contains("0a:07:01:02:03:04"));
    assert!(
        p1.ping_from("10.244.1.1", "10.244.2.1"),
        "the live peer still works"
    );

    // The peer's lease goes.
    ns1.run(|| b1_restarted.remove_peer(&peer_of(&n2, i2.data.clone())))
        .unwrap()
        .unwrap();
    assert!(!p1.sh("ip route").contains("10.244.2.0/24"));
    assert!(!p1.ping_from("10.244.1.1", "10.244.2.1"));
}

#[test]
fn deleted_device_is_recreated_with_the_same_mac() {
    let Some(mut lab) = Lab::for_test("vxlan repair", "weft-vxlan-") else {
        return;
    };
    let [(ns1, p1), (ns2, _p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let (b1, b2) = (VxlanBackend::new(CONFIG), VxlanBackend::new(CONFIG));
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let i2 = ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    let peers2 = [peer_of(&n2, i2.data.clone())];
    ns1.run(|| b1.sync_peers(&peers2)).unwrap().unwrap();
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, i1.data.clone())))
        .unwrap()
        .unwrap();
    assert!(p1.ping_from("10.244.1.1", "10.244.2.1"));
    assert!(
        ns1.run(|| b1.repair()).unwrap().unwrap().is_empty(),
        "nothing to repair"
    );

    p1.sh("ip link del weft.7");
    assert!(!p1.ping_from("10.244.1.1", "10.244.2.1"));
    let changes = ns1.run(|| b1.repair()).unwrap().unwrap();
    assert!(!changes.is_empty());
    ns1.run(|| b1.sync_peers(&peers2)).unwrap().unwrap();
    assert!(
        p1.ping_from("10.244.1.1", "10.244.2.1"),
        "works again, peers unchanged"
    );
    assert!(p1
        .sh("ip link show weft.7")
        .contains(i1.data["vtep_mac"].as_str().unwrap()));

    ns1.run(|| b1.teardown()).unwrap().unwrap();
    assert!(!p1.sh("ip link").contains("weft.7"));
    assert!(p1.sh("ip route show proto 87").trim().is_empty());
}

#[test]
fn direct_routing_skips_encapsulation_on_the_same_segment() {
    let Some(mut lab) = Lab::for_test("vxlan direct routing", "weft-vxlan-") else {
        return;
    };
    let [(ns1, p1), (ns2, p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let config = VxlanConfig {
        direct_routing: true,
        ..CONFIG
    };
    let (b1, b2) = (VxlanBackend::new(config), VxlanBackend::new(config));
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let i2 = ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    ns1.run(|| b1.add_or_update_peer(&peer_of(&n2, i2.data.clone())))
        .unwrap()
        .unwrap();
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, i1.data.clone())))
        .unwrap()
        .unwrap();
    assert!(p1
        .sh("ip route show proto 87")
        .contains("10.244.2.0/24 via 192.168.77.2 dev eth0"));
    assert!(p1.ping_from("10.244.1.1", "10.244.2.1"));
    assert!(p2.ping_from("10.244.2.1", "10.244.1.1"));
}
