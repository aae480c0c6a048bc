//! Connect/disconnect benchmark (run as root): N endpoints with 2 published ports each, attached
//! to one network and then detached, with weft's bridge driver, weft's routed driver and — in the
//! same run, on the same machine — the CNI reference chain bridge + host-local + portmap. Prints
//! medians, p99s, the ratios, and how each one's connect cost grows from the first 100 to the
//! last 100.
//!
//! `cargo bench --bench connect [-- --endpoints N]`

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Ns, World};
use weft_drivers::netns::Netns;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .iter()
        .position(|a| a == "--endpoints")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    if !support::root_or_skip("bench connect") {
        std::process::exit(1);
    }
    let cni_dir = std::path::Path::new("/usr/lib/cni");
    if !cni_dir.join("portmap").exists() {
        eprintln!("the CNI reference plugins are missing: run scripts/install-deps");
        std::process::exit(1);
    }
    println!("connect/disconnect of {n} endpoints with 2 published ports each\n");
    let weft = run_weft(n, "bridge");
    let routed = run_weft(n, "routed");
    let cni = run_cni(n);
    report(&[&weft, &routed], &cni);
}

struct Timings {
    name: &'static str,
    connect: Vec<Duration>,
    disconnect: Vec<Duration>,
}

/// Runs `cmd` with the calling process's namespaces except the network one, which is `host`.
fn spawn_in(host: &Netns, mut cmd: Command, stdin: Option<&str>) -> (bool, String, String) {
    host.run(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().expect("wait");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .expect("enter host namespace")
}

fn containers(w: &mut World, prefix: &str, n: usize) -> Vec<Ns> {
    (0..n).map(|i| w.ns(&format!("{prefix}{i}"))).collect()
}

fn run_weft(n: usize, driver: &str) -> Timings {
    let mut w = World::new();
    let host = w.host.open();
    let cs = containers(&mut w, "w", n);
    w.weft_ok(&[
        "network",
        "create",
        "-d",
        driver,
        "bench",
        "--subnet",
        "10.200.0.0/16",
    ]);
    let bin = env!("CARGO_BIN_EXE_weft");
    let weft = |args: &[String]| {
        let mut c = Command::new(bin);
        c.arg("--state-dir").arg(&w.state).args(args);
        c
    };
    let mut t = Timings {
        name: if driver == "routed" {
            "weft routed"
        } else {
            "weft bridge"
        },
        connect: Vec::new(),
        disconnect: Vec::new(),
    };
    for (i, c) in cs.iter().enumerate() {
        let p = 20000 + 2 * i;
        let args: Vec<String> = ["network", "connect", "bench", "--netns"]
            .iter()
            .map(|s| s.to_string())
            .chain([
                c.path.display().to_string(),
                "-p".into(),
                format!("{p}:80"),
                "-p".into(),
                format!("{}:443", p + 1),
            ])
            .collect();
        let start = Instant::now();
        let (ok, _, err) = spawn_in(&host, weft(&args), None);
        t.connect.push(start.elapsed());
        assert!(ok, "weft connect {i}: {err}");
    }
    for (i, c) in cs.iter().enumerate() {
        let args: Vec<String> = ["network", "disconnect", "bench", "--netns"]
            .iter()
            .map(|s| s.to_string())
            .chain([c.path.display().to_string()])
            .collect();
        let start = Instant::now();
        let (ok, _, err) = spawn_in(&host, weft(&args), None);
        t.disconnect.push(start.elapsed());
        assert!(ok, "weft disconnect {i}: {err}");
    }
    w.weft_ok(&["network", "rm", "bench"]);
    t
}

const PLUGINS: [&str; 3] = ["bridge", "host-local", "portmap"];

fn run_cni(n: usize) -> Timings {
    let mut w = World::new();
    let host = w.host.open();
    let cs = containers(&mut w, "r", n);
    let data = w.dir().join("host-local");
    let mut t = Timings {
        name: "cni bridge+host-local+portmap",
        connect: Vec::new(),
        disconnect: Vec::new(),
    };
    let bridge_conf = |prev: Option<&str>| {
        let mut v = serde_json::json!({
            "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibr0",
            "isGateway": true, "ipMasq": true, "hairpinMode": true,
            "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.201.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}
        });
        if let Some(p) = prev {
            v["prevResult"] = serde_json::from_str(p).unwrap();
        }
        v
    };
    let portmap_conf = |i: usize, prev: Option<&str>| {
        let p = 20000 + 2 * i;
        let mut v = serde_json::json!({
            "cniVersion": "1.0.0", "name": "bench", "type": "portmap", "snat": true,
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": p, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": p + 1, "containerPort": 443, "protocol": "tcp"}]}
        });
        if let Some(prev) = prev {
            v["prevResult"] = serde_json::from_str(prev).unwrap();
        }
        v
    };
    let invoke = |plugin: &str, command: &str, i: usize, ns: &Ns, conf: &serde_json::Value| {
        let mut c = Command::new(format!("/usr/lib/cni/{plugin}"));
        c.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", format!("bench{i}"))
            .env("CNI_NETNS", &ns.path)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni");
        let (ok, out, err) = spawn_in(&host, c, Some(&conf.to_string()));
        assert!(ok, "{plugin} {command} {i}: {out}{err}");
        out
    };
    let mut results = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let start = Instant::now();
        let r1 = invoke(PLUGINS[0], "ADD", i, c, &bridge_conf(None));
        let r2 = invoke(PLUGINS[2], "ADD", i, c, &portmap_conf(i, Some(&r1)));
        t.connect.push(start.elapsed());
        results.push(r2);
    }
    for (i, c) in cs.iter().enumerate() {
        let start = Instant::now();
        invoke(PLUGINS[2], "DEL", i, c, &portmap_conf(i, Some(&results[i])));
        invoke(PLUGINS[0], "DEL", i, c, &bridge_conf(Some(&results[i])));
        t.disconnect.push(start.elapsed());
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

fn report(wefts: &[&Timings], cni: &Timings) {
    println!(
        "{:<34}{:>14}{:>14}{:>17}{:>17}",
        "", "connect p50", "connect p99", "disconnect p50", "disconnect p99"
    );
    for t in wefts.iter().copied().chain([cni]) {
        println!(
            "{:<34}{:>11.2} ms{:>11.2} ms{:>14.2} ms{:>14.2} ms",
            t.name,
            ms(percentile(&t.connect, 0.5)),
            ms(percentile(&t.connect, 0.99)),
            ms(percentile(&t.disconnect, 0.5)),
            ms(percentile(&t.disconnect, 0.99)),
        );
    }
    let ratio = |a: Duration, b: Duration| ms(a) / ms(b);
    println!();
    for weft in wefts {
        println!(
            "reference/{}: connect p50 {:.2}x, p99 {:.2}x; disconnect p50 {:.2}x, p99 {:.2}x (goal: connect p50 >= 3x)",
            weft.name,
            ratio(percentile(&cni.connect, 0.5), percentile(&weft.connect, 0.5)),
            ratio(percentile(&cni.connect, 0.99), percentile(&weft.connect, 0.99)),
            ratio(percentile(&cni.disconnect, 0.5), percentile(&weft.disconnect, 0.5)),
            ratio(percentile(&cni.disconnect, 0.99), percentile(&weft.disconnect, 0.99)),
        );
    }
    for t in wefts.iter().copied().chain([cni]) {
        let k = 100.min(t.connect.len() / 2).max(1);
        let first = percentile(&t.connect[..k], 0.5);
        let last = percentile(&t.connect[t.connect.len() - k..], 0.5);
        println!(
            "{}: connect p50 of the last {k} / first {k} = {:.2} ({:.2} ms -> {:.2} ms){}",
            t.name,
            ratio(last, first),
            ms(first),
            ms(last),
            if t.name.starts_with("weft") {
                " (goal: <= 1.2)"
            } else {
                ""
            }
        );
    }
}
