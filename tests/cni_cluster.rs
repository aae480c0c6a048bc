//! CNI on a multi-host cluster network, end to end: two "hosts" (namespaces on an underlay
//! bridge, a real etcd), each running `weft daemon --cluster c1` (vxlan backend); a runtime on
//! each host execs the weft binary as its CNI plugin with a config that names the cluster
//! network, for a container namespace of its own. The containers reach each other across hosts
//! with their own addresses; DEL leaves the cluster network in place.

mod cluster_world;
mod cni_support;
mod support;

use std::time::Duration;

use cluster_world::{can_run, eventually, ClusterWorld, CLUSTER};
use cni_support::{v4, with_prev, Call, Runtime};
use serde_json::{json, Value};
use support::net::{sa, tcp_request, tcp_server};

const TTL: u64 = 5;
const JOIN: Duration = Duration::from_secs(30);

/// A CNI runtime inside host `i`, with weft in its plugin directory and the host's state.
fn runtime(w: &ClusterWorld, i: usize) -> Runtime {
    let bin_dir = w.dir().join("cni-bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir cni-bin");
    let link = bin_dir.join("weft");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_weft"), &link).expect("link weft");
    }
    Runtime {
        host: w.hosts[i].ns.open(),
        bin_dir,
        state: w.hosts[i].state.clone(),
    }
}

/// A config of type weft for host `i`'s state, with `extra` keys.
fn conf(w: &ClusterWorld, i: usize, extra: Value) -> Value {
    let mut c = json!({
        "cniVersion": "1.1.0",
        "type": "weft",
        "stateDir": w.hosts[i].state,
    });
    cni_support::merge(&mut c, extra);
    c
}

fn in_subnet(addr: &str, subnet: &str) -> bool {
    let subnet: ipnet::Ipv4Net = subnet.parse().unwrap();
    addr.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| subnet.contains(&a))
}

#[test]
fn cni_containers_on_two_hosts_share_the_cluster_network() {
    if !can_run("CNI on a cluster network") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("vxlan", &["--vni", "42"]);
    let runtimes: Vec<Runtime> = (0..2).map(|i| runtime(&w, i)).collect();
    let ctrs: Vec<cluster_world::Ns> = (0..2).map(|i| w.ns(&format!("ctr{i}"))).collect();
    // Host 1 names the cluster with `cluster` (the runtime's own name for it may differ); host
    // 2 gives the cluster's name as the network's.
    let confs = [
        conf(&w, 0, json!({"name": "pods", "cluster": CLUSTER})),
        conf(&w, 1, json!({"name": CLUSTER})),
    ];
    let call = |i: usize, command: &str| Call::new(command, &format!("cid{i}"), Some(&ctrs[i]));

    // Before the host has joined, an ADD is told to come back, and creates nothing.
    let early = runtimes[0].weft(&call(0, "ADD"), &confs[0]).err(11);
    assert!(
        early["msg"]
            .as_str()
            .unwrap()
            .contains("has not joined cluster c1"),
        "{early}"
    );
    assert!(!w.hosts[0]
        .weft(&["network", "inspect", CLUSTER])
        .status
        .success());

    for i in 0..2 {
        w.start_daemon(i, TTL, &[]);
    }
    let subnets: Vec<String> = (0..2).map(|i| w.hosts[i].wait_joined(JOIN)).collect();

    let mut results = Vec::new();
    for i in 0..2 {
        let r = runtimes[i].weft(&call(i, "ADD"), &confs[i]).ok();
        let addr = v4(&r);
        assert!(
            in_subnet(&addr, &subnets[i]),
            "{addr} in {}: {r}",
            subnets[i]
        );
        let gw = r["ips"][0]["gateway"].as_str().unwrap();
        assert!(in_subnet(gw, &subnets[i]), "gateway {gw}: {r}");
        results.push(r);
    }
    let addrs: Vec<String> = results.iter().map(v4).collect();
    // The cluster network's MTU, and the endpoint recorded on the cluster network.
    let link = ctrs[0].sh("ip -o link show eth0");
    assert!(link.contains("mtu 1450 "), "{link}");
    let inspect: Value =
        serde_json::from_str(&w.hosts[0].weft_ok(&["network", "inspect", CLUSTER])).unwrap();
    assert_eq!(
        inspect[0]["endpoints"].as_array().unwrap().len(),
        1,
        "{inspect}"
    );
    let listed: Value =
        serde_json::from_str(&w.hosts[0].weft_ok(&["network", "ls", "--json"])).unwrap();
    let stored: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .filter(|n| !["none", "host"].contains(n))
        .collect();
    assert_eq!(stored, [CLUSTER], "no second network");

    // Across hosts, both ways, with their own addresses.
    for i in 0..2 {
        let other = &addrs[1 - i];
        assert!(
            eventually(Duration::from_secs(10), || ctrs[i].ping(other)),
            "ctr{i} cannot ping {other}"
        );
    }
    let _srv = tcp_server(&ctrs[1], sa(&format!("{}:7000", addrs[1])), "ctr1");
    let reply = tcp_request(&ctrs[0], sa(&format!("{}:7000", addrs[1]))).expect("tcp across hosts");
    assert_eq!(reply, format!("ctr1 from {}", addrs[0]));

    // CHECK agrees; a config that contradicts the cluster network is refused.
    for i in 0..2 {
        runtimes[i]
            .weft(&call(i, "CHECK"), &with_prev(&confs[i], &results[i]))
            .ok();
    }
    let mut contradicting = confs[0].clone();
    contradicting["ipam"] = json!({"ranges": [[{"subnet": "10.9.0.0/24"}]]});
    let e = runtimes[0]
        .weft(
            &Call::new("ADD", "cid9", Some(&ctrs[0])).ifname("eth9"),
            &contradicting,
        )
        .err(7);
    assert!(e["msg"].as_str().unwrap().contains("10.9.0.0/24"), "{e}");

    // DEL takes the containers off and leaves the cluster network to the daemon.
    for i in 0..2 {
        runtimes[i]
            .weft(&call(i, "DEL"), &with_prev(&confs[i], &results[i]))
            .ok();
        let inspect: Value =
            serde_json::from_str(&w.hosts[i].weft_ok(&["network", "inspect", CLUSTER])).unwrap();
        assert!(
            inspect[0]["endpoints"].as_array().unwrap().is_empty(),
            "{inspect}"
        );
    }
    assert!(!ctrs[0].ping(&addrs[1]));
    let (again, again_addr) = w.container(0, "cli0");
    assert!(in_subnet(&again_addr, &subnets[0]));
    let (far, far_addr) = w.container(1, "cli1");
    assert!(
        eventually(Duration::from_secs(10), || again.ping(&far_addr)),
        "the cluster network still carries traffic after DEL"
    );
    drop(far);
}
