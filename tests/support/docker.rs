//! A real dockerd with `weft daemon` as its network and IPAM plugin, inside a test world: the
//! world's host namespace is dockerd's network namespace, in a private mount namespace (see
//! `scripts/docker-world`), so its bridges, iptables rules and plugin socket stay out of the
//! machine's own. Everything is stopped by PID when the world drops, also when a test fails.
//! [`Dockerd`] alone runs a dockerd in a namespace another harness made (a cluster host).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{eventually, Ns, World};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/docker-world");

/// Whether a dockerd world can run here; prints why not.
pub fn docker_or_skip(test: &str) -> bool {
    if !super::root_or_skip(test) {
        return false;
    }
    for (program, package) in [
        ("/usr/sbin/dockerd", "docker.io"),
        ("/bin/busybox", "busybox-static"),
    ] {
        if !Path::new(program).exists() {
            eprintln!("SKIP {test}: {program} is missing; run scripts/install-deps ({package})");
            return false;
        }
    }
    true
}

/// A private dockerd (see `scripts/docker-world`) inside a network namespace the caller made:
/// its own mount namespace (a tmpfs on `/run`), data root and CLI socket under `dir`. It finds
/// plugins at [`Dockerd::plugin_socket`], where the caller starts `weft daemon --socket`.
/// Stopped by PID (containers first) when dropped, also when a test fails.
pub struct Dockerd {
    dir: PathBuf,
    holder: u32,
    /// The plugin's log, shown when a docker command fails.
    pub plugin_log: Option<PathBuf>,
}

impl Dockerd {
    /// Starts dockerd (FORWARD policy DROP, as stock) in the namespace at `netns`, with
    /// `dockerd_args` added to its own (e.g. `--live-restore`), and imports the image `bb`.
    pub fn start_in(dir: &Path, netns: &Path, dockerd_args: &str) -> Dockerd {
        let out = Command::new(SCRIPT)
            .arg("start")
            .arg(dir)
            .arg(netns)
            .env("DOCKERD_EXTRA_ARGS", dockerd_args)
            .output()
            .expect("run scripts/docker-world");
        let holder = std::fs::read_to_string(dir.join("holder.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        // Made before the check, so that a failed start is still stopped.
        let d = Dockerd {
            dir: dir.to_path_buf(),
            holder: holder.unwrap_or(0),
            plugin_log: None,
        };
        assert!(
            out.status.success(),
            "docker-world start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        d
    }

    /// Where dockerd's files and logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The plugin socket dockerd looks for (`/run/docker/plugins/weft.sock` in its mount
    /// namespace), as this process can reach it: through the holder's root.
    pub fn plugin_socket(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/run/docker/plugins/weft.sock",
            self.holder
        ))
    }

    /// Stops dockerd (containers keep running with `--live-restore`) and starts it again.
    pub fn restart(&self) {
        let out = Command::new(SCRIPT)
            .arg("restart-dockerd")
            .arg(&self.dir)
            .output()
            .expect("restart dockerd");
        assert!(
            out.status.success(),
            "restart-dockerd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A command run inside dockerd's network and mount namespaces.
    pub fn enter(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder.to_string())
            .args(["-m", "-n", "--"])
            .arg(program);
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(SCRIPT)
            .arg("docker")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run docker")
    }

    /// Runs docker; returns trimmed stdout; panics with stderr and the plugin's log on failure.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed: {}\n--- weft log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.plugin_log
                .as_ref()
                .map(|p| tail(&std::fs::read_to_string(p).unwrap_or_default(), 40))
                .unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs docker expecting failure; returns stderr.
    pub fn docker_err(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {} unexpectedly succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `docker run -d --name NAME ARGS... bb sleep 600` (killed at once on stop).
    pub fn run_sleeper(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["run", "-d", "--name", name, "--stop-signal", "KILL"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["bb", "sleep", "600"]);
        self.docker_ok(&all)
    }

    /// `docker exec NAME sh -c SCRIPT`: (success, stdout + stderr).
    pub fn exec(&self, name: &str, script: &str) -> (bool, String) {
        let out = self.docker(&["exec", name, "sh", "-c", script]);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    pub fn ping_from(&self, name: &str, to: &str) -> bool {
        self.exec(name, &format!("ping -c1 -W2 {to}")).0
    }

    /// A container's address on a network (`docker inspect`).
    pub fn address(&self, container: &str, network: &str, v6: bool) -> String {
        let field = if v6 { "GlobalIPv6Address" } else { "IPAddress" };
        self.docker_ok(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").{field}}}}}"),
            container,
        ])
    }

    /// Docker's full id of a network.
    pub fn network_id(&self, name: &str) -> String {
        self.docker_ok(&["network", "inspect", "-f", "{{.ID}}", name])
    }

    /// A running container's network namespace, as a path this process can open.
    pub fn netns_of(&self, container: &str) -> PathBuf {
        let pid = self.docker_ok(&["inspect", "-f", "{{.State.Pid}}", container]);
        PathBuf::from(format!("/proc/{pid}/ns/net"))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let out = Command::new(SCRIPT).arg("stop").arg(&self.dir).output();
        if let Ok(out) = out {
            if !out.status.success() {
                eprintln!(
                    "cleanup: docker-world stop: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

pub struct DockerWorld {
    weft: Option<Child>,
    /// Declared before `world`: dockerd stops before the namespaces go.
    pub dockerd: Dockerd,
    pub world: World,
    /// `NetworkDriver.Join` etc.: methods the daemon fails on purpose.
    faults: String,
}

impl DockerWorld {
    /// A world with dockerd (FORWARD policy DROP, as stock) and `weft daemon` serving it.
    pub fn start() -> DockerWorld {
        Self::start_with("", "")
    }

    /// `dockerd_args` are added to dockerd's (e.g. `--live-restore`); `faults` is the
    /// daemon's `WEFT_DOCKER_FAIL`.
    pub fn start_with(dockerd_args: &str, faults: &str) -> DockerWorld {
        let world = World::new();
        let dir = world.dir().join("docker");
        let mut dockerd = Dockerd::start_in(&dir, &world.host.path, dockerd_args);
        dockerd.plugin_log = Some(dir.join("weft.log"));
        let mut w = DockerWorld {
            weft: None,
            dockerd,
            world,
            faults: faults.to_string(),
        };
        w.start_weft();
        w
    }

    /// The plugin socket as this process can reach it (through the holder's root).
    pub fn socket(&self) -> PathBuf {
        self.dockerd.plugin_socket()
    }

    pub fn host(&self) -> &Ns {
        &self.world.host
    }

    /// Starts `weft daemon` inside the world and waits until it answers on its socket.
    pub fn start_weft(&mut self) {
        assert!(self.weft.is_none(), "weft daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dockerd.dir().join("weft.log"))
            .expect("weft log");
        let child = self
            .enter(env!("CARGO_BIN_EXE_weft"))
            .arg("--state-dir")
            .arg(&self.world.state)
            // Docker has its own default network; these tests check that weft leaves nothing.
            .args(["--log-level", "debug", "daemon", "--no-default-network"])
            .env("WEFT_DOCKER_FAIL", &self.faults)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start weft daemon");
        self.weft = Some(child);
        let sock = self.socket();
        assert!(
            eventually(Duration::from_secs(20), || plugin_call(
                &sock,
                "/Plugin.Activate",
                b""
            )
            .is_ok_and(|(s, _)| s == 200)),
            "weft daemon did not answer on its socket: {}",
            self.weft_log()
        );
    }

    /// Stops the daemon with `signal` and returns its exit status code.
    pub fn stop_weft(&mut self, signal: nix::sys::signal::Signal) -> Option<i32> {
        let mut child = self.weft.take().expect("weft daemon running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        child.wait().expect("wait for weft daemon").code()
    }

    pub fn weft_log(&self) -> String {
        std::fs::read_to_string(self.dockerd.dir().join("weft.log")).unwrap_or_default()
    }

    /// Stops dockerd (containers keep running with `--live-restore`) and starts it again.
    pub fn restart_dockerd(&self) {
        self.dockerd.restart()
    }

    /// A command run inside the world's network and mount namespaces.
    pub fn enter(&self, program: &str) -> Command {
        self.dockerd.enter(program)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.dockerd.docker(args)
    }

    /// Runs docker; returns trimmed stdout; panics with stderr and weft's log on failure.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        self.dockerd.docker_ok(args)
    }

    /// Runs docker expecting failure; returns stderr.
    pub fn docker_err(&self, args: &[&str]) -> String {
        self.dockerd.docker_err(args)
    }

    /// `docker run -d --name NAME ARGS... bb sleep 600` (killed at once on stop).
    pub fn run_sleeper(&self, name: &str, args: &[&str]) -> String {
        self.dockerd.run_sleeper(name, args)
    }

    /// `docker exec NAME sh -c SCRIPT`: (success, stdout + stderr).
    pub fn exec(&self, name: &str, script: &str) -> (bool, String) {
        self.dockerd.exec(name, script)
    }

    pub fn ping_from(&self, name: &str, to: &str) -> bool {
        self.dockerd.ping_from(name, to)
    }

    /// A container's address on a network (`docker inspect`).
    pub fn address(&self, container: &str, network: &str, v6: bool) -> String {
        self.dockerd.address(container, network, v6)
    }

    /// Docker's full id of a network.
    pub fn network_id(&self, name: &str) -> String {
        self.dockerd.network_id(name)
    }

    /// `weft ARGS` against the daemon's state, inside the world.
    pub fn weft_cli(&self, args: &[&str]) -> String {
        let out = self
            .enter(env!("CARGO_BIN_EXE_weft"))
            .arg("--state-dir")
            .arg(&self.world.state)
            .args(args)
            .output()
            .expect("run weft");
        assert!(
            out.status.success(),
            "weft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// weft's kernel objects and records: bridges and veths it made (by alias), its nft table,
    /// its DOCKER-USER rules, and its store's networks, endpoints and pools.
    pub fn weft_traces(&self) -> String {
        let kernel = self
            .host()
            .sh("ip -o link show | grep -o 'alias weft:.*' || true; \
             nft list table inet weft 2>/dev/null | grep -E 'elements|br-' || true; \
             iptables -S DOCKER-USER 2>/dev/null | grep weft || true; \
             ip6tables -S DOCKER-USER 2>/dev/null | grep weft || true");
        let mut files = Vec::new();
        for sub in ["networks", "endpoints", "ipam/pools", "ports"] {
            collect(&self.world.state.join(sub), &mut files);
        }
        files.sort();
        let mut out = kernel;
        for f in files {
            out.push_str(&format!("{}\n", f.display()));
        }
        out
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for DockerWorld {
    fn drop(&mut self) {
        // The daemon first; dockerd (field `dockerd`) stops when the fields drop.
        if let Some(mut child) = self.weft.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP request to the plugin socket, as dockerd makes it (no Content-Type): status and body.
pub fn plugin_call(socket: &Path, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `GET /PATH` over HTTP/1.0 from inside `ns`; the response body, or the error.
pub fn http_get(ns: &Ns, to: SocketAddr, path: &str) -> std::io::Result<String> {
    let path = path.to_string();
    let mut stream = ns
        .open()
        .run(move || std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)))
        .expect("enter namespace")?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(reply))
}
