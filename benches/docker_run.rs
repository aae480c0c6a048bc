//! `docker run --rm --network X bb true` against a private dockerd (run as root), for X = none,
//! a user-defined network of Docker's built-in bridge driver, and weft networks (with Docker's
//! IPAM and with weft's). Runs are interleaved round by round, each round starting one case later,
//! so drift and the previous run's clean-up hit every X alike.
//! Prints each median, the network overhead (median minus `none`, and paired: per round, minus
//! that round's `none` run) and the ratio weft/built-in of the paired overheads.
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
        // Each round starts one case later: a run can pay for the clean-up dockerd is still
        // doing after the one before it, and rotating spreads that over every case alike.
        let n = cases.len();
        for i in 0..n {
            let c = &mut cases[(round + i) % n];
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

/// The median over rounds of `c`'s time minus `none`'s in the same round: a round's runs are
/// back to back, so drift and bursts of background load cancel out of the difference, which the
/// difference of two medians keeps.
fn paired_overhead(c: &Case, none: &Case) -> f64 {
    let mut d: Vec<f64> = c
        .times
        .iter()
        .zip(&none.times)
        .map(|(t, n)| ms(*t) - ms(*n))
        .collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        d[n / 2]
    } else {
        (d[n / 2 - 1] + d[n / 2]) / 2.0
    }
}

fn report(cases: &[Case]) {
    let none = median(&cases[0].times);
    let overhead = |c: &Case| ms(median(&c.times)) - ms(none);
    let paired = |c: &Case| paired_overhead(c, &cases[0]);
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>14} {:>18}",
        "network", "median", "min", "max", "overhead", "paired overhead"
    );
    for c in cases {
        let (min, max) = (
            c.times.iter().min().copied().unwrap_or_default(),
            c.times.iter().max().copied().unwrap_or_default(),
        );
        println!(
            "{:<18} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>12.1}ms {:>16.1}ms",
            c.label,
            ms(median(&c.times)),
            ms(min),
            ms(max),
            overhead(c),
            paired(c)
        );
    }
    println!();
    for c in &cases[2..] {
        let of_medians = overhead(c) / overhead(&cases[1]);
        let ratio = paired(c) / paired(&cases[1]);
        println!(
            "ratio {} / built-in bridge overhead: {ratio:.2} paired ({of_medians:.2} from the medians) (goal: at most 0.80{})",
            c.label,
            if ratio <= 0.8 { ", met" } else { ", NOT met" }
        );
    }
    println!("\noverhead: median minus none's median; paired overhead: the median over rounds of the run minus none's run in the same round (the ratio's basis)");
}
