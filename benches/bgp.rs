//! BGP route programming benchmark (run as root, needs BIRD 2): a generator BIRD announces
//! 10,000 and 100,000 prefixes to one receiver at a time — weft's `bgp` backend, or a BIRD
//! programming its own kernel table — each in network namespaces of its own on one underlay.
//! Prints, per size, the time from the generator starting to announce until every prefix is
//! in the receiver's kernel table, the ratio (goal: weft at least as fast as BIRD), memory per
//! route (weft: this process's RSS growth; BIRD: the receiver's), and the time from a
//! withdrawal at the generator to the route gone from the kernel (median of several).
//!
//! Each size runs `--rounds` times, weft and BIRD alternating (the machine is shared and
//! noisy); the table shows medians.
//!
//! `cargo bench --bench bgp [-- --sizes 10000,100000 --rounds 3 --withdrawals 7]`

#[path = "../bgp/tests/support/mod.rs"]
mod support;

use std::os::fd::AsFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::cluster::World;
use support::daemons::Bird;
use weft_bgp::backend::{BgpBackendConfig, ExternalPeer};
use weft_drivers::backend::Backend;

/// The generator's address on the underlay.
const GENERATOR: &str = "192.168.0.254";
/// Where the bulk prefixes live (64.0.0.0/24, 64.0.1.0/24, …: room for 262,144 /24s).
const BULK: &str = "64.0.0.0/6";
/// The first bulk prefix.
const BULK_BASE: u32 = 0x4000_0000;
/// The prefix withdrawn and re-announced to time withdrawals.
const PROBE: &str = "17.0.0.0/24";
/// The longest a round may take.
const ROUND_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let sizes: Vec<usize> = arg("--sizes")
        .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    assert!(
        sizes.iter().all(|n| *n <= 1 << 18),
        "at most 262144 prefixes fit {BULK}"
    );
    let withdrawals: usize = arg("--withdrawals")
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);
    let rounds: usize = arg("--rounds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    if let Some(why) = support::skip_reason(&["bird", "birdc"]) {
        eprintln!("bench bgp cannot run: {why}");
        std::process::exit(1);
    }
    println!("BGP feed into the kernel: generator BIRD → receiver (weft bgp backend | BIRD 2 kernel protocol)\n");
    let mut rows = Vec::new();
    for &n in &sizes {
        let (mut wefts, mut birds) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            // Alternate who goes first, so neither always meets the same background load.
            let order = if r % 2 == 0 {
                [Receiver::Weft, Receiver::Bird]
            } else {
                [Receiver::Bird, Receiver::Weft]
            };
            for receiver in order {
                let o = round(n, receiver, withdrawals);
                print_round(n, receiver, &o);
                match receiver {
                    Receiver::Weft => wefts.push(o),
                    Receiver::Bird => birds.push(o),
                }
            }
        }
        rows.push((n, median(wefts), median(birds)));
    }
    println!();
    println!(
        "{:>8}  {:>12}  {:>12}  {:>9}  {:>10}  {:>10}  {:>9}  {:>12}  {:>12}  {:>13}  {:>13}",
        "prefixes",
        "weft install",
        "bird install",
        "bird/weft",
        "weft span",
        "bird span",
        "bird/weft",
        "weft B/route",
        "bird B/route",
        "weft withdraw",
        "bird withdraw"
    );
    for (n, w, b) in rows {
        println!(
            "{:>8}  {:>12}  {:>12}  {:>8.2}x  {:>10}  {:>10}  {:>8.2}x  {:>12.0}  {:>12.0}  {:>13}  {:>13}",
            n,
            fmt(w.install),
            fmt(b.install),
            b.install.as_secs_f64() / w.install.as_secs_f64(),
            fmt(w.span),
            fmt(b.span),
            b.span.as_secs_f64() / w.span.as_secs_f64(),
            w.bytes_per_route,
            b.bytes_per_route,
            fmt(w.withdraw),
            fmt(b.withdraw),
        );
    }
    println!(
        "\nmedians of {rounds} round(s) (by install time); install: from `birdc enable` at the \
         generator to the last prefix in the kernel; span: first prefix to last in the \
         kernel; bird/weft > 1 means weft was faster; \
         B/route is resident memory growth (weft: this process after malloc_trim; bird: the \
         receiving BIRD)"
    );
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Receiver {
    Weft,
    Bird,
}

struct Outcome {
    /// From the generator's start to the last prefix in the kernel.
    install: Duration,
    /// From the first prefix in the kernel to the last: the receiver's own pace.
    span: Duration,
    bytes_per_route: f64,
    withdraw: Duration,
}

/// The outcome with the median install time (its other figures come along).
fn median(mut v: Vec<Outcome>) -> Outcome {
    v.sort_by_key(|o| o.install);
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

fn print_round(n: usize, who: Receiver, o: &Outcome) {
    let who = format!("{who:?}").to_lowercase();
    println!(
        "{who:>4} {n:>7} prefixes: all in the kernel after {} (first to last {}), {:.0} B/route, withdrawal → kernel {}",
        fmt(o.install),
        fmt(o.span),
        o.bytes_per_route,
        fmt(o.withdraw)
    );
}

fn fmt(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

/// One receiver, `n` prefixes, in a world of its own.
fn round(n: usize, receiver: Receiver, withdrawals: usize) -> Outcome {
    let (mut world, hosts) = World::new(if receiver == Receiver::Weft { 1 } else { 0 });
    let (receiver_ns, receiver_ip) = match receiver {
        Receiver::Weft => (hosts[0].ns.clone(), "192.168.0.1"),
        Receiver::Bird => (world.attach("b2", 2), "192.168.0.2"),
    };
    let gen_ns = world.attach("g254", 254);
    let gen_dir = tempfile::tempdir().unwrap();
    let generator = Bird::start(&gen_ns, gen_dir.path(), &generator_conf(n, receiver_ip));
    let rcv_dir = tempfile::tempdir().unwrap();
    let (weft, bird) = match receiver {
        Receiver::Weft => {
            let cfg = BgpBackendConfig {
                connect_retry: 1,
                startup_grace: 1,
                external_peers: vec![ExternalPeer {
                    address: GENERATOR.parse().unwrap(),
                    asn: 65000,
                    port: 179,
                    passive: false,
                    max_prefixes: None,
                }],
                accept_from_external: vec![BULK.parse().unwrap(), "17.0.0.0/8".parse().unwrap()],
                ..Default::default()
            };
            (Some(hosts[0].start(cfg).0), None)
        }
        Receiver::Bird => (
            None,
            Some(Bird::start(&receiver_ns, rcv_dir.path(), &receiver_conf())),
        ),
    };
    // weft's figure is this process's live heap growth: freed memory is handed back to the
    // system first (malloc_trim), so allocator slack after the burst does not count.
    let rss = || match &bird {
        Some(b) => rss_bytes(b.proc.pid().as_raw() as u32),
        None => {
            // SAFETY: malloc_trim only releases free heap pages.
            unsafe { libc::malloc_trim(0) };
            rss_bytes(std::process::id())
        }
    };
    let watch = RouteWatch::open(&receiver_ns);
    let probe = prefix_of(PROBE);
    // The session is up once the probe is in the kernel.
    if !has_route(&receiver_ns, PROBE) {
        watch.wait(|e| e.added && e.prefix == probe, ROUND_LIMIT);
    }
    // Steady state: weft's one-time start-up sync against the kernel is done.
    if let Some(w) = &weft {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !w.kernel_status().unwrap().synced {
            assert!(
                Instant::now() < deadline,
                "weft never finished its start-up sync"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let rss_before = rss();
    let start = Instant::now();
    generator.birdc("enable feed");
    // Done at the kernel's notification of the n-th distinct bulk prefix.
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut first = None;
    let done = watch.wait(
        |e| {
            let bulk = e.added && in_bulk(e.prefix);
            if bulk {
                first.get_or_insert(e.at);
            }
            bulk && seen.insert(e.prefix.0) && seen.len() == n
        },
        ROUND_LIMIT,
    );
    let install = done.duration_since(start);
    let span = done.duration_since(first.expect("a first route"));
    assert_eq!(
        count_routes(&receiver_ns, BULK),
        n,
        "{receiver:?}: the kernel table"
    );
    if let Some(w) = &weft {
        w.flush().unwrap();
    }
    let rss_after = rss();
    let bytes_per_route = rss_after.saturating_sub(rss_before) as f64 / n as f64;

    let mut times = Vec::new();
    for _ in 0..withdrawals {
        let t0 = Instant::now();
        generator.birdc("disable probe");
        let gone = watch.wait(|e| !e.added && e.prefix == probe, ROUND_LIMIT);
        times.push(gone.duration_since(t0));
        generator.birdc("enable probe");
        watch.wait(|e| e.added && e.prefix == probe, ROUND_LIMIT);
    }
    times.sort();
    let withdraw = times[times.len() / 2];

    if let Some(w) = weft {
        w.teardown().unwrap();
    }
    drop(bird);
    drop(generator);
    Outcome {
        install,
        span,
        bytes_per_route,
        withdraw,
    }
}

/// The generator: `n` bulk prefixes (disabled until the measurement starts), the probe, and
/// a session to the receiver.
fn generator_conf(n: usize, receiver: &str) -> String {
    let mut routes = String::with_capacity(n * 40);
    for i in 0..n as u32 {
        let net = BULK_BASE + (i << 8);
        let o = net.to_be_bytes();
        routes.push_str(&format!(
            "  route {}.{}.{}.0/24 blackhole;\n",
            o[0], o[1], o[2]
        ));
    }
    format!(
        r#"router id {GENERATOR};
protocol device {{ scan time 60; }}
protocol static feed {{
  disabled;
  ipv4;
{routes}}}
protocol static probe {{ ipv4; route {PROBE} blackhole; }}
protocol bgp receiver {{
  local {GENERATOR} as 65000;
  neighbor {receiver} as 64512;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 {{ import none; export all; }};
}}
"#
    )
}

/// The BIRD receiver: BGP from the generator into its own kernel table.
fn receiver_conf() -> String {
    format!(
        r#"router id 192.168.0.2;
protocol device {{ scan time 60; }}
protocol kernel {{ learn off; scan time 3600; ipv4 {{ import none; export all; }}; }}
protocol bgp generator {{
  local 192.168.0.2 as 64512;
  neighbor {GENERATOR} as 65000;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  ipv4 {{ import all; export none; }};
}}
"#
    )
}

fn count_routes(ns: &str, root: &str) -> usize {
    let out = Command::new("ip")
        .args(["-n", ns, "-4", "route", "show", "root", root])
        .output()
        .expect("ip route");
    out.stdout.iter().filter(|b| **b == b'\n').count()
}

fn has_route(ns: &str, prefix: &str) -> bool {
    count_routes(ns, prefix) > 0
}

/// Resident set size of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn prefix_of(text: &str) -> (u32, u8) {
    let net: ipnet::Ipv4Net = text.parse().unwrap();
    (u32::from(net.addr()), net.prefix_len())
}

fn in_bulk((addr, len): (u32, u8)) -> bool {
    let (base, bits) = prefix_of(BULK);
    len == 24 && addr >> (32 - bits) == base >> (32 - bits)
}

/// One IPv4 main-table route change the kernel announced.
struct RouteEvent {
    added: bool,
    prefix: (u32, u8),
    at: Instant,
}

/// The kernel's IPv4 route notifications (RTNLGRP_IPV4_ROUTE) of one namespace, timestamped
/// as they arrive by a reader thread: exact completion times without dumping a 100,000-route
/// table over and over (which would steal the CPU the receivers need).
struct RouteWatch {
    events: mpsc::Receiver<Vec<RouteEvent>>,
    pending: std::cell::RefCell<std::collections::VecDeque<RouteEvent>>,
}

impl RouteWatch {
    fn open(ns: &str) -> RouteWatch {
        let fd = support::cluster::in_ns(ns, netlink_route_listener);
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || read_events(fd, tx));
        RouteWatch {
            events,
            pending: Default::default(),
        }
    }

    /// Waits for the first event `f` accepts and returns when it arrived.
    fn wait(&self, mut f: impl FnMut(&RouteEvent) -> bool, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        let mut pending = self.pending.borrow_mut();
        loop {
            while let Some(e) = pending.pop_front() {
                if f(&e) {
                    return e.at;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            pending.extend(
                self.events
                    .recv_timeout(left)
                    .expect("the awaited route change never came"),
            );
        }
    }
}

/// A NETLINK_ROUTE socket in the calling thread's namespace, subscribed to IPv4 route
/// changes, with a receive buffer large enough for a 100,000-route burst.
fn netlink_route_listener() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls with valid, live arguments; the fd is owned from here on.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        assert!(
            fd >= 0,
            "netlink socket: {}",
            std::io::Error::last_os_error()
        );
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let size: libc::c_int = 512 << 20;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::RTMGRP_IPV4_ROUTE as u32;
        let rc = libc::bind(
            fd,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "bind netlink: {}", std::io::Error::last_os_error());
        owned
    }
}

/// Parses RTM_NEWROUTE / RTM_DELROUTE of the main table until the bench ends.
fn read_events(fd: std::os::fd::OwnedFd, tx: mpsc::Sender<Vec<RouteEvent>>) {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        // SAFETY: recv into a live buffer of the given length.
        let len = unsafe {
            libc::recv(
                fd.as_fd().as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
            )
        };
        if len < 0 {
            let e = std::io::Error::last_os_error();
            assert_ne!(
                e.raw_os_error(),
                Some(libc::ENOBUFS),
                "route notifications were lost"
            );
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        let at = Instant::now();
        let mut batch = Vec::new();
        let mut off = 0usize;
        let data = &buf[..len as usize];
        while off + 16 <= data.len() {
            let msg_len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(data[off + 4..off + 6].try_into().unwrap());
            if msg_len < 16 || off + msg_len > data.len() {
                break;
            }
            let msg = &data[off..off + msg_len];
            off += (msg_len + 3) & !3;
            let added = match kind {
                libc::RTM_NEWROUTE => true,
                libc::RTM_DELROUTE => false,
                _ => continue,
            };
            // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
            let Some(rtm) = msg.get(16..28) else { continue };
            if rtm[4] != libc::RT_TABLE_MAIN {
                continue;
            }
            let dst_len = rtm[1];
            let mut attr = 28;
            let mut dst = 0u32;
            while attr + 4 <= msg.len() {
                let a_len = u16::from_ne_bytes(msg[attr..attr + 2].try_into().unwrap()) as usize;
                let a_kind = u16::from_ne_bytes(msg[attr + 2..attr + 4].try_into().unwrap());
                if a_len < 4 || attr + a_len > msg.len() {
                    break;
                }
                if a_kind == libc::RTA_DST && a_len == 8 {
                    dst = u32::from_be_bytes(msg[attr + 4..attr + 8].try_into().unwrap());
                }
                attr += (a_len + 3) & !3;
            }
            batch.push(RouteEvent {
                added,
                prefix: (dst, dst_len),
                at,
            });
        }
        // One message per datagram, not per route: fewer wake-ups of the bench itself.
        if !batch.is_empty() && tx.send(batch).is_err() {
            return;
        }
    }
}
