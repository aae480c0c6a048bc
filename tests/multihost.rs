//! Multi-host cluster networks end to end: three "hosts" (namespaces on an underlay bridge),
//! a real etcd inside the underlay namespace, a `weft daemon --cluster` per host, containers
//! attached with `weft network connect`. Covers both backends, a host leaving and returning,
//! and the faults: etcd down at start, etcd restarted, a host cut from etcd past its TTL, a
//! malformed lease, two daemons with one public address.

mod cluster_world;
mod support;

use std::time::Duration;

use cluster_world::{all_ping, can_run, eventually, ClusterWorld, CLUSTER};
use support::net::{sa, tcp_request, tcp_server};

const TTL: u64 = 3;
const JOIN: Duration = Duration::from_secs(20);

/// A world with etcd, the cluster config and all hosts' daemons running and joined.
fn running_world(hosts: usize, backend: &str, extra: &[&str]) -> (ClusterWorld, Vec<String>) {
    let mut w = ClusterWorld::new(hosts);
    w.start_etcd();
    w.init_cluster(backend, extra);
    for i in 0..hosts {
        w.start_daemon(i, TTL, &[]);
    }
    let subnets = (0..hosts).map(|i| w.hosts[i].wait_joined(JOIN)).collect();
    (w, subnets)
}

fn distinct(subnets: &[String]) -> bool {
    let mut s = subnets.to_vec();
    s.sort();
    s.dedup();
    s.len() == subnets.len()
}

#[test]
fn vxlan_containers_on_three_hosts_reach_each_other_with_their_own_addresses() {
    if !can_run("vxlan three hosts") {
        return;
    }
    let (mut w, subnets) = running_world(3, "vxlan", &["--vni", "42"]);
    assert!(distinct(&subnets), "{subnets:?}");
    let containers: Vec<_> = (0..3).map(|i| w.container(i, &format!("c{i}"))).collect();
    for (i, (_, addr)) in containers.iter().enumerate() {
        let subnet: ipnet::Ipv4Net = subnets[i].parse().unwrap();
        assert!(
            subnet.contains(&addr.parse::<std::net::Ipv4Addr>().unwrap()),
            "{addr} in {subnet}"
        );
    }
    all_ping(&containers).unwrap();

    // MTU: underlay 1500 minus 50 on the bridge side and inside the container.
    let link = containers[0].0.sh("ip -o link show eth0");
    assert!(link.contains("mtu 1450 "), "{link}");
    let dev = w.hosts[0].ns.sh("ip -d link show weft.42");
    assert!(
        dev.contains("vxlan id 42") && dev.contains("nolearning"),
        "{dev}"
    );
    let routes = w.hosts[0].routes();
    assert!(
        routes.contains(&format!(
            "{} via {} dev weft.42 proto 87 onlink",
            subnets[1],
            subnets[1].split('/').next().unwrap()
        )),
        "{routes}"
    );

    // Across hosts the source address is the container's: no masquerade inside the cluster.
    let (c0, a0) = &containers[0];
    let (c1, a1) = &containers[1];
    let _srv = tcp_server(c1, sa(&format!("{a1}:7000")), "c1");
    let reply = tcp_request(c0, sa(&format!("{a1}:7000"))).expect("tcp across hosts");
    assert_eq!(reply, format!("c1 from {a0}"));

    let status: serde_json::Value = serde_json::from_str(&w.hosts[0].weft_ok(&[
        "cluster",
        "status",
        CLUSTER,
        "--etcd-endpoints",
        &w.endpoint(),
    ]))
    .unwrap();
    assert_eq!(status["local"]["subnet"], subnets[0].as_str());
    assert_eq!(status["leases"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(
        status["kernel"]["routes"].as_array().unwrap().len(),
        2,
        "{status}"
    );

    // Someone deletes the VXLAN device: the agent re-creates it and re-programs the peers.
    w.hosts[0].ns.sh("ip link del weft.42");
    assert!(
        eventually(Duration::from_secs(10), || c0.ping(a1)),
        "not repaired: {}",
        w.hosts[0].log()
    );
    assert!(w.hosts[0].log().contains("repaired"));
}

#[test]
fn host_gw_containers_on_three_hosts_reach_each_other() {
    if !can_run("host-gw three hosts") {
        return;
    }
    let (mut w, subnets) = running_world(3, "host-gw", &[]);
    assert!(distinct(&subnets), "{subnets:?}");
    let containers: Vec<_> = (0..3).map(|i| w.container(i, &format!("c{i}"))).collect();
    all_ping(&containers).unwrap();
    let routes = w.hosts[0].routes();
    assert!(
        routes.contains(&format!(
            "{} via 192.168.100.2 dev eth0 proto 87",
            subnets[1]
        )),
        "{routes}"
    );
    let link = containers[0].0.sh("ip -o link show eth0");
    assert!(
        link.contains("mtu 1500 "),
        "host-gw does not encapsulate: {link}"
    );
}

#[test]
fn host_leaving_and_returning_gets_its_subnet_back() {
    if !can_run("leave and return") {
        return;
    }
    let (mut w, subnets) = running_world(2, "vxlan", &[]);
    let c0 = w.container(0, "c0");
    let c1 = w.container(1, "c1");
    all_ping(&[c0.clone(), c1.clone()]).unwrap();

    // A restart within the TTL takes over the live lease.
    w.hosts[1].stop();
    w.start_daemon(1, TTL, &[]);
    assert!(eventually(JOIN, || w.hosts[1]
        .log()
        .matches("lease acquired")
        .count()
        == 2));
    assert_eq!(w.hosts[1].wait_joined(JOIN), subnets[1]);

    // Gone for longer than the TTL: its lease expires, the other host drops its routes.
    w.hosts[1].stop();
    assert!(
        eventually(Duration::from_secs(3 * TTL), || !w.hosts[0]
            .routes()
            .contains(&subnets[1])),
        "host 0 still routes to the departed host: {}",
        w.hosts[0].routes()
    );
    assert!(w.hosts[0].log().contains("peer gone"));
    w.start_daemon(1, TTL, &[]);
    assert!(eventually(JOIN, || w.hosts[1]
        .log()
        .matches("lease acquired")
        .count()
        == 3));
    assert_eq!(w.hosts[1].wait_joined(JOIN), subnets[1], "same subnet back");
    assert!(eventually(JOIN, || w.hosts[0]
        .routes()
        .contains(&subnets[1])));
    all_ping(&[c0, c1]).unwrap();
}

#[test]
fn etcd_unreachable_at_start_is_retried_until_it_appears() {
    if !can_run("etcd late") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    for i in 0..2 {
        w.start_daemon(i, TTL, &[]);
    }
    assert!(
        eventually(Duration::from_secs(15), || w.hosts[0]
            .log()
            .contains("etcd unavailable")),
        "no clear error: {}",
        w.hosts[0].log()
    );
    assert!(w.hosts[0].running(), "the daemon keeps retrying");
    assert!(w.hosts[0].record().is_none());
    w.start_etcd();
    w.init_cluster("vxlan", &[]);
    let s0 = w.hosts[0].wait_joined(JOIN);
    let s1 = w.hosts[1].wait_joined(JOIN);
    assert_ne!(s0, s1);
    let c0 = w.container(0, "c0");
    let c1 = w.container(1, "c1");
    all_ping(&[c0, c1]).unwrap();
}

#[test]
fn etcd_restart_changes_no_address() {
    if !can_run("etcd restart") {
        return;
    }
    let (mut w, subnets) = running_world(2, "vxlan", &[]);
    let c0 = w.container(0, "c0");
    let c1 = w.container(1, "c1");
    w.stop_etcd();
    w.start_etcd();
    // A host that joins after the restart is seen by the others: the watches recovered.
    let h = w.add_host();
    w.start_daemon(h, TTL, &[]);
    let s2 = w.hosts[h].wait_joined(JOIN);
    assert!(
        eventually(JOIN, || w.hosts[0].routes().contains(&s2)),
        "{}",
        w.hosts[0].routes()
    );
    // Several renewals pass on the restarted etcd without a loss.
    assert!(!eventually(Duration::from_secs(2 * TTL), || {
        w.hosts[0].log().contains("LEASE LOST") || w.hosts[1].log().contains("LEASE LOST")
    }));
    for (host, subnet) in w.hosts.iter().zip(&subnets) {
        assert_eq!(host.subnet().as_deref(), Some(subnet.as_str()));
    }
    let c2 = w.container(h, "c2");
    all_ping(&[c0, c1, c2]).unwrap();
}

#[test]
fn host_cut_from_etcd_past_its_ttl_loses_its_lease_and_never_shares_a_subnet() {
    if !can_run("cut from etcd") {
        return;
    }
    let (mut w, subnets) = running_world(2, "vxlan", &[]);
    let cut = format!("ip route add blackhole {}/32", cluster_world::ETCD_IP);
    let heal = format!("ip route del blackhole {}/32", cluster_world::ETCD_IP);

    // Cut, expire, heal: the subnet is still free, so it comes back.
    w.hosts[1].ns.sh(&cut);
    assert!(
        eventually(Duration::from_secs(4 * TTL), || !w.hosts[0]
            .routes()
            .contains(&subnets[1])),
        "the others drop the routes of an expired host"
    );
    assert!(eventually(Duration::from_secs(2 * TTL), || w.hosts[1]
        .log()
        .contains("LEASE LOST")));
    w.hosts[1].ns.sh(&heal);
    assert!(eventually(JOIN, || w.hosts[1].subnet().as_deref()
        == Some(subnets[1].as_str())));
    assert!(eventually(JOIN, || w.hosts[0]
        .routes()
        .contains(&subnets[1])));

    // Cut again; this time a new host takes the free subnet meanwhile.
    w.hosts[1].ns.sh(&cut);
    assert!(eventually(Duration::from_secs(4 * TTL), || !w.hosts[0]
        .routes()
        .contains(&subnets[1])));
    let h = w.add_host();
    w.start_daemon(h, TTL, &[]);
    let s2 = w.hosts[h].wait_joined(JOIN);
    assert_eq!(s2, subnets[1], "the expired subnet is free for others");
    w.hosts[1].ns.sh(&heal);
    let mut back = None;
    assert!(eventually(JOIN, || {
        back = w.hosts[1].subnet();
        back.as_ref().is_some_and(|s| *s != subnets[1])
    }));
    let back = back.unwrap();
    assert!(!subnets.contains(&back) && back != s2, "{back} is shared");
    assert!(
        w.hosts[1].log().contains("CHANGED"),
        "the change is reported loudly"
    );
    // Everyone agrees on who holds what.
    assert!(eventually(JOIN, || {
        let r0 = w.hosts[0].routes();
        r0.contains(&back) && r0.contains(&s2)
    }));
    let c0 = w.container(0, "c0");
    let c1 = w.container(1, "c1");
    let c2 = w.container(h, "c2");
    all_ping(&[c0, c1, c2]).unwrap();
}

#[test]
fn malformed_leases_are_ignored_with_a_warning() {
    if !can_run("malformed lease") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("vxlan", &[]);
    let base = "/weft/clusters/c1/subnets/";
    assert!(w
        .etcdctl(&["put", &format!("{base}10.244.1.0-24"), "garbage"])
        .status
        .success());
    assert!(w
        .etcdctl(&["put", &format!("{base}not-a-subnet"), "{}"])
        .status
        .success());
    w.start_daemon(0, TTL, &[]);
    let s0 = w.hosts[0].wait_joined(JOIN);
    assert_ne!(
        s0, "10.244.1.0/24",
        "a malformed lease still occupies its subnet"
    );
    let log = w.hosts[0].log();
    assert!(
        log.contains("ignoring a lease") && log.contains("10.244.1.0-24"),
        "{log}"
    );
    // One written while running is ignored too, and the cluster keeps working.
    assert!(w
        .etcdctl(&[
            "put",
            &format!("{base}10.244.7.0-24"),
            r#"{"public_ip":"0.0.0.0","node_id":"x"}"#
        ])
        .status
        .success());
    assert!(eventually(JOIN, || w.hosts[0]
        .log()
        .contains("10.244.7.0-24")));
    assert!(!w.hosts[0].routes().contains("10.244.7.0"));
    w.start_daemon(1, TTL, &[]);
    w.hosts[1].wait_joined(JOIN);
    let c0 = w.container(0, "c0");
    let c1 = w.container(1, "c1");
    all_ping(&[c0, c1]).unwrap();
}

#[test]
fn second_daemon_with_the_same_public_address_is_refused() {
    if !can_run("duplicate public address") {
        return;
    }
    let (mut w, subnets) = running_world(1, "host-gw", &[]);
    let log = w.start_second_daemon(0, TTL);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(JOIN, || read().contains("another weft daemon")),
        "no clear error: {}",
        read()
    );
    assert!(read().contains(&subnets[0]), "{}", read());
    assert!(!read().contains("lease acquired"));
    assert_eq!(w.hosts[0].subnet().as_deref(), Some(subnets[0].as_str()));
}

#[test]
fn cluster_cli_refuses_bad_input_and_says_when_etcd_is_down() {
    if !can_run("cluster cli") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    let endpoint = w.endpoint();
    let h = &w.hosts[0];
    let out = h.weft(&[
        "cluster",
        "init",
        "c1",
        "--network",
        "10.244.0.0/16",
        "--backend",
        "ipsec",
        "--etcd-endpoints",
        &endpoint,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown backend"));
    let out = h.weft(&[
        "cluster",
        "init",
        "c1",
        "--network",
        "10.244.0.0/16",
        "--etcd-endpoints",
        &endpoint,
    ]);
    assert_eq!(out.status.code(), Some(1), "etcd is not running");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(&endpoint) && err.contains("is etcd running"),
        "{err}"
    );
    w.start_etcd();
    w.init_cluster("vxlan", &[]);
    let h = &w.hosts[0];
    let out = h.weft(&[
        "cluster",
        "reserve",
        "c1",
        "10.245.0.0/24",
        "--public-ip",
        "192.168.100.9",
        "--etcd-endpoints",
        &endpoint,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.weft_ok(&[
        "cluster",
        "reserve",
        "c1",
        "10.244.9.0/24",
        "--public-ip",
        &h.ip,
        "--etcd-endpoints",
        &endpoint,
    ]);
    w.start_daemon(0, TTL, &[]);
    assert_eq!(
        w.hosts[0].wait_joined(JOIN),
        "10.244.9.0/24",
        "the reservation wins"
    );
}

#[test]
fn dual_stack_cluster_carries_ipv6_between_hosts_over_vxlan() {
    if !can_run("dual stack") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster(
        "vxlan",
        &["--network-v6", "fd00:244::/48", "--subnet-len-v6", "64"],
    );
    for i in 0..2 {
        w.start_daemon(i, TTL, &[]);
    }
    let subnets: Vec<String> = (0..2).map(|i| w.hosts[i].wait_joined(JOIN)).collect();
    let v6: Vec<String> = (0..2)
        .map(|i| {
            w.hosts[i].record().unwrap()["subnet_v6"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The IPv6 subnet has the IPv4 subnet's index.
    for (s4, s6) in subnets.iter().zip(&v6) {
        let index = s4.split('.').nth(2).unwrap();
        assert_eq!(s6, &format!("fd00:244:0:{index}::/64"));
    }
    let c0 = w.container(0, "c0");
    let c1 = w.container(1, "c1");
    all_ping(&[c0.clone(), c1.clone()]).unwrap();
    let addr6 = c1.0.sh("ip -6 -o addr show dev eth0 scope global");
    let a6 = addr6
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .expect("a global IPv6 address")
        .to_string();
    assert!(
        eventually(Duration::from_secs(10), || c0.0.ping(&a6)),
        "no IPv6 across hosts: {}",
        w.hosts[0].ns.sh("ip -6 route; ip -6 neigh show dev weft.1")
    );
}

#[test]
fn host_gw_reports_a_peer_off_the_segment_instead_of_routing_into_the_void() {
    if !can_run("host-gw unreachable peer") {
        return;
    }
    let (mut w, subnets) = running_world(1, "host-gw", &[]);
    // A host on another subnet of the underlay (it still reaches etcd through a route).
    let far = w.add_host();
    w.hosts[far].ns.sh(
        "ip addr flush dev eth0 && ip addr add 192.168.101.5/24 dev eth0 && \
         ip route add 192.168.100.0/24 dev eth0",
    );
    w.underlay.sh("ip route add 192.168.101.0/24 dev ul");
    w.start_daemon(far, TTL, &[]);
    let far_subnet = w.hosts[far].wait_joined(JOIN);
    assert_ne!(far_subnet, subnets[0]);
    assert!(
        eventually(JOIN, || w.hosts[0].log().contains("not directly reachable")),
        "{}",
        w.hosts[0].log()
    );
    // No route via it (into the void), and an unreachable one so that senders fail at once
    // instead of following the default route.
    let routes = w.hosts[0].routes();
    assert!(
        !routes.contains(&format!("{far_subnet} via")),
        "no route into the void: {routes}"
    );
    assert!(
        routes.contains(&format!("unreachable {far_subnet} proto 87")),
        "an unreachable route for the far peer's subnet: {routes}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&w.hosts[0].weft_ok(&["cluster", "status", CLUSTER])).unwrap();
    let problems = status["local"]["problems"].to_string();
    assert!(problems.contains("192.168.101.5"), "{status}");
}
