//! Published port ranges at host scale (run as root): ten endpoints of 10,000 published ports
//! each (100,000 on one host: five TCP and five UDP ranges, 65,535 ports per protocol),
//! connected and then disconnected through the `weft` binary in a throw-away host namespace.
//! Prints each connect's and disconnect's time and checks that no port-map element is left.
//! A bench rather than a test: the store's one file per reserved port makes it take minutes.
//!
//! `cargo bench --bench port_ranges [-- --endpoints N]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::World;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u16 = args
        .iter()
        .position(|a| a == "--endpoints")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .min(10);
    if !support::root_or_skip("bench port_ranges") {
        std::process::exit(1);
    }
    let mut w = World::new();
    w.weft_ok(&["network", "create", "many", "--subnet", "10.92.0.0/24"]);
    let mut containers = Vec::new();
    let mut connect = Vec::new();
    for i in 0..n {
        let c = w.ns(&format!("c{i}"));
        let first = 10_000 * (1 + i / 2);
        let proto = if i % 2 == 0 { "tcp" } else { "udp" };
        let spec = format!(
            "{first}-{}:{first}-{}/{proto}",
            first + 9_999,
            first + 9_999
        );
        let t = Instant::now();
        w.connect("many", &c, &["-p", &spec]);
        connect.push(t.elapsed());
        containers.push(c);
    }
    let elements = count(&w);
    assert_eq!(elements, usize::from(n) * 10_000, "elements after connect");
    let mut disconnect = Vec::new();
    for c in &containers {
        let path = c.path.display().to_string();
        let t = Instant::now();
        w.weft_ok(&["network", "disconnect", "many", "--netns", &path]);
        disconnect.push(t.elapsed());
    }
    assert_eq!(count(&w), 0, "elements left after disconnect");
    let total = |v: &[Duration]| v.iter().sum::<Duration>();
    println!("{n} endpoints x 10,000 published ports ({elements} map elements)");
    println!(
        "connect:    total {:?}, each {:?}",
        total(&connect),
        connect
    );
    println!(
        "disconnect: total {:?}, each {:?}",
        total(&disconnect),
        disconnect
    );
}

/// Elements of the IPv4 all-addresses port map.
fn count(w: &World) -> usize {
    w.host
        .sh("nft list map inet weft ports4_any 2>/dev/null || true")
        .split_once("elements = {")
        .map_or(0, |(_, e)| e.matches(" : ").count())
}
