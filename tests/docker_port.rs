//! `weft port` against a real dockerd: Docker drops a remote driver's port answer, so weft
//! must show what it published (fixed, picked, on one address, ranges, udp, `-P`), and each
//! port it shows must answer. `weft network ls`/`inspect` show Docker's names.

mod cni_support;
mod support;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

use support::docker::{docker_or_skip, DockerWorld};
use support::net::{sa, tcp_request, tcp_server, udp_request, udp_server, Server};
use support::{eventually, Ns, UPLINK_HOST_V4};

/// `weft ARGS` in the world with DOCKER_HOST set to `docker_host`.
fn weft(d: &DockerWorld, docker_host: &str, args: &[&str]) -> Output {
    d.enter(env!("CARGO_BIN_EXE_weft"))
        .arg("--state-dir")
        .arg(&d.world.state)
        .args(args)
        .env("DOCKER_HOST", docker_host)
        .output()
        .expect("run weft")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Servers inside the container's namespace on each container port, named after it.
fn servers(d: &DockerWorld, container: &str, tcp: &[u16], udp: &[u16]) -> Vec<Server> {
    let ns = Ns {
        name: container.to_string(),
        path: d.dockerd.netns_of(container),
    };
    let mut out = Vec::new();
    for p in tcp {
        out.push(tcp_server(
            &ns,
            sa(&format!("0.0.0.0:{p}")),
            &format!("{container}-{p}/tcp"),
        ));
    }
    for p in udp {
        out.push(udp_server(
            &ns,
            sa(&format!("0.0.0.0:{p}")),
            &format!("{container}-{p}/udp"),
        ));
    }
    out
}

/// `80/tcp -> 0.0.0.0:8081` lines as (container port/proto, host ip, host port).
fn parse(out: &str) -> Vec<(String, String, u16)> {
    out.lines()
        .map(|l| {
            let (from, to) = l.split_once(" -> ").unwrap_or_else(|| panic!("line {l:?}"));
            let (ip, port) = to.rsplit_once(':').expect("HOST:PORT");
            (
                from.to_string(),
                ip.to_string(),
                port.parse().expect("port"),
            )
        })
        .collect()
}

/// Every shown binding answers with the server of its container port: 0.0.0.0 and the
/// uplink's address from the "internet", 127.0.0.1 from the host.
fn check_answers(d: &DockerWorld, inet: &Ns, container: &str, shown: &[(String, String, u16)]) {
    for (from, ip, port) in shown {
        let (ns, addr) = match ip.as_str() {
            "0.0.0.0" => (inet, UPLINK_HOST_V4.to_string()),
            "127.0.0.1" => (d.host(), ip.clone()),
            _ => (inet, ip.clone()),
        };
        let to = sa(&format!("{addr}:{port}"));
        let want = format!("{container}-{from} from");
        let mut got = String::new();
        assert!(
            eventually(Duration::from_secs(5), || {
                let r = if from.ends_with("/udp") {
                    udp_request(ns, to)
                } else {
                    tcp_request(ns, to)
                };
                got = r.unwrap_or_else(|e| e.to_string());
                got.starts_with(&want)
            }),
            "{container}: {from} shown at {ip}:{port} does not answer through {to}: {got}"
        );
    }
}

#[test]
fn weft_port_shows_what_weft_published_and_each_port_answers() {
    if !docker_or_skip("weft port with dockerd") {
        return;
    }
    let mut d = DockerWorld::start();
    let inet = d.world.internet();
    let api = format!("unix://{}", d.dockerd.dir().join("docker.sock").display());
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "weft",
        "--ipam-driver",
        "weft",
        "--subnet",
        "10.63.0.0/24",
        "pn",
    ]);
    let net_id = d.network_id("pn");

    // Fixed ports, a range and udp.
    let fixed_id = d.run_sleeper(
        "fixed",
        &[
            "--network",
            "pn",
            "-p",
            "8081:80",
            "-p",
            "8082-8083:81-82",
            "-p",
            "5353:53/udp",
        ],
    );
    let _f = servers(&d, "fixed", &[80, 81, 82], &[53]);
    let out = ok(&weft(&d, &api, &["port", "fixed"]), "weft port fixed");
    assert_eq!(
        out,
        "53/udp -> 0.0.0.0:5353\n80/tcp -> 0.0.0.0:8081\n81/tcp -> 0.0.0.0:8082\n82/tcp -> 0.0.0.0:8083\n"
    );
    check_answers(&d, &inet, "fixed", &parse(&out));
    // By id and by id prefix, as docker takes them; one port; one udp port.
    assert_eq!(ok(&weft(&d, &api, &["port", &fixed_id]), "by id"), out);
    assert_eq!(
        ok(&weft(&d, &api, &["port", &fixed_id[..12]]), "by prefix"),
        out
    );
    assert_eq!(
        ok(&weft(&d, &api, &["port", "fixed", "80"]), "one"),
        "0.0.0.0:8081\n"
    );
    assert_eq!(
        ok(&weft(&d, &api, &["port", "fixed", "53/udp"]), "udp"),
        "0.0.0.0:5353\n"
    );
    let none = weft(&d, &api, &["port", "fixed", "99"]);
    assert_eq!(
        none.status.code(),
        Some(3),
        "no such published port is not found"
    );
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains("no public port '99/tcp' published for fixed"),
        "{err}"
    );
    let docker_view = d.docker_ok(&["port", "fixed"]);
    eprintln!("docker port fixed (Docker drops remote drivers' ports): {docker_view:?}");

    // Picked host ports: one address with no host port, and -P of --expose'd ports.
    d.run_sleeper(
        "picked",
        &[
            "--network",
            "pn",
            "-p",
            &format!("{UPLINK_HOST_V4}::80"),
            "-p",
            "127.0.0.1::85",
            "--expose",
            "90",
            "--expose",
            "91/udp",
            "-P",
        ],
    );
    let _p = servers(&d, "picked", &[80, 85, 90], &[91]);
    let out = ok(&weft(&d, &api, &["port", "picked"]), "weft port picked");
    let shown = parse(&out);
    let by_port: BTreeMap<&str, (&str, u16)> = shown
        .iter()
        .map(|(f, ip, p)| (f.as_str(), (ip.as_str(), *p)))
        .collect();
    assert_eq!(
        by_port.keys().copied().collect::<Vec<_>>(),
        ["80/tcp", "85/tcp", "90/tcp", "91/udp"],
        "{out}"
    );
    assert_eq!(by_port["80/tcp"].0, UPLINK_HOST_V4, "{out}");
    assert_eq!(by_port["85/tcp"].0, "127.0.0.1", "{out}");
    assert_eq!(by_port["90/tcp"].0, "0.0.0.0", "{out}");
    assert_eq!(by_port["91/udp"].0, "0.0.0.0", "{out}");
    assert!(
        shown.iter().all(|(_, _, p)| *p >= 1024),
        "picked ports are free high ports: {out}"
    );
    check_answers(&d, &inet, "picked", &shown);

    // Not a container anywhere: not found, and says where it looked.
    let missing = weft(&d, &api, &["port", "nosuchthing"]);
    assert_eq!(missing.status.code(), Some(3));

    // Docker's names in ls and inspect; without dockerd's API, ids and a note.
    let ls = ok(&weft(&d, &api, &["network", "ls"]), "ls");
    let line = ls
        .lines()
        .find(|l| l.starts_with(&net_id[..12]))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(
        line.split_whitespace().nth(1) == Some("pn"),
        "Docker's name: {ls}"
    );
    let inspect = ok(&weft(&d, &api, &["network", "inspect", &net_id]), "inspect");
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("json");
    assert_eq!(v[0]["network"]["docker_name"], "pn", "{inspect}");
    let mut names: Vec<&str> = v[0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["container"]["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["fixed", "picked"], "{inspect}");
    let gone = "unix:///nonexistent/docker.sock";
    let out = weft(&d, gone, &["network", "ls"]);
    let ls = ok(&out, "ls without dockerd");
    assert!(ls.contains(&format!("docker-{}", &net_id[..12])), "{ls}");
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(
        note.contains("not reachable") && note.contains("/nonexistent/docker.sock"),
        "{note}"
    );

    for c in ["fixed", "picked"] {
        d.docker_ok(&["rm", "-f", c]);
    }
    d.docker_ok(&["network", "rm", "pn"]);
    assert_eq!(d.weft_traces(), "", "weft left objects behind");
}

/// A namespace connected with `weft network connect`: `weft port PATH` (and another path to
/// the same namespace) shows its ports; no dockerd is asked for more than the name.
#[test]
fn weft_port_of_a_cli_namespace() {
    if !support::root_or_skip("weft port of a namespace") {
        return;
    }
    let mut w = support::World::new();
    let c1 = w.ns("c1");
    w.weft_ok(&["network", "create", "pp", "--subnet", "10.64.0.0/24"]);
    w.connect("pp", &c1, &["-p", "8080:80", "-p", "127.0.0.1::53/udp"]);
    let run = |args: &[&str]| {
        w.host
            .cmd(env!("CARGO_BIN_EXE_weft"))
            .arg("--state-dir")
            .arg(&w.state)
            .args(args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .output()
            .expect("run weft")
    };
    let path = c1.path.display().to_string();
    let out = ok(&run(&["port", &path]), "weft port PATH");
    let shown = parse(&out);
    assert_eq!(shown.len(), 2, "{out}");
    assert_eq!(shown[0].0, "53/udp");
    assert_eq!(shown[0].1, "127.0.0.1");
    assert_eq!(shown[1], ("80/tcp".into(), "0.0.0.0".into(), 8080), "{out}");
    // The same namespace through /proc/PID/ns/net of a process inside it.
    let mut sleeper = c1.cmd("sleep").arg("30").spawn().expect("a process in c1");
    let proc_path = format!("/proc/{}/ns/net", sleeper.id());
    // nsenter enters c1 after spawn returns: wait until the process is inside.
    let inode = |p: &str| {
        std::fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .ok()
    };
    assert!(
        eventually(Duration::from_secs(5), || inode(&proc_path) == inode(&path)),
        "the sleeper did not enter c1"
    );
    let by_proc = run(&["port", &proc_path]);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(ok(&by_proc, "weft port /proc/PID/ns/net"), out);
    let missing = run(&["port", "/nonexistent/ns"]);
    assert_eq!(missing.status.code(), Some(3));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent/ns") && err.contains("not reachable"),
        "{err}"
    );
    w.weft_ok(&["network", "disconnect", "pp", "--netns", &path]);
    w.weft_ok(&["network", "rm", "pp"]);
}

/// A CNI container: `weft port CONTAINER_ID` shows what its ADD published.
#[test]
fn weft_port_of_a_cni_container() {
    if !support::root_or_skip("weft port of a CNI container") {
        return;
    }
    let mut w = support::World::new();
    let rt = cni_support::Runtime::new(&w);
    let c1 = w.ns("c1");
    let c = cni_support::conf(
        "1.0.0",
        "portnet",
        &w.state,
        serde_json::json!({"ipam": {"type": "weft", "ranges": [[{"subnet": "10.65.0.0/24"}]]},
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [
                {"hostPort": 8085, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5355, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]}}),
    );
    rt.weft(&cni_support::Call::new("ADD", "cnictr1", Some(&c1)), &c)
        .ok();
    let out = w
        .host
        .cmd(env!("CARGO_BIN_EXE_weft"))
        .arg("--state-dir")
        .arg(&w.state)
        .args(["port", "cnictr1"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run weft");
    assert_eq!(
        ok(&out, "weft port CNI_CONTAINERID"),
        "53/udp -> 127.0.0.1:5355\n80/tcp -> 0.0.0.0:8085\n"
    );
    rt.weft(&cni_support::Call::new("DEL", "cnictr1", Some(&c1)), &c)
        .ok();
}
