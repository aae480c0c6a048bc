//! Third-party BGP daemons started and stopped by PID, with configs, sockets and logs in a
//! temporary directory.

use super::{sh, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use weft_testkit::stop_child;

/// A child process we own; killed (then reaped) on drop.
pub struct Owned {
    child: Option<Child>,
    name: String,
    log: PathBuf,
}

impl Owned {
    fn spawn(name: &str, ns: &str, args: &[&str], log: PathBuf) -> Owned {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Owned {
            child: Some(child),
            name: name.into(),
            log,
        }
    }

    /// The process id (`ip netns exec` execs the program, so it is the daemon's).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// Sends a signal.
    pub fn signal(&self, s: Signal) {
        kill(self.pid(), s).unwrap_or_else(|e| panic!("signal {s} to {}: {e}", self.name));
    }

    /// Asks the process to exit (SIGTERM), waits up to 10 s, then kills it.
    pub fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            stop_child(c, Duration::from_secs(10));
        }
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// BIRD 2 (`bird -f -c conf -s sock`).
pub struct Bird {
    /// The process.
    pub proc: Owned,
    ns: String,
    dir: PathBuf,
    conf: String,
}

impl Bird {
    /// Writes `conf` into `dir` and starts BIRD in `ns`.
    pub fn start(ns: &str, dir: &Path, conf: &str) -> Bird {
        std::fs::write(dir.join("bird.conf"), conf).unwrap();
        let mut b = Bird {
            proc: Owned {
                child: None,
                name: "bird".into(),
                log: dir.join("bird.log"),
            },
            ns: ns.into(),
            dir: dir.into(),
            conf: conf.into(),
        };
        b.restart();
        b
    }

    /// Starts BIRD again with the same configuration (after [`Owned::stop`]).
    pub fn restart(&mut self) {
        let conf = self.dir.join("bird.conf");
        let sock = self.dir.join("bird.sock");
        let _ = std::fs::remove_file(&sock);
        self.proc = Owned::spawn(
            "bird",
            &self.ns,
            &[
                "bird",
                "-f",
                "-c",
                conf.to_str().unwrap(),
                "-s",
                sock.to_str().unwrap(),
            ],
            self.dir.join("bird.log"),
        );
        wait_until("bird control socket", Duration::from_secs(10), || {
            sock.exists()
        });
    }

    /// Runs a birdc command.
    pub fn birdc(&self, cmd: &str) -> String {
        let sock = self.dir.join("bird.sock");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "birdc",
                "-s",
                sock.to_str().unwrap(),
            ])
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether a BGP protocol is Established.
    pub fn established(&self, protocol: &str) -> bool {
        self.birdc(&format!("show protocols {protocol}"))
            .contains("Established")
    }

    /// `show route` output for a table (master4 / master6).
    pub fn routes(&self, table: &str) -> String {
        self.birdc(&format!("show route table {table} all"))
    }
}

/// GoBGP (`gobgpd` + `gobgp`).
pub struct Gobgp {
    /// The process.
    pub proc: Owned,
    ns: String,
    api: String,
}

impl Gobgp {
    /// Writes the TOML config and starts gobgpd in `ns` with its API on 127.0.0.1:50051 there.
    pub fn start(ns: &str, dir: &Path, toml: &str) -> Gobgp {
        let conf = dir.join("gobgpd.toml");
        std::fs::write(&conf, toml).unwrap();
        let api = "127.0.0.1:50051".to_string();
        let proc = Owned::spawn(
            "gobgpd",
            ns,
            &[
                "gobgpd",
                "-f",
                conf.to_str().unwrap(),
                "--api-hosts",
                &api,
                "-l",
                "info",
            ],
            dir.join("gobgpd.log"),
        );
        let g = Gobgp {
            proc,
            ns: ns.into(),
            api,
        };
        wait_until("gobgpd API", Duration::from_secs(10), || {
            g.try_cli(&["global"]).is_some()
        });
        g
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let (host, port) = self.api.split_once(':').unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "gobgp", "-u", host, "-p", port])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a gobgp CLI command, panicking on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("gobgp {args:?} failed; log:\n{}", self.proc.log()))
    }

    /// Whether the neighbour is Established.
    pub fn established(&self, neighbor: &str) -> bool {
        self.try_cli(&["neighbor", neighbor])
            .is_some_and(|s| s.to_lowercase().contains("bgp state = established"))
    }
}

/// FRR: zebra and bgpd with `-u frr -g frr`, vtysh for checks.
pub struct Frr {
    /// zebra.
    pub zebra: Owned,
    /// bgpd.
    pub bgpd: Owned,
    ns: String,
    dir: PathBuf,
}

impl Frr {
    /// Starts zebra and bgpd in `ns` with `bgpd_conf`; files live in `dir` (made frr-owned).
    pub fn start(ns: &str, dir: &Path, bgpd_conf: &str) -> Frr {
        let d = dir.to_str().unwrap();
        std::fs::write(dir.join("zebra.conf"), "hostname weft-test\n").unwrap();
        std::fs::write(dir.join("bgpd.conf"), bgpd_conf).unwrap();
        std::fs::write(dir.join("vtysh.conf"), "").unwrap();
        sh(&["chown", "-R", "frr:frr", d]);
        sh(&["chmod", "755", d]);
        let zsock = format!("{d}/zserv.api");
        let zebra = Owned::spawn(
            "zebra",
            ns,
            &[
                "/usr/lib/frr/zebra",
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{d}/zebra.conf"),
                "-i",
                &format!("{d}/zebra.pid"),
                "-z",
                &zsock,
                "--vty_socket",
                d,
            ],
            dir.join("zebra.log"),
        );
        wait_until("zebra socket", Duration::from_secs(10), || {
            Path::new(&zsock).exists()
        });
        let bgpd = Owned::spawn(
            "bgpd",
            ns,
            &[
                "/usr/lib/frr/bgpd",
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{d}/bgpd.conf"),
                "-i",
                &format!("{d}/bgpd.pid"),
                "-z",
                &zsock,
                "--vty_socket",
                d,
            ],
            dir.join("bgpd.log"),
        );
        let f = Frr {
            zebra,
            bgpd,
            ns: ns.into(),
            dir: dir.into(),
        };
        wait_until("bgpd vty", Duration::from_secs(10), || {
            dir.join("bgpd.vty").exists()
        });
        f
    }

    /// Runs a vtysh command against this instance.
    pub fn vtysh(&self, cmd: &str) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "vtysh",
                "--vty_socket",
                self.dir.to_str().unwrap(),
                "-c",
                cmd,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the neighbour is Established.
    pub fn established(&self, neighbor: &str) -> bool {
        self.vtysh(&format!("show bgp neighbors {neighbor} json"))
            .contains("\"bgpState\":\"Established\"")
    }

    /// Stops both daemons.
    pub fn stop(&mut self) {
        self.bgpd.stop();
        self.zebra.stop();
    }
}
