//! The netlink wrapper, netns handles and sysctls against the real kernel, each test inside
//! network namespaces it creates (and removes, even when an assert fails). Needs root; skips
//! with a message otherwise.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use support::{eventually, Lab};
use weft_drivers::netlink::{
    BridgePort, FdbEntry, IpFamily, Neighbour, Netlink, NextHop, Route, RouteKind, VethEnd,
    VxlanSpec,
};
use weft_drivers::netns::Netns;
use weft_drivers::{sysctl, DriverError, MacAddr};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// A veth pair with both ends in the namespace of `nl`, both up; returns their indexes.
fn veth_pair(nl: &mut Netlink, a: &str, b: &str) -> (u32, u32) {
    let ia = nl
        .add_veth(&VethEnd::new(a), &VethEnd::new(b), None)
        .unwrap();
    let ib = nl.link_by_name(b).unwrap().expect("peer end").index;
    nl.set_up(ia).unwrap();
    nl.set_up(ib).unwrap();
    (ia, ib)
}

#[test]
fn bridge_create_find_delete() {
    let Some(mut lab) = Lab::new("bridge_create_find_delete") else {
        return;
    };
    let ns = lab.netns("a");
    let other = lab.netns("b");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let mut nl_other = Netlink::open_in(&other).unwrap();

    let address = mac("02:42:0a:00:00:01");
    let index = nl
        .add_bridge("br-t0", Some(1400), Some(address), Some("weft:net1"))
        .unwrap();
    let bridge = nl.link_by_name("br-t0").unwrap().expect("bridge exists");
    assert_eq!(bridge.index, index);
    assert_eq!(bridge.kind, "bridge");
    assert_eq!(bridge.mtu, 1400);
    assert_eq!(bridge.mac, Some(address));
    assert_eq!(bridge.alias.as_deref(), Some("weft:net1"));
    assert!(!bridge.up);
    assert_eq!(nl.link_by_index(index).unwrap(), Some(bridge.clone()));
    assert!(nl.links().unwrap().contains(&bridge));
    // The socket is bound to its namespace: the other one does not see the bridge.
    assert_eq!(nl_other.link_by_name("br-t0").unwrap(), None);

    nl.set_up(index).unwrap();
    assert!(nl.link_by_index(index).unwrap().unwrap().up);
    nl.set_down(index).unwrap();
    assert!(!nl.link_by_index(index).unwrap().unwrap().up);

    assert!(nl.del_link_by_name("br-t0").unwrap());
    assert!(
        !nl.del_link_by_name("br-t0").unwrap(),
        "second delete is a no-op"
    );
    assert_eq!(nl.link_by_name("br-t0").unwrap(), None);
    assert_eq!(nl.link_by_index(index).unwrap(), None);
}

#[test]
fn veth_peer_is_created_directly_in_the_other_netns() {
    let Some(mut lab) = Lab::new("veth_peer_is_created_directly_in_the_other_netns") else {
        return;
    };
    let host_ns = lab.netns("host");
    let sandbox = lab.netns("sandbox");
    let mut host = Netlink::open_in(&host_ns).unwrap();
    let mut inside = Netlink::open_in(&sandbox).unwrap();

    let peer_mac = mac("02:42:ac:11:00:02");
    let host_end = VethEnd {
        name: "vethw0".into(),
        mtu: Some(1450),
        mac: None,
        alias: Some("weft:ep1".into()),
    };
    let peer_end = VethEnd {
        name: "eth0".into(),
        mtu: Some(1450),
        mac: Some(peer_mac),
        alias: Some("weft:ep1-peer".into()),
    };
    let index = host.add_veth(&host_end, &peer_end, Some(&sandbox)).unwrap();

    let h = host.link_by_index(index).unwrap().expect("host end");
    assert_eq!(
        (h.name.as_str(), h.kind.as_str(), h.mtu),
        ("vethw0", "veth", 1450)
    );
    assert_eq!(h.alias.as_deref(), Some("weft:ep1"));
    assert_eq!(
        host.link_by_name("eth0").unwrap(),
        None,
        "peer leaked into the host netns"
    );

    let p = inside
        .link_by_name("eth0")
        .unwrap()
        .expect("peer in sandbox");
    assert_eq!(p.kind, "veth");
    assert_eq!(p.mac, Some(peer_mac));
    assert_eq!(p.mtu, 1450);
    assert_eq!(p.alias.as_deref(), Some("weft:ep1-peer"));

    // Deleting the host end takes the peer with it.
    host.del_link(index).unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        inside.link_by_name("eth0").unwrap().is_none()
    }));
}

#[test]
fn bridge_port_master_hairpin_isolated_and_link_settings() {
    let Some(mut lab) = Lab::new("bridge_port_master_hairpin_isolated_and_link_settings") else {
        return;
    };
    let ns = lab.netns("a");
    let elsewhere = lab.netns("b");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let bridge = nl.add_bridge("br-p", None, None, None).unwrap();
    let (port, peer) = veth_pair(&mut nl, "vp0", "vp1");

    assert_eq!(nl.bridge_port(port).unwrap(), None, "not a port yet");
    nl.set_master(port, Some(bridge)).unwrap();
    assert_eq!(
        nl.link_by_index(port).unwrap().unwrap().master,
        Some(bridge)
    );

    nl.set_bridge_port(port, true, true).unwrap();
    assert_eq!(
        nl.bridge_port(port).unwrap(),
        Some(BridgePort {
            bridge,
            hairpin: true,
            isolated: true
        })
    );
    nl.set_bridge_port(port, false, true).unwrap();
    let settings = nl.bridge_port(port).unwrap().unwrap();
    assert!(!settings.hairpin && settings.isolated);
    nl.set_bridge_port(port, true, false).unwrap();
    let settings = nl.bridge_port(port).unwrap().unwrap();
    assert!(settings.hairpin && !settings.isolated);

    nl.set_master(port, None).unwrap();
    assert_eq!(nl.link_by_index(port).unwrap().unwrap().master, None);
    let err = nl.set_bridge_port(port, true, true).unwrap_err();
    assert!(err.to_string().contains("vp0"), "{err}");

    nl.set_alias(port, "weft:x").unwrap();
    nl.set_mtu(port, 1300).unwrap();
    nl.set_mac(port, mac("02:00:00:00:00:07")).unwrap();
    let link = nl.link_by_index(port).unwrap().unwrap();
    assert_eq!(link.alias.as_deref(), Some("weft:x"));
    assert_eq!(link.mtu, 1300);
    assert_eq!(link.mac, Some(mac("02:00:00:00:00:07")));

    nl.set_down(port).unwrap();
    nl.set_name(port, "vp0-renamed").unwrap();
    assert_eq!(nl.link_by_name("vp0-renamed").unwrap().unwrap().index, port);

    nl.move_to_netns(peer, &elsewhere).unwrap();
    assert_eq!(nl.link_by_name("vp1").unwrap(), None);
    let mut nl_elsewhere = Netlink::open_in(&elsewhere).unwrap();
    assert_eq!(
        nl_elsewhere.link_by_name("vp1").unwrap().unwrap().kind,
        "veth"
    );
}

#[test]
fn addresses_v4_and_v6() {
    let Some(mut lab) = Lab::new("addresses_v4_and_v6") else {
        return;
    };
    let ns = lab.netns("a");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let (a, b) = veth_pair(&mut nl, "va", "vb");
    let v4 = net("10.9.0.1/24");
    let v6 = net("fd00:9::1/64");
    nl.add_address(a, v4).unwrap();
    nl.add_address(a, v6).unwrap();
    nl.add_address(b, net("10.9.0.2/24")).unwrap();

    let on_a = nl.addresses(Some(a)).unwrap();
    assert!(on_a.contains(&(a, v4)), "{on_a:?}");
    assert!(on_a.contains(&(a, v6)), "{on_a:?}");
    assert!(on_a.iter().all(|(i, _)| *i == a));
    assert!(nl
        .addresses(None)
        .unwrap()
        .contains(&(b, net("10.9.0.2/24"))));

    let err = nl.add_address(a, v4).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");

    nl.del_address(a, v4).unwrap();
    nl.del_address(a, v6).unwrap();
    let left = nl.addresses(Some(a)).unwrap();
    assert!(
        !left.contains(&(a, v4)) && !left.contains(&(a, v6)),
        "{left:?}"
    );
    assert!(
        nl.del_address(a, v4).is_err(),
        "deleting a missing address fails"
    );
}

#[test]
fn routes_onlink_blackhole_tables_multipath_replace() {
    let Some(mut lab) = Lab::new("routes_onlink_blackhole_tables_multipath_replace") else {
        return;
    };
    let ns = lab.netns("a");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let (a, b) = veth_pair(&mut nl, "ra", "rb");
    nl.add_address(a, net("10.10.0.1/24")).unwrap();
    nl.add_address(a, net("fd00:10::1/64")).unwrap();
    nl.add_address(b, net("10.11.0.1/24")).unwrap();

    let find = |nl: &mut Netlink, table: u32, dst: &str| -> Vec<Route> {
        nl.routes(None, Some(table))
            .unwrap()
            .into_iter()
            .filter(|r| r.destination == net(dst))
            .collect()
    };

    // onlink: the gateway is outside every subnet of the link.
    let mut onlink = Route::new(net("10.20.0.0/16"));
    onlink.gateway = Some(ip("192.0.2.1"));
    onlink.oif = Some(a);
    onlink.onlink = true;
    onlink.protocol = 77;
    onlink.metric = Some(10);
    nl.add_route(&onlink).unwrap();
    assert_eq!(find(&mut nl, 254, "10.20.0.0/16"), vec![onlink.clone()]);
    let mut not_onlink = onlink.clone();
    not_onlink.destination = net("10.21.0.0/16");
    not_onlink.onlink = false;
    assert!(
        nl.add_route(&not_onlink).is_err(),
        "unreachable gateway needs onlink"
    );

    // blackhole, v4 and v6.
    let mut hole = Route::new(net("10.30.0.0/16"));
    hole.kind = RouteKind::Blackhole;
    nl.add_route(&hole).unwrap();
    let mut hole6 = Route::new(net("fd00:30::/48"));
    hole6.kind = RouteKind::Blackhole;
    nl.add_route(&hole6).unwrap();
    let found = find(&mut nl, 254, "10.30.0.0/16");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, RouteKind::Blackhole);
    let found6 = find(&mut nl, 254, "fd00:30::/48");
    assert_eq!(found6.len(), 1);
    assert_eq!(found6[0].kind, RouteKind::Blackhole);

    // Tables 100 and 1000 (above 255, only expressible through RTA_TABLE).
    for table in [100, 1000] {
        let mut in_table = Route::new(net("10.40.0.0/16"));
        in_table.gateway = Some(ip("10.10.0.2"));
        in_table.table = table;
        nl.add_route(&in_table).unwrap();
        let found = find(&mut nl, table, "10.40.0.0/16");
        assert_eq!(found.len(), 1, "table {table}");
        assert_eq!(found[0].gateway, Some(ip("10.10.0.2")));
        assert_eq!(found[0].oif, Some(a));
        assert_eq!(found[0].table, table);
    }
    assert!(
        find(&mut nl, 254, "10.40.0.0/16").is_empty(),
        "leaked into main"
    );
    let v4_in_100 = nl.routes(Some(IpFamily::V4), Some(100)).unwrap();
    assert_eq!(v4_in_100.len(), 1, "{v4_in_100:?}");

    // An existing route is refused by add, accepted by replace.
    let mut in_100 = Route::new(net("10.40.0.0/16"));
    in_100.gateway = Some(ip("10.10.0.2"));
    in_100.table = 100;
    let err = nl.add_route(&in_100).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    in_100.gateway = Some(ip("10.11.0.2"));
    nl.replace_route(&in_100).unwrap();
    let found = find(&mut nl, 100, "10.40.0.0/16");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].gateway, found[0].oif),
        (Some(ip("10.11.0.2")), Some(b))
    );

    // ECMP over both links, with weights; v4 and v6.
    let mut ecmp = Route::new(net("10.50.0.0/16"));
    ecmp.multipath = vec![
        NextHop::via(ip("10.10.0.2"), Some(a)),
        NextHop {
            weight: 3,
            ..NextHop::via(ip("10.11.0.2"), Some(b))
        },
    ];
    nl.add_route(&ecmp).unwrap();
    let found = find(&mut nl, 254, "10.50.0.0/16");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].multipath, ecmp.multipath);
    nl.add_address(b, net("fd00:11::1/64")).unwrap();
    let mut ecmp6 = Route::new(net("fd00:50::/48"));
    ecmp6.multipath = vec![
        NextHop::via(ip("fd00:10::2"), Some(a)),
        NextHop::via(ip("fd00:11::2"), Some(b)),
    ];
    nl.add_route(&ecmp6).unwrap();
    let found6 = find(&mut nl, 254, "fd00:50::/48");
    assert_eq!(found6.len(), 1, "{found6:?}");
    let mut gateways: Vec<_> = found6[0].multipath.iter().map(|h| h.gateway).collect();
    gateways.sort();
    assert_eq!(
        gateways,
        vec![Some(ip("fd00:10::2")), Some(ip("fd00:11::2"))]
    );

    let prefixes = nl.host_prefixes().unwrap();
    for expected in [
        "10.10.0.0/24",
        "10.20.0.0/16",
        "10.40.0.0/16",
        "fd00:10::/64",
    ] {
        assert!(
            prefixes.contains(&net(expected)),
            "{expected} missing: {prefixes:?}"
        );
    }
    assert!(prefixes.iter().all(|p| p.prefix_len() > 0));
    assert!(
        !prefixes.contains(&net("10.10.0.1/32")),
        "local table leaked"
    );

    for route in [&onlink, &hole, &hole6, &in_100, &ecmp, &ecmp6] {
        nl.del_route(route).unwrap();
    }
    for (table, dst) in [
        (254, "10.20.0.0/16"),
        (254, "10.30.0.0/16"),
        (254, "fd00:30::/48"),
        (100, "10.40.0.0/16"),
        (254, "10.50.0.0/16"),
        (254, "fd00:50::/48"),
    ] {
        assert!(
            find(&mut nl, table, dst).is_empty(),
            "{dst} still in table {table}"
        );
    }
    let err = nl.del_route(&onlink).unwrap_err();
    assert!(err.errno().is_some(), "{err}");
}

#[test]
fn neighbours_and_proxy_entries() {
    let Some(mut lab) = Lab::new("neighbours_and_proxy_entries") else {
        return;
    };
    let ns = lab.netns("a");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let (a, _) = veth_pair(&mut nl, "na", "nb");

    let mut neighbour = Neighbour {
        ifindex: a,
        address: ip("10.12.0.5"),
        mac: Some(mac("02:42:0a:0c:00:05")),
        permanent: true,
    };
    nl.add_neighbour(&neighbour).unwrap();
    assert!(nl.neighbours(Some(a)).unwrap().contains(&neighbour));
    // Replace semantics: adding again with another MAC updates the entry.
    neighbour.mac = Some(mac("02:42:0a:0c:00:06"));
    nl.add_neighbour(&neighbour).unwrap();
    let entries: Vec<_> = nl
        .neighbours(Some(a))
        .unwrap()
        .into_iter()
        .filter(|n| n.address == neighbour.address)
        .collect();
    assert_eq!(entries, vec![neighbour.clone()]);

    let neighbour6 = Neighbour {
        ifindex: a,
        address: ip("fd00:12::5"),
        mac: Some(mac("02:42:0a:0c:00:07")),
        permanent: true,
    };
    nl.add_neighbour(&neighbour6).unwrap();
    assert!(nl.neighbours(None).unwrap().contains(&neighbour6));

    nl.del_neighbour(&neighbour).unwrap();
    nl.del_neighbour(&neighbour6).unwrap();
    let left = nl.neighbours(Some(a)).unwrap();
    assert!(!left
        .iter()
        .any(|n| n.address == neighbour.address || n.address == neighbour6.address));

    nl.add_proxy_neighbour(a, ip("10.12.0.99")).unwrap();
    nl.add_proxy_neighbour(a, ip("10.12.0.99")).unwrap();
    nl.add_proxy_neighbour(a, ip("fd00:12::99")).unwrap();
    let proxies = nl.proxy_neighbours(Some(a)).unwrap();
    assert!(proxies.contains(&(a, ip("10.12.0.99"))), "{proxies:?}");
    assert!(proxies.contains(&(a, ip("fd00:12::99"))), "{proxies:?}");
    assert!(
        !nl.neighbours(Some(a))
            .unwrap()
            .iter()
            .any(|n| n.address == ip("10.12.0.99")),
        "proxy entries are not neighbours"
    );
    nl.del_proxy_neighbour(a, ip("10.12.0.99")).unwrap();
    nl.del_proxy_neighbour(a, ip("fd00:12::99")).unwrap();
    assert!(nl.proxy_neighbours(Some(a)).unwrap().is_empty());
}

#[test]
fn vxlan_device_and_fdb_entries() {
    let Some(mut lab) = Lab::new("vxlan_device_and_fdb_entries") else {
        return;
    };
    let ns = lab.netns("a");
    let mut nl = Netlink::open_in(&ns).unwrap();
    let (underlay, _) = veth_pair(&mut nl, "ua", "ub");
    nl.add_address(underlay, net("192.168.50.1/24")).unwrap();

    let spec = VxlanSpec {
        name: "weft.42".into(),
        vni: 42,
        port: 4789,
        local: Some(ip("192.168.50.1")),
        dev_index: Some(underlay),
        mtu: Some(1450),
        mac: Some(mac("02:42:c0:a8:32:01")),
        learning: false,
    };
    let vx = nl.add_vxlan(&spec).unwrap();
    let link = nl.link_by_index(vx).unwrap().unwrap();
    assert_eq!(
        (link.name.as_str(), link.kind.as_str()),
        ("weft.42", "vxlan")
    );
    assert_eq!((link.mtu, link.mac), (1450, spec.mac));
    nl.set_up(vx).unwrap();

    let flood = |dst: &str| FdbEntry {
        ifindex: vx,
        mac: MacAddr([0; 6]),
        destination: Some(ip(dst)),
        permanent: true,
    };
    nl.add_fdb(&flood("192.168.50.2")).unwrap();
    nl.add_fdb(&flood("192.168.50.3")).unwrap();
    nl.add_fdb(&flood("192.168.50.3")).unwrap();
    let entries = nl.fdb(vx).unwrap();
    assert!(entries.contains(&flood("192.168.50.2")), "{entries:?}");
    assert!(entries.contains(&flood("192.168.50.3")), "{entries:?}");

    let remote_mac = mac("02:42:0a:f4:01:00");
    let mut remote = FdbEntry {
        ifindex: vx,
        mac: remote_mac,
        destination: Some(ip("192.168.50.2")),
        permanent: true,
    };
    nl.add_fdb(&remote).unwrap();
    remote.destination = Some(ip("192.168.50.3"));
    nl.add_fdb(&remote).unwrap();
    let for_mac: Vec<_> = nl
        .fdb(vx)
        .unwrap()
        .into_iter()
        .filter(|e| e.mac == remote_mac)
        .collect();
    assert_eq!(
        for_mac,
        vec![remote.clone()],
        "replace keeps one entry per MAC"
    );

    nl.del_fdb(&flood("192.168.50.2")).unwrap();
    nl.del_fdb(&remote).unwrap();
    let entries = nl.fdb(vx).unwrap();
    assert!(!entries.contains(&flood("192.168.50.2")), "{entries:?}");
    assert!(entries.contains(&flood("192.168.50.3")), "{entries:?}");
    assert!(!entries.iter().any(|e| e.mac == remote_mac), "{entries:?}");
}

#[test]
fn errors_name_the_object_and_carry_the_errno() {
    let Some(mut lab) = Lab::new("errors_name_the_object_and_carry_the_errno") else {
        return;
    };
    let ns = lab.netns("a");
    let mut nl = Netlink::open_in(&ns).unwrap();
    nl.add_bridge("br-dup", None, None, None).unwrap();
    let err = nl.add_bridge("br-dup", None, None, None).unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST));
    let text = err.to_string();
    assert!(text.contains("br-dup"), "{text}");
    assert!(text.contains("EEXIST"), "{text}");

    let (a, _) = veth_pair(&mut nl, "ea", "eb");
    let err = nl
        .add_veth(&VethEnd::new("ea"), &VethEnd::new("ec"), None)
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    assert!(err.to_string().contains("ea"), "{err}");
    assert_eq!(nl.link_by_name("ec").unwrap(), None, "nothing half-made");

    let err = nl.del_link(a + 1000).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");

    let invalid = nl
        .add_bridge("a-name-much-too-long", None, None, None)
        .unwrap_err();
    assert!(matches!(invalid, DriverError::Invalid(_)), "{invalid}");

    let missing = lab_path_error();
    assert!(
        missing.contains("/nonexistent/weft-test/netns"),
        "{missing}"
    );
}

fn lab_path_error() -> String {
    Netns::open("/nonexistent/weft-test/netns")
        .unwrap_err()
        .to_string()
}

#[test]
fn netns_create_run_remove() {
    let Some(mut lab) = Lab::new("netns_create_run_remove") else {
        return;
    };
    let ns = lab.netns("ns");
    let path = lab.path("ns");
    assert_eq!(ns.path(), path);
    assert!(!ns.same_as_current());
    assert!(ns
        .run(|| Netns::open(&path).unwrap().same_as_current())
        .unwrap());
    assert!(Netns::open(&path)
        .unwrap()
        .run(|| ns.same_as_current())
        .unwrap());

    let err = Netns::create_at(&path).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let regular = lab.path("regular");
    std::fs::write(&regular, b"").unwrap();
    let err = Netns::open(&regular).unwrap_err();
    assert!(err.to_string().contains("not a namespace"), "{err}");
    std::fs::remove_file(&regular).unwrap();

    Netns::remove_at(&path).unwrap();
    Netns::remove_at(&path).unwrap();
    assert!(!path.exists());
    // The open handle keeps the namespace usable after its mount is gone.
    let mut nl = Netlink::open_in(&ns).unwrap();
    assert!(nl.link_by_name("lo").unwrap().is_some());
}

#[test]
fn sysctl_inside_a_namespace() {
    let Some(mut lab) = Lab::new("sysctl_inside_a_namespace") else {
        return;
    };
    let ns = lab.netns("a");
    let untouched = lab.netns("b");
    ns.run(|| sysctl::write("net/ipv4/ip_forward", "1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        ns.run(|| sysctl::read("net.ipv4.ip_forward"))
            .unwrap()
            .unwrap(),
        "1"
    );
    assert_eq!(
        untouched
            .run(|| sysctl::read("net/ipv4/ip_forward"))
            .unwrap()
            .unwrap(),
        "0",
        "a sysctl written in one namespace changed another"
    );

    // Interface names with dots need the slash form.
    let mut nl = Netlink::open_in(&ns).unwrap();
    nl.add_bridge("br.7", None, None, None).unwrap();
    let key = sysctl::iface_key("ipv4", "br.7", "route_localnet");
    ns.run(|| sysctl::write(&key, "1")).unwrap().unwrap();
    assert_eq!(ns.run(|| sysctl::read(&key)).unwrap().unwrap(), "1");
    assert_eq!(
        untouched.run(|| sysctl::read(&key)).unwrap().unwrap_err().to_string(),
        format!("sysctl {key}: no such key in this network namespace: the interface may not exist here, or the feature (e.g. IPv6) is disabled")
    );
}

#[test]
fn dump_returns_all_of_2000_routes() {
    let Some(mut lab) = Lab::new("dump_returns_all_of_2000_routes") else {
        return;
    };
    let ns = lab.netns("a");
    let mut nl = Netlink::open_in(&ns).unwrap();
    for i in 0..2000u32 {
        let mut route = Route::new(net(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256)));
        route.kind = RouteKind::Blackhole;
        route.table = 200;
        nl.add_route(&route).unwrap();
    }
    let routes = nl.routes(Some(IpFamily::V4), Some(200)).unwrap();
    assert_eq!(routes.len(), 2000);
    assert!(routes
        .iter()
        .all(|r| r.kind == RouteKind::Blackhole && r.table == 200));
}

/// Not an assertion: prints what one container attach costs in netlink (target ~1 ms).
#[test]
fn attach_cost_micro_check() {
    let Some(mut lab) = Lab::new("attach_cost_micro_check") else {
        return;
    };
    let host_ns = lab.netns("host");
    let mut host = Netlink::open_in(&host_ns).unwrap();
    let sandboxes: Vec<Netns> = (0..20).map(|i| lab.netns(&format!("c{i}"))).collect();
    let mut inside: Vec<Netlink> = sandboxes
        .iter()
        .map(|s| Netlink::open_in(s).unwrap())
        .collect();
    let mut costs = Vec::new();
    for (i, (sandbox, nl)) in sandboxes.iter().zip(inside.iter_mut()).enumerate() {
        let started = Instant::now();
        let host_end = VethEnd::new(format!("vh{i}"));
        let peer = VethEnd {
            mac: Some(mac("02:42:0a:01:00:02")),
            ..VethEnd::new("eth0")
        };
        host.add_veth(&host_end, &peer, Some(sandbox)).unwrap();
        let eth0 = nl.link_by_name("eth0").unwrap().unwrap().index;
        nl.add_address(eth0, net("10.1.0.2/24")).unwrap();
        nl.set_up(eth0).unwrap();
        let mut default = Route::new(net("0.0.0.0/0"));
        default.gateway = Some(ip("10.1.0.1"));
        default.oif = Some(eth0);
        default.onlink = true;
        nl.add_route(&default).unwrap();
        costs.push(started.elapsed());
    }
    costs.sort();
    eprintln!(
        "attach (add_veth into netns + link_by_name + add_address + set_up + add_route): \
         median {:?}, min {:?}, max {:?} over {} runs",
        costs[costs.len() / 2],
        costs[0],
        costs[costs.len() - 1],
        costs.len()
    );
}
