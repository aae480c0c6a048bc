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
