//! Every bad input gets a clear error, a non-zero exit code, and changes nothing: the host's
//! links, addresses, routes, nft ruleset and weft's store are the same before and after.

mod support;

use support::{root_or_skip, World};

/// Runs a failing weft command and checks its exit code, that stderr mentions each of
/// `needles`, and that nothing changed.
fn refused(w: &World, args: &[&str], code: i32, needles: &[&str]) {
    let before = w.snapshot();
    let (got, stderr) = w.weft_err(args);
    assert_eq!(
        got,
        code,
        "weft {}: exit code {got}, stderr: {stderr}",
        args.join(" ")
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "weft {}: stderr lacks {n:?}: {stderr}",
            args.join(" ")
        );
    }
    let after = w.snapshot();
    assert!(
        after == before,
        "weft {} changed something:\n{}",
        args.join(" "),
        support::line_diff(&before, &after)
    );
}

#[test]
fn network_create_refuses_bad_subnets_gateways_names_and_options() {
    if !root_or_skip("bad create") {
        return;
    }
    let w = World::new();
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.60.0.0/16"]);
    refused(
        &w,
        &["network", "create", "n2", "--subnet", "10.60.5.0/24"],
        4,
        &["overlaps", "10.60.0.0/16"],
    );
    refused(
        &w,
        &["network", "create", "n2", "--subnet", "10.61.0.0/33"],
        2,
        &["10.61.0.0/33"],
    );
    refused(
        &w,
        &["network", "create", "n2", "--subnet", "banana"],
        2,
        &["banana"],
    );
    refused(
        &w,
        &["network", "create", "n2", "--subnet", "10.61.2.3/16"],
        2,
        &["10.61.0.0/16"],
    );
    refused(
        &w,
        &[
            "network",
            "create",
            "n2",
            "--subnet",
            "10.61.0.0/24",
            "--gateway",
            "10.62.0.1",
        ],
        2,
        &["10.62.0.1"],
    );
    refused(
        &w,
        &[
            "network",
            "create",
            "n2",
            "--subnet",
            "10.61.0.0/24",
            "--ip-range",
            "10.61.1.0/25",
        ],
        2,
        &["10.61.1.0/25"],
    );
    refused(
        &w,
        &["network", "create", "n1"],
        4,
        &["n1", "already exists"],
    );
    refused(&w, &["network", "create", "bad name!"], 2, &["bad name!"]);
    refused(
        &w,
        &[
            "network",
            "create",
            "n2",
            "-o",
            "com.docker.network.driver.mtu=12",
        ],
        2,
        &["com.docker.network.driver.mtu"],
    );
    refused(
        &w,
        &[
            "network",
            "create",
            "n2",
            "-o",
            "com.docker.network.bridge.enable_icc=perhaps",
        ],
        2,
        &["enable_icc"],
    );
    refused(
        &w,
        &["network", "create", "n2", "-d", "nosuchdriver"],
        2,
        &["nosuchdriver"],
    );
    refused(
        &w,
        &["network", "create", "n2", "--subnet", "fd00:61::/64"],
        2,
        &["IPv6"],
    );
    // The bridge name belongs to someone else.
    w.host.sh("ip link add foreign type bridge");
    refused(
        &w,
        &[
            "network",
            "create",
            "n2",
            "-o",
            "com.docker.network.bridge.name=foreign",
        ],
        4,
        &["foreign"],
    );
}

#[test]
fn connect_refuses_bad_namespaces_addresses_ports_and_names() {
    if !root_or_skip("bad connect") {
        return;
    }
    let mut w = World::new();
    let (c1, c2, c3) = (w.ns("c1"), w.ns("c2"), w.ns("c3"));
    let (p1, p2, p3) = (
        c1.path.display().to_string(),
        c2.path.display().to_string(),
        c3.path.display().to_string(),
    );
    // /30: network, gateway, one container, broadcast.
    w.weft_ok(&["network", "create", "tiny", "--subnet", "10.70.0.0/30"]);
    w.weft_ok(&["network", "create", "big", "--subnet", "10.71.0.0/24"]);
    w.connect("tiny", &c1, &[]);
    refused(
        &w,
        &["network", "connect", "tiny", "--netns", &p2],
        4,
        &["exhausted"],
    );
    w.connect(
        "big",
        &c1,
        &["--ip", "10.71.0.10", "-p", "8080:80", "--ifname", "eth1"],
    );
    refused(
        &w,
        &[
            "network",
            "connect",
            "big",
            "--netns",
            &p2,
            "--ip",
            "10.71.0.10",
        ],
        4,
        &["10.71.0.10", "in use"],
    );
    refused(
        &w,
        &[
            "network",
            "connect",
            "big",
            "--netns",
            &p2,
            "--ip",
            "10.99.0.10",
        ],
        2,
        &["10.99.0.10", "outside"],
    );
    refused(
        &w,
        &["network", "connect", "big", "--netns", &p2, "-p", "8080:80"],
        4,
        &["8080", "already published"],
    );
    refused(
        &w,
        &[
            "network",
            "connect",
            "big",
            "--netns",
            &p2,
            "-p",
            "127.0.0.1:8080:80",
        ],
        4,
        &["8080"],
    );
    refused(
        &w,
        &[
            "network",
            "connect",
            "big",
            "--netns",
            &p2,
            "-p",
            "80:80/icmp",
        ],
        2,
        &["icmp"],
    );
    refused(
        &w,
        &["network", "connect", "big", "--netns", "/nonexistent/ns"],
        2,
        &["/nonexistent/ns"],
    );
    refused(
        &w,
        &["network", "connect", "big", "--netns", "/etc/hostname"],
        2,
        &["/etc/hostname"],
    );
    refused(
        &w,
        &["network", "connect", "nonet", "--netns", &p2],
        3,
        &["nonet", "not found"],
    );
    refused(
        &w,
        &[
            "network",
            "connect",
            "big",
            "--netns",
            &p2,
            "--mac",
            "01:00:5e:00:00:01",
        ],
        2,
        &["multicast"],
    );
    refused(
        &w,
        &[
            "network",
            "connect",
            "big",
            "--netns",
            &p2,
            "--ifname",
            "way-too-long-ifname",
        ],
        2,
        &["way-too-long-ifname"],
    );
    // An interface of that name already exists in the namespace.
    c3.sh("ip link add eth0 type bridge");
    refused(
        &w,
        &["network", "connect", "big", "--netns", &p3],
        4,
        &["eth0"],
    );
    // Connecting the same namespace and ifname twice.
    refused(
        &w,
        &[
            "network", "connect", "big", "--netns", &p1, "--ifname", "eth1",
        ],
        4,
        &["already exists"],
    );
}

#[test]
fn rm_and_disconnect_refuse_what_they_cannot_do() {
    if !root_or_skip("bad rm") {
        return;
    }
    let mut w = World::new();
    let c1 = w.ns("c1");
    w.weft_ok(&["network", "create", "busy", "--subnet", "10.72.0.0/24"]);
    w.connect("busy", &c1, &[]);
    refused(
        &w,
        &["network", "rm", "busy"],
        4,
        &["busy", "endpoint", "disconnect"],
    );
    refused(&w, &["network", "rm", "ghost"], 3, &["ghost"]);
    refused(
        &w,
        &["network", "disconnect", "busy", "--netns", "/nonexistent"],
        3,
        &["endpoint"],
    );
    refused(&w, &["network", "inspect", "ghost"], 3, &["ghost"]);
}

/// A namespace is one attachment whatever path names it: connect is refused through a second
/// path, and disconnect works through either; disconnecting a namespace that is not connected
/// names the namespace and the network.
#[test]
fn a_namespace_is_one_endpoint_whatever_path_names_it() {
    if !root_or_skip("namespace identity") {
        return;
    }
    let mut w = World::new();
    let c1 = w.ns("c1");
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.62.0.0/24"]);
    w.connect("n1", &c1, &[]);
    // A second name for the same namespace: /proc/PID/ns/net of a process inside it.
    let holder = std::process::Command::new("nsenter")
        .arg(format!("--net={}", c1.path.display()))
        .args(["sleep", "600"])
        .spawn()
        .expect("nsenter");
    let other = format!("/proc/{}/ns/net", holder.id());
    let inode = |p: &str| {
        std::fs::metadata(p)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    let target = inode(&c1.path.display().to_string());
    let same_ns = weft_testkit::eventually(std::time::Duration::from_secs(5), || {
        inode(&other) == target
    });
    assert!(same_ns, "nsenter did not enter {}", c1.path.display());
    refused(
        &w,
        &["network", "connect", "n1", "--netns", &other],
        4,
        &["already exists", "n1"],
    );
    w.weft_ok(&["network", "disconnect", "n1", "--netns", &other]);
    weft_testkit::stop_child(holder, std::time::Duration::from_secs(2));
    let c1_path = c1.path.display().to_string();
    refused(
        &w,
        &["network", "disconnect", "n1", "--netns", &c1_path],
        3,
        &[&c1_path, "not connected", "n1"],
    );
}

/// Inputs every consumer must refuse before anything changes: the network's own and broadcast
/// addresses, a zero or multicast MAC, and the host's own namespace.
#[test]
fn connect_refuses_unusable_addresses_macs_and_the_host_namespace() {
    if !root_or_skip("unusable endpoint input") {
        return;
    }
    let mut w = World::new();
    let c1 = w.ns("c1");
    let ns = c1.path.display().to_string();
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.63.0.0/24"]);
    for (ip, why) in [
        ("10.63.0.0", "network address"),
        ("10.63.0.255", "broadcast"),
    ] {
        refused(
            &w,
            &["network", "connect", "n1", "--netns", &ns, "--ip", ip],
            2,
            &[ip, why],
        );
    }
    for mac in ["00:00:00:00:00:00", "01:00:5e:00:00:01"] {
        refused(
            &w,
            &["network", "connect", "n1", "--netns", &ns, "--mac", mac],
            2,
            &[mac],
        );
    }
    // weft runs in the world's host namespace: that is "the host" here.
    refused(
        &w,
        &[
            "network",
            "connect",
            "n1",
            "--netns",
            "/proc/self/ns/net",
            "-p",
            "8080:80",
        ],
        2,
        &["host's own network namespace"],
    );
}

/// Unmounts (lazily) what a test mounted, also when it fails; dropped before the world.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A disconnect on a full disk releases the address and the ports (removing needs no space)
/// instead of exiting 0 with them still reserved.
#[test]
fn disconnect_on_a_full_disk_releases_everything() {
    if !root_or_skip("full disk") {
        return;
    }
    let mut w = World::new();
    std::fs::create_dir_all(&w.state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs"])
        .arg(&w.state)
        .status()
        .expect("mount");
    assert!(mounted.success(), "cannot mount a tmpfs for the state");
    let _unmount = Mounted(w.state.clone());
    let c1 = w.ns("c1");
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.64.0.0/24"]);
    let ep = w.connect("n1", &c1, &["-p", "8080:80"]);
    let addr = ep["addresses"][0]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // Fill the disk (a dot-file: the store skips those).
    let filler = w.state.join(".filler");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    assert!(
        std::fs::write(w.state.join(".probe"), vec![0u8; 64 * 1024]).is_err(),
        "the disk is not full"
    );
    let out = w.weft(&[
        "network",
        "disconnect",
        "n1",
        "--netns",
        &c1.path.display().to_string(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "disconnect on a full disk: {stderr}");
    let addrs: Vec<String> = std::fs::read_dir(w.state.join("ipam/addrs/10.64.0.0_24"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(!addrs.contains(&addr), "{addr} still reserved: {addrs:?}");
    assert!(
        !w.state.join("ports/tcp/8080").exists(),
        "host port 8080 still reserved"
    );
    std::fs::remove_file(&filler).unwrap();
    w.weft_ok(&["network", "rm", "n1"]);
}

/// One truncated record is reported with its path and skipped: listing, status, creating and
/// the daemon's repair go on for every other object.
#[test]
fn a_truncated_record_is_listed_and_skipped_not_fatal() {
    if !root_or_skip("corrupt record") {
        return;
    }
    let w = World::new();
    w.weft_ok(&["network", "create", "n1", "--subnet", "10.65.0.0/24"]);
    let id = w.weft_ok(&["network", "create", "n2", "--subnet", "10.65.1.0/24"]);
    let record = w.state.join("networks").join(id.trim());
    std::fs::write(&record, b"{\"id\": \"trunc").unwrap();
    let ls = w.weft_ok(&["network", "ls"]);
    assert!(ls.contains("n1"), "{ls}");
    w.weft_ok(&["network", "create", "n3", "--subnet", "10.65.2.0/24"]);
    let status = w.weft_ok(&["status"]);
    assert!(
        status.contains("CORRUPT RECORDS") && status.contains(&record.display().to_string()),
        "{status}"
    );
    let repaired = w.weft_ok(&["status", "--repair", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&repaired).unwrap();
    assert_eq!(v["corrupt"].as_array().unwrap().len(), 1, "{v}");
    // The damaged network's bridge is not taken for an orphan while its record is unreadable.
    let links = w.host.sh("ip -o link show type bridge | wc -l");
    assert_eq!(links.trim(), "3", "three bridges stay: {links}");
}
