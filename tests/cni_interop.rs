//! weft next to the reference CNI plugins (containernetworking-plugins in /usr/lib/cni): the
//! reference `bridge` with weft as its IPAM plugin; weft first in a chain followed by `portmap`,
//! `tuning`, `bandwidth` and `firewall`, each fed the previous result; and weft delegating its
//! addresses to `host-local`. Plugins run exactly as a runtime runs them.

mod cni_support;
mod support;

use cni_support::{conf, reference_or_skip, v4, with_prev, Call, Runtime};
use serde_json::{json, Value};
use support::net::{sa, tcp_request, tcp_server};
use support::{root_or_skip, World, UPLINK_HOST_V4, UPLINK_PEER_V4};

#[test]
fn the_reference_bridge_uses_weft_as_its_ipam() {
    if !root_or_skip("bridge with weft ipam") || !reference_or_skip("bridge with weft ipam") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let c = json!({
        "cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": "refbr0",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "weft", "stateDir": w.state, "ranges": [[{"subnet": "10.90.0.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.90.0.1"]}}
    });
    let r1 = rt
        .exec("bridge", &Call::new("ADD", "c1", Some(&c1)), &c)
        .ok();
    let r2 = rt
        .exec("bridge", &Call::new("ADD", "c2", Some(&c2)), &c)
        .ok();
    assert_eq!(r1["ips"][0]["address"], "10.90.0.2/24", "{r1}");
    assert_eq!(r1["ips"][0]["gateway"], "10.90.0.1");
    assert_eq!(r2["ips"][0]["address"], "10.90.0.3/24");
    assert!(
        c1.ping("10.90.0.3"),
        "the bridge plugin wired weft's addresses"
    );
    assert!(c2.sh("ip route").contains("default via 10.90.0.1"));
    // The bridge plugin asks weft to CHECK its part too.
    rt.exec(
        "bridge",
        &Call::new("CHECK", "c1", Some(&c1)),
        &with_prev(&c, &r1),
    )
    .ok();
    // weft's store holds the addresses: a weft network cannot take the same subnet.
    let taken = rt.cli(&["network", "create", "clash", "--subnet", "10.90.0.0/16"]);
    assert_ne!(taken.code, 0);
    assert!(taken.stderr.contains("overlaps"), "{}", taken.stderr);

    rt.exec(
        "bridge",
        &Call::new("DEL", "c1", Some(&c1)),
        &with_prev(&c, &r1),
    )
    .ok();
    rt.exec("bridge", &Call::new("DEL", "c1", Some(&c1)), &c)
        .ok();
    assert!(!w.state.join("ipam/addrs/10.90.0.0_24/10.90.0.2").exists());
    assert!(w.state.join("ipam/addrs/10.90.0.0_24/10.90.0.3").exists());
    // weft answers CHECK for an attachment it no longer holds with "unknown container".
    let mut check = c.clone();
    check["cniVersion"] = json!("1.0.0");
    rt.weft(
        &Call::new("CHECK", "c1", Some(&c1)),
        &with_prev(&check, &r1),
    )
    .err(3);
    // GC (spec 1.1.0, weft called directly as the IPAM plugin) releases what is not listed, and
    // the pool with the last address.
    let mut gc = c.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    rt.weft(&Call::new("GC", "", None), &gc).ok();
    assert!(!w.state.join("ipam/addrs/10.90.0.0_24/10.90.0.3").exists());
    assert!(!w.state.join("ipam/pools/10.90.0.0_24").exists());
    rt.cli(&["network", "create", "clash", "--subnet", "10.90.0.0/16"]);
}

/// One plugin of a chain: its config without prevResult.
fn chain(state: &std::path::Path) -> Vec<(&'static str, Value)> {
    let weft = conf(
        "1.0.0",
        "chain",
        state,
        json!({"ipam": {"ranges": [[{"subnet": "10.91.0.0/24"}]]}}),
    );
    vec![
        ("weft", weft),
        (
            "portmap",
            json!({"cniVersion": "1.0.0", "name": "chain", "type": "portmap", "snat": true,
                   "capabilities": {"portMappings": true},
                   "runtimeConfig": {"portMappings": [{"hostPort": 8091, "containerPort": 80, "protocol": "tcp"}]}}),
        ),
        (
            "tuning",
            json!({"cniVersion": "1.0.0", "name": "chain", "type": "tuning", "mtu": 1300}),
        ),
        (
            "bandwidth",
            json!({"cniVersion": "1.0.0", "name": "chain", "type": "bandwidth",
                   "capabilities": {"bandwidth": true},
                   "runtimeConfig": {"bandwidth": {"ingressRate": 100000000, "ingressBurst": 1000000,
                                                   "egressRate": 100000000, "egressBurst": 1000000}}}),
        ),
        (
            "firewall",
            json!({"cniVersion": "1.0.0", "name": "chain", "type": "firewall", "backend": "iptables"}),
        ),
    ]
}

#[test]
fn weft_first_in_a_chain_feeds_portmap_tuning_bandwidth_and_firewall() {
    if !root_or_skip("chain") || !reference_or_skip("chain") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let inet = w.internet();
    let c1 = w.ns("c1");
    let plugins = chain(&w.state);
    let add = Call::new("ADD", "c1", Some(&c1));
    let mut result = Value::Null;
    for (name, c) in &plugins {
        let input = if result.is_null() {
            c.clone()
        } else {
            with_prev(c, &result)
        };
        let out = rt.exec(name, &add, &input).ok();
        assert_eq!(out["cniVersion"], "1.0.0", "{name}: {out}");
        assert_eq!(
            out["ips"],
            plugins_first_ips(&result, &out),
            "{name} kept the IPs"
        );
        result = out;
    }
    let ip = v4(&result);
    let host_veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Each plugin did its part on weft's interfaces.
    assert!(
        c1.sh("ip -o link show dev eth0").contains("mtu 1300"),
        "tuning"
    );
    let qdisc = w.host.sh(&format!("tc qdisc show dev {host_veth}"));
    assert!(
        qdisc.contains("tbf"),
        "bandwidth shapes the host side: {qdisc}"
    );
    let fw = w.host.sh("iptables -S CNI-FORWARD");
    assert!(fw.contains(&ip), "firewall admits the container: {fw}");
    let _srv = tcp_server(&c1, sa(&format!("{ip}:80")), "c1");
    let _out = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    let reply = tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8091"))).expect("portmap DNAT");
    assert_eq!(reply, format!("c1 from {UPLINK_PEER_V4}"));
    let reply = tcp_request(&c1, sa(&format!("{UPLINK_PEER_V4}:7000"))).expect("outbound");
    assert_eq!(reply, format!("internet from {UPLINK_HOST_V4}"));

    // CHECK runs every plugin against the final result. Not portmap: the reference portmap
    // 1.1.1 fails CHECK on any IPv4-only container ("could not check ipv6 dnat"), behind the
    // reference bridge just the same.
    for (name, c) in plugins.iter().filter(|(n, _)| *n != "portmap") {
        rt.exec(
            name,
            &Call::new("CHECK", "c1", Some(&c1)),
            &with_prev(c, &result),
        )
        .ok();
    }
    // DEL in reverse order, each with the final result.
    for (name, c) in plugins.iter().rev() {
        rt.exec(
            name,
            &Call::new("DEL", "c1", Some(&c1)),
            &with_prev(c, &result),
        )
        .ok();
    }
    assert!(!w.host.sh("ip -o link show").contains("veth"));
    assert!(!w.host.sh("iptables-save -t nat").contains("8091"));
    assert!(tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:8091"))).is_err());
}

/// The IPs a chained plugin must pass through: the previous result's (or its own, first).
fn plugins_first_ips(prev: &Value, out: &Value) -> Value {
    if prev.is_null() {
        out["ips"].clone()
    } else {
        prev["ips"].clone()
    }
}

#[test]
fn weft_delegates_addresses_to_host_local() {
    if !root_or_skip("host-local delegation") || !reference_or_skip("host-local delegation") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let (c1, c2) = (w.ns("c1"), w.ns("c2"));
    let data = w.dir().join("host-local");
    let c = conf(
        "1.0.0",
        "hl",
        &w.state,
        json!({"ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.92.0.0/24"}]],
                        "routes": [{"dst": "0.0.0.0/0"}]}}),
    );
    let r1 = rt.weft(&Call::new("ADD", "c1", Some(&c1)), &c).ok();
    let r2 = rt.weft(&Call::new("ADD", "c2", Some(&c2)), &c).ok();
    assert_eq!(r1["ips"][0]["address"], "10.92.0.2/24");
    assert_eq!(r2["ips"][0]["address"], "10.92.0.3/24");
    assert_eq!(r1["interfaces"].as_array().unwrap().len(), 3);
    assert!(
        data.join("hl/10.92.0.2").exists(),
        "host-local holds the reservation"
    );
    assert!(c1.ping("10.92.0.3") && c1.ping("10.92.0.1"));
    let inspect: Value =
        serde_json::from_str(&rt.cli(&["network", "inspect", "hl"]).stdout).unwrap();
    assert_eq!(
        inspect[0]["network"]["pools"],
        json!([]),
        "weft's IPAM is not involved"
    );
    rt.weft(&Call::new("CHECK", "c1", Some(&c1)), &with_prev(&c, &r1))
        .ok();
    rt.weft(&Call::new("DEL", "c1", Some(&c1)), &with_prev(&c, &r1))
        .ok();
    assert!(
        !data.join("hl/10.92.0.2").exists(),
        "DEL released host-local's address"
    );
    assert!(!w
        .host
        .sh("ip -o link show")
        .contains(&r1["interfaces"][1]["name"].as_str().unwrap().to_string()));
    // A failed ADD gives the delegated address back.
    let c3 = w.ns("c3");
    c3.sh("ip link add eth0 type veth peer name other");
    rt.weft(&Call::new("ADD", "c3", Some(&c3)), &c).err(100);
    let held: Vec<_> = std::fs::read_dir(data.join("hl"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10."))
        .collect();
    assert_eq!(held, ["10.92.0.3"], "only c2's address is held");
    // An IPAM plugin that is not installed is a config error.
    let mut missing = c.clone();
    missing["ipam"]["type"] = json!("no-such-ipam");
    rt.weft(&Call::new("ADD", "c3", Some(&c3)), &missing).err(7);
}

/// weft as an IPAM plugin killed between its claim and its record: the runtime's DEL (and GC)
/// find the address by its owner instead of leaking it for good.
#[test]
fn an_ipam_add_killed_before_its_record_is_released_by_del_and_gc() {
    if !root_or_skip("weft ipam crash") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let ns = w.ns("c1");
    let c = json!({
        "cniVersion": "1.1.0", "name": "ipamnet", "type": "bridge", "bridge": "ipambr0",
        "ipam": {"type": "weft", "stateDir": w.state, "ranges": [[{"subnet": "10.91.0.0/24"}]]}
    });
    let records = w.state.join("cni-ipam/ipamnet");
    for cid in ["a1", "a2"] {
        let r = rt.weft(&Call::new("ADD", cid, Some(&ns)), &c).ok();
        assert!(r["ips"][0]["address"].is_string(), "{r}");
        // What a kill between the claim and the record leaves: the claim alone.
        for e in std::fs::read_dir(&records).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let addrs = || -> usize {
        std::fs::read_dir(w.state.join("ipam/addrs/10.91.0.0_24"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(addrs(), 2);
    rt.weft(&Call::new("DEL", "a1", Some(&ns)), &c).ok();
    assert_eq!(addrs(), 1, "DEL released the unrecorded claim of a1");
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    rt.weft(&Call::new("GC", "", None), &gc).ok();
    assert_eq!(addrs(), 0, "GC released the unrecorded claim of a2");
    assert!(!w.state.join("ipam/pools/10.91.0.0_24").exists());
}
