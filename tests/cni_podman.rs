//! End to end with a real CNI runtime: podman 4.3.1 (`network_backend = "cni"`) runs busybox
//! containers on weft conflists. They reach each other and an "internet" namespace, a published
//! `-p 127.0.0.1:PORT:80` serves busybox httpd, and `podman rm` leaves nothing of them behind.

mod cni_support;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cni_support::Runtime;
use serde_json::{json, Value};
use support::net::{sa, tcp_server};
use support::podman::{podman_or_skip, Podman, IMAGE};
use support::{root_or_skip, Ns, World, UPLINK_HOST_V4, UPLINK_PEER_V4};

/// `GET /` on 127.0.0.1:`port` from inside `host`.
fn http_get(host: &Ns, port: u16) -> std::io::Result<String> {
    host.open()
        .run(move || {
            let mut s = TcpStream::connect_timeout(
                &sa(&format!("127.0.0.1:{port}")),
                Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        })
        .expect("enter the host namespace")
}

/// How many files (not directories) are under `dir`.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => files_under(&e.path()),
                    _ => 1,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The container's address on `network`, as podman recorded it from weft's result.
fn address(pm: &Podman, container: &str, network: &str) -> String {
    pm.ok(&[
        "inspect",
        "-f",
        &format!("{{{{.NetworkSettings.Networks.{network}.IPAddress}}}}"),
        container,
    ])
}

/// Runs the two containers, checks their traffic and published port, removes them, and checks
/// that nothing is left: no interface, no reservation, no published port, no namespace.
fn two_containers_then_nothing(w: &mut World, pm: &Podman, network: &str, port: u16) {
    let inet = w.internet();
    pm.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        network,
        "-p",
        &format!("127.0.0.1:{port}:80"),
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    pm.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        network,
        IMAGE,
        "sleep",
        "1000",
    ]);
    let web = address(pm, "web", network);
    assert!(
        web.starts_with("10."),
        "podman took weft's address: {web:?}"
    );
    assert_ne!(web, address(pm, "client", network));

    pm.ok(&["exec", "client", "ping", "-c1", "-W2", &web]);
    pm.ok(&[
        "exec",
        "web",
        "ping",
        "-c1",
        "-W2",
        &address(pm, "client", network),
    ]);
    let _srv = tcp_server(&inet, sa(&format!("{UPLINK_PEER_V4}:7000")), "internet");
    let reply = pm.ok(&["exec", "client", "nc", "-w", "3", UPLINK_PEER_V4, "7000"]);
    assert_eq!(
        reply,
        format!("internet from {UPLINK_HOST_V4}"),
        "masqueraded"
    );
    let page = http_get(&w.host, port).expect("the published port answers");
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    assert!(page.ends_with("hello from weft\n"), "{page}");

    pm.ok(&["rm", "--force", "--time", "0", "web", "client"]);
    let links = w.host.sh("ip -o link show");
    assert!(!links.contains("veth"), "veths left: {links}");
    assert!(http_get(&w.host, port).is_err(), "the port is withdrawn");
    assert_eq!(pm.sh("ls /run/netns"), "", "podman's namespaces are gone");
    assert_eq!(
        pm.sh("ls /var/lib/cni/results 2>/dev/null || true"),
        "",
        "libcni's cache is clean"
    );
    let inspect: Value =
        serde_json::from_str(&w.weft_ok(&["network", "inspect", network])).expect("inspect");
    assert_eq!(inspect[0]["endpoints"], json!([]), "no endpoint records");
    for (_, addrs) in inspect[0]["ipam"].as_object().unwrap() {
        assert_eq!(
            addrs.as_array().unwrap().len(),
            1,
            "only the gateway stays reserved: {addrs}"
        );
    }
    assert_eq!(
        files_under(&w.state.join("ports")),
        0,
        "no host port reservations"
    );
    let nft = w.host.sh("nft list map inet weft ports4_ip");
    assert!(!nft.contains(&port.to_string()), "{nft}");
}

#[test]
fn podman_runs_containers_on_a_weft_network() {
    if !root_or_skip("podman") || !podman_or_skip("podman") {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let pm = Podman::start(
        &w.host,
        w.dir(),
        &[
            &rt.bin_dir,
            std::path::Path::new(cni_support::REFERENCE_DIR),
        ],
    );
    pm.import_busybox();
    pm.add_network(
        "weftnet",
        &json!({
            "cniVersion": "1.0.0",
            "name": "weftnet",
            "plugins": [{
                "type": "weft", "bridge": "weftpm0", "stateDir": w.state,
                "ipam": {"ranges": [[{"subnet": "10.93.0.0/24"}]]},
                "capabilities": {"portMappings": true}
            }]
        }),
    );
    two_containers_then_nothing(&mut w, &pm, "weftnet", 18080);
}

#[test]
fn podman_runs_weft_chained_with_the_reference_plugins() {
    if !root_or_skip("podman chain")
        || !podman_or_skip("podman chain")
        || !cni_support::reference_or_skip("podman chain")
    {
        return;
    }
    let mut w = World::new();
    let rt = Runtime::new(&w);
    let pm = Podman::start(
        &w.host,
        w.dir(),
        &[
            &rt.bin_dir,
            std::path::Path::new(cni_support::REFERENCE_DIR),
        ],
    );
    pm.import_busybox();
    // The shape podman generates for its own networks, with weft in the bridge's place: the
    // reference portmap publishes the port from weft's result.
    pm.add_network(
        "weftchain",
        &json!({
            "cniVersion": "1.0.0",
            "name": "weftchain",
            "plugins": [
                {"type": "weft", "stateDir": w.state, "ipam": {"ranges": [[{"subnet": "10.94.0.0/24"}]]}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "firewall", "backend": "iptables"},
                {"type": "tuning"}
            ]
        }),
    );
    two_containers_then_nothing(&mut w, &pm, "weftchain", 18081);
    let nat = w.host.sh("iptables-save -t nat");
    assert!(!nat.contains("18081"), "portmap's rules are gone: {nat}");
}
