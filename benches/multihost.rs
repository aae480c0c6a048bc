//! Multi-host benchmark (run as root), all in one run on this machine:
//!
//! 1. iperf3, one TCP stream container to container across two "hosts", with weft's vxlan and
//!    host-gw backends (`weft daemon --cluster`, real etcd) and with the same topology made by
//!    hand the way flannel does it (`ip link add … type vxlan`, `bridge fdb`, `ip neigh`,
//!    `ip route`, plus flannel's forward-accept and masquerade rules): Gbit/s and the ratio weft / hand-made
//!    (goal ≥ 0.97). Rounds alternate weft and hand-made so background load hits both alike.
//! 2. 1,000 peer leases: the time until one agent has programmed all of them (written in one
//!    etcd transaction while it runs, and present when it starts), and the time from one new
//!    lease to its route in the kernel (goals: < 1 s, < 100 ms).
//!
//! `cargo bench --bench multihost [-- --seconds N --rounds N --leases N]` (defaults: 6 s, 15 rounds:
//! about 7 minutes; fewer rounds cannot tell a few per cent from this machine's noise)

#[path = "../tests/cluster_world/mod.rs"]
mod cluster_world;

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_world::{eventually, ClusterWorld, Ns, CLUSTER};
use weft_drivers::backend::ROUTE_PROTOCOL;
use weft_drivers::netlink::{IpFamily, Netlink};
use weft_ipam::cluster::etcd::{Etcd, EtcdAccess};
use weft_ipam::cluster::{Keys, LeaseValue};

struct Options {
    seconds: u64,
    rounds: usize,
    leases: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        seconds: value("--seconds", 6),
        rounds: value("--rounds", 15) as usize,
        leases: value("--leases", 1000) as usize,
    }
}

fn main() {
    let opts = options();
    if !cluster_world::can_run("bench multihost") {
        std::process::exit(1);
    }
    if !Command::new("sh")
        .args(["-c", "command -v iperf3"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("iperf3 is missing: run scripts/install-deps");
        std::process::exit(1);
    }
    println!("# iperf3, one stream, container to container across two hosts");
    println!(
        "# {} s per run, {} rounds, medians; ratio: the median over rounds of weft / hand-made in the same round\n",
        opts.seconds, opts.rounds
    );
    let mut rows = Vec::new();
    for backend in ["vxlan", "host-gw"] {
        let (mut weft, mut hand) = (Vec::new(), Vec::new());
        for round in 0..opts.rounds {
            // Which goes first alternates, so neither always runs on the warmer machine.
            if round % 2 == 0 {
                weft.push(iperf(&weft_pair(backend), opts.seconds));
                hand.push(iperf(&hand_pair(backend), opts.seconds));
            } else {
                hand.push(iperf(&hand_pair(backend), opts.seconds));
                weft.push(iperf(&weft_pair(backend), opts.seconds));
            }
        }
        // A round's two runs are back to back: their ratio cancels the drift of a shared machine.
        let ratios = weft.iter().zip(&hand).map(|(w, h)| w / h).collect();
        rows.push((backend, median(weft), median(hand), median(ratios)));
    }
    println!(
        "{:<10}{:>12}{:>14}{:>10}",
        "backend", "weft Gbit/s", "hand Gbit/s", "ratio"
    );
    for (backend, weft, hand, ratio) in &rows {
        println!(
            "{backend:<10}{weft:>12.2}{hand:>14.2}{ratio:>10.3}{}",
            if *ratio >= 0.97 {
                ""
            } else {
                "  (below the 0.97 goal)"
            }
        );
    }
    println!();
    leases(&opts);
}

/// Two containers on two hosts, and whatever keeps their world alive.
struct Pair {
    _world: ClusterWorld,
    client: Ns,
    server: Ns,
    server_ip: String,
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[runs.len() / 2]
}

fn iperf(pair: &Pair, seconds: u64) -> f64 {
    let mut server = pair
        .server
        .cmd("iperf3")
        .args(["-s", "-1", "-B", &pair.server_ip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    let listening = eventually(Duration::from_secs(5), || {
        pair.server
            .cmd("ss")
            .args(["-Hltn", "sport = :5201"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty())
    });
    assert!(listening, "iperf3 server did not start");
    let out = pair
        .client
        .cmd("iperf3")
        .args(["-c", &pair.server_ip, "-J", "-t", &seconds.to_string()])
        .output()
        .expect("iperf3 client");
    stop(&mut server);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 failed: {}", String::from_utf8_lossy(&out.stdout)))
        / 1e9
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// weft: etcd, two daemons, a container on each host.
fn weft_pair(backend: &str) -> Pair {
    let mut w = ClusterWorld::new(2);
    w.start_etcd();
    w.init_cluster(backend, &[]);
    for i in 0..2 {
        w.start_daemon(i, 10, &[]);
    }
    for i in 0..2 {
        w.hosts[i].wait_joined(Duration::from_secs(20));
    }
    let (client, client_ip) = w.container(0, "c0");
    let (server, server_ip) = w.container(1, "c1");
    assert!(
        eventually(Duration::from_secs(10), || client.ping(&server_ip)),
        "weft {backend}: {client_ip} cannot reach {server_ip}"
    );
    Pair {
        _world: w,
        client,
        server,
        server_ip,
    }
}

/// The same topology by hand, flannel-style: a bridge with the subnet's first address, a veth
/// into the container, and per peer either VXLAN entries or a plain route.
fn hand_pair(backend: &str) -> Pair {
    let mut w = ClusterWorld::new(2);
    let vxlan = backend == "vxlan";
    let mtu = if vxlan { 1450 } else { 1500 };
    let mut containers = Vec::new();
    for i in 0..2usize {
        let n = i + 1;
        let c = w.ns(&format!("c{i}"));
        let host = &w.hosts[i].ns;
        host.sh(&format!(
            "echo 1 > /proc/sys/net/ipv4/ip_forward && \
             ip link add cbr0 type bridge && ip link set cbr0 mtu {mtu} && \
             ip addr add 10.244.{n}.1/24 dev cbr0 && ip link set cbr0 up && \
             ip link add vc{i} mtu {mtu} type veth peer name eth0 mtu {mtu} netns {} && \
             ip link set vc{i} master cbr0 up",
            c.path.display()
        ));
        c.sh(&format!(
            "ip addr add 10.244.{n}.2/24 dev eth0 && ip link set eth0 up && \
             ip route add default via 10.244.{n}.1"
        ));
        if vxlan {
            host.sh(&format!(
                "ip link add flannel.1 address 0a:01:c0:a8:64:0{n} type vxlan id 1 \
                 local 192.168.100.{n} dev eth0 dstport 8472 nolearning && \
                 ip link set flannel.1 mtu 1450 up && ip addr add 10.244.{n}.0/32 dev flannel.1"
            ));
        }
        // flannel's own rules: accept forwarding to and from the cluster network (its
        // FLANNEL-FWD chain) and masquerade only what leaves it. They put the path through a
        // filter chain and conntrack, as weft's nft table does.
        host.sh("nft -f - <<'EOF'
table ip flannel {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr 10.244.0.0/16 accept
    ip daddr 10.244.0.0/16 accept
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return
    ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade
  }
}
EOF");
        containers.push(c);
    }
    for i in 0..2usize {
        let (n, m) = (i + 1, 2 - i);
        let host = &w.hosts[i].ns;
        if vxlan {
            host.sh(&format!(
                "bridge fdb append 0a:01:c0:a8:64:0{m} dst 192.168.100.{m} dev flannel.1 && \
                 ip neigh replace 10.244.{m}.0 lladdr 0a:01:c0:a8:64:0{m} dev flannel.1 nud permanent && \
                 ip route add 10.244.{m}.0/24 via 10.244.{m}.0 dev flannel.1 onlink"
            ));
        } else {
            host.sh(&format!(
                "ip route add 10.244.{m}.0/24 via 192.168.100.{m} dev eth0"
            ));
        }
        let _ = n;
    }
    let server = containers.pop().unwrap();
    let client = containers.pop().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || client.ping("10.244.2.2")),
        "hand-made {backend}: no connectivity"
    );
    Pair {
        _world: w,
        client,
        server,
        server_ip: "10.244.2.2".into(),
    }
}

/// The lease-scale measurements on one host running a vxlan agent.
fn leases(opts: &Options) {
    let n = opts.leases;
    println!("# {n} peer leases, vxlan agent on one host (routes, neighbours and FDB entries)");
    let mut w = ClusterWorld::new(1);
    w.etcd_flags = vec!["--max-txn-ops".into(), (n + 10).to_string()];
    w.start_etcd();
    w.init_cluster_on("10.0.0.0/8", "vxlan", &[]);
    w.start_daemon(0, 30, &[]);
    w.hosts[0].wait_joined(Duration::from_secs(20));
    let host = w.hosts[0].ns.clone();
    let mut kernel = Netlink::open_in(&host.open()).expect("netlink in the host");
    let mut etcd = EtcdIn::new(&w);

    // (a) All at once while the agent runs: one transaction, then poll the kernel.
    let batch: Vec<(String, Vec<u8>)> = (0..n).map(|i| peer_lease(&w, 100 + i)).collect();
    let started = Instant::now();
    etcd.put_all(batch);
    let written = started.elapsed();
    let all = wait_routes(&mut kernel, n, Duration::from_secs(30)).map(|_| started.elapsed());
    println!(
        "all {n} programmed, agent running:   {:>8.1} ms from sending the write (the write took {:.1} ms){}",
        ms(all),
        written.as_secs_f64() * 1e3,
        goal(all, Duration::from_secs(1))
    );

    // (b) One new lease at a time with the others in place.
    let mut one = Vec::new();
    for k in 0..20 {
        let (key, value) = peer_lease(&w, 100 + n + k);
        let subnet = subnet_of(100 + n + k);
        let started = Instant::now();
        etcd.put_all(vec![(key, value)]);
        one.push(
            wait_route(&mut kernel, subnet, Duration::from_secs(5)).map(|_| started.elapsed()),
        );
    }
    let mut ok: Vec<Duration> = one.iter().flatten().copied().collect();
    ok.sort();
    if ok.len() == one.len() {
        let median = ok[ok.len() / 2];
        println!(
            "one new lease to its route:         {:>8.1} ms median, {:.1} ms max over {} leases{}",
            median.as_secs_f64() * 1e3,
            ok.last().unwrap().as_secs_f64() * 1e3,
            ok.len(),
            goal(Some(*ok.last().unwrap()), Duration::from_millis(100))
        );
    } else {
        println!(
            "one new lease to its route: {} of {} never appeared",
            one.len() - ok.len(),
            one.len()
        );
    }

    // (c) A restarted agent finds them all in etcd: start-up reconciliation.
    w.hosts[0].stop();
    let total = n + 20;
    clear_routes(&host);
    let started = Instant::now();
    w.start_daemon(0, 30, &[]);
    let all = wait_routes(&mut kernel, total, Duration::from_secs(30)).map(|_| started.elapsed());
    println!(
        "all {total} programmed, agent start: {:>8.1} ms from process start (incl. start-up and the etcd read){}",
        ms(all),
        goal(all, Duration::from_secs(1))
    );
}

fn ms(d: Option<Duration>) -> f64 {
    d.map(|d| d.as_secs_f64() * 1e3).unwrap_or(f64::NAN)
}

fn goal(d: Option<Duration>, limit: Duration) -> &'static str {
    match d {
        Some(d) if d < limit => "",
        Some(_) => "  (over the goal)",
        None => "  (timed out)",
    }
}

/// The i-th fake peer: subnet 10.(i/256).(i%256).0/24, VTEP MAC and public address derived
/// from i (nobody answers there; only the kernel entries matter).
fn peer_lease(w: &ClusterWorld, i: usize) -> (String, Vec<u8>) {
    let _ = w;
    let keys = Keys::new("/weft", CLUSTER);
    let value = LeaseValue {
        public_ip: IpAddr::from([172, 16, (i / 256) as u8, (i % 256) as u8]),
        node_id: format!("fake{i}"),
        hostname: format!("fake{i}"),
        subnet_v6: None,
        backend_data: serde_json::json!({
            "vtep_mac": format!("0a:01:ac:10:{:02x}:{:02x}", i / 256, i % 256)
        }),
    };
    (keys.subnet(subnet_of(i)), value.encode())
}

fn subnet_of(i: usize) -> ipnet::Ipv4Net {
    format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap()
}

/// Routes weft programmed, counted by polling the kernel.
fn count_routes(nl: &mut Netlink) -> usize {
    nl.routes(Some(IpFamily::V4), Some(254))
        .map(|r| r.iter().filter(|r| r.protocol == ROUTE_PROTOCOL).count())
        .unwrap_or(0)
}

fn wait_routes(nl: &mut Netlink, n: usize, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    eventually_fast(timeout, || count_routes(nl) >= n).then(|| started.elapsed())
}

fn wait_route(nl: &mut Netlink, subnet: ipnet::Ipv4Net, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    let dest = ipnet::IpNet::V4(subnet);
    eventually_fast(timeout, || {
        nl.routes(Some(IpFamily::V4), Some(254))
            .map(|r| {
                r.iter()
                    .any(|r| r.destination == dest && r.protocol == ROUTE_PROTOCOL)
            })
            .unwrap_or(false)
    })
    .then(|| started.elapsed())
}

/// Polls every millisecond (a measurement, not a synchronisation: the resolution matters).
fn eventually_fast(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn clear_routes(host: &Ns) {
    host.sh("ip route flush proto 87");
}

/// An etcd client whose sockets live in the underlay namespace (etcd listens there): a thread
/// that entered it runs a small runtime and serves requests.
struct EtcdIn {
    requests: std::sync::mpsc::Sender<Batch>,
}

/// Keys to write in one transaction, and where to say it is done.
type Batch = (Vec<(String, Vec<u8>)>, std::sync::mpsc::Sender<()>);

impl EtcdIn {
    fn new(w: &ClusterWorld) -> EtcdIn {
        let (tx, rx) = std::sync::mpsc::channel::<Batch>();
        let underlay = w.underlay.open();
        let endpoint = w.endpoint();
        std::thread::spawn(move || {
            nix::sched::setns(&underlay, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the underlay");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut etcd = Etcd::connect(&EtcdAccess::new(vec![endpoint]))
                    .await
                    .expect("etcd");
                let lease = etcd.grant(600).await.expect("grant");
                while let Ok((kvs, done)) = rx.recv() {
                    etcd.put_all(kvs, lease).await.expect("write leases");
                    let _ = done.send(());
                }
            });
        });
        EtcdIn { requests: tx }
    }

    /// Writes the keys in one transaction and waits for etcd's answer.
    fn put_all(&mut self, kvs: Vec<(String, Vec<u8>)>) {
        let (done, wait) = std::sync::mpsc::channel();
        self.requests.send((kvs, done)).expect("etcd thread");
        wait.recv().expect("etcd answered");
    }
}
