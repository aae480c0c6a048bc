//! `docker run --rm --network X bb true` against a private dockerd (run as root), for X = none,
//! a user-defined network of Docker's built-in bridge driver, and weft networks (with Docker's
//! IPAM and with weft's). Runs are interleaved round by round so drift hits every X alike.
//! Prints each median, the network overhead (median minus `none`) and the ratio weft/built-in.
//!
//! `cargo bench --bench docker_run [-- --runs N]` (default 30)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::docker::{docker_or_skip, DockerWorld};

const WARMUP: usize = 3;

struct Case {
    label: &'static str,
    network: &'static str,
    times: Vec<Duration>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    if !docker_or_skip("bench docker_run") {
        std::process::exit(1);
    }
    let d = DockerWorld::start();
    d.docker_ok(&["network", "create", "--subnet", "10.71.0.0/24", "builtin"]);
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--subnet",
        "10.72.0.0/24",
        "weft",
    ]);
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.73.0.0/24",
        "weft-ipam",
    ]);
    let mut cases = vec![
        case("none", "none"),
        case("built-in bridge", "builtin"),
        case("weft", "weft"),
        case("weft + weft IPAM", "weft-ipam"),
    ];
    println!("docker run --rm --network X bb true: {runs} runs each, interleaved, after {WARMUP} warm-up runs\n");
    for round in 0..WARMUP + runs {
        for c in cases.iter_mut() {
            let t = time_run(&d, c.network);
            if round >= WARMUP {
                c.times.push(t);
            }
        }
    }
    report(&cases);
}

fn case(label: &'static str, network: &'static str) -> Case {
    Case {
        label,
        network,
        times: Vec::new(),
    }
}

fn time_run(d: &DockerWorld, network: &str) -> Duration {
    let start = Instant::now();
    d.docker_ok(&["run", "--rm", "--network", network, "bb", "true"]);
    start.elapsed()
}

fn median(times: &[Duration]) -> Duration {
    let mut t = times.to_vec();
    t.sort();
    let n = t.len();
    if n % 2 == 1 {
        t[n / 2]
    } else {
        (t[n / 2 - 1] + t[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(cases: &[Case]) {
    let none = median(&cases[0].times);
    let overhead = |c: &Case| ms(median(&c.times)) - ms(none);
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>14}",
        "network", "median", "min", "max", "overhead"
    );
    for c in cases {
        let (min, max) = (
            c.times.iter().min().copied().unwrap_or_default(),
            c.times.iter().max().copied().unwrap_or_default(),
        );
        println!(
            "{:<18} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>12.1}ms",
            c.label,
            ms(median(&c.times)),
            ms(min),
            ms(max),
            overhead(c)
        );
    }
    let builtin = overhead(&cases[1]);
    println!();
    for c in &cases[2..] {
        let ratio = overhead(c) / builtin;
        println!(
            "ratio {} / built-in bridge overhead: {ratio:.2} (goal: at most 0.80{})",
            c.label,
            if ratio <= 0.8 { ", met" } else { ", NOT met" }
        );
    }
}
