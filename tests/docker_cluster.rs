//! Docker on a multi-host cluster network, end to end: two "hosts" (namespaces on an underlay
//! bridge, a real etcd), each running `weft daemon --cluster c1` (vxlan backend) AND its own
//! private dockerd (FORWARD policy DROP, as stock) that finds weft's plugin socket. The same
//! `docker network create … c1` on both hosts (no swarm) gives each host's containers its own
//! share of the cluster network; containers on different hosts reach each other with their own
//! addresses; `docker network rm` leaves the cluster network in place.

mod cluster_world;
mod support;

use std::time::Duration;

use cluster_world::{can_run, eventually, ClusterWorld, CLUSTER};
use support::docker::{docker_or_skip, plugin_call, Dockerd};
use support::net::{sa, tcp_request, tcp_server};

const TTL: u64 = 5;
const JOIN: Duration = Duration::from_secs(30);

/// The cluster's whole network (`ClusterWorld::init_cluster`).
const CLUSTER_CIDR: &str = "10.244.0.0/16";

/// The `docker network create` every host runs.
const CREATE: [&str; 13] = [
    "network",
    "create",
    "-d",
    "weft",
    "--ipam-driver",
    "weft",
    "--subnet",
    CLUSTER_CIDR,
    "-o",
    "weft.cluster=c1",
    "--ipam-opt",
    "weft.cluster=c1",
    CLUSTER,
];

/// Two hosts, each with its dockerd and its daemon serving that dockerd, joined to cluster c1.
fn docker_cluster() -> (ClusterWorld, Vec<Dockerd>, Vec<String>) {
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("vxlan", &["--vni", "42"]);
    let mut dockerds = Vec::new();
    for i in 0..2 {
        let dir = w.dir().join(format!("docker-h{}", i + 1));
        let mut d = Dockerd::start_in(&dir, &w.hosts[i].ns.path, "");
        d.plugin_log = Some(w.hosts[i].log.clone());
        w.hosts[i].set_plugin_socket(d.plugin_socket());
        w.start_daemon(i, TTL, &[]);
        dockerds.push(d);
    }
    let subnets = (0..2).map(|i| w.hosts[i].wait_joined(JOIN)).collect();
    for d in &dockerds {
        let sock = d.plugin_socket();
        assert!(
            eventually(Duration::from_secs(20), || plugin_call(
                &sock,
                "/Plugin.Activate",
                b""
            )
            .is_ok_and(|(s, _)| s == 200)),
            "weft daemon does not answer on {}",
            sock.display()
        );
    }
    (w, dockerds, subnets)
}

fn in_subnet(addr: &str, subnet: &str) -> bool {
    let subnet: ipnet::Ipv4Net = subnet.parse().unwrap();
    addr.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| subnet.contains(&a))
}

fn container_ns(d: &Dockerd, name: &str) -> support::Ns {
    support::Ns {
        name: name.to_string(),
        path: d.netns_of(name),
    }
}

#[test]
fn docker_containers_on_two_hosts_share_the_cluster_network() {
    if !can_run("docker on a cluster network") || !docker_or_skip("docker on a cluster network") {
        return;
    }
    let (mut w, dockerds, subnets) = docker_cluster();

    // Docker's own IPAM would pick another subnet on every host: refused, saying what to add.
    let e = dockerds[0].docker_err(&[
        "network",
        "create",
        "-d",
        "weft",
        "-o",
        "weft.cluster=c1",
        "wrong",
    ]);
    assert!(
        e.contains("--ipam-driver weft --ipam-opt weft.cluster=c1 --subnet 10.244.0.0/16"),
        "{e}"
    );
    // Without --subnet dockerd would check the pool against the host's routes and ask again
    // forever: refused at once instead.
    let e = dockerds[0].docker_err(
        &CREATE[..6]
            .iter()
            .chain(&CREATE[8..])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(e.contains("needs --subnet 10.244.0.0/16"), "{e}");
    // A cluster this host has not joined.
    let e = dockerds[0].docker_err(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--ipam-opt",
        "weft.cluster=c9",
        "-o",
        "weft.cluster=c9",
        "c9",
    ]);
    assert!(e.contains("has not joined cluster c9"), "{e}");

    // The same command on every host; each Docker network gets its own id, and its containers
    // their host's subnet.
    let mut ids = Vec::new();
    for d in &dockerds {
        d.docker_ok(&CREATE);
        ids.push(d.network_id(CLUSTER));
    }
    assert_ne!(ids[0], ids[1]);

    let mut addrs = Vec::new();
    for (i, d) in dockerds.iter().enumerate() {
        let name = format!("a{i}");
        d.run_sleeper(&name, &["--network", CLUSTER]);
        let addr = d.address(&name, CLUSTER, false);
        assert!(in_subnet(&addr, &subnets[i]), "{addr} in {}", subnets[i]);
        addrs.push(addr);
    }
    // Docker's endpoints are the cluster network's: same bridge, recorded under it.
    let inspect: serde_json::Value =
        serde_json::from_str(&w.hosts[0].weft_ok(&["network", "inspect", CLUSTER])).unwrap();
    assert_eq!(
        inspect[0]["network"]["docker_ids"],
        serde_json::json!([ids[0]])
    );
    assert_eq!(
        inspect[0]["endpoints"].as_array().unwrap().len(),
        1,
        "{inspect}"
    );
    let link = dockerds[0].exec("a0", "ip -o link show eth0").1;
    assert!(link.contains("mtu 1450 "), "the cluster's MTU: {link}");

    // Across hosts, both ways.
    for (i, d) in dockerds.iter().enumerate() {
        let other = &addrs[1 - i];
        assert!(
            eventually(Duration::from_secs(10), || d
                .ping_from(&format!("a{i}"), other)),
            "a{i} cannot ping {other}; the other host's FORWARD chain (dockerd's DROP policy):\n{}",
            w.hosts[1 - i]
                .ns
                .sh("iptables -L FORWARD -nv; iptables -L DOCKER-USER -nv")
        );
    }
    // With their own addresses: no masquerade inside the cluster.
    let a1 = container_ns(&dockerds[1], "a1");
    let a0 = container_ns(&dockerds[0], "a0");
    let _srv = tcp_server(&a1, sa(&format!("{}:7000", addrs[1])), "a1");
    let reply = tcp_request(&a0, sa(&format!("{}:7000", addrs[1]))).expect("tcp across hosts");
    assert_eq!(reply, format!("a1 from {}", addrs[0]));

    // `docker network rm` on host 1 removes Docker's alias only: the cluster network stays, and
    // a container attached with the CLI still reaches host 2's Docker container.
    dockerds[0].docker_ok(&["rm", "-f", "a0"]);
    dockerds[0].docker_ok(&["network", "rm", CLUSTER]);
    let inspect: serde_json::Value =
        serde_json::from_str(&w.hosts[0].weft_ok(&["network", "inspect", CLUSTER])).unwrap();
    assert!(
        inspect[0]["network"].get("docker_ids").is_none(),
        "{inspect}"
    );
    assert!(
        inspect[0]["endpoints"].as_array().unwrap().is_empty(),
        "{inspect}"
    );
    let (cli, cli_addr) = w.container(0, "cli0");
    assert!(in_subnet(&cli_addr, &subnets[0]));
    assert!(
        eventually(Duration::from_secs(10), || cli.ping(&addrs[1])),
        "the cluster network on host 1 no longer reaches host 2"
    );
    assert!(dockerds[1].ping_from("a1", &cli_addr));
    // The pool and gateway Docker borrowed are still the cluster network's.
    let status: serde_json::Value =
        serde_json::from_str(&w.hosts[0].weft_ok(&["network", "inspect", CLUSTER])).unwrap();
    let pool = status[0]["network"]["subnets"][0]["pool_id"]
        .as_str()
        .unwrap();
    let held: Vec<&str> = status[0]["ipam"][pool]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["owner"].as_str().unwrap())
        .collect();
    assert!(held.contains(&"gateway"), "{status}");
    assert!(!held.iter().any(|o| o.starts_with("docker:")), "{status}");

    // Host 1 creates it again and runs a container on it.
    dockerds[0].docker_ok(&CREATE);
    dockerds[0].run_sleeper("b0", &["--network", CLUSTER]);
    let b0 = dockerds[0].address("b0", CLUSTER, false);
    assert_ne!(b0, cli_addr, "Docker and the CLI share one allocator");
    assert!(dockerds[0].ping_from("b0", &addrs[1]));
}
