//! Unix sockets only their owner (root) may connect to, whatever the umask.
//!
//! Whoever can connect to the plugin socket or the control socket can create bridges and
//! firewall rules as root, so their mode must not come from the umask the daemon was started
//! with (under umask 000 `bind` alone makes a socket every local user may connect to).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::{fchmod, Mode};

/// The mode of weft's sockets: read and write (connect) for the owner only. dockerd runs as
/// root, so it needs nothing more.
pub const SOCKET_MODE: u32 = 0o600;

/// Binds and listens on a unix socket at `path` (which must not exist) with mode
/// [`SOCKET_MODE`], non-blocking, ready for `tokio::net::UnixListener::from_std`.
///
/// Linux gives a socket's file the mode of the socket's inode, less the umask, at `bind`: the
/// `fchmod` before it means there is no moment in which the file is open to others. The
/// `chmod` after it makes the mode explicit whatever the kernel and the umask did.
pub fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    fchmod(&fd, Mode::from_bits_truncate(SOCKET_MODE))?;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    let listener = UnixListener::from(fd);
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .and_then(|()| Ok(socket::listen(&listener, Backlog::MAXCONN)?))
    {
        // Not left behind half-made: the caller's next attempt would take it for a stale one.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_is_owner_only() {
        // Under the usual umask 022 a plain bind makes 0755; tests/daemon.rs runs the daemon
        // under umask 000 (umask is per process, so not here among parallel tests).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = bind_private(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        listener.set_nonblocking(false).unwrap();
        listener.accept().unwrap();
        drop(client);
        // A path that is taken is an error, not a replacement.
        assert!(bind_private(&path).is_err());
    }
}
