//! Routed (Calico-style) attachment across hosts: `weft cluster init --attachment routed`
//! makes every host's local network a routed one — no bridge, a /32 route and proxy ARP per
//! container, the routed driver's blackhole for the rest of the subnet — and the backend
//! announces (bgp) or routes (vxlan, host-gw) the whole subnet. Three hosts with bgp (native
//! routing) and with vxlan, two with host-gw; teardown leaves no /32 route or proxy entry.

mod bgp_cluster;
mod cluster_world;

use bgp_cluster::{established, world};
use cluster_world::{all_ping, can_run, ClusterWorld, Ns, CLUSTER};

fn no_flags(_: usize) -> Vec<String> {
    Vec::new()
}

/// The checks every routed cluster passes: the local network is routed, no host has a
/// bridge, each container has its /32 route, exactly one blackhole (the driver's) covers the
/// subnet, and every container pings every other.
fn routed_everywhere(w: &mut ClusterWorld, subnets: &[String]) -> Vec<(Ns, String)> {
    let containers: Vec<_> = (0..w.hosts.len())
        .map(|i| w.container(i, &format!("c{i}")))
        .collect();
    for (i, host) in w.hosts.iter().enumerate() {
        let net: serde_json::Value =
            serde_json::from_str(&host.weft_ok(&["network", "inspect", CLUSTER])).unwrap();
        assert_eq!(net[0]["network"]["driver"], "routed", "{net}");
        let bridges = host.ns.sh("ip -o link show type bridge");
        assert!(
            bridges.trim().is_empty(),
            "host {} has a bridge: {bridges}",
            i + 1
        );
        let addr = &containers[i].1;
        let host_route = host.ns.sh(&format!("ip route show {addr}/32"));
        assert!(
            host_route.contains("proto 87 scope link"),
            "no /32 route to {addr}: {host_route}"
        );
        let holes = host
            .ns
            .sh(&format!("ip route show type blackhole {}", subnets[i]));
        assert_eq!(
            holes.lines().count(),
            1,
            "one owner of the blackhole: {holes}"
        );
        assert!(
            !holes.contains("metric 1000000"),
            "the driver's, not the backend's: {holes}"
        );
    }
    all_ping(&containers).unwrap();
    containers
}

/// Disconnects every container and checks nothing per-container is left: no /32 route, no
/// proxy neighbour entry, no host-side veth.
fn teardown_leaves_nothing(w: &ClusterWorld, containers: &[(Ns, String)]) {
    for (i, (ns, addr)) in containers.iter().enumerate() {
        let host = &w.hosts[i];
        let path = ns.path.display().to_string();
        host.weft_ok(&["network", "disconnect", CLUSTER, "--netns", &path]);
        let left = host.ns.sh(&format!("ip route show {addr}/32"));
        assert!(left.trim().is_empty(), "a /32 route is left: {left}");
        let proxy = host.ns.sh("ip neigh show proxy; ip -6 neigh show proxy");
        assert!(proxy.trim().is_empty(), "proxy entries are left: {proxy}");
        let veths = host.ns.sh("ip -o link show type veth");
        assert!(
            veths.lines().all(|l| l.contains(" eth0@")),
            "host-side veths are left: {veths}"
        );
    }
}

#[test]
fn routed_containers_on_three_bgp_hosts_with_native_routing() {
    if !can_run("routed attachment, bgp") {
        return;
    }
    let (mut w, subnets) = world(
        3,
        "bgp",
        &["--attachment", "routed", "--encapsulation", "none"],
        no_flags,
    );
    for i in 0..3 {
        established(&w, i, 2);
    }
    let containers = routed_everywhere(&mut w, &subnets);
    // The backend announces the whole subnet (not the /32s) and the others route it natively.
    let routes = w.hosts[1].routes();
    assert!(
        routes.contains(&format!(
            "{} via 192.168.100.1 dev eth0 proto 87",
            subnets[0]
        )),
        "{routes}"
    );
    let status = bgp_cluster::bgp(&w, 0, "status").unwrap();
    assert_eq!(
        status["announced"],
        serde_json::json!([subnets[0]]),
        "{status}"
    );
    assert_eq!(status["blackhole"], false, "{status}");
    teardown_leaves_nothing(&w, &containers);
}

#[test]
fn routed_containers_on_three_vxlan_hosts() {
    if !can_run("routed attachment, vxlan") {
        return;
    }
    let (mut w, subnets) = world(3, "vxlan", &["--attachment", "routed"], no_flags);
    let containers = routed_everywhere(&mut w, &subnets);
    let routes = w.hosts[0].routes();
    assert!(
        routes.contains(&format!(
            "{} via {} dev weft.1 proto 87 onlink",
            subnets[1],
            bgp_cluster::base(&subnets[1])
        )),
        "{routes}"
    );
    // Inside the container the gateway is the link-local address nothing owns, and the MTU
    // leaves room for VXLAN.
    let inside = containers[0].0.sh("ip route; ip -o link show eth0");
    assert!(inside.contains("default via 169.254.1.1"), "{inside}");
    assert!(inside.contains("mtu 1450 "), "{inside}");
    // `weft bgp` reaches the daemon, which says it runs another backend.
    let e = bgp_cluster::bgp(&w, 0, "status").unwrap_err();
    assert!(e.contains("cluster c1 uses the vxlan backend"), "{e}");
    teardown_leaves_nothing(&w, &containers);
}

#[test]
fn routed_containers_on_two_host_gw_hosts() {
    if !can_run("routed attachment, host-gw") {
        return;
    }
    let (mut w, subnets) = world(2, "host-gw", &["--attachment", "routed"], no_flags);
    let containers = routed_everywhere(&mut w, &subnets);
    let routes = w.hosts[0].routes();
    assert!(
        routes.contains(&format!(
            "{} via 192.168.100.2 dev eth0 proto 87",
            subnets[1]
        )),
        "{routes}"
    );
    teardown_leaves_nothing(&w, &containers);
}
