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
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use weft_testkit::{cli, stop_child, Lab};

/// The underlay's prefix; hosts are .1, .2, …; etcd is on .254.
pub const UNDERLAY: &str = "192.168.100";
pub const ETCD_IP: &str = "192.168.100.254";
pub const CLUSTER: &str = "c1";

pub fn weft_bin() -> &'static str {
    env!("CARGO_BIN_EXE_weft")
}

pub use weft_testkit::{eventually, Ns};

/// Whether the world can be built here; prints why not.
pub fn can_run(test: &str) -> bool {
    weft_testkit::can_run(test, &["etcd", "etcdctl", "nsenter", "ip"])
}

/// How long a daemon or etcd gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A host: its namespace, underlay address, state dir and (maybe running) daemon.
pub struct Host {
    pub ns: Ns,
    pub ip: String,
    pub state: PathBuf,
    pub log: PathBuf,
    socket: PathBuf,
    daemon: Option<Child>,
    /// How the daemon is told its underlay (default `--iface eth0`).
    pub underlay_flags: Vec<String>,
}

impl Host {
    /// `weft ARGS` inside the host against its state dir.
    pub fn weft(&self, args: &[&str]) -> Output {
        cli::weft(&self.ns, weft_bin(), &self.state, args)
    }

    pub fn weft_ok(&self, args: &[&str]) -> String {
        cli::weft_ok(&self.ns, weft_bin(), &self.state, args)
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

    /// The daemon's exit status once it has exited (`None` while it runs or was never
    /// started).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.daemon.as_mut()?.try_wait().ok().flatten()
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
            stop_child(child, STOP_GRACE);
        }
    }
}

struct Etcd {
    child: Child,
    port: u16,
}

/// See the module docs.
pub struct ClusterWorld {
    lab: Lab,
    pub underlay: Ns,
    pub hosts: Vec<Host>,
    etcd: Option<Etcd>,
    etcd_port: u16,
    extra: Vec<Child>,
    /// Extra etcd flags (e.g. `--max-txn-ops`).
    pub etcd_flags: Vec<String>,
    /// `https` for an etcd started with TLS flags.
    pub etcd_scheme: &'static str,
    /// Extra etcdctl flags (e.g. `--cacert`, `--user`).
    pub etcdctl_flags: Vec<String>,
}

impl ClusterWorld {
    /// An underlay with `hosts` hosts on it; etcd not started yet.
    pub fn new(hosts: usize) -> ClusterWorld {
        let mut lab = Lab::new("weft-cluster-");
        let underlay = lab.ns("underlay");
        let mut w = ClusterWorld {
            lab,
            underlay,
            hosts: Vec::new(),
            etcd: None,
            etcd_port: 0,
            extra: Vec::new(),
            etcd_flags: Vec::new(),
            etcd_scheme: "http",
            etcdctl_flags: Vec::new(),
        };
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
        self.lab.dir()
    }

    /// A new namespace with loopback up.
    pub fn ns(&mut self, name: &str) -> Ns {
        self.lab.ns(name)
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
        let state = self.lab.dir().join(format!("state-{name}"));
        self.hosts.push(Host {
            log: self.lab.dir().join(format!("{name}.log")),
            socket: self.lab.dir().join(format!("{name}.sock")),
            ns,
            ip,
            state,
            daemon: None,
            underlay_flags: vec!["--iface".into(), "eth0".into()],
        });
        i - 1
    }

    /// The etcd endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("{}://{ETCD_IP}:{}", self.etcd_scheme, self.etcd_port)
    }

    /// Starts etcd (again, on the same data dir) and waits until it answers.
    pub fn start_etcd(&mut self) {
        assert!(self.etcd.is_none(), "etcd is running");
        let data = self.lab.dir().join("etcd-data");
        let log = File::create(self.lab.dir().join("etcd.log")).expect("etcd log");
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
            stop_child(etcd.child, STOP_GRACE);
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
            .args(&self.etcdctl_flags)
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
        let state = self.lab.dir().join(format!("state-second-{i}"));
        let child = self.spawn_daemon(i, Some(state), ttl, &[]);
        self.extra.push(child);
        self.lab.dir().join(format!("second-{i}.log"))
    }

    fn spawn_daemon(&self, i: usize, state: Option<PathBuf>, ttl: u64, extra: &[&str]) -> Child {
        let h = &self.hosts[i];
        let second = state.is_some();
        let state = state.unwrap_or_else(|| h.state.clone());
        let (log, socket) = if second {
            (
                self.lab.dir().join(format!("second-{i}.log")),
                self.lab.dir().join(format!("second-{i}.sock")),
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
                "--lease-ttl",
                &ttl.to_string(),
            ])
            .args(&h.underlay_flags)
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
            stop_child(child, STOP_GRACE);
        }
        self.stop_etcd();
        if std::thread::panicking() {
            for h in &self.hosts {
                eprintln!("---- {} log ----\n{}", h.ns.name, h.log());
            }
        }
        // `lab` drops after this: the namespaces and their directory go only once nothing
        // runs in them any more.
    }
}

/// Whether every container pings every other one (polling: routes take a moment to reach
/// every host, longest over BGP sessions).
pub fn all_ping(containers: &[(Ns, String)]) -> Result<(), String> {
    for (a, _) in containers {
        for (b, addr) in containers {
            if a.name != b.name && !eventually(Duration::from_secs(15), || a.ping(addr)) {
                return Err(format!("{} cannot ping {} ({addr})", a.name, b.name));
            }
        }
    }
    Ok(())
}

/// A TCP port nobody listens on at `ip` inside `ns`.
fn free_port(ns: &Ns, ip: &str) -> u16 {
    let addr: SocketAddr = format!("{ip}:0").parse().unwrap();
    ns.open()
        .run(move || TcpListener::bind(addr).map(|l| l.local_addr().unwrap().port()))
        .expect("enter underlay")
        .expect("bind a free port")
}
