//! The bgp backend in a three-host cluster end to end: hosts are namespaces on an underlay
//! bridge, a real etcd, a `weft daemon --cluster` per host with its own control socket, and
//! containers attached with `weft network connect`. Covers the node-to-node mesh with native
//! routing and with VXLAN, `weft bgp status|routes` against the running daemons, a host
//! leaving (its routes are withdrawn from the others), and route reflection (one host
//! reflects, the mesh is off).

mod bgp_cluster;
mod cluster_world;

use std::time::Duration;

use bgp_cluster::{bgp, bgp_text, established, world, JOIN, TTL};
use cluster_world::{all_ping, can_run, eventually, CLUSTER};

fn no_flags(_: usize) -> Vec<String> {
    Vec::new()
}

#[test]
fn mesh_without_encapsulation_routes_natively_and_shows_sessions_and_routes() {
    if !can_run("bgp mesh, encapsulation none") {
        return;
    }
    let (mut w, subnets) = world(3, "bgp", &["--encapsulation", "none"], no_flags);
    for i in 0..3 {
        let n = established(&w, i, 2);
        for n in &n {
            assert_eq!(n["role"], "mesh", "{n}");
            assert_eq!(n["remote_as"], 64512, "{n}");
        }
    }
    let containers: Vec<_> = (0..3).map(|i| w.container(i, &format!("c{i}"))).collect();
    all_ping(&containers).unwrap();

    // Native routing: a plain route via the other host's address, and the blackhole that
    // keeps unused addresses of this host's block from leaking.
    let routes = w.hosts[0].routes();
    for (i, s) in subnets.iter().enumerate().skip(1) {
        let want = format!("{s} via 192.168.100.{} dev eth0 proto 87", i + 1);
        assert!(routes.contains(&want), "{want} in\n{routes}");
    }
    let holes = w.hosts[0].ns.sh("ip route show type blackhole");
    assert!(
        holes.contains(&format!("blackhole {} proto 87 metric 1000000", subnets[0])),
        "{holes}"
    );
    let link = containers[0].0.sh("ip -o link show eth0");
    assert!(
        link.contains("mtu 1500 "),
        "no encapsulation, no overhead: {link}"
    );

    // `weft bgp status`: every neighbour with its prefixes, as JSON and as a table.
    let status = bgp(&w, 0, "status").unwrap();
    assert_eq!(status["cluster"], CLUSTER);
    assert_eq!(status["announced"][0], subnets[0].as_str(), "{status}");
    for n in status["neighbours"].as_array().unwrap() {
        assert_eq!(n["prefixes_received"], 1, "{n}");
        assert_eq!(n["prefixes_sent"], 1, "{n}");
        assert!(n["uptime_secs"].as_u64().is_some(), "{n}");
    }
    let table = bgp_text(&w, 0, "status");
    for peer in ["192.168.100.2", "192.168.100.3"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(peer))
            .unwrap_or_else(|| panic!("{peer} in\n{table}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (cols[1], cols[2], cols[3], cols[5], cols[6]),
            ("64512", "mesh", "Established", "1", "1"),
            "{line}"
        );
    }

    // `weft bgp routes`: the own subnet and the two learned ones, both in the kernel.
    let routes = bgp(&w, 0, "routes").unwrap();
    assert_eq!(routes["rib"].as_array().unwrap().len(), 3, "{routes}");
    let kernel = routes["kernel"].as_array().unwrap();
    assert_eq!(kernel.len(), 2, "{routes}");
    assert!(kernel.iter().all(|k| k["error"].is_null()), "{routes}");
    let table = bgp_text(&w, 0, "routes");
    let learned = table
        .lines()
        .find(|l| l.starts_with(&subnets[1]))
        .unwrap_or_else(|| panic!("{} in\n{table}", subnets[1]));
    assert!(
        learned.contains("192.168.100.2") && learned.ends_with("installed"),
        "{learned}"
    );
}

#[test]
fn mesh_over_vxlan_reaches_every_container_through_the_backend_device() {
    if !can_run("bgp mesh, encapsulation vxlan") {
        return;
    }
    let (mut w, subnets) = world(
        3,
        "bgp",
        &["--encapsulation", "vxlan", "--vni", "77"],
        no_flags,
    );
    for i in 0..3 {
        established(&w, i, 2);
    }
    let containers: Vec<_> = (0..3).map(|i| w.container(i, &format!("c{i}"))).collect();
    all_ping(&containers).unwrap();
    let dev = w.hosts[0].ns.sh("ip -d link show weftbgp.vxlan");
    assert!(
        dev.contains("vxlan id 77") && dev.contains("dstport 8472"),
        "{dev}"
    );
    let routes = w.hosts[0].routes();
    assert!(
        routes.contains(&format!(
            "{} via 192.168.100.2 dev weftbgp.vxlan proto 87 onlink",
            subnets[1]
        )),
        "{routes}"
    );
    let link = containers[0].0.sh("ip -o link show eth0");
    assert!(link.contains("mtu 1450 "), "VXLAN overhead: {link}");
    let status = bgp(&w, 1, "status").unwrap();
    assert_eq!(status["encapsulation"], "vxlan", "{status}");
}

#[test]
fn a_host_that_leaves_has_its_routes_withdrawn_and_comes_back() {
    if !can_run("bgp host leaving") {
        return;
    }
    let (mut w, subnets) = world(3, "bgp", &[], no_flags);
    for i in 0..3 {
        established(&w, i, 2);
    }
    let c0 = w.container(0, "c0");
    let c2 = w.container(2, "c2");
    all_ping(&[c0.clone(), c2.clone()]).unwrap();

    w.hosts[2].stop();
    for i in 0..2 {
        assert!(
            eventually(Duration::from_secs(4 * TTL + 10), || !w.hosts[i]
                .routes()
                .contains(&subnets[2])),
            "host {} still routes to the departed host:\n{}",
            i + 1,
            w.hosts[i].routes()
        );
        let n = established(&w, i, 1);
        assert_ne!(n[0]["address"], "192.168.100.3", "{n:?}");
    }
    assert!(!c0.0.ping(&c2.1));
    // Nobody answers on the departed host's control socket: the CLI says so.
    let e = bgp(&w, 2, "status").unwrap_err();
    assert!(e.contains("weft daemon is not running"), "{e}");

    bgp_cluster::start(&mut w, 2, &[]);
    assert_eq!(w.hosts[2].wait_joined(JOIN), subnets[2], "same subnet back");
    for i in 0..3 {
        established(&w, i, 2);
    }
    all_ping(&[c0, c2]).unwrap();
}

#[test]
fn route_reflector_carries_the_routes_when_the_mesh_is_off() {
    if !can_run("bgp route reflector") {
        return;
    }
    let (mut w, subnets) = world(
        3,
        "bgp",
        &["--no-mesh", "--route-reflectors", "192.168.100.1"],
        no_flags,
    );
    // The reflector serves both others as clients; they peer with it alone.
    let r = established(&w, 0, 2);
    assert!(r.iter().all(|n| n["role"] == "rr-client"), "{r:?}");
    for i in 1..3 {
        let n = established(&w, i, 1);
        assert_eq!(n[0]["address"], "192.168.100.1", "{n:?}");
        assert_eq!(n[0]["role"], "route-reflector", "{n:?}");
    }
    let status = bgp(&w, 0, "status").unwrap();
    assert_eq!(
        status["route_reflector_cluster_id"], "192.168.100.1",
        "{status}"
    );
    assert_eq!(status["mesh"], false);

    // Host 2 learns host 3's subnet from the reflector, with host 3 as the next hop.
    let want = format!("{} via 192.168.100.3 dev eth0 proto 87", subnets[2]);
    assert!(
        eventually(JOIN, || w.hosts[1].routes().contains(&want)),
        "{want} in\n{}",
        w.hosts[1].routes()
    );
    let reflected = bgp(&w, 1, "routes").unwrap();
    let entry = reflected["rib"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["prefix"] == subnets[2].as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{reflected}"));
    assert_eq!(entry["source"]["Peer"], "192.168.100.1", "{entry}");
    assert_eq!(entry["attrs"]["originator_id"], "192.168.100.3", "{entry}");
    assert!(
        !entry["attrs"]["cluster_list"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{entry}"
    );

    let containers: Vec<_> = (0..3).map(|i| w.container(i, &format!("c{i}"))).collect();
    all_ping(&containers).unwrap();
}

#[test]
fn bad_bgp_settings_are_refused_before_anything_is_written() {
    let state = tempfile::tempdir().unwrap();
    let weft = |args: &[&str]| {
        std::process::Command::new(cluster_world::weft_bin())
            .arg("--state-dir")
            .arg(state.path())
            .args(args)
            .output()
            .unwrap()
    };
    // Validation comes first: nothing listens on this etcd endpoint, and it is not asked.
    let init = |extra: &[&str]| {
        let mut args = vec![
            "cluster",
            "init",
            "c1",
            "--network",
            "10.244.0.0/16",
            "--etcd-endpoints",
            "http://127.0.0.1:9",
        ];
        args.extend_from_slice(extra);
        weft(&args)
    };
    for (extra, needle) in [
        (
            &["--backend", "bgp", "--encapsulation", "gre"][..],
            "unknown encapsulation \"gre\"",
        ),
        (
            &["--backend", "bgp", "--route-reflectors", "node-a"][..],
            "--no-mesh",
        ),
        (&["--backend", "bgp", "--bgp-as", "0"][..], "AS 0"),
        (
            &["--backend", "vxlan", "--encapsulation", "ipip"][..],
            "the backend is vxlan",
        ),
    ] {
        let out = init(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
    let out = init(&["--attachment", "macvlan"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("use bridge or routed"),
        "{out:?}"
    );
    let out = weft(&["daemon", "--bgp-peer", "192.168.0.254"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ADDR:AS[:PORT]"),
        "{err}"
    );
    // No daemon: `weft bgp` says so and what to do.
    let out = weft(&["bgp", "routes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("weft daemon is not running") && err.contains("control.sock"),
        "{err}"
    );
}
