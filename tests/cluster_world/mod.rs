//! A multi-host test world: an "underlay" namespace with a bridge that joins N "hosts"
//! (namespaces with `eth0` = 192.168.100.N/24), a real etcd inside the underlay namespace on
//! 192.168.100.254, and a `weft daemon` per host (the built binary via nsenter, own state dir
//! and log). Containers are further namespaces attached with `weft network connect`.
//!
//! Everything is removed when the world drops, also when a test fails: daemons and etcd are
//! stopped by PID (SIGTERM, then SIGKILL), namespaces unmounted, the temp dir deleted.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use weft_drivers::netns::Netns;

/// The underlay's prefix; hosts are .1, .2, …; etcd is on .254.
pub const UNDERLAY: &str = "192.168.100";
pub const ETCD_IP: &str = "192.168.100.254";
pub const CLUSTER: &str = "c1";

pub fn weft_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weft")
}

/// Whether the world can be built here; prints why not.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root (creates network namespaces)");
        return false;
    }
    for program in ["etcd", "etcdctl", "nsenter", "ip"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            eprintln!("SKIP {test}: {program} is not installed (run scripts/install-deps)");
            return false;
        }
    }
    true
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A namespace of the world.
#[derive(Clone, Debug)]
pub struct Ns {
    pub name: String,
    pub path: PathBuf,
}

impl Ns {
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path.display())).arg(program);
        c
    }

    /// `sh -c script` inside; panics with the output on failure.
    pub fn sh(&self, script: &str) -> String {
        let out = self
            .cmd("sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "in {}: `{script}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ping(&self, to: &str) -> bool {
        self.cmd("ping")
            .args(["-c1", "-W1", "-n", to])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn open(&self) -> Netns {
        Netns::open(&self.path).expect("open namespace")
    }
}

/// A host: its namespace, underlay address, state dir and (maybe running) daemon.
pub struct Host {
    pub ns: Ns,
    pub ip: String,
    pub state: PathBuf,
    pub log: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
}

impl Host {
    /// `weft ARGS` inside the host against its state dir.
    pub fn weft(&self, args: &[&str]) -> Output {
        self.ns
            .cmd(weft_bin())
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .expect("run weft")
    }

    pub fn weft_ok(&self, args: &[&str]) -> String {
        let out = self.weft(args);
        assert!(
            out.status.success(),
            "weft {} on {} failed: {}",
            args.join(" "),
            self.ns.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Where the daemon serves Docker's plugin protocol from its next start on, e.g. a private
    /// dockerd's plugin socket. By default it is in the world's directory, where no dockerd
    /// looks.
    pub fn set_plugin_socket(&mut self, path: PathBuf) {
        self.socket = path;
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.daemon.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The local cluster record the agent writes (`None` until it has joined).
    pub fn record(&self) -> Option<serde_json::Value> {
        let path = self.state.join("clusters").join(CLUSTER);
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The subnet this host holds per its record, when the lease is held.
    pub fn subnet(&self) -> Option<String> {
        let r = self.record()?;
        r["lease_held"]
            .as_bool()
            .filter(|held| *held)
            .and(r["subnet"].as_str().map(str::to_string))
    }

    /// Waits until the host holds a lease and its local network exists; returns the subnet.
    pub fn wait_joined(&self, timeout: Duration) -> String {
        let mut subnet = None;
        let ok = eventually(timeout, || {
            subnet = self.subnet();
            subnet.is_some() && self.weft(&["network", "inspect", CLUSTER]).status.success()
        });
        assert!(
            ok,
            "{} did not join in {timeout:?}; log:\n{}",
            self.ns.name,
            self.log()
        );
        subnet.unwrap()
    }

    /// `ip route` inside the host.
    pub fn routes(&self) -> String {
        self.ns.sh("ip route")
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self) {
        if let Some(child) = self.daemon.take() {
            stop_child(child);
        }
    }
}

struct Etcd {
    child: Child,
    port: u16,
}

/// See the module docs.
pub struct ClusterWorld {
    dir: tempfile::TempDir,
    namespaces: Vec<PathBuf>,
    pub underlay: Ns,
    pub hosts: Vec<Host>,
    etcd: Option<Etcd>,
    etcd_port: u16,
    extra: Vec<Child>,
    /// Extra etcd flags (e.g. `--max-txn-ops`).
    pub etcd_flags: Vec<String>,
}

impl ClusterWorld {
    /// An underlay with `hosts` hosts on it; etcd not started yet.
    pub fn new(hosts: usize) -> ClusterWorld {
        let dir = tempfile::Builder::new()
            .prefix("weft-cluster-")
            .tempdir()
            .expect("tempdir");
        let mut w = ClusterWorld {
            dir,
            namespaces: Vec::new(),
            underlay: Ns {
                name: String::new(),
                path: PathBuf::new(),
            },
            hosts: Vec::new(),
            etcd: None,
            etcd_port: 0,
            extra: Vec::new(),
            etcd_flags: Vec::new(),
        };
        w.underlay = w.ns("underlay");
        w.underlay.sh(&format!(
            "ip link add ul type bridge && ip addr add {ETCD_IP}/24 dev ul && ip link set ul up"
        ));
        w.etcd_port = free_port(&w.underlay, ETCD_IP);
        for _ in 0..hosts {
            w.add_host();
        }
        w
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new namespace with loopback up.
    pub fn ns(&mut self, name: &str) -> Ns {
        let path = self.dir.path().join(format!("ns-{name}"));
        Netns::create_at(&path).expect("create namespace");
        self.namespaces.push(path.clone());
        let ns = Ns {
            name: name.to_string(),
            path,
        };
        ns.sh("ip link set lo up");
        ns
    }

    /// One more host on the underlay; returns its index.
    pub fn add_host(&mut self) -> usize {
        let i = self.hosts.len() + 1;
        let name = format!("h{i}");
        let ns = self.ns(&name);
        self.underlay.sh(&format!(
            "ip link add {name} type veth peer name eth0 netns {} && ip link set {name} master ul up",
            ns.path.display()
        ));
        let ip = format!("{UNDERLAY}.{i}");
        ns.sh(&format!(
            "ip addr add {ip}/24 dev eth0 && ip link set eth0 up"
        ));
        let state = self.dir.path().join(format!("state-{name}"));
        self.hosts.push(Host {
            log: self.dir.path().join(format!("{name}.log")),
            socket: self.dir.path().join(format!("{name}.sock")),
            ns,
            ip,
            state,
            daemon: None,
        });
        i - 1
    }

    /// The etcd endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{ETCD_IP}:{}", self.etcd_port)
    }

    /// Starts etcd (again, on the same data dir) and waits until it answers.
    pub fn start_etcd(&mut self) {
        assert!(self.etcd.is_none(), "etcd is running");
        let data = self.dir.path().join("etcd-data");
        let log = File::create(self.dir.path().join("etcd.log")).expect("etcd log");
        let url = self.endpoint();
        let peer = "http://127.0.0.1:2380";
        let child = self
            .underlay
            .cmd("etcd")
            .args(["--name", "weft-test", "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                &format!("weft-test={peer}"),
            ])
            .args(&self.etcd_flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.etcd = Some(Etcd {
            child,
            port: self.etcd_port,
        });
        let healthy = eventually(Duration::from_secs(20), || {
            self.etcdctl(&["endpoint", "health"]).status.success()
        });
        assert!(healthy, "etcd did not become healthy");
    }

    /// Stops etcd by PID.
    pub fn stop_etcd(&mut self) {
        if let Some(etcd) = self.etcd.take() {
            stop_child(etcd.child);
        }
    }

    /// `etcdctl ARGS` against the world's etcd.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.underlay
            .cmd("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.endpoint())
            .arg("--dial-timeout=1s")
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .expect("etcdctl")
    }

    /// `weft cluster init c1 --network 10.244.0.0/16 --backend B EXTRA…` from host 0.
    pub fn init_cluster(&self, backend: &str, extra: &[&str]) {
        self.init_cluster_on("10.244.0.0/16", backend, extra);
    }

    /// `weft cluster init c1 --network NETWORK --backend B EXTRA…` from host 0.
    pub fn init_cluster_on(&self, network: &str, backend: &str, extra: &[&str]) {
        let endpoint = self.endpoint();
        let mut args = vec![
            "cluster",
            "init",
            CLUSTER,
            "--network",
            network,
            "--backend",
            backend,
            "--etcd-endpoints",
            &endpoint,
        ];
        args.extend_from_slice(extra);
        self.hosts[0].weft_ok(&args);
    }

    /// Starts host `i`'s daemon with `--lease-ttl ttl` and extra flags.
    pub fn start_daemon(&mut self, i: usize, ttl: u64, extra: &[&str]) {
        let child = self.spawn_daemon(i, None, ttl, extra);
        self.hosts[i].daemon = Some(child);
    }

    /// A second daemon inside host `i` with its own state dir (and so its own node id); stopped
    /// with the world. Returns its log path.
    pub fn start_second_daemon(&mut self, i: usize, ttl: u64) -> PathBuf {
        let state = self.dir.path().join(format!("state-second-{i}"));
        let child = self.spawn_daemon(i, Some(state), ttl, &[]);
        self.extra.push(child);
        self.dir.path().join(format!("second-{i}.log"))
    }

    fn spawn_daemon(&self, i: usize, state: Option<PathBuf>, ttl: u64, extra: &[&str]) -> Child {
        let h = &self.hosts[i];
        let second = state.is_some();
        let state = state.unwrap_or_else(|| h.state.clone());
        let (log, socket) = if second {
            (
                self.dir.path().join(format!("second-{i}.log")),
                self.dir.path().join(format!("second-{i}.sock")),
            )
        } else {
            (h.log.clone(), h.socket.clone())
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("daemon log");
        h.ns.cmd(weft_bin())
            .arg("--state-dir")
            .arg(&state)
            .args([
                "--log-level",
                "info",
                "daemon",
                "--no-default-network",
                "--socket",
            ])
            .arg(&socket)
            .args([
                "--etcd-endpoints",
                &self.endpoint(),
                "--cluster",
                CLUSTER,
                "--iface",
                "eth0",
                "--lease-ttl",
                &ttl.to_string(),
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start weft daemon")
    }

    /// A container namespace attached to the cluster network on host `i`; returns it and its
    /// address.
    pub fn container(&mut self, i: usize, name: &str) -> (Ns, String) {
        let ns = self.ns(name);
        let path = ns.path.display().to_string();
        let out = self.hosts[i].weft_ok(&["network", "connect", CLUSTER, "--netns", &path]);
        let ep: serde_json::Value = serde_json::from_str(&out).expect("connect prints JSON");
        let addr = ep["addresses"][0]
            .as_str()
            .expect("an address")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        (ns, addr)
    }
}

impl Drop for ClusterWorld {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.stop();
        }
        for child in self.extra.drain(..) {
            stop_child(child);
        }
        self.stop_etcd();
        if std::thread::panicking() {
            for h in &self.hosts {
                eprintln!("---- {} log ----\n{}", h.ns.name, h.log());
            }
        }
        for p in self.namespaces.iter().rev() {
            if let Err(e) = Netns::remove_at(p) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// SIGTERM, wait up to 5 s, then SIGKILL — by PID, only our own child.
pub fn stop_child(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let exited = eventually(Duration::from_secs(5), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A TCP port nobody listens on at `ip` inside `ns`.
fn free_port(ns: &Ns, ip: &str) -> u16 {
    let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
    ns.open()
        .run(move || TcpListener::bind(addr).map(|l| l.local_addr().unwrap().port()))
        .expect("enter underlay")
        .expect("bind a free port")
}
