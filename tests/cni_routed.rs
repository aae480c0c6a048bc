//! weft's CNI plugin with `"mode": "routed"`: Calico-style attachments through CNI.

mod cni_support;
mod support;

use cni_support::{conf, merge, v4, with_prev, Call, Runtime};
use serde_json::json;
use support::net::{sa, tcp_request, tcp_server};
use support::{root_or_skip, World, UPLINK_HOST_V4, UPLINK_PEER_V4};

#[test]
fn routed_mode_attaches_without_a_bridge_and_checks_and_deletes_cleanly() {
    if !root_or_skip("cni routed") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let mut extra = json!({"mode": "routed", "ipam": {"type": "weft", "ranges": [[{"subnet": "10.74.0.0/24"}]]}});
    merge(
        &mut extra,
        json!({"capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}),
    );
    let c = conf("1.1.0", "rnet", &w.state, extra);
    let r1 = rt.weft(&Call::new("ADD", "r1", Some(&c1)), &c).ok();
    let r2 = rt
        .weft(
            &Call::new("ADD", "r2", Some(&c2)),
            &conf("1.1.0", "rnet", &w.state, json!({"mode": "routed"})),
        )
        .ok();
    // No bridge in the result: host veth, then the container interface with a /32.
    let ifs = r1["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2, "{r1}");
    assert_eq!(ifs[0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(r1["ips"][0]["interface"], 1);
    assert!(
        r1["ips"][0]["address"].as_str().unwrap().ends_with("/32"),
        "{r1}"
    );
    assert_eq!(r1["ips"][0]["gateway"], "169.254.1.1");
    assert!(!w.host.sh("ip -o link show").contains("bridge"));

    let (ip1, ip2) = (v4(&r1), v4(&r2));
    assert!(c1.ping(&ip2), "routed container to container");
    let _web = tcp_server(&c1, sa(&format!("{ip1}:80")), "c1");
    let _out = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    assert_eq!(
        tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080"))).unwrap(),
        format!("c1 from {UPLINK_PEER_V4}")
    );
    assert_eq!(
        tcp_request(&c2, sa(&format!("{UPLINK_PEER_V4}:7000"))).unwrap(),
        format!("internet from {UPLINK_HOST_V4}")
    );

    rt.weft(&Call::new("CHECK", "r1", Some(&c1)), &with_prev(&c, &r1))
        .ok();
    // A bridge-mode configuration of the same network is refused.
    let bridge = conf("1.1.0", "rnet", &w.state, json!({}));
    rt.weft(&Call::new("ADD", "r3", Some(&w.ns("c3"))), &bridge)
        .err(7);

    rt.weft(&Call::new("DEL", "r1", Some(&c1)), &with_prev(&c, &r1))
        .ok();
    rt.weft(&Call::new("DEL", "r2", Some(&c2)), &with_prev(&c, &r2))
        .ok();
    let routes = w.host.sh("ip route");
    assert!(
        !routes.contains(&format!("{ip1} dev")) && !routes.contains(&format!("{ip2} dev")),
        "{routes}"
    );
}

/// One container on two networks through CNI (two configurations, two interface names, the
/// same container id, as a runtime attaching several networks does): routed+routed and
/// bridge+routed, pings in each direction, CHECK of each, and DEL of one leaving the other
/// working.
#[test]
fn a_container_on_two_networks_through_cni_reaches_both() {
    if !root_or_skip("cni routed multi") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let (m, p1, p2, p3) = (w.ns("m"), w.ns("p1"), w.ns("p2"), w.ns("p3"));
    let routed = |name: &str, subnet: &str| {
        conf(
            "1.1.0",
            name,
            &w.state,
            json!({"mode": "routed", "ipam": {"type": "weft", "ranges": [[{"subnet": subnet}]]}}),
        )
    };
    let (c1, c2) = (routed("rn1", "10.75.0.0/24"), routed("rn2", "10.76.0.0/24"));
    let c3 = conf(
        "1.1.0",
        "bn3",
        &w.state,
        json!({"bridge": "weftcni3", "ipam": {"type": "weft", "ranges": [[{"subnet": "10.77.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}),
    );
    let m1 = rt.weft(&Call::new("ADD", "m", Some(&m)), &c1).ok();
    // Before the fix: EEXIST on 169.254.1.1/32, CNI error 999... (exit 1).
    let m2 = rt
        .weft(&Call::new("ADD", "m", Some(&m)).ifname("eth1"), &c2)
        .ok();
    let m3 = rt
        .weft(&Call::new("ADD", "m", Some(&m)).ifname("eth2"), &c3)
        .ok();
    let q1 = rt.weft(&Call::new("ADD", "p1", Some(&p1)), &c1).ok();
    let q2 = rt.weft(&Call::new("ADD", "p2", Some(&p2)), &c2).ok();
    let q3 = rt.weft(&Call::new("ADD", "p3", Some(&p3)), &c3).ok();
    let (m1a, m2a, m3a) = (v4(&m1), v4(&m2), v4(&m3));
    let (q1a, q2a, q3a) = (v4(&q1), v4(&q2), v4(&q3));
    let routes = m.sh("ip route");
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("10.76.0.0/24 via 169.254.1.1 dev eth1 onlink"),
        "{routes}"
    );
    for (ns, src, to, what) in [
        (&m, &m1a, &q1a, "m to p1 on rn1"),
        (&p1, &q1a, &m1a, "p1 to m on rn1"),
        (&m, &m2a, &q2a, "m to p2 on rn2"),
        (&p2, &q2a, &m2a, "p2 to m on rn2"),
        (&m, &m3a, &q3a, "m to p3 on the bridge"),
        (&p3, &q3a, &m3a, "p3 to m on the bridge"),
    ] {
        assert!(ns.ping_from(src, to), "{what}: {src} -> {to}");
    }
    for (ifname, c, r) in [("eth0", &c1, &m1), ("eth1", &c2, &m2), ("eth2", &c3, &m3)] {
        rt.weft(
            &Call::new("CHECK", "m", Some(&m)).ifname(ifname),
            &with_prev(c, r),
        )
        .ok();
    }
    // DEL of the first network (podman deletes in reverse order; any order must work).
    rt.weft(&Call::new("DEL", "m", Some(&m)), &with_prev(&c1, &m1))
        .ok();
    assert!(m.ping_from(&m2a, &q2a), "m to p2 after DEL of rn1");
    assert!(p2.ping_from(&q2a, &m2a), "p2 to m after DEL of rn1");
    assert!(m.ping_from(&m3a, &q3a), "m to p3 after DEL of rn1");
    rt.weft(
        &Call::new("DEL", "m", Some(&m)).ifname("eth1"),
        &with_prev(&c2, &m2),
    )
    .ok();
    rt.weft(
        &Call::new("DEL", "m", Some(&m)).ifname("eth2"),
        &with_prev(&c3, &m3),
    )
    .ok();
    for (cid, ns, c, r) in [
        ("p1", &p1, &c1, &q1),
        ("p2", &p2, &c2, &q2),
        ("p3", &p3, &c3, &q3),
    ] {
        rt.weft(&Call::new("DEL", cid, Some(ns)), &with_prev(c, r))
            .ok();
    }
}
