//! The sharp edges a new user meets in the first hour: output into a pipe that closes early,
//! messages for mistyped networks and flags, log files free of terminal colour codes.

mod support;

use std::process::{Output, Stdio};

use support::{root_or_skip, World};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// `weft ARGS` in the world's host namespace with stdout a pipe whose read end is already
/// closed: every write gets EPIPE, as after `| head -1` has read its line.
fn into_closed_pipe(w: &World, args: &[&str]) -> Output {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    w.host
        .cmd(WEFT)
        .arg("--state-dir")
        .arg(&w.state)
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .expect("run weft")
}

#[test]
fn a_closed_stdout_ends_the_output_quietly_with_exit_0() {
    if !root_or_skip("closed stdout") {
        return;
    }
    let w = World::new();
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.70.0.0/24"]);
    for args in [
        &["network", "ls"][..],
        &["network", "inspect", "n1"],
        &["network", "ls", "--json"],
        &["status"],
    ] {
        let out = into_closed_pipe(&w, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && stderr.is_empty(),
            "weft {}: stderr: {stderr}",
            args.join(" ")
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "weft {}: {stderr}",
            args.join(" ")
        );
    }
    // A failing command keeps its own exit status and message.
    let out = into_closed_pipe(&w, &["network", "inspect", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\" not found"));
    // And the command's work is done: the pipe closing does not cut a create short.
    let out = into_closed_pipe(&w, &["network", "create", "n2", "--subnet", "10.71.0.0/24"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.weft_ok(&["network", "ls"]).contains("n2"));
}

#[test]
fn cidr_flags_say_what_is_wrong_with_the_network() {
    if !root_or_skip("cidr messages") {
        return;
    }
    let w = World::new();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["network", "create", "n", "--subnet", "10.244.0.0/33"],
            &[
                "10.244.0.0/33",
                "--subnet",
                "prefix length 33 is longer than 32 for IPv4",
            ],
        ),
        (
            &["network", "create", "n", "--subnet", "fd00::/129"],
            &["prefix length 129 is longer than 128 for IPv6"],
        ),
        (
            &["network", "create", "n", "--subnet", "10.244.0.0"],
            &["--subnet", "10.244.0.0 has no prefix length"],
        ),
        (
            &[
                "network",
                "create",
                "n",
                "--subnet",
                "10.1.0.0/16",
                "--ip-range",
                "10.1.0.0/40",
            ],
            &["--ip-range", "prefix length 40 is longer than 32"],
        ),
        (
            &["cluster", "init", "c", "--network", "10.244.0.0/33"],
            &["--network", "prefix length 33 is longer than 32 for IPv4"],
        ),
        (
            &["cluster", "init", "c", "--network", "fd00::/48"],
            &["fd00::/48 is an IPv6 network", "--network-v6"],
        ),
        (
            &[
                "cluster",
                "init",
                "c",
                "--network",
                "10.244.0.0/16",
                "--network-v6",
                "10.0.0.0/8",
            ],
            &["10.0.0.0/8 is an IPv4 network"],
        ),
    ];
    for (args, needles) in cases {
        let (code, stderr) = w.weft_err(args);
        assert_eq!(code, 2, "weft {}: {stderr}", args.join(" "));
        assert!(
            !stderr.contains("invalid IP address syntax"),
            "weft {}: {stderr}",
            args.join(" ")
        );
        for n in *needles {
            assert!(
                stderr.contains(n),
                "weft {}: stderr lacks {n:?}: {stderr}",
                args.join(" ")
            );
        }
    }
    // Valid IPv6 networks are taken: a v6 subnet creates a network, and the IPv6 cluster
    // network gets past parsing to the etcd connection (nothing listens on port 1 here).
    w.weft_ok(&[
        "network",
        "create",
        "v6",
        "--ipv6",
        "--subnet",
        "fd00:70::/64",
    ]);
    let (_, stderr) = w.weft_err(&[
        "cluster",
        "init",
        "c",
        "--network",
        "10.244.0.0/16",
        "--network-v6",
        "fd00:244::/48",
        "--etcd-endpoints",
        "http://127.0.0.1:1",
    ]);
    assert!(stderr.contains("etcd at"), "{stderr}");
}

/// A daemon that joins a cluster with `--public-ip` this host lacks: it fails before serving
/// anything (so no etcd is needed). `WEFT_DOCKER_FAIL` makes it log a warning first.
fn daemon_with_foreign_public_ip(w: &World) -> Output {
    let log = std::fs::File::create(w.dir().join("daemon.log")).expect("log file");
    let out = w
        .host
        .cmd(WEFT)
        .arg("--state-dir")
        .arg(&w.state)
        .args([
            "daemon",
            "--no-default-network",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
        ])
        .args(["--cluster", "pods", "--public-ip", "192.0.2.77"])
        .arg("--socket")
        .arg(w.dir().join("weft.sock"))
        .arg("--control-socket")
        .arg(w.dir().join("control.sock"))
        .env("WEFT_DOCKER_FAIL", "NetworkDriver.Join")
        .stdout(Stdio::null())
        .stderr(log)
        .output()
        .expect("run weft daemon");
    Output {
        stderr: std::fs::read(w.dir().join("daemon.log")).expect("read log"),
        ..out
    }
}

#[test]
fn a_foreign_public_ip_is_named_as_a_flag_not_a_cluster_config() {
    if !root_or_skip("public ip message") {
        return;
    }
    let w = World::new();
    let out = daemon_with_foreign_public_ip(&w);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--public-ip 192.0.2.77"), "{stderr}");
    assert!(!stderr.contains("invalid cluster config"), "{stderr}");
    assert!(!stderr.contains("weft cluster init"), "{stderr}");
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    if !root_or_skip("log colours") {
        return;
    }
    let w = World::new();
    let out = daemon_with_foreign_public_ip(&w);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("WARN"), "the daemon logged no warning: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in the log file: {log:?}"
    );
}
