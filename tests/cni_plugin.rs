//! weft as a CNI plugin with real namespaces and traffic: ADD/CHECK/DEL in every spec version,
//! published ports, static addresses and MACs, IPv6, chaining after a prevResult, GC, failures
//! that change nothing, and 50 parallel ADDs. Each test builds its own host, containers and
//! internet as network namespaces and runs the `weft` binary inside the host as a runtime would.

mod cni_support;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use cni_support::{addresses, conf, merge, v4, with_prev, Call, Runtime};
use serde_json::{json, Value};
use support::net::{sa, tcp_request, tcp_server};
use support::{eventually, root_or_skip, World, UPLINK_HOST_V4, UPLINK_PEER_V4};

fn ranges(subnet: &str) -> Value {
    json!({"ipam": {"type": "weft", "ranges": [[{"subnet": subnet}]]}})
}

/// The host's links (names only).
fn host_links(w: &World) -> String {
    w.host.sh("ip -o link show | cut -d: -f2")
}

#[test]
fn add_check_del_in_every_version_answer_in_that_version() {
    if !root_or_skip("cni versions") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let versions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
    let mut extra = ranges("10.70.0.0/24");
    merge(&mut extra, json!({"bridge": "cnibr0", "mtu": 1400}));
    let mut added = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let ns = w.ns(&format!("c{i}"));
        let c = conf(v, "vnet", &w.state, extra.clone());
        let cid = format!("ctr-{i}");
        let r = rt.weft(&Call::new("ADD", &cid, Some(&ns)), &c).ok();
        assert_eq!(r["cniVersion"], *v);
        let ifs = r["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifs.len(), 3, "{r}");
        assert_eq!(ifs[0]["name"], "cnibr0");
        assert!(ifs[0].get("sandbox").is_none() && ifs[1].get("sandbox").is_none());
        assert_eq!(ifs[2]["name"], "eth0");
        assert_eq!(ifs[2]["sandbox"], ns.path.display().to_string());
        for i in ifs {
            assert_eq!(i["mac"].as_str().unwrap().len(), 17, "{i}");
            assert_eq!(
                i.get("mtu").is_some(),
                *v == "1.1.0",
                "only 1.1.0 carries MTUs: {r}"
            );
        }
        let ip = &r["ips"][0];
        assert_eq!(ip["address"], format!("10.70.0.{}/24", i + 2));
        assert_eq!(ip["gateway"], "10.70.0.1");
        assert_eq!(ip["interface"], 2);
        assert_eq!(
            ip.get("version").map(|x| x.as_str().unwrap()),
            if v.starts_with("0.") { Some("4") } else { None },
            "{r}"
        );
        assert_eq!(
            r["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.70.0.1"}])
        );
        // What the result says is what the namespace has.
        let shown = ns.sh("ip -o addr show dev eth0; ip route; ip -o link show dev eth0");
        assert!(
            shown.contains("10.70.0.") && shown.contains("default via 10.70.0.1"),
            "{shown}"
        );
        assert!(shown.contains("mtu 1400"), "{shown}");
        assert!(shown.contains(ifs[2]["mac"].as_str().unwrap()), "{shown}");
        if *v != "0.3.0" && *v != "0.3.1" {
            let out = rt.weft(&Call::new("CHECK", &cid, Some(&ns)), &with_prev(&c, &r));
            assert_eq!(out.code, 0, "CHECK {v}: {}", out.stdout);
            assert!(out.stdout.trim().is_empty());
        }
        added.push((ns, c, cid, r));
    }
    // They are on one network and reach each other and the gateway.
    let (first, last) = (&added[0], &added[added.len() - 1]);
    assert!(first.0.ping(&v4(&last.3)), "container to container");
    assert!(last.0.ping("10.70.0.1"), "container to gateway");
    for (ns, c, cid, r) in &added {
        let del = Call::new("DEL", cid, Some(ns));
        assert_eq!(rt.weft(&del, &with_prev(c, r)).code, 0);
        // Again: DEL is idempotent.
        assert_eq!(rt.weft(&del, c).code, 0);
        assert!(
            ns.sh("ip -o link show").lines().count() == 1,
            "only lo is left in the namespace"
        );
    }
    let links = host_links(&w);
    assert!(!links.contains("veth"), "veths left: {links}");
    let inspect: Value = serde_json::from_str(&w.weft_ok(&["network", "inspect", "vnet"])).unwrap();
    assert_eq!(inspect[0]["endpoints"], json!([]));
    let pool = inspect[0]["ipam"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        pool.as_array().unwrap().len(),
        1,
        "only the gateway is reserved: {pool}"
    );
}

#[test]
fn containers_reach_the_internet_and_published_ports_answer() {
    if !root_or_skip("cni traffic") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let inet = w.internet();
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let mut extra = ranges("10.71.0.0/24");
    merge(
        &mut extra,
        json!({"capabilities": {"portMappings": true},
               "runtimeConfig": {"portMappings": [
                   {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                   {"hostPort": 9090, "containerPort": 90, "protocol": "tcp", "hostIP": "127.0.0.1"}]}}),
    );
    let c = conf("1.0.0", "web", &w.state, extra);
    let r1 = rt.weft(&Call::new("ADD", "web1", Some(&c1)), &c).ok();
    let plain = conf("1.0.0", "web", &w.state, ranges("10.71.0.0/24"));
    let r2 = rt.weft(&Call::new("ADD", "web2", Some(&c2)), &plain).ok();
    let ip1 = v4(&r1);
    let _s80 = tcp_server(&c1, sa(&format!("{ip1}:80")), "c1");
    let _s90 = tcp_server(&c1, sa(&format!("{ip1}:90")), "c1-90");
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");

    let reply = tcp_request(&c2, sa(&format!("{UPLINK_PEER_V4}:7000"))).expect("to the internet");
    assert_eq!(
        reply,
        format!("internet from {UPLINK_HOST_V4}"),
        "masqueraded"
    );
    let reply = tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080"))).expect("published");
    assert_eq!(reply, format!("c1 from {UPLINK_PEER_V4}"));
    assert!(tcp_request(&w.host, sa("127.0.0.1:9090"))
        .expect("via 127.0.0.1")
        .starts_with("c1-90"));
    assert!(
        tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:9090"))).is_err(),
        "a 127.0.0.1 port is not reachable from outside"
    );
    assert!(tcp_request(&c2, sa(&format!("{UPLINK_HOST_V4}:8080")))
        .expect("hairpin from the other container")
        .starts_with("c1 from"));

    // DEL withdraws the ports and frees them for the next container.
    rt.weft(&Call::new("DEL", "web1", Some(&c1)), &with_prev(&c, &r1))
        .ok();
    assert!(tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8080"))).is_err());
    let c3 = w.ns("c3");
    rt.weft(&Call::new("ADD", "web3", Some(&c3)), &c).ok();
    rt.weft(&Call::new("DEL", "web3", Some(&c3)), &c).ok();
    rt.weft(
        &Call::new("DEL", "web2", Some(&c2)),
        &with_prev(&plain, &r2),
    )
    .ok();
    let nft = w
        .host
        .sh("nft list map inet weft ports4_any; nft list map inet weft ports4_ip");
    assert!(!nft.contains("8080") && !nft.contains("9090"), "{nft}");
}

#[test]
fn bridge_settings_from_the_config_reach_the_kernel() {
    if !root_or_skip("cni bridge settings") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let inet = w.internet();
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    let (c1, c2, c3, c4) = (w.ns("c1"), w.ns("c2"), w.ns("c3"), w.ns("c4"));
    // ICC off: the containers reach the gateway and the internet, not each other.
    let mut e = ranges("10.84.0.0/24");
    merge(
        &mut e,
        json!({"icc": false, "hairpinMode": false, "bridge": "isobr0"}),
    );
    let iso = conf("1.0.0", "iso", &w.state, e);
    let r1 = rt.weft(&Call::new("ADD", "c1", Some(&c1)), &iso).ok();
    let r2 = rt.weft(&Call::new("ADD", "c2", Some(&c2)), &iso).ok();
    assert!(c1.ping("10.84.0.1"));
    assert!(!c1.ping(&v4(&r2)), "ICC is off");
    let port = w.host.sh(&format!(
        "bridge -d link show dev {}",
        r1["interfaces"][1]["name"].as_str().unwrap()
    ));
    assert!(
        port.contains("hairpin off") && port.contains("isolated on"),
        "{port}"
    );
    assert!(tcp_request(&c1, sa(&format!("{UPLINK_PEER_V4}:7000"))).is_ok());
    // Internal: no gateway, no default route, no way out.
    let mut e = ranges("10.85.0.0/24");
    merge(&mut e, json!({"internal": true}));
    let internal = conf("1.0.0", "int", &w.state, e);
    let r3 = rt.weft(&Call::new("ADD", "c3", Some(&c3)), &internal).ok();
    assert!(r3["ips"][0].get("gateway").is_none(), "{r3}");
    assert!(r3.get("routes").is_none(), "{r3}");
    assert!(!c3.sh("ip route").contains("default"));
    assert!(tcp_request(&c3, sa(&format!("{UPLINK_PEER_V4}:7000"))).is_err());
    // No masquerade: packets leave with the container's address and no answer comes back.
    let mut e = ranges("10.86.0.0/24");
    merge(&mut e, json!({"ipMasq": false}));
    let nomasq = conf("1.0.0", "nomasq", &w.state, e);
    rt.weft(&Call::new("ADD", "c4", Some(&c4)), &nomasq).ok();
    assert!(tcp_request(&c4, sa(&format!("{UPLINK_PEER_V4}:7000"))).is_err());
}

#[test]
fn static_addresses_and_macs_come_from_runtime_config_args_and_cni_args() {
    if !root_or_skip("cni static") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let base = ranges("10.72.0.0/24");
    let cases = [
        (
            json!({"capabilities": {"ips": true, "mac": true},
                   "runtimeConfig": {"ips": ["10.72.0.50/24"], "mac": "02:00:00:00:00:50"}}),
            None,
            "10.72.0.50",
            "02:00:00:00:00:50",
        ),
        (
            json!({"args": {"cni": {"ips": ["10.72.0.60"], "mac": "02:00:00:00:00:60"}}}),
            None,
            "10.72.0.60",
            "02:00:00:00:00:60",
        ),
        (
            json!({}),
            Some("IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.72.0.70;MAC=02:00:00:00:00:70"),
            "10.72.0.70",
            "02:00:00:00:00:70",
        ),
    ];
    for (i, (extra, args, ip, mac)) in cases.into_iter().enumerate() {
        let ns = w.ns(&format!("s{i}"));
        let mut e = base.clone();
        merge(&mut e, extra);
        let c = conf("1.0.0", "static", &w.state, e);
        let mut call = Call::new("ADD", &format!("s{i}"), Some(&ns));
        if let Some(a) = args {
            call = call.args(a);
        }
        let r = rt.weft(&call, &c).ok();
        assert_eq!(v4(&r), ip, "{r}");
        assert_eq!(r["interfaces"][2]["mac"], mac);
        assert!(ns.sh("ip -o link show dev eth0").contains(mac));
    }
    // An address someone holds is a conflict, and an address outside the network invalid.
    let ns = w.ns("taken");
    let mut e = base.clone();
    merge(&mut e, json!({"runtimeConfig": {"ips": ["10.72.0.50"]}}));
    let c = conf("1.0.0", "static", &w.state, e);
    let before = w.snapshot();
    let err = rt.weft(&Call::new("ADD", "taken", Some(&ns)), &c).err(100);
    assert!(err["msg"].as_str().unwrap().contains("10.72.0.50"), "{err}");
    let mut e = base.clone();
    merge(&mut e, json!({"runtimeConfig": {"ips": ["10.99.0.5"]}}));
    let c = conf("1.0.0", "static", &w.state, e);
    rt.weft(&Call::new("ADD", "taken", Some(&ns)), &c).err(7);
    assert_eq!(w.snapshot(), before, "failed ADDs change nothing");
}

#[test]
fn dual_stack_gives_both_families_and_routes() {
    if !root_or_skip("cni ipv6") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let c = conf(
        "1.1.0",
        "dual",
        &w.state,
        json!({"ipam": {"ranges": [[{"subnet": "10.73.0.0/24"}], [{"subnet": "fd00:73::/64"}]],
                        "routes": [{"dst": "192.0.2.0/24"}]}}),
    );
    let r1 = rt.weft(&Call::new("ADD", "d1", Some(&c1)), &c).ok();
    let r2 = rt.weft(&Call::new("ADD", "d2", Some(&c2)), &c).ok();
    assert_eq!(addresses(&r1), ["10.73.0.2/24", "fd00:73::2/64"]);
    let routes: BTreeSet<String> = r1["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["dst"].as_str().unwrap(),
                r["gw"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        routes,
        BTreeSet::from([
            "0.0.0.0/0 10.73.0.1".to_string(),
            "::/0 fd00:73::1".to_string(),
            "192.0.2.0/24 10.73.0.1".to_string()
        ])
    );
    assert!(c1.sh("ip route").contains("192.0.2.0/24 via 10.73.0.1"));
    let v6 = addresses(&r2)[1].split('/').next().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(5), || c1.ping(&v6)),
        "IPv6 container to container"
    );
    rt.weft(&Call::new("CHECK", "d1", Some(&c1)), &with_prev(&c, &r1))
        .ok();
}

#[test]
fn del_succeeds_when_the_namespace_is_gone() {
    if !root_or_skip("cni del gone") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("doomed");
    let c = conf("1.0.0", "gone", &w.state, ranges("10.74.0.0/24"));
    let r = rt.weft(&Call::new("ADD", "doomed", Some(&ns)), &c).ok();
    weft_drivers::netns::Netns::remove_at(&ns.path).expect("remove the namespace");
    let out = rt.weft(&Call::new("DEL", "doomed", Some(&ns)), &with_prev(&c, &r));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut no_ns = Call::new("DEL", "doomed", None);
    no_ns.unset = vec!["CNI_NETNS"];
    assert_eq!(rt.weft(&no_ns, &c).code, 0, "and without CNI_NETNS");
    assert!(
        eventually(Duration::from_secs(5), || !host_links(&w).contains("veth")),
        "the host side went with the namespace"
    );
    let inspect: Value = serde_json::from_str(&w.weft_ok(&["network", "inspect", "gone"])).unwrap();
    assert_eq!(inspect[0]["endpoints"], json!([]));
}

#[test]
fn check_reports_drift_unknown_attachments_and_missing_prev_result() {
    if !root_or_skip("cni check") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("c1");
    let mut extra = ranges("10.75.0.0/24");
    merge(
        &mut extra,
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 8075, "containerPort": 80}]}}),
    );
    let c = conf("1.0.0", "chk", &w.state, extra);
    let r = rt.weft(&Call::new("ADD", "c1", Some(&ns)), &c).ok();
    let check = Call::new("CHECK", "c1", Some(&ns));
    rt.weft(&check, &with_prev(&c, &r)).ok();
    rt.weft(&check, &c).err(7);
    rt.weft(
        &Call::new("CHECK", "stranger", Some(&ns)),
        &with_prev(&c, &r),
    )
    .err(3);
    // A prevResult that disagrees with the record.
    let mut wrong = r.clone();
    wrong["ips"][0]["address"] = json!("10.75.0.99/24");
    let e = rt.weft(&check, &with_prev(&c, &wrong)).err(101);
    assert!(e["msg"].as_str().unwrap().contains("10.75.0.99"), "{e}");
    // The kernel drifts: the address and the published port vanish.
    ns.sh("ip addr flush dev eth0");
    w.host.sh("nft flush map inet weft ports4_any");
    let e = rt.weft(&check, &with_prev(&c, &r)).err(101);
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("address 10.75.0.2/24 is missing"), "{msg}");
    assert!(msg.contains("8075"), "{msg}");
    assert!(
        msg.contains("route 0.0.0.0/0 via 10.75.0.1 is missing"),
        "{msg}"
    );
    rt.weft(&Call::new("DEL", "c1", Some(&ns)), &c).ok();
}

#[test]
fn an_existing_interface_name_is_refused_and_nothing_changes() {
    if !root_or_skip("cni ifname exists") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("c1");
    ns.sh("ip link add eth0 type veth peer name other");
    let c = conf("1.0.0", "clash", &w.state, ranges("10.76.0.0/24"));
    // The first ADD of a network fails: neither the endpoint nor the network is left.
    let before = w.snapshot();
    let e = rt.weft(&Call::new("ADD", "c1", Some(&ns)), &c).err(100);
    assert!(e["msg"].as_str().unwrap().contains("eth0"), "{e}");
    assert_eq!(
        w.snapshot(),
        before,
        "{}",
        support::line_diff(&before, &w.snapshot())
    );
    // Once the network exists, a failing ADD leaves it as it was.
    let ok = w.ns("c2");
    rt.weft(&Call::new("ADD", "c2", Some(&ok)), &c).ok();
    let before = w.snapshot();
    rt.weft(&Call::new("ADD", "c1", Some(&ns)), &c).err(100);
    assert_eq!(
        w.snapshot(),
        before,
        "{}",
        support::line_diff(&before, &w.snapshot())
    );
    // The same attachment twice without a DEL.
    let e = rt.weft(&Call::new("ADD", "c2", Some(&ok)), &c).err(100);
    assert!(e["msg"].as_str().unwrap().contains("DEL it first"), "{e}");
}

#[test]
fn a_config_that_contradicts_the_network_is_refused_clearly() {
    if !root_or_skip("cni conflicting config") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let c = conf("1.0.0", "same", &w.state, ranges("10.77.0.0/24"));
    rt.weft(&Call::new("ADD", "c1", Some(&c1)), &c).ok();
    let mut other = conf("1.0.0", "same", &w.state, ranges("10.78.0.0/24"));
    merge(&mut other, json!({"ipMasq": false}));
    let before = w.snapshot();
    let e = rt.weft(&Call::new("ADD", "c2", Some(&c2)), &other).err(7);
    let msg = e["msg"].as_str().unwrap();
    for needle in [
        "10.77.0.0/24",
        "10.78.0.0/24",
        "ipMasq",
        "weft network rm same",
    ] {
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    assert_eq!(w.snapshot(), before);
    // Leaving fields out is not a contradiction: no subnet at all, or a subnet without gateway.
    let loose = conf("1.0.0", "same", &w.state, json!({}));
    rt.weft(&Call::new("ADD", "c2", Some(&c2)), &loose).ok();
    rt.weft(&Call::new("DEL", "c2", Some(&c2)), &loose).ok();
    let mut exact = conf("1.0.0", "same", &w.state, ranges("10.77.0.0/24"));
    exact["ipam"]["ranges"][0][0]["gateway"] = json!("10.77.0.1");
    rt.weft(&Call::new("ADD", "c2", Some(&c2)), &exact).ok();
    exact["ipam"]["ranges"][0][0]["gateway"] = json!("10.77.0.9");
    let e = rt.weft(&Call::new("ADD", "c3", Some(&c2)), &exact).err(7);
    assert!(e["msg"].as_str().unwrap().contains("gateway"), "{e}");
}

#[test]
fn a_broken_state_directory_is_an_io_failure() {
    if !root_or_skip("cni io") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("c1");
    let file = w.dir().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let c = conf("1.0.0", "io", &file.join("state"), ranges("10.79.0.0/24"));
    let e = rt.weft(&Call::new("ADD", "c1", Some(&ns)), &c).err(5);
    assert!(e["msg"].as_str().unwrap().contains("not-a-dir"), "{e}");
}

#[test]
fn weft_chains_after_another_plugins_result() {
    if !root_or_skip("cni chained") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("c1");
    let mut first = conf("1.0.0", "front", &w.state, ranges("10.80.0.0/24"));
    merge(&mut first, json!({"dns": {"nameservers": ["10.80.0.1"]}}));
    let prev = rt.weft(&Call::new("ADD", "c1", Some(&ns)), &first).ok();
    let second = with_prev(
        &conf("1.0.0", "back", &w.state, ranges("10.81.0.0/24")),
        &prev,
    );
    let r = rt
        .weft(&Call::new("ADD", "c1", Some(&ns)).ifname("eth1"), &second)
        .ok();
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 6, "{r}");
    assert_eq!(ifs[5]["name"], "eth1");
    assert_eq!(
        r["ips"][0], prev["ips"][0],
        "the previous result passes through"
    );
    assert_eq!(r["ips"][1]["interface"], 5);
    assert_eq!(r["ips"][1]["address"], "10.81.0.2/24");
    assert_eq!(r["dns"], json!({"nameservers": ["10.80.0.1"]}));
    // The container keeps its first default route and reaches the second network on-link.
    assert!(ns.sh("ip route").contains("default via 10.80.0.1"));
    assert!(ns.ping("10.81.0.1"));
    rt.weft(
        &Call::new("CHECK", "c1", Some(&ns)).ifname("eth1"),
        &with_prev(&second, &r),
    )
    .ok();
}

#[test]
fn gc_removes_what_the_runtime_no_longer_lists_and_then_the_network() {
    if !root_or_skip("cni gc") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let (c1, c2, c3) = (w.ns("c1"), w.ns("c2"), w.ns("c3"));
    let state = w.state.clone();
    let mk = |p: u16| {
        let mut e = ranges("10.82.0.0/24");
        merge(
            &mut e,
            json!({"runtimeConfig": {"portMappings": [{"hostPort": p, "containerPort": 80}]}}),
        );
        conf("1.1.0", "gcnet", &state, e)
    };
    let r1 = rt
        .weft(&Call::new("ADD", "keep", Some(&c1)), &mk(8101))
        .ok();
    rt.weft(&Call::new("ADD", "drop", Some(&c2)), &mk(8102))
        .ok();
    // The CLI's endpoints on a CNI network are not CNI's to collect.
    w.connect("gcnet", &c3, &[]);

    let mut gc = conf(
        "1.1.0",
        "gcnet",
        &w.state,
        json!({"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}),
    );
    let out = rt.weft(&Call::new("GC", "", None), &gc);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.trim().is_empty());
    assert_eq!(
        c2.sh("ip -o link show").lines().count(),
        1,
        "drop's interface is gone"
    );
    let nft = w.host.sh("nft list map inet weft ports4_any");
    assert!(nft.contains("8101") && !nft.contains("8102"), "{nft}");
    let inspect: Value =
        serde_json::from_str(&w.weft_ok(&["network", "inspect", "gcnet"])).unwrap();
    assert_eq!(inspect[0]["endpoints"].as_array().unwrap().len(), 2);
    rt.weft(
        &Call::new("CHECK", "keep", Some(&c1)),
        &with_prev(&mk(8101), &r1),
    )
    .ok();
    // The older spelling of the key works too, and GC of nothing listed empties CNI's part.
    gc.as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    gc["cni.dev/attachments"] = json!([]);
    rt.weft(&Call::new("GC", "", None), &gc).ok();
    assert_eq!(c1.sh("ip -o link show").lines().count(), 1);
    w.weft_ok(&[
        "network",
        "disconnect",
        "gcnet",
        "--netns",
        &c3.path.display().to_string(),
    ]);
    // With nothing left, GC removes the network CNI made, bridge and all.
    rt.weft(&Call::new("GC", "", None), &gc).ok();
    assert!(!w.weft_ok(&["network", "ls"]).contains("gcnet"));
    assert!(!host_links(&w).contains("br-"), "{}", host_links(&w));
}

#[test]
fn fifty_parallel_adds_all_succeed_with_distinct_addresses() {
    if !root_or_skip("cni parallel") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let n = 50;
    let nss: Vec<_> = (0..n).map(|i| w.ns(&format!("p{i}"))).collect();
    // A network nobody created yet: the first ADDs race to make it.
    let mut extra = ranges("10.83.0.0/24");
    merge(&mut extra, json!({"lockTimeout": 120}));
    let c = conf("1.0.0", "par", &w.state, extra);
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (rt, c) = (&rt, &c);
                s.spawn(move || {
                    rt.weft(&Call::new("ADD", &format!("par{i}"), Some(ns)), c)
                        .ok()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ADD thread"))
            .collect()
    });
    let addrs: BTreeSet<String> = results.iter().map(v4).collect();
    assert_eq!(addrs.len(), n, "every container has its own address");
    let ls = w.weft_ok(&["network", "ls", "--json"]);
    let nets: Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(
        nets.as_array()
            .unwrap()
            .iter()
            .filter(|n| n["name"] == "par")
            .count(),
        1,
        "one network: {ls}"
    );
    assert!(nss[0].ping(&v4(&results[n - 1])));
    std::thread::scope(|s| {
        for (i, ns) in nss.iter().enumerate() {
            let (rt, c) = (&rt, &c);
            s.spawn(move || {
                rt.weft(&Call::new("DEL", &format!("par{i}"), Some(ns)), c)
                    .ok()
            });
        }
    });
    assert!(!host_links(&w).contains("veth"));
}

#[test]
fn misplaced_keys_are_refused_and_unknown_keys_are_logged() {
    if !root_or_skip("cni misplaced keys") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("c1");
    // The classic mistake: "subnet" next to "type" instead of in "ipam". Ignored, it left the
    // network on a default pool (172.17.0.0/16).
    let c = conf("1.0.0", "mis", &w.state, json!({"subnet": "10.88.0.0/16"}));
    let before = w.snapshot();
    let out = rt.weft(&Call::new("ADD", "ctr-mis", Some(&ns)), &c);
    let e = out.err(7);
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("subnet") && msg.contains("10.88.0.0/16"),
        "{e}"
    );
    assert!(
        msg.contains("\"ipam\""),
        "it says where the key belongs: {e}"
    );
    assert!(
        w.snapshot() == before,
        "a refused ADD changed something:\n{}",
        support::line_diff(&before, &w.snapshot())
    );
    // DEL still succeeds (a container attached by a weft that ignored the key must go).
    let del = rt.weft(&Call::new("DEL", "ctr-mis", Some(&ns)), &c);
    assert_eq!(del.code, 0, "{}{}", del.stdout, del.stderr);
    assert!(del.stderr.contains("misplaced"), "{}", del.stderr);

    // An unknown key is a warning on stderr, and ADD goes ahead.
    let mut extra = ranges("10.89.0.0/24");
    merge(&mut extra, json!({"ipMasqq": false}));
    let c = conf("1.0.0", "unk", &w.state, extra);
    let out = rt.weft(&Call::new("ADD", "ctr-unk", Some(&ns)), &c);
    let r = out.ok();
    assert!(v4(&r).starts_with("10.89.0."), "{r}");
    assert!(
        out.stderr.contains("WARN") && out.stderr.contains("ipMasqq"),
        "stderr: {}",
        out.stderr
    );
    assert_eq!(rt.weft(&Call::new("DEL", "ctr-unk", Some(&ns)), &c).code, 0);
}

#[test]
fn add_into_the_hosts_own_namespace_or_with_a_huge_container_id_is_refused() {
    if !root_or_skip("cni hostile input") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ok = w.ns("c1");
    let c = conf("1.0.0", "hostile", &w.state, ranges("10.77.0.0/24"));
    rt.weft(&Call::new("ADD", "c1", Some(&ok)), &c).ok();
    let before = w.snapshot();
    // The runtime's own namespace (the plugin runs in the host's): a default route via the
    // container's gateway would land on the host.
    let mut call = Call::new("ADD", "hostns", None);
    call.netns = Some("/proc/self/ns/net".into());
    let e = rt.weft(&call, &c).err(7);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("host's own network namespace"),
        "{e}"
    );
    let huge = "a".repeat(100_000);
    let e = rt.weft(&Call::new("ADD", &huge, Some(&ok)), &c).err(4);
    assert!(e["msg"].as_str().unwrap().len() < 500, "{e}");
    assert_eq!(
        w.snapshot(),
        before,
        "{}",
        support::line_diff(&before, &w.snapshot())
    );
}
