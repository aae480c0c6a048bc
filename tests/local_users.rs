//! Local users kept out (issue R): weft's sockets are root-only whatever the umask it was
//! started with, and a state directory others could write to is refused.

mod support;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{eventually, root_or_skip, World};

/// `nobody` and `nogroup` on Debian.
const NOBODY: u32 = 65534;

/// The daemon, stopped with SIGTERM (by PID) when dropped.
use weft_testkit::StopOnDrop as Daemon;

/// Whether user `nobody` may connect to the unix socket at `path`: `Ok(())`, or the errno.
/// Forks (the child only makes raw system calls, so it is safe in a threaded test), drops to
/// nobody, and checks first that it can reach the socket's directory, so that a refusal comes
/// from the socket's own mode.
fn connect_as_nobody(path: &Path) -> Result<(), i32> {
    let dir = CString::new(path.parent().unwrap().as_os_str().as_encoded_bytes()).unwrap();
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_encoded_bytes();
    assert!(bytes.len() < addr.sun_path.len(), "socket path too long");
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // Exit codes: 0 connected, 200+ a step before connect failed, else connect's errno.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => unsafe {
            let code = if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(NOBODY) != 0
                || libc::setuid(NOBODY) != 0
            {
                201
            } else if libc::access(dir.as_ptr(), libc::X_OK) != 0 {
                202
            } else {
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    203
                } else if libc::connect(
                    fd,
                    &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                ) == 0
                {
                    0
                } else {
                    *libc::__errno_location()
                }
            };
            libc::_exit(code)
        },
        pid => {
            let mut status = 0;
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFEXITED(status), "child status {status}");
            match libc::WEXITSTATUS(status) {
                0 => Ok(()),
                c @ 200.. => panic!(
                    "as nobody, before connecting to {}: step {c} failed",
                    path.display()
                ),
                errno => Err(errno),
            }
        }
    }
}

/// A directory every user may enter (the test's own is 0700, which would keep `nobody` out
/// whatever the socket's mode and so prove nothing).
fn open_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn sockets_are_root_only_under_umask_000() {
    if !root_or_skip("local_users") {
        return;
    }
    let w = World::new();
    open_dir(w.dir());
    let run = w.dir().join("run");
    open_dir(&run);
    let plugin = run.join("plugins/weft.sock");
    let control = run.join("weft/weft.sock");
    let mut cmd = w.host.cmd(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("--state-dir")
        .arg(&w.state)
        .args(["daemon", "--no-default-network", "--socket"])
        .arg(&plugin)
        .arg("--control-socket")
        .arg(&control)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: umask is async-signal-safe; it applies to nsenter and the daemon it execs.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let _d = Daemon(cmd.spawn().expect("start weft daemon"));
    assert!(
        eventually(Duration::from_secs(10), || plugin.exists()
            && control.exists()),
        "the daemon never opened {} and {}",
        plugin.display(),
        control.display()
    );
    for socket in [&plugin, &control] {
        let meta = std::fs::metadata(socket).unwrap();
        assert_eq!(
            meta.mode() & 0o777,
            0o600,
            "{} has mode {:o} under umask 000",
            socket.display(),
            meta.mode()
        );
        assert_eq!(meta.uid(), 0, "{} is root's", socket.display());
        // The directories weft made are not writable by others either (else anyone could put
        // their own socket in the place of weft's).
        let dir = std::fs::metadata(socket.parent().unwrap()).unwrap();
        assert_eq!(
            dir.mode() & 0o022,
            0,
            "{} is mode {:o}",
            socket.display(),
            dir.mode()
        );
        open_dir(socket.parent().unwrap());
        assert_eq!(
            connect_as_nobody(socket),
            Err(libc::EACCES),
            "user nobody connected to {}",
            socket.display()
        );
        // Root still gets in.
        std::os::unix::net::UnixStream::connect(socket).expect("root connects");
    }
    let mode = std::fs::metadata(&w.state).unwrap().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "state dir made under umask 000: {mode:o}"
    );
}

#[test]
fn state_dirs_others_could_write_are_refused() {
    if !root_or_skip("local_users") {
        return;
    }
    let w = World::new();
    let state = w.state.display().to_string();
    std::fs::create_dir(&w.state).unwrap();

    std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [
        &["network", "ls"][..],
        &["network", "create", "n1", "--subnet", "10.77.0.0/24"],
        &["status"],
        &[
            "daemon",
            "--no-default-network",
            "--socket",
            "/nonexistent/weft.sock",
        ],
    ] {
        let (code, err) = w.weft_err(args);
        assert_eq!(code, 2, "weft {}: {err}", args.join(" "));
        assert!(
            err.contains(&state)
                && err.contains("mode 0777")
                && err.contains(&format!("chmod go-w {state}")),
            "weft {}: {err}",
            args.join(" ")
        );
    }
    assert!(
        std::fs::read_dir(&w.state).unwrap().next().is_none(),
        "nothing was written into the refused directory"
    );

    std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&w.state, Some(NOBODY), Some(NOBODY)).unwrap();
    let (code, err) = w.weft_err(&["network", "ls"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&state)
            && err.contains("owned by uid 65534")
            && err.contains(&format!("chown root {state}")),
        "{err}"
    );

    // Fixed as the message says, it works.
    std::os::unix::fs::chown(&w.state, Some(0), Some(0)).unwrap();
    w.weft_ok(&["network", "ls"]);
}
