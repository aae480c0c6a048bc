//! What a flannel user reaches for, against real etcd and daemons in namespaces: the leased
//! range (SubnetMin/SubnetMax), masquerade off, picking the public interface by regex or by
//! reachability, the subnet.env file, `weft cluster leave|rm`, and the health endpoint.

mod cluster_world;
mod support;

use std::time::Duration;

use cluster_world::{can_run, eventually, ClusterWorld, CLUSTER};
use support::net::{sa, tcp_request, tcp_server};

const TTL: u64 = 3;
const JOIN: Duration = Duration::from_secs(20);

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn start(address: &str) -> u32 {
    u32::from(
        address
            .split('/')
            .next()
            .unwrap()
            .parse::<std::net::Ipv4Addr>()
            .unwrap(),
    )
}

#[test]
fn subnet_min_and_max_bound_the_leases_and_bad_bounds_name_the_flag() {
    if !can_run("subnet min/max") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    let endpoint = w.endpoint();
    for (flag, value, needle) in [
        (
            "--subnet-min",
            "10.245.0.0",
            "--subnet-min 10.245.0.0 is outside",
        ),
        (
            "--subnet-max",
            "10.244.3.7",
            "--subnet-max 10.244.3.7 is not the start",
        ),
        (
            "--subnet-min",
            "10.244.3.0/25",
            "--subnet-min 10.244.3.0/25",
        ),
    ] {
        let out = w.hosts[0].weft(&[
            "cluster",
            "init",
            CLUSTER,
            "--network",
            "10.244.0.0/16",
            flag,
            value,
            "--etcd-endpoints",
            &endpoint,
        ]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    let out = w.hosts[0].weft(&[
        "cluster",
        "init",
        CLUSTER,
        "--network",
        "10.244.0.0/16",
        "--subnet-min",
        "10.244.9.0",
        "--subnet-max",
        "10.244.3.0",
        "--etcd-endpoints",
        &endpoint,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("above --subnet-max"),
        "{}",
        stderr(&out)
    );

    w.init_cluster(
        "host-gw",
        &[
            "--subnet-min",
            "10.244.10.0/24",
            "--subnet-max",
            "10.244.20.0",
        ],
    );
    for i in 0..2 {
        w.start_daemon(i, TTL, &[]);
    }
    let (min, max) = (start("10.244.10.0"), start("10.244.20.0"));
    for i in 0..2 {
        let subnet = w.hosts[i].wait_joined(JOIN);
        assert!(
            (min..=max).contains(&start(&subnet)),
            "host {i} leased {subnet}, outside 10.244.10.0 ..= 10.244.20.0"
        );
    }
}

#[test]
fn no_masquerade_keeps_the_container_address_toward_the_outside() {
    if !can_run("no masquerade") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    w.init_cluster("host-gw", &["--no-masquerade"]);
    w.start_daemon(0, TTL, &[]);
    w.hosts[0].wait_joined(JOIN);
    // "The outside": a namespace on the underlay, outside the cluster network, that routes
    // the cluster network back through host 0.
    let outside = w.ns("outside");
    w.underlay.sh(&format!(
        "ip link add out0 type veth peer name eth0 netns {} && ip link set out0 master ul up",
        outside.path.display()
    ));
    outside.sh(&format!(
        "ip addr add 192.168.100.200/24 dev eth0 && ip link set eth0 up && \
         ip route add 10.244.0.0/16 via {}",
        w.hosts[0].ip
    ));
    let (c0, a0) = w.container(0, "c0");
    let _srv = tcp_server(&outside, sa("192.168.100.200:7000"), "outside");
    let mut reply = String::new();
    let answered = eventually(Duration::from_secs(10), || {
        reply = tcp_request(&c0, sa("192.168.100.200:7000")).unwrap_or_default();
        !reply.is_empty()
    });
    assert!(
        answered,
        "no answer from the outside; log:\n{}",
        w.hosts[0].log()
    );
    assert_eq!(
        reply,
        format!("outside from {a0}"),
        "masqueraded although turned off"
    );
}

#[test]
fn iface_regex_and_iface_can_reach_pick_the_public_interface() {
    if !can_run("iface regex / can-reach") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("host-gw", &[]);
    // Host 0: `ens1` matches first by name but has no IPv4 address; `ens2` and `ens3` have
    // one: the first with an address in name order, ens2, is the underlay.
    w.hosts[0].ns.sh(
        "ip link add ens3 type veth peer name p3 && ip link add ens1 type veth peer name p1 && \
         ip link add ens2 type veth peer name p2 && \
         ip addr add 10.99.3.1/24 dev ens3 && ip addr add 10.99.2.1/24 dev ens2 && \
         ip link set ens1 up && ip link set ens2 up && ip link set ens3 up",
    );
    w.hosts[0].underlay_flags = vec!["--iface-regex".into(), "^ens[0-9]$".into()];
    // Host 1: the route to 10.200.0.0/16 leaves through `up0`.
    w.hosts[1].ns.sh(
        "ip link add up0 type veth peer name up1 && ip addr add 10.98.0.2/24 dev up0 && \
         ip link set up0 up && ip link set up1 up && \
         ip route add 10.200.0.0/16 via 10.98.0.1 dev up0",
    );
    w.hosts[1].underlay_flags = vec!["--iface-can-reach".into(), "10.200.5.5".into()];
    for i in 0..2 {
        w.start_daemon(i, TTL, &[]);
    }
    for (i, ip) in [(0, "10.99.2.1"), (1, "10.98.0.2")] {
        w.hosts[i].wait_joined(JOIN);
        let record = w.hosts[i].record().unwrap();
        assert_eq!(record["public_ip"], ip, "host {i}: {record}");
    }
    let leases = w.etcdctl(&[
        "get",
        "--prefix",
        "--print-value-only",
        "/weft/clusters/c1/subnets/",
    ]);
    let leases = String::from_utf8_lossy(&leases.stdout).into_owned();
    assert!(
        leases.contains("10.99.2.1") && leases.contains("10.98.0.2"),
        "{leases}"
    );
    w.hosts[0].stop();
    w.hosts[1].stop();

    // Refusals, exit 2, before anything runs: two ways of picking at once, a bad regex, no
    // match, no route.
    let endpoint = w.endpoint();
    let h = &w.hosts[1];
    let sock = w.dir().join("refused.sock");
    let sock = sock.to_str().unwrap();
    for (flags, needle) in [
        (
            &["--iface", "eth0", "--iface-regex", "eth"][..],
            "cannot be used with",
        ),
        (
            &[
                "--public-ip",
                "192.168.100.2",
                "--iface-can-reach",
                "10.200.0.1",
            ][..],
            "cannot be used with",
        ),
        (&["--iface-regex", "eth("][..], "not a regular expression"),
        (&["--iface-regex", "^wlan"][..], "no interface name matches"),
        (
            &["--iface-can-reach", "203.0.113.7"][..],
            "no route to 203.0.113.7",
        ),
    ] {
        let mut args = vec![
            "daemon",
            "--no-default-network",
            "--socket",
            sock,
            "--etcd-endpoints",
            &endpoint,
            "--cluster",
            CLUSTER,
        ];
        args.extend_from_slice(flags);
        let out = h.weft(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{flags:?}: {}", stderr(&out));
    }
}

#[test]
fn subnet_env_tells_other_tools_the_hosts_subnet() {
    if !can_run("subnet.env") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("vxlan", &[]);
    let custom = w.dir().join("elsewhere").join("flannel-subnet.env");
    w.start_daemon(0, TTL, &[]);
    w.start_daemon(1, TTL, &["--subnet-file", custom.to_str().unwrap()]);
    for (i, path) in [
        (0, w.hosts[0].state.join("subnet.env")),
        (1, custom.clone()),
    ] {
        let subnet: ipnet::Ipv4Net = w.hosts[i].wait_joined(JOIN).parse().unwrap();
        let gateway = format!("{}/24", subnet.hosts().next().unwrap());
        let want = format!(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET={gateway}\nFLANNEL_MTU=1450\n\
             FLANNEL_IPMASQ=true\nWEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET={gateway}\n\
             WEFT_MTU=1450\nWEFT_IPMASQ=true\n"
        );
        let mut text = String::new();
        let written = eventually(Duration::from_secs(10), || {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            text == want
        });
        assert!(
            written,
            "host {i} {}:\n{text}\nwanted:\n{want}",
            path.display()
        );
    }
    // The bridge's gateway is the address subnet.env names.
    let subnet: ipnet::Ipv4Net = w.hosts[0].subnet().unwrap().parse().unwrap();
    let addrs = w.hosts[0].ns.sh("ip -4 -o addr show");
    assert!(
        addrs.contains(&format!("{}/24", subnet.hosts().next().unwrap())),
        "{addrs}"
    );
}

#[test]
fn cluster_leave_gives_the_lease_back_at_once_and_rm_removes_the_cluster() {
    if !can_run("cluster leave / rm") {
        return;
    }
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster("host-gw", &[]);
    // A long TTL: routes that go within a second went because of the leave, not expiry.
    for i in 0..2 {
        w.start_daemon(i, 60, &[]);
    }
    let _s0 = w.hosts[0].wait_joined(JOIN);
    let s1 = w.hosts[1].wait_joined(JOIN);
    let route = format!("{s1} via {} dev eth0", w.hosts[1].ip);
    assert!(
        eventually(Duration::from_secs(10), || w.hosts[0]
            .routes()
            .contains(&route)),
        "{}",
        w.hosts[0].routes()
    );
    assert!(w.hosts[1].state.join("subnet.env").exists());

    let key = format!("/weft/clusters/{CLUSTER}/subnets/{}", s1.replace('/', "-"));
    assert!(
        !w.etcdctl(&["get", &key]).stdout.is_empty(),
        "no lease key {key}"
    );

    let out = w.hosts[1].weft(&["cluster", "leave", "other"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    w.hosts[1].weft_ok(&["cluster", "leave", CLUSTER]);
    assert!(
        eventually(Duration::from_secs(1), || !w.hosts[0]
            .routes()
            .contains(&route)),
        "host 0 still routes to the host that left: {}",
        w.hosts[0].routes()
    );
    let got = w.etcdctl(&["get", &key]);
    assert!(
        got.status.success() && got.stdout.is_empty(),
        "{key} still there: {got:?}"
    );
    assert!(w.hosts[1].running(), "the daemon serves on after leaving");
    assert_eq!(w.hosts[1].record().unwrap()["lease_held"], false);
    assert!(!w.hosts[1].state.join("subnet.env").exists());
    let out = w.hosts[1].weft(&["cluster", "leave"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already left"), "{}", stderr(&out));

    // rm: refused while host 0 holds its lease, done with --force, then nothing is left.
    let endpoint = w.endpoint();
    let rm = |extra: &[&str]| {
        let mut args = vec!["cluster", "rm", CLUSTER, "--etcd-endpoints", &endpoint];
        args.extend_from_slice(extra);
        w.hosts[1].weft(&args)
    };
    let out = rm(&[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 live lease"), "{}", stderr(&out));
    let out = rm(&["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let left = w.etcdctl(&["get", "--prefix", &format!("/weft/clusters/{CLUSTER}/")]);
    assert!(
        left.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
    let out = rm(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// `GET PATH` on 127.0.0.1:PORT inside `ns`: the status code and body.
fn http_get(ns: &cluster_world::Ns, port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let path = path.to_string();
    ns.open()
        .run(move || -> std::io::Result<(u16, String)> {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            let code = reply
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            Ok((code, body))
        })
        .ok()?
        .ok()
}

#[test]
fn healthz_answers_200_while_the_lease_is_held_and_503_with_the_reason_otherwise() {
    if !can_run("healthz") {
        return;
    }
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    w.init_cluster("host-gw", &[]);
    const PORT: u16 = 8285;
    w.start_daemon(0, TTL, &["--healthz", &format!("127.0.0.1:{PORT}")]);
    let subnet = w.hosts[0].wait_joined(JOIN);
    let ns = w.hosts[0].ns.clone();
    let mut got = None;
    let healthy = eventually(Duration::from_secs(10), || {
        got = http_get(&ns, PORT, "/healthz");
        matches!(&got, Some((200, _)))
    });
    assert!(healthy, "{got:?}; log:\n{}", w.hosts[0].log());
    assert_eq!(
        got.clone().unwrap().1,
        format!("ok: cluster {CLUSTER}, subnet {subnet}\n")
    );
    assert_eq!(http_get(&ns, PORT, "/other").map(|r| r.0), Some(404));

    // etcd gone: unhealthy within a renewal (a third of the 3 s TTL) or so, saying why.
    w.stop_etcd();
    let down = eventually(Duration::from_secs(15), || {
        got = http_get(&ns, PORT, "/healthz");
        matches!(&got, Some((503, body)) if body.contains("etcd unreachable"))
    });
    assert!(down, "{got:?}");
    w.start_etcd();
    let back = eventually(Duration::from_secs(20), || {
        got = http_get(&ns, PORT, "/healthz");
        matches!(&got, Some((200, _)))
    });
    assert!(back, "{got:?}; log:\n{}", w.hosts[0].log());

    // After leaving, the daemon holds no lease.
    w.hosts[0].weft_ok(&["cluster", "leave"]);
    got = http_get(&ns, PORT, "/healthz");
    assert!(
        matches!(&got, Some((503, body)) if body.contains("holds no lease")),
        "{got:?}"
    );
}
