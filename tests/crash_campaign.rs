//! The crash campaign: mixed operations through the CLI, the CNI plugin and the daemon's Docker
//! protocol (replayed as dockerd sends it, see `../shared/reference/`), a share of them killed
//! with SIGKILL — after a random delay, while the process holds the store lock, or within a
//! millisecond of its releasing the lock — and then retried. Afterwards everything is taken
//! down and the campaign counts what a crash could have leaked or broken; every count must be
//! zero, and they are printed.
//!
//! `WEFT_CRASH_OPS` (default 1000) sets the number of operations, `WEFT_CRASH_SEED` replays a
//! run (the seed is printed).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{eventually, root_or_skip, Ns, World};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// xorshift64*: enough randomness for a schedule, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where a process is killed.
#[derive(Debug, Clone, Copy)]
enum Kill {
    Never,
    /// SIGKILL after this long (if still running).
    After(Duration),
    /// SIGKILL as soon as the process is seen holding the store lock.
    WhileLocked,
    /// SIGKILL within a millisecond of the process giving the lock back.
    JustAfterUnlock,
}

/// Whether `pid` holds an flock on the file with inode `ino` (from `/proc/locks`).
fn holds_lock(pid: u32, ino: u64) -> bool {
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"
        f.len() >= 6
            && f[1] == "FLOCK"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(&ino.to_string())
    })
}

/// Waits for `child` under `kill`; `Some(exit code)` if it ended by itself, `None` if killed.
fn supervise(child: &mut Child, kill: Kill, lock_ino: u64) -> Option<i32> {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = |child: &mut Child| {
        child
            .try_wait()
            .ok()
            .flatten()
            .map(|s| s.code().unwrap_or(-1))
    };
    let sigkill = |child: &mut Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    match kill {
        Kill::Never => return child.wait().ok().map(|s| s.code().unwrap_or(-1)),
        Kill::After(d) => {
            let until = Instant::now() + d;
            while Instant::now() < until {
                if let Some(code) = ended(child) {
                    return Some(code);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Kill::WhileLocked | Kill::JustAfterUnlock => {
            let mut seen = false;
            loop {
                if let Some(code) = ended(child) {
                    return Some(code);
                }
                let held = holds_lock(pid, lock_ino);
                if held && matches!(kill, Kill::WhileLocked) {
                    break;
                }
                if seen && !held {
                    break;
                }
                seen |= held;
                assert!(Instant::now() < deadline, "process {pid} never finished");
            }
        }
    }
    if let Some(code) = ended(child) {
        return Some(code);
    }
    sigkill(child);
    None
}

/// The daemon under test, on its own plugin socket.
struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn start(w: &World, socket: &Path) -> Daemon {
        let _ = std::fs::remove_file(socket);
        let child = w
            .host
            .cmd(WEFT)
            .arg("--state-dir")
            .arg(&w.state)
            .args(["daemon", "--no-default-network", "--socket"])
            .arg(socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weft daemon");
        assert!(
            eventually(Duration::from_secs(20), || UnixStream::connect(socket)
                .is_ok()),
            "the daemon never served {}",
            socket.display()
        );
        Daemon { child: Some(child) }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            weft_testkit::stop_child(c, Duration::from_secs(5));
        }
    }
}

/// One HTTP POST on a Unix socket: (status, body), or `None` if the connection broke.
fn post(socket: &Path, path: &str, body: &Value) -> Option<(u16, String)> {
    let mut s = UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: plugin\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let status = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// What the campaign counts.
#[derive(Default, Debug)]
struct Counts {
    ops: usize,
    killed: usize,
    /// Retries of a killed operation whose outcome was not the intended state.
    failed_retries: Vec<String>,
    /// Operations not killed that failed.
    failed_ops: Vec<String>,
    duplicate_addresses: usize,
}

struct Campaign {
    w: World,
    rng: Rng,
    lock_ino: u64,
    counts: Counts,
    cli_ns: Vec<Ns>,
    cni_ns: Vec<Ns>,
    docker_ns: Vec<Ns>,
    /// (container, network) pairs the CLI has connected.
    cli_on: BTreeSet<(usize, &'static str)>,
    cni_on: BTreeSet<usize>,
    /// Docker endpoints: container → address Docker's IPAM gave.
    docker_on: BTreeMap<usize, String>,
    temp_nets: BTreeSet<usize>,
    daemon: Option<Daemon>,
    socket: PathBuf,
}

const NETS: [&str; 2] = ["cb", "cr"];

/// A container is on both CLI networks at once through two interfaces.
fn ifname_on(net: &str) -> &'static str {
    if net == "cb" {
        "eth0"
    } else {
        "eth1"
    }
}
const DOCKER_NET: &str = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";
const DOCKER_POOL: &str = "10.72.0.0_24";

impl Campaign {
    fn kill_plan(&mut self) -> Kill {
        match self.rng.below(10) {
            0..=5 => Kill::Never,
            6 | 7 => Kill::After(Duration::from_micros(self.rng.below(30_000))),
            8 => Kill::WhileLocked,
            _ => Kill::JustAfterUnlock,
        }
    }

    /// Runs weft (CLI or CNI) with `env` and `stdin` under a kill plan.
    fn run(
        &mut self,
        args: &[String],
        env: &[(&str, String)],
        stdin: &str,
        kill: Kill,
    ) -> Option<i32> {
        let mut cmd: Command = self.w.host.cmd(WEFT);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn weft");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        supervise(&mut child, kill, self.lock_ino)
    }

    fn cli(&mut self, args: &[&str], kill: Kill) -> Option<i32> {
        let mut all = vec![
            "--state-dir".to_string(),
            self.w.state.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        self.run(&all, &[], "", kill)
    }

    /// One operation, killed or not, then (if killed) its retry; `ok` says which exit codes
    /// reach the intended state.
    fn step(
        &mut self,
        what: String,
        op: &mut dyn FnMut(&mut Campaign, Kill) -> Option<i32>,
        ok: &[i32],
    ) {
        self.counts.ops += 1;
        let kill = self.kill_plan();
        match op(self, kill) {
            Some(code) if ok.contains(&code) => {}
            Some(code) => self.counts.failed_ops.push(format!("{what}: exit {code}")),
            None => {
                self.counts.killed += 1;
                match op(self, Kill::Never) {
                    Some(code) if ok.contains(&code) => {}
                    other => self
                        .counts
                        .failed_retries
                        .push(format!("{what} (killed {kill:?}): retry gave {other:?}")),
                }
            }
        }
    }

    fn cli_toggle(&mut self) {
        let c = self.rng.below(self.cli_ns.len() as u64) as usize;
        let net = NETS[self.rng.below(2) as usize];
        let ns = self.cli_ns[c].path.display().to_string();
        let ifname = ifname_on(net);
        if self.cli_on.contains(&(c, net)) {
            self.step(
                format!("disconnect c{c} from {net}"),
                &mut |s, k| {
                    s.cli(
                        &[
                            "network",
                            "disconnect",
                            net,
                            "--netns",
                            &ns,
                            "--ifname",
                            ifname,
                        ],
                        k,
                    )
                },
                &[0, 3],
            );
            self.cli_on.remove(&(c, net));
        } else {
            // A fixed host port per pair (claims that a crash could leak) and one picked.
            let port = format!("{}:80", 8000 + c * 2 + usize::from(net == "cr"));
            self.step(
                format!("connect c{c} to {net}"),
                &mut |s, k| {
                    s.cli(
                        &[
                            "network", "connect", net, "--netns", &ns, "--ifname", ifname, "-p",
                            &port, "-p", "81",
                        ],
                        k,
                    )
                },
                &[0, 4],
            );
            self.cli_on.insert((c, net));
        }
    }

    fn cni_conf(&self) -> String {
        json!({
            "cniVersion": "1.0.0", "name": "cnet", "type": "weft",
            "stateDir": self.w.state,
            "ipam": {"type": "weft", "ranges": [[{"subnet": "10.73.0.0/24"}]]},
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}]}
        })
        .to_string()
    }

    fn cni_toggle(&mut self) {
        let c = self.rng.below(self.cni_ns.len() as u64) as usize;
        let command = if self.cni_on.contains(&c) {
            "DEL"
        } else {
            "ADD"
        };
        let conf = self.cni_conf();
        let env = vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", format!("crash-{c}")),
            ("CNI_NETNS", self.cni_ns[c].path.display().to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", "/usr/lib/cni".to_string()),
        ];
        let mut del_env = env.clone();
        del_env[0].1 = "DEL".to_string();
        let mut first = true;
        self.step(
            format!("CNI {command} crash-{c}"),
            &mut |s, k| {
                // A runtime whose ADD failed calls DEL before it tries again.
                if !std::mem::take(&mut first)
                    && command == "ADD"
                    && s.run(&[], &del_env, &conf, Kill::Never) != Some(0)
                {
                    return Some(-2);
                }
                s.run(&[], &env, &conf, k)
            },
            &[0],
        );
        if command == "ADD" {
            self.cni_on.insert(c);
        } else {
            self.cni_on.remove(&c);
        }
    }

    fn temp_toggle(&mut self) {
        let t = self.rng.below(3) as usize;
        let name = format!("t{t}");
        if self.temp_nets.remove(&t) {
            self.step(
                format!("rm {name}"),
                &mut |s, k| s.cli(&["network", "rm", &name], k),
                &[0, 3],
            );
        } else {
            let subnet = format!("10.74.{t}.0/24");
            self.step(
                format!("create {name}"),
                &mut |s, k| s.cli(&["network", "create", &name, "--subnet", &subnet], k),
                &[0, 4],
            );
            self.temp_nets.insert(t);
        }
    }

    /// A Docker call to the daemon, which is killed (and restarted) per the plan; a killed
    /// call is sent once more to the restarted daemon. `Err` when it did not reach a status in
    /// `ok`: counted as a failure unless the daemon was killed, where Docker's own rollback
    /// follows (see `docker_toggle`).
    fn docker(&mut self, path: &str, body: Value, ok: &[u16]) -> Result<String, ()> {
        self.counts.ops += 1;
        let kill = self.kill_plan();
        let socket = self.socket.clone();
        let call = {
            let (body, path) = (body.clone(), path.to_string());
            std::thread::spawn(move || post(&socket, &path, &body))
        };
        let d = self.daemon.as_mut().expect("daemon");
        let pid = d.pid();
        let killed = supervise_daemon(kill, pid, self.lock_ino, &call);
        if killed {
            d.kill();
        }
        let answer = call.join().expect("client thread");
        if killed {
            self.counts.killed += 1;
            self.daemon = None;
            self.daemon = Some(Daemon::start(&self.w, &self.socket));
            return match post(&self.socket, path, &body) {
                Some((status, reply)) if ok.contains(&status) => Ok(reply),
                _ => Err(()),
            };
        }
        match answer {
            Some((status, reply)) if ok.contains(&status) => Ok(reply),
            other => {
                self.counts
                    .failed_ops
                    .push(format!("Docker {path} {body}: {other:?}"));
                Err(())
            }
        }
    }

    /// What dockerd does when a container's start fails, or when it stops: Leave, DeleteEndpoint
    /// and ReleaseAddress, each of which must succeed (or find nothing to do).
    fn docker_down(&mut self, c: usize, addr: &str) {
        let ep = format!("{:064x}", 0xe0 + c);
        let ids = json!({"NetworkID": DOCKER_NET, "EndpointID": ep});
        for (path, body) in [
            ("/NetworkDriver.Leave", ids.clone()),
            ("/NetworkDriver.DeleteEndpoint", ids),
            (
                "/IpamDriver.ReleaseAddress",
                json!({"PoolID": DOCKER_POOL, "Address": addr}),
            ),
        ] {
            if self.docker(path, body.clone(), &[200, 404]).is_err() {
                // Docker retries its clean-up calls; one more try after the restart.
                match post(&self.socket, path, &body) {
                    Some((200 | 404, _)) => {}
                    other => self
                        .counts
                        .failed_retries
                        .push(format!("Docker clean-up {path}: {other:?}")),
                }
            }
        }
    }

    fn docker_toggle(&mut self) {
        let c = self.rng.below(self.docker_ns.len() as u64) as usize;
        if let Some(addr) = self.docker_on.remove(&c) {
            self.docker_down(c, &addr);
            return;
        }
        let ep = format!("{:064x}", 0xe0 + c);
        let Ok(reply) = self.docker(
            "/IpamDriver.RequestAddress",
            json!({"PoolID": DOCKER_POOL, "Address": "", "Options": null}),
            &[200],
        ) else {
            return;
        };
        let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
        let address = v["Address"].as_str().unwrap_or_default().to_string();
        let bare = address.split('/').next().unwrap_or_default().to_string();
        let portmap = json!([{"Proto": 6, "IP": "", "Port": 80, "HostIP": "", "HostPort": 9000 + c, "HostPortEnd": 9000 + c}]);
        let options = json!({"com.docker.network.portmap": portmap, "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}]});
        let started = self
            .docker(
                "/NetworkDriver.CreateEndpoint",
                json!({"NetworkID": DOCKER_NET, "EndpointID": ep,
                    "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": ""}, "Options": options}),
                &[200],
            )
            .and_then(|_| {
                self.docker(
                    "/NetworkDriver.Join",
                    json!({"NetworkID": DOCKER_NET, "EndpointID": ep,
                        "SandboxKey": self.docker_ns[c].path, "Options": options}),
                    &[200],
                )
            })
            .and_then(|_| {
                self.docker(
                    "/NetworkDriver.ProgramExternalConnectivity",
                    json!({"NetworkID": DOCKER_NET, "EndpointID": ep, "Options": options}),
                    &[200],
                )
            });
        match started {
            Ok(_) => {
                self.docker_on.insert(c, bare);
            }
            // The container's start failed: Docker rolls it back.
            Err(()) => self.docker_down(c, &bare),
        }
    }

    /// Every endpoint address of every network, counted for duplicates.
    fn check_duplicates(&mut self) {
        let ls: Value = serde_json::from_str(&self.w.weft_ok(&["network", "ls", "--json"]))
            .unwrap_or(Value::Null);
        let mut seen = BTreeSet::new();
        for net in ls.as_array().into_iter().flatten() {
            let Some(id) = net["id"].as_str().or(net["Id"].as_str()) else {
                continue;
            };
            let Ok(inspect) =
                serde_json::from_str::<Value>(&self.w.weft_ok(&["network", "inspect", id]))
            else {
                continue;
            };
            for ep in inspect[0]["endpoints"].as_array().into_iter().flatten() {
                for a in ep["addresses"].as_array().into_iter().flatten() {
                    let a = a
                        .as_str()
                        .unwrap_or_default()
                        .split('/')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    if !seen.insert(a) {
                        self.counts.duplicate_addresses += 1;
                    }
                }
            }
        }
    }
}

/// Like `supervise` for the daemon while `call` is in flight: whether it is to be killed now.
fn supervise_daemon(
    kill: Kill,
    pid: u32,
    lock_ino: u64,
    call: &std::thread::JoinHandle<Option<(u16, String)>>,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    match kill {
        Kill::Never => false,
        Kill::After(d) => {
            let until = Instant::now() + d;
            while Instant::now() < until && !call.is_finished() {
                std::thread::sleep(Duration::from_micros(200));
            }
            !call.is_finished()
        }
        Kill::WhileLocked | Kill::JustAfterUnlock => {
            let mut seen = false;
            while !call.is_finished() && Instant::now() < deadline {
                let held = holds_lock(pid, lock_ino);
                if (held && matches!(kill, Kill::WhileLocked)) || (seen && !held) {
                    return true;
                }
                seen |= held;
            }
            false
        }
    }
}

#[test]
fn crash_campaign_leaks_nothing_and_every_retry_succeeds() {
    if !root_or_skip("crash campaign") {
        return;
    }
    let ops: usize = std::env::var("WEFT_CRASH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("WEFT_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    println!("crash campaign: {ops} operations, WEFT_CRASH_SEED={seed}");
    let mut w = World::new();
    let cli_ns: Vec<Ns> = (0..4).map(|i| w.ns(&format!("c{i}"))).collect();
    let cni_ns: Vec<Ns> = (0..3).map(|i| w.ns(&format!("k{i}"))).collect();
    let docker_ns: Vec<Ns> = (0..3).map(|i| w.ns(&format!("d{i}"))).collect();
    w.weft_ok(&["network", "create", "cb", "--subnet", "10.70.0.0/24"]);
    w.weft_ok(&[
        "network",
        "create",
        "-d",
        "routed",
        "cr",
        "--subnet",
        "10.71.0.0/24",
    ]);
    let lock_ino = std::fs::metadata(w.state.join(".lock"))
        .expect("store lock file")
        .ino();
    let socket = w.dir().join("plugins/weft.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let daemon = Daemon::start(&w, &socket);
    // Docker's network on weft's IPAM, as dockerd asks for it.
    for (path, body) in [
        (
            "/IpamDriver.RequestPool",
            json!({"AddressSpace": "local", "Pool": "10.72.0.0/24", "SubPool": "", "Options": {}, "V6": false}),
        ),
        (
            "/IpamDriver.RequestAddress",
            json!({"PoolID": DOCKER_POOL, "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
        ),
        (
            "/NetworkDriver.CreateNetwork",
            json!({"NetworkID": DOCKER_NET, "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {}},
            "IPv4Data": [{"AddressSpace": "local", "Gateway": "10.72.0.1/24", "Pool": "10.72.0.0/24"}], "IPv6Data": []}),
        ),
    ] {
        let (status, reply) = post(&socket, path, &body).expect("daemon answers");
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let mut c = Campaign {
        w,
        rng: Rng(seed),
        lock_ino,
        counts: Counts::default(),
        cli_ns,
        cni_ns,
        docker_ns,
        cli_on: BTreeSet::new(),
        cni_on: BTreeSet::new(),
        docker_on: BTreeMap::new(),
        temp_nets: BTreeSet::new(),
        daemon: Some(daemon),
        socket,
    };
    let started = Instant::now();
    while c.counts.ops < ops {
        match c.rng.below(20) {
            0..=10 => c.cli_toggle(),
            11..=14 => c.cni_toggle(),
            15..=17 => c.docker_toggle(),
            _ => c.temp_toggle(),
        }
        if c.counts.ops % 100 < 3 {
            c.check_duplicates();
        }
    }
    c.check_duplicates();

    // Take everything down, the way each consumer would.
    let pairs: Vec<_> = c.cli_on.iter().copied().collect();
    for (i, net) in pairs {
        let ns = c.cli_ns[i].path.display().to_string();
        c.w.weft_ok(&[
            "network",
            "disconnect",
            net,
            "--netns",
            &ns,
            "--ifname",
            ifname_on(net),
        ]);
    }
    let cni: Vec<_> = c.cni_on.iter().copied().collect();
    for i in cni {
        c.cni_del(i);
    }
    let docker: Vec<_> = std::mem::take(&mut c.docker_on).into_iter().collect();
    for (i, addr) in docker {
        c.docker_down(i, &addr);
    }
    for (path, body) in [
        (
            "/NetworkDriver.DeleteNetwork",
            json!({"NetworkID": DOCKER_NET}),
        ),
        (
            "/IpamDriver.ReleaseAddress",
            json!({"PoolID": DOCKER_POOL, "Address": "10.72.0.1"}),
        ),
        ("/IpamDriver.ReleasePool", json!({"PoolID": DOCKER_POOL})),
    ] {
        let (status, reply) = post(&c.socket, path, &body).expect("daemon answers");
        assert_eq!(status, 200, "{path}: {reply}");
    }
    c.daemon = None;
    for t in c.temp_nets.clone() {
        c.w.weft_ok(&["network", "rm", &format!("t{t}")]);
    }
    for net in ["cb", "cr", "cnet"] {
        let _ = c.w.weft(&["network", "rm", net]);
    }
    // Names are reusable.
    let mut names_not_reusable = 0;
    for (name, subnet) in [
        ("cb", "10.70.0.0/24"),
        ("cr", "10.71.0.0/24"),
        ("t0", "10.74.0.0/24"),
        ("t1", "10.74.1.0/24"),
        ("t2", "10.74.2.0/24"),
    ] {
        if !c
            .w
            .weft(&["network", "create", name, "--subnet", subnet])
            .status
            .success()
            || !c.w.weft(&["network", "rm", name]).status.success()
        {
            names_not_reusable += 1;
        }
    }

    let state = &c.w.state;
    let files_under = |dir: &str| -> usize {
        let root = state.join(dir);
        let mut n = 0;
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !e.file_name().to_string_lossy().starts_with('.') {
                    n += 1;
                }
            }
        }
        n
    };
    let status: Value = serde_json::from_str(&c.w.weft_ok(&["status", "--json"])).unwrap();
    let report = [
        ("duplicate addresses", c.counts.duplicate_addresses),
        ("leaked address reservations", files_under("ipam/addrs")),
        ("leaked pools", files_under("ipam/pools")),
        ("leaked host ports", files_under("ports")),
        (
            "leftover endpoint records (zombies)",
            files_under("endpoints"),
        ),
        ("leftover network records", files_under("networks")),
        (
            "pending intents",
            status["pending"].as_array().map_or(0, Vec::len),
        ),
        (
            "veths on the host",
            c.w.host
                .sh("ip -o link show type veth | wc -l")
                .trim()
                .parse()
                .unwrap_or(99),
        ),
        (
            "routes into the test subnets",
            c.w.host
                .sh("ip route show table all | grep -c '10\\.7[0-4]\\.' || true")
                .trim()
                .parse()
                .unwrap_or(99),
        ),
        (
            "nft port elements",
            c.w.host
                .sh("nft list table inet weft 2>/dev/null | grep -c ' : ' || true")
                .trim()
                .parse()
                .unwrap_or(99),
        ),
        ("names not reusable", names_not_reusable),
        ("failed operations (not killed)", c.counts.failed_ops.len()),
        ("failed retries", c.counts.failed_retries.len()),
    ];
    println!(
        "crash campaign: {} operations, {} killed, {:.0} s",
        c.counts.ops,
        c.counts.killed,
        started.elapsed().as_secs_f64()
    );
    for (what, n) in &report {
        println!("  {what}: {n}");
    }
    for f in c
        .counts
        .failed_ops
        .iter()
        .chain(&c.counts.failed_retries)
        .take(20)
    {
        println!("  - {f}");
    }
    assert!(
        report.iter().all(|(_, n)| *n == 0),
        "the crash campaign found problems (seed {seed}): {report:?}"
    );
}

impl Campaign {
    fn cni_del(&mut self, c: usize) {
        let conf = self.cni_conf();
        let env = vec![
            ("CNI_COMMAND", "DEL".to_string()),
            ("CNI_CONTAINERID", format!("crash-{c}")),
            ("CNI_NETNS", self.cni_ns[c].path.display().to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", "/usr/lib/cni".to_string()),
        ];
        let code = self.run(&[], &env, &conf, Kill::Never);
        assert_eq!(code, Some(0), "CNI DEL crash-{c} at teardown");
        self.cni_on.remove(&c);
    }
}
