//! `weft daemon` on one host without Docker: the default network, the plugin socket, a clean
//! stop that leaves networking in place, and a restart that finds everything again.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use support::{eventually, root_or_skip, World};

/// The daemon, stopped with SIGTERM (by PID) when dropped.
use weft_testkit::StopOnDrop as Daemon;

fn start(w: &World, socket: &std::path::Path) -> Daemon {
    let child = w
        .host
        .cmd(env!("CARGO_BIN_EXE_weft"))
        .arg("--state-dir")
        .arg(&w.state)
        .args(["daemon", "--socket"])
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start weft daemon");
    let d = Daemon(child);
    assert!(
        eventually(Duration::from_secs(10), || socket.exists()),
        "the daemon never opened {}",
        socket.display()
    );
    d
}

fn post(socket: &std::path::Path, path: &str) -> String {
    let mut s = UnixStream::connect(socket).expect("connect to the plugin socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn daemon_makes_the_default_network_serves_and_stops_cleanly() {
    if !root_or_skip("daemon") {
        return;
    }
    let mut w = World::new();
    let c1 = w.ns("c1");
    let socket = w.dir().join("plugins/weft.sock");
    let mut d = start(&w, &socket);
    let reply = post(&socket, "/Plugin.Activate");
    assert!(
        reply.contains("NetworkDriver") && reply.contains("IpamDriver"),
        "{reply}"
    );

    let inspect: serde_json::Value =
        serde_json::from_str(&w.weft_ok(&["network", "inspect", "weft"])).unwrap();
    assert_eq!(inspect[0]["kernel"]["bridge"]["name"], "weft0");
    assert_eq!(inspect[0]["kernel"]["bridge"]["present"], true);
    assert_eq!(
        inspect[0]["network"]["subnets"][0]["subnet"], "172.17.0.0/16",
        "Docker's first default pool"
    );
    // The CLI works next to the daemon on the same state.
    w.connect("weft", &c1, &[]);
    assert!(c1.ping("172.17.0.1"));

    // SIGTERM: exit 0, socket gone, container still connected.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = d.0.wait().unwrap();
    assert!(status.success(), "daemon exit: {status}");
    assert!(!socket.exists(), "socket left behind");
    assert!(
        c1.ping("172.17.0.1"),
        "networking was torn down at shutdown"
    );

    // A second start finds the default network instead of making another.
    let _d2 = start(&w, &socket);
    let ls = w.weft_ok(&["network", "ls", "-q"]);
    let status = w.weft_ok(&["status"]);
    assert_eq!(ls.lines().count(), 3, "none, host and weft only: {ls}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("weft ") && l.ends_with("ok")),
        "{status}"
    );
}
