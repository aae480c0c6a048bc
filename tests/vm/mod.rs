//! A VM with Debian's stock kernel, for what the machine's kernel lacks (ipip): the kernel
//! package fetched with `apt-get download` and unpacked under `target/ipip-vm/` (kept there,
//! so later runs need no network), weft built fully static, an initramfs written here (cpio
//! `newc`: busybox-static, the real iproute2 `ip` with its libraries, the modules a test
//! needs with their dependencies, weft, and the test's `/init`), booted with
//! `qemu-system-x86_64` under software emulation (TCG; KVM cannot run stock kernels here).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kernel packages tried, in order.
const KERNEL_META_PACKAGES: [&str; 2] = ["linux-image-cloud-amd64", "linux-image-amd64"];

/// The cargo target directory the tests were built in (`…/debug/weft` → `…`).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_weft"))
        .ancestors()
        .nth(2)
        .expect("the weft binary lies in <target>/<profile>/")
        .to_path_buf()
}

/// Runs `cmd`; its stdout, or why it failed.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An unpacked Debian kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `boot/vmlinuz-VERSION`.
    pub vmlinuz: PathBuf,
    /// `lib/modules/VERSION`.
    pub modules: PathBuf,
    /// e.g. `6.1.0-56-cloud-amd64`.
    pub version: String,
}

/// The stock kernel, unpacked under `cache` (downloaded once: `apt-get download`, which needs
/// the apt lists `scripts/install-deps` fetches, and `dpkg-deb -x`).
pub fn kernel(cache: &Path) -> Result<Kernel, String> {
    let root = cache.join("root");
    if let Some(k) = unpacked(&root) {
        return Ok(k);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let mut why = Vec::new();
    for meta in KERNEL_META_PACKAGES {
        match download(cache, meta) {
            Ok(deb) => {
                let staging = cache.join("root.partial");
                let _ = std::fs::remove_dir_all(&staging);
                run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))?;
                let _ = std::fs::remove_dir_all(&root);
                std::fs::rename(&staging, &root).map_err(|e| e.to_string())?;
                let _ = std::fs::remove_file(&deb);
                return unpacked(&root)
                    .ok_or_else(|| format!("{} holds no vmlinuz", deb.display()));
            }
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// The versioned package behind `meta`, downloaded into `dir`.
fn download(dir: &Path, meta: &str) -> Result<PathBuf, String> {
    let depends = run(Command::new("apt-cache").args(["depends", meta]))?;
    let package = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-6"))
        .ok_or_else(|| format!("apt knows no kernel behind {meta} (run apt-get update)"))?
        .to_string();
    run(Command::new("apt-get")
        .args(["download", "-q", &package])
        .current_dir(dir))?;
    std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&package) && n.ends_with(".deb"))
        })
        .ok_or_else(|| format!("apt-get download {package} left no .deb"))
}

fn unpacked(root: &Path) -> Option<Kernel> {
    let boot = std::fs::read_dir(root.join("boot")).ok()?;
    let vmlinuz = boot.filter_map(Result::ok).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("vmlinuz-"))
    })?;
    let version = vmlinuz
        .file_name()?
        .to_str()?
        .trim_start_matches("vmlinuz-")
        .to_string();
    let modules = root.join("lib/modules").join(&version);
    modules.is_dir().then_some(Kernel {
        vmlinuz,
        modules,
        version,
    })
}

/// weft built fully static (glibc's static libc; build scripts stay dynamic because the
/// target is named), in a target directory of its own under `target`.
pub fn static_weft(target: &Path) -> Result<PathBuf, String> {
    let dir = target.join("ipip-vm").join("cargo");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "build",
            "--bin",
            "weft",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // No debug info: a smaller initramfs and a faster build.
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "static build of weft failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir.join("x86_64-unknown-linux-gnu/debug/weft"))
}

/// The modules `wanted` names (as `modprobe` does: `ipip`, `veth`) and everything they
/// depend on, in an order that loads each after its dependencies: paths relative to the
/// kernel's module directory. The dependencies come from each module's `.modinfo`
/// (`depends=`), so no `depmod` is needed.
pub fn modules_in_load_order(kernel: &Kernel, wanted: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut by_name = BTreeMap::new();
    index_modules(&kernel.modules, &mut by_name)?;
    let builtin =
        std::fs::read_to_string(kernel.modules.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin
        .lines()
        .filter_map(|l| Path::new(l).file_stem()?.to_str().map(module_name))
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        visit(
            &module_name(name),
            &by_name,
            &builtin,
            &mut seen,
            &mut order,
        )?;
    }
    Ok(order
        .into_iter()
        .map(|p| {
            p.strip_prefix(&kernel.modules)
                .map(Path::to_path_buf)
                .unwrap_or(p)
        })
        .collect())
}

fn visit(
    name: &str,
    by_name: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<(), String> {
    if !seen.insert(name.to_string()) || builtin.contains(name) {
        return Ok(());
    }
    let path = by_name
        .get(name)
        .ok_or_else(|| format!("the kernel has no module {name}"))?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for dep in depends(&bytes) {
        visit(&dep, by_name, builtin, seen, order)?;
    }
    order.push(path.clone());
    Ok(())
}

/// Every `.ko` under `dir`, by module name.
fn index_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            index_modules(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "ko") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.insert(module_name(stem), path.clone());
            }
        }
    }
    Ok(())
}

/// Module names use `_` where file names may use `-`.
fn module_name(s: &str) -> String {
    s.trim_end_matches(".ko").replace('-', "_")
}

/// The `depends=` list of a module's `.modinfo`.
fn depends(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = module.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &module[at + KEY.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(module_name)
        .collect()
}

/// The shared libraries `binary` loads (with the dynamic loader), as `ldd` finds them.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = run(Command::new("ldd").arg(binary))?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.trim().split(' ').next()?,
                None => l.split(' ').next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// An initramfs in the `newc` cpio format, uncompressed (the kernel takes it as is).
#[derive(Default)]
pub struct Cpio {
    bytes: Vec<u8>,
    dirs: BTreeSet<PathBuf>,
    inode: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    /// A directory and its parents (each written once).
    pub fn dir(&mut self, path: &str) {
        let path = PathBuf::from(path.trim_start_matches('/'));
        let mut ancestors: Vec<PathBuf> = path
            .ancestors()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .collect();
        ancestors.reverse();
        for dir in ancestors {
            if self.dirs.insert(dir.clone()) {
                self.entry(&dir, S_IFDIR | 0o755, 2, (0, 0), b"");
            }
        }
    }

    /// A regular file with `contents`.
    pub fn file(&mut self, path: &str, mode: u32, contents: &[u8]) {
        self.parent(path);
        self.entry(
            Path::new(path.trim_start_matches('/')),
            S_IFREG | mode,
            1,
            (0, 0),
            contents,
        );
    }

    /// A copy of a host file, executable bits kept.
    pub fn copy(&mut self, path: &str, from: &Path) -> Result<(), String> {
        let contents = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let exec = std::fs::metadata(from)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false);
        self.file(path, if exec { 0o755 } else { 0o644 }, &contents);
        Ok(())
    }

    /// A symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parent(path);
        self.entry(
            Path::new(path.trim_start_matches('/')),
            S_IFLNK | 0o777,
            1,
            (0, 0),
            target.as_bytes(),
        );
    }

    /// A character device node (e.g. `/dev/console`, 5:1: init's output goes there).
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.parent(path);
        self.entry(
            Path::new(path.trim_start_matches('/')),
            S_IFCHR | 0o600,
            1,
            (major, minor),
            b"",
        );
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(Path::new("TRAILER!!!"), 0, 1, (0, 0), b"");
        self.bytes
    }

    fn parent(&mut self, path: &str) {
        if let Some(parent) = Path::new(path).parent().and_then(|p| p.to_str()) {
            if !parent.trim_start_matches('/').is_empty() {
                self.dir(parent);
            }
        }
    }

    fn entry(&mut self, name: &Path, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.inode += 1;
        let name = name.to_str().expect("UTF-8 path");
        let fields = [
            self.inode,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

/// Boots `kernel` with `initrd` (1 CPU, 512 MiB, serial console on stdout) and returns the
/// console output once the VM powers off, or an error with the output so far when it runs
/// past `timeout` (the VM is then killed by its PID).
pub fn boot(kernel: &Kernel, initrd: &Path, timeout: Duration) -> Result<String, String> {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-m", "512", "-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let console = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(console),
        Some(s) => Err(format!("qemu exited with {s}: {stderr}\n{console}")),
        None => Err(format!(
            "the VM did not power off within {timeout:?}; console so far:\n{console}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends_are_read() {
        let ko = b"junk\0license=GPL\0depends=ip_tunnel,tunnel4\0retpoline=Y\0";
        assert_eq!(depends(ko), ["ip_tunnel", "tunnel4"]);
        assert!(depends(b"\0depends=\0").is_empty());
    }
}
