//! CNI benchmark (run as root): N containers ADDed and kept, then DELeted, in one run on one
//! machine — with weft alone (2 port mappings each, `runtimeConfig.portMappings`) and with the
//! reference chain bridge + host-local + portmap (the same 2 mappings). Every plugin is run as a
//! runtime runs it (a process with the CNI environment and the config on stdin). Prints ADD and
//! DEL medians and p99s, the ratios, and how each one's ADD cost grows from the first 50
//! containers to the last 50.
//!
//! `cargo bench --bench cni [-- --containers N]`

#[path = "../tests/cni_support/mod.rs"]
mod cni_support;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cni_support::{conf, with_prev, Call, Runtime, REFERENCE_DIR};
use serde_json::{json, Value};
use support::{Ns, World};

/// Containers at each end whose ADD cost is compared.
const WINDOW: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--containers")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    if !support::root_or_skip("bench cni") {
        std::process::exit(1);
    }
    if !std::path::Path::new(REFERENCE_DIR).join("portmap").exists() {
        eprintln!("the CNI reference plugins are missing: run scripts/install-deps");
        std::process::exit(1);
    }
    println!("CNI ADD of {n} containers (kept), then DEL, 2 port mappings each\n");
    let weft = run_weft(n);
    let reference = run_reference(n);
    report(&weft, &reference);
}

struct Timings {
    name: &'static str,
    add: Vec<Duration>,
    del: Vec<Duration>,
}

fn containers(w: &mut World, prefix: &str, n: usize) -> Vec<Ns> {
    (0..n).map(|i| w.ns(&format!("{prefix}{i}"))).collect()
}

fn port_mappings(i: usize) -> Value {
    let p = 20000 + 2 * i;
    json!([
        {"hostPort": p, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": p + 1, "containerPort": 443, "protocol": "tcp"}
    ])
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn run_weft(n: usize) -> Timings {
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let cs = containers(&mut w, "w", n);
    let mut t = Timings {
        name: "weft",
        add: Vec::new(),
        del: Vec::new(),
    };
    let confs: Vec<Value> = (0..n)
        .map(|i| {
            conf(
                "1.0.0",
                "bench",
                &w.state,
                json!({"ipam": {"ranges": [[{"subnet": "10.200.0.0/16"}]]},
                       "capabilities": {"portMappings": true},
                       "runtimeConfig": {"portMappings": port_mappings(i)}}),
            )
        })
        .collect();
    let mut results = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let (out, d) = timed(|| rt.weft(&Call::new("ADD", &format!("w{i}"), Some(c)), &confs[i]));
        t.add.push(d);
        results.push(out.ok());
    }
    for (i, c) in cs.iter().enumerate() {
        let prev = with_prev(&confs[i], &results[i]);
        let (out, d) = timed(|| rt.weft(&Call::new("DEL", &format!("w{i}"), Some(c)), &prev));
        t.del.push(d);
        out.ok();
    }
    t
}

fn run_reference(n: usize) -> Timings {
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let cs = containers(&mut w, "r", n);
    let data = w.dir().join("host-local");
    let mut t = Timings {
        name: "bridge+host-local+portmap",
        add: Vec::new(),
        del: Vec::new(),
    };
    let bridge = json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibr0",
        "isGateway": true, "ipMasq": true, "hairpinMode": true,
        "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.201.0.0/16"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    let portmap = |i: usize| {
        json!({
            "cniVersion": "1.0.0", "name": "bench", "type": "portmap", "snat": true,
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": port_mappings(i)}
        })
    };
    let mut results = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let call = Call::new("ADD", &format!("r{i}"), Some(c));
        let (r, d) = timed(|| {
            let r1 = rt.exec("bridge", &call, &bridge).ok();
            rt.exec("portmap", &call, &with_prev(&portmap(i), &r1)).ok()
        });
        t.add.push(d);
        results.push(r);
    }
    for (i, c) in cs.iter().enumerate() {
        let call = Call::new("DEL", &format!("r{i}"), Some(c));
        let (_, d) = timed(|| {
            rt.exec("portmap", &call, &with_prev(&portmap(i), &results[i]))
                .ok();
            rt.exec("bridge", &call, &with_prev(&bridge, &results[i]))
                .ok();
        });
        t.del.push(d);
    }
    t
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(weft: &Timings, reference: &Timings) {
    println!(
        "{:<28}{:>12}{:>12}{:>12}{:>12}",
        "", "ADD p50", "ADD p99", "DEL p50", "DEL p99"
    );
    for t in [weft, reference] {
        println!(
            "{:<28}{:>9.2} ms{:>9.2} ms{:>9.2} ms{:>9.2} ms",
            t.name,
            ms(percentile(&t.add, 0.5)),
            ms(percentile(&t.add, 0.99)),
            ms(percentile(&t.del, 0.5)),
            ms(percentile(&t.del, 0.99)),
        );
    }
    let ratio = |a: Duration, b: Duration| ms(a) / ms(b);
    let add_ratio = ratio(percentile(&reference.add, 0.5), percentile(&weft.add, 0.5));
    println!(
        "\nreference/weft: ADD p50 {:.2}x, p99 {:.2}x; DEL p50 {:.2}x, p99 {:.2}x (goal: ADD p50 >= 3x: {})",
        add_ratio,
        ratio(percentile(&reference.add, 0.99), percentile(&weft.add, 0.99)),
        ratio(percentile(&reference.del, 0.5), percentile(&weft.del, 0.5)),
        ratio(percentile(&reference.del, 0.99), percentile(&weft.del, 0.99)),
        if add_ratio >= 3.0 { "met" } else { "MISSED" },
    );
    for t in [weft, reference] {
        let k = WINDOW.min(t.add.len() / 2).max(1);
        let first = percentile(&t.add[..k], 0.5);
        let last = percentile(&t.add[t.add.len() - k..], 0.5);
        let growth = ratio(last, first);
        let goal = match (t.name, growth <= 1.2) {
            ("weft", true) => " (goal: <= 1.2: met)",
            ("weft", false) => " (goal: <= 1.2: MISSED)",
            _ => "",
        };
        println!(
            "{}: ADD p50 of the last {k} / first {k} = {growth:.2} ({:.2} ms -> {:.2} ms){goal}",
            t.name,
            ms(first),
            ms(last),
        );
    }
}
