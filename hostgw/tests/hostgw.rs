//! The host-gw backend against the kernel: two "hosts" (namespaces joined by a veth pair) with
//! a bridge each holding the first address of its subnet. Runs as root in namespaces the test
//! makes and removes.

use std::time::{Duration, Instant};

use weft_drivers::backend::{Backend, Peer, ROUTE_PROTOCOL};
use weft_drivers::netlink::{Netlink, RouteKind};
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
        !routes.contains("10.244.3.0/24 via"),
        "no route via the unreachable peer: {routes}"
    );
    assert!(p1.ping_from("10.244.1.1", "10.244.2.1"));
    assert!(p2.ping_from("10.244.2.1", "10.244.1.1"));

    ns1.run(|| b1.remove_peer(&peer_of(&n2, serde_json::Value::Null)))
        .unwrap()
        .unwrap();
    // The far peer's unreachable route (see the next test) stays until it leaves too.
    assert_eq!(
        p1.sh("ip route show proto 87").trim(),
        "unreachable 10.244.3.0/24"
    );
    ns1.run(|| b1.remove_peer(&far)).unwrap().unwrap();
    assert!(p1.sh("ip route show proto 87").trim().is_empty());
    ns2.run(|| b2.teardown()).unwrap().unwrap();
    assert!(p2.sh("ip route show proto 87").trim().is_empty());
}

/// The destinations of the unreachable routes weft made in the namespace, from a netlink dump.
fn unreachable_routes(ns: &weft_drivers::netns::Netns) -> Vec<String> {
    ns.run(|| Netlink::open().unwrap().unreachable_routes(254).unwrap())
        .unwrap()
        .into_iter()
        .filter(|r| r.protocol == ROUTE_PROTOCOL && r.kind == RouteKind::Unreachable)
        .map(|r| r.destination.to_string())
        .collect()
}

#[test]
fn an_off_segment_peer_fails_fast_instead_of_vanishing_down_the_default_route() {
    let Some(mut lab) = Lab::for_test("host-gw unreachable", "weft-hostgw-") else {
        return;
    };
    let [(ns1, p1), (_, p2)] = two_hosts(&mut lab);
    // h1's default route leads to h2, which drops 10.244.3.0/24 silently: without weft's
    // unreachable route a ping to the far peer's subnet would wait for its time-out.
    p1.sh("ip route add default via 192.168.77.2");
    p2.sh("ip route add blackhole 10.244.3.0/24");
    let n1 = node(&ns1, 1);
    let b1 = HostGwBackend::new();
    ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    let mut far = Peer {
        name: "far".into(),
        subnets: vec!["10.244.3.0/24".parse().unwrap()],
        public_ip: "172.16.5.5".parse().unwrap(),
        data: serde_json::Value::Null,
    };

    let e = ns1
        .run(|| b1.add_or_update_peer(&far))
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("not directly reachable"), "{e}");
    assert_eq!(unreachable_routes(&ns1), ["10.244.3.0/24"]);
    let get = p1
        .cmd("ip")
        .args(["route", "get", "10.244.3.5"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&get.stderr).contains("No route to host"),
        "ip route get: {}{}",
        String::from_utf8_lossy(&get.stdout),
        String::from_utf8_lossy(&get.stderr)
    );
    let started = Instant::now();
    let ping = p1
        .cmd("ping")
        .args(["-c1", "-W3", "10.244.3.5"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    assert!(!ping.status.success(), "{text}");
    assert!(
        took < Duration::from_secs(1),
        "the ping waited {took:?} instead of failing at once: {text}"
    );
    assert!(
        text.contains("No route to host") || text.to_lowercase().contains("unreachable"),
        "{text}"
    );
    let status = ns1.run(|| b1.status()).unwrap().unwrap();
    assert_eq!(
        status["kernel"]["unreachable"][0], "unreachable 10.244.3.0/24",
        "{status}"
    );

    // The peer leaves: its unreachable route goes with it.
    ns1.run(|| b1.remove_peer(&far)).unwrap().unwrap();
    assert!(unreachable_routes(&ns1).is_empty());

    // Back off the segment, then on it (its address moved): the route via it replaces the
    // unreachable one.
    let _ = ns1.run(|| b1.add_or_update_peer(&far)).unwrap();
    assert_eq!(unreachable_routes(&ns1), ["10.244.3.0/24"]);
    far.public_ip = "192.168.77.9".parse().unwrap();
    ns1.run(|| b1.add_or_update_peer(&far)).unwrap().unwrap();
    assert!(unreachable_routes(&ns1).is_empty());
    let routes = p1.sh(&format!("ip route show proto {ROUTE_PROTOCOL}"));
    assert!(
        routes.contains("10.244.3.0/24 via 192.168.77.9 dev eth0"),
        "{routes}"
    );

    // A sync converges both ways: off-segment again → unreachable; gone from the list → none.
    far.public_ip = "172.16.5.5".parse().unwrap();
    let report = ns1
        .run(|| b1.sync_peers(std::slice::from_ref(&far)))
        .unwrap()
        .unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(unreachable_routes(&ns1), ["10.244.3.0/24"]);
    assert!(!p1.sh("ip route").contains("via 192.168.77.9"));
    let report = ns1.run(|| b1.sync_peers(&[])).unwrap().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(unreachable_routes(&ns1).is_empty());

    // Teardown removes what is left, also what a restarted backend only finds in the kernel.
    let _ = ns1.run(|| b1.add_or_update_peer(&far)).unwrap();
    let b1 = HostGwBackend::new();
    ns1.run(|| b1.init(&n1)).unwrap().unwrap();
    ns1.run(|| b1.teardown()).unwrap().unwrap();
    assert!(unreachable_routes(&ns1).is_empty());
    assert!(p1.sh("ip route show proto 87").trim().is_empty());
}
