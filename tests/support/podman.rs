//! A private podman 4.3 for end-to-end tests: CNI backend, every config and all storage in the
//! test's directory, running inside the world's host namespace and in a private mount namespace
//! whose own tmpfs on `/run` and `/var/lib` keeps podman's network namespaces and libcni's result
//! cache off the machine. Settings this sandbox needs (ENVIRONMENT.md): cgroupfs, file events,
//! fixed ulimits. Images come from `podman import` of a busybox-static root filesystem.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::Ns;

const BUSYBOX: &str = "/bin/busybox";
/// The image `import_busybox` makes.
pub const IMAGE: &str = "localhost/weft-bb";

/// Whether podman and what it runs are installed; prints why not.
pub fn podman_or_skip(test: &str) -> bool {
    for (what, path) in [
        ("podman", "/usr/bin/podman"),
        ("conmon", "/usr/bin/conmon"),
        ("busybox-static", BUSYBOX),
    ] {
        if !Path::new(path).exists() {
            eprintln!("SKIP {test}: {what} is not installed ({path}); run scripts/install-deps");
            return false;
        }
    }
    if !Path::new("/usr/sbin/runc").exists() && !Path::new("/usr/bin/crun").exists() {
        eprintln!("SKIP {test}: no OCI runtime (runc or crun); run scripts/install-deps");
        return false;
    }
    true
}

pub struct Podman {
    dir: PathBuf,
    /// Holds the private mount namespace (inside the world's host network namespace).
    holder: Child,
}

impl Podman {
    /// Podman with its state under `dir`, CNI plugins from `plugin_dirs`, in `host`'s network
    /// namespace.
    pub fn start(host: &Ns, dir: &Path, plugin_dirs: &[&Path]) -> Podman {
        let dir = dir.join("podman");
        for d in ["root", "runroot", "tmp", "net.d"] {
            std::fs::create_dir_all(dir.join(d)).expect("podman dirs");
        }
        let plugin_dirs: Vec<String> = plugin_dirs
            .iter()
            .map(|p| format!("{:?}", p.display().to_string()))
            .collect();
        let conf = format!(
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"

[network]
network_backend = "cni"
cni_plugin_dirs = [{dirs}]
network_config_dir = "{d}/net.d"
"#,
            d = dir.display(),
            dirs = plugin_dirs.join(", ")
        );
        std::fs::write(dir.join("containers.conf"), conf).expect("containers.conf");
        let mut holder = Command::new("nsenter")
            .arg(format!("--net={}", host.path.display()))
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs weft-run /run && mount -t tmpfs weft-lib /var/lib && echo ready && exec sleep 1000000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the podman namespace holder");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read from the holder");
        if line.trim() != "ready" {
            let _ = holder.kill();
            let out = holder.wait_with_output().expect("holder output");
            panic!(
                "the podman namespace holder failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Podman { dir, holder }
    }

    /// A command run inside podman's namespaces.
    fn inside(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["--mount", "--net", program])
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"));
        c
    }

    /// `podman ARGS` with this podman's storage.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.inside("podman")
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("run podman")
    }

    /// `podman ARGS`, which must succeed; its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "podman {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `sh -c script` in podman's mount and network namespaces; its stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self
            .inside("sh")
            .args(["-c", script])
            .output()
            .expect("run sh");
        assert!(
            out.status.success(),
            "`{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs a CNI network config list for podman.
    pub fn add_network(&self, name: &str, conflist: &serde_json::Value) {
        std::fs::write(
            self.dir.join("net.d").join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(conflist).expect("json"),
        )
        .expect("write conflist");
    }

    /// Makes [`IMAGE`]: busybox-static with its applets, and `/www/index.html` saying `hello`.
    pub fn import_busybox(&self) {
        let rootfs = self.dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
        std::fs::create_dir_all(rootfs.join("www")).expect("rootfs www");
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
        std::fs::write(rootfs.join("www/index.html"), "hello from weft\n").expect("index");
        let list = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            // `busybox --list` names busybox itself: keep the binary.
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        let tar = self.dir.join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "tar of the rootfs failed");
        self.ok(&["import", &tar.display().to_string(), IMAGE]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let out = self.cmd(&["rm", "--all", "--force", "--time", "0"]);
        if !out.status.success() {
            eprintln!(
                "cleanup: podman rm failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
