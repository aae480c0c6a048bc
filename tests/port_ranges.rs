//! Published port ranges at Docker users' scale: 10,000 ports on one endpoint, connected and
//! disconnected through the `weft` binary inside a throw-away host namespace. The port maps must
//! be empty of them afterwards. 100,000 ports on one host through the binary take minutes (the
//! store's one file per port, see `benches/port_ranges.rs`); the kernel side of that case is
//! `drivers/tests/firewall.rs`.

mod support;

use std::time::Instant;

use support::net::{sa, tcp_request, tcp_server};
use support::{addr_of, root_or_skip, World, UPLINK_HOST_V4, UPLINK_PEER_V4};

/// Elements of a port map in the host namespace (each is `key : data` after `elements =`).
fn elements(w: &World, map: &str) -> usize {
    let listing = w
        .host
        .sh(&format!("nft list map inet weft {map} 2>/dev/null || true"));
    listing
        .split_once("elements = {")
        .map_or(0, |(_, elements)| elements.matches(" : ").count())
}

/// How many published ports lead to `ip`, in every port map.
fn elements_to(w: &World, ip: &str) -> usize {
    let needle = format!(" : {ip} . ");
    ["ports4_any", "ports4_ip", "ports6_any", "ports6_ip"]
        .iter()
        .map(|m| {
            w.host
                .sh(&format!("nft list map inet weft {m} 2>/dev/null || true"))
                .matches(&needle)
                .count()
        })
        .sum()
}

#[test]
fn ten_thousand_ports_on_one_endpoint_publish_forward_and_unpublish() {
    if !root_or_skip("10,000 published ports") {
        return;
    }
    let mut w = World::new();
    let inet = w.internet();
    let c1 = w.ns("c1");
    w.weft_ok(&["network", "create", "wide", "--subnet", "10.91.0.0/24"]);

    let started = Instant::now();
    let ep = w.connect("wide", &c1, &["-p", "20000-29999:20000-29999"]);
    eprintln!("connect, 10,000 ports: {:?}", started.elapsed());
    let ip = addr_of(&ep, false);
    assert_eq!(elements_to(&w, &ip), 10_000);

    // A few of them forward, from outside the host, to listeners in the container.
    for port in [20000, 24567, 29999] {
        let _srv = tcp_server(&c1, sa(&format!("{ip}:{port}")), &format!("c1-{port}"));
        let reply = tcp_request(&inet, sa(&format!("{UPLINK_HOST_V4}:{port}")))
            .unwrap_or_else(|e| panic!("port {port} does not forward: {e}"));
        assert_eq!(reply, format!("c1-{port} from {UPLINK_PEER_V4}"));
    }

    let path = c1.path.display().to_string();
    let started = Instant::now();
    w.weft_ok(&["network", "disconnect", "wide", "--netns", &path]);
    eprintln!("disconnect, 10,000 ports: {:?}", started.elapsed());
    assert_eq!(elements_to(&w, &ip), 0, "elements left after disconnect");
    assert_eq!(elements(&w, "ports4_any"), 0);

    // The ports and the address are free again: the same range connects anew.
    let again = w.connect("wide", &c1, &["-p", "20000-29999:20000-29999"]);
    assert_eq!(addr_of(&again, false), ip, "the address was released");
    w.weft_ok(&["network", "disconnect", "wide", "--netns", &path]);
    assert_eq!(elements(&w, "ports4_any"), 0);
}
