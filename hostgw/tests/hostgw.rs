//! The host-gw backend against the kernel: two "hosts" (namespaces joined by a veth pair) with
//! a bridge each holding the first address of its subnet. Runs as root in namespaces the test
//! makes and removes.

use weft_drivers::backend::{Backend, Peer, ROUTE_PROTOCOL};
use weft_hostgw::HostGwBackend;
use weft_testkit::two_hosts::{node, peer_of, two_hosts};
use weft_testkit::Lab;

#[test]
fn routes_via_peers_on_the_segment_and_refuses_unreachable_ones() {
    let Some(mut lab) = Lab::for_test("host-gw", "weft-hostgw-") else {
        return;
    };
    let [(ns1, p1), (ns2, p2)] = two_hosts(&mut lab);
    let (n1, n2) = (node(&ns1, 1), node(&ns2, 2));
    let (b1, b2) = (HostGwBackend::new(), HostGwBackend::new());
    let i1 = ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    ns2.run(|| b2.init(&n2)).unwrap().unwrap();
    assert_eq!(i1.mtu, n1.underlay_mtu, "no encapsulation, no MTU loss");
    let far = Peer {
        name: "far".into(),
        subnets: vec!["10.244.3.0/24".parse().unwrap()],
        public_ip: "172.16.5.5".parse().unwrap(),
        data: serde_json::Value::Null,
    };
    let peers1 = [peer_of(&n2, serde_json::Value::Null), far.clone()];
    let report = ns1.run(|| b1.sync_peers(&peers1)).unwrap().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0]
        .to_string()
        .contains("not directly reachable"));
    let e = ns1
        .run(|| b1.add_or_update_peer(&far))
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("172.16.5.5"), "{e}");
    ns2.run(|| b2.add_or_update_peer(&peer_of(&n1, serde_json::Value::Null)))
        .unwrap()
        .unwrap();
    let routes = p1.sh(&format!("ip route show proto {ROUTE_PROTOCOL}"));
    assert!(
        routes.contains("10.244.2.0/24 via 192.168.77.2 dev eth0"),
        "{routes}"
    );
    assert!(
        !routes.contains("10.244.3.0"),
        "no black hole for the unreachable peer: {routes}"
    );
    assert!(p1.ping_from("10.244.1.1", "10.244.2.1"));
    assert!(p2.ping_from("10.244.2.1", "10.244.1.1"));

    ns1.run(|| b1.remove_peer(&peer_of(&n2, serde_json::Value::Null)))
        .unwrap()
        .unwrap();
    assert!(p1.sh("ip route show proto 87").trim().is_empty());
    ns2.run(|| b2.teardown()).unwrap().unwrap();
    assert!(p2.sh("ip route show proto 87").trim().is_empty());
}
