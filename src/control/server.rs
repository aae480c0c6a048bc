//! The daemon side of the control socket.

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, info, warn};
use weft_engine::EngineError;

use super::{ControlState, Request, Response};

/// Longest request line accepted (requests are a few dozen bytes).
const MAX_REQUEST: u64 = 4096;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound socket, removed again when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

/// Binds `path` (making its directory), root-only. A stale socket file left by a crash is
/// replaced; one another process answers on is an error.
pub async fn bind(path: &Path) -> Result<ControlSocket, EngineError> {
    let fail = |reason: String| {
        EngineError::InUse(format!(
            "cannot serve the control socket {}: {reason}",
            path.display()
        ))
    };
    if let Some(dir) = path.parent() {
        // At most 0755 (a umask only takes bits away), even under umask 000: a directory
        // others could write to would let them replace
        // the socket with their own.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| fail(e.to_string()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(fail(
                "another weft daemon is serving it; give this one its own with --control-socket"
                    .into(),
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| fail(format!("cannot replace a stale socket: {e}")))?;
    }
    // Root only, whatever the umask the daemon was started with (set before and after bind,
    // see `bind_private`).
    let listener = weft_plugin_api::socket::bind_private(path)
        .and_then(UnixListener::from_std)
        .map_err(|e| fail(e.to_string()))?;
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
    })
}

impl ControlSocket {
    /// Answers requests until `shutdown` completes, then removes the socket file.
    pub async fn serve(self, state: Arc<ControlState>, shutdown: impl Future<Output = ()>) {
        info!(socket = %self.path.display(), "serving the control API");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(stream, state.clone()));
                    }
                    Err(e) => warn!(error = %e, "control socket: accept failed"),
                },
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(socket = %self.path.display(), error = %e, "cannot remove the control socket");
            }
        }
    }
}

/// One request, one answer.
async fn connection(stream: UnixStream, state: Arc<ControlState>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    let response = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => refuse(format!("no request within {} s", READ_TIMEOUT.as_secs())),
        Ok(Err(e)) => refuse(format!("cannot read the request: {e}")),
        Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
            Err(e) => refuse(format!(
                "not a control request ({e}); expected {{\"method\": \"bgp.status\"}}"
            )),
            Ok(request) => {
                debug!(method = ?request.method, "control request");
                match tokio::task::spawn_blocking(move || state.answer(request.method)).await {
                    Ok(Ok(result)) => Response {
                        result: Some(result),
                        error: None,
                    },
                    Ok(Err(e)) => refuse(e),
                    Err(e) => refuse(format!("the daemon's handler failed: {e}")),
                }
            }
        },
    };
    let mut text = serde_json::to_string(&response)
        .unwrap_or_else(|e| format!(r#"{{"error":"cannot encode the answer: {e}"}}"#));
    text.push('\n');
    if let Err(e) = write.write_all(text.as_bytes()).await {
        debug!(error = %e, "control client went away");
    }
    let _ = write.shutdown().await;
}

fn refuse(error: String) -> Response {
    Response {
        result: None,
        error: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::control::{client, Method};

    #[test]
    fn answers_requests_refuses_a_second_server_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("weft.sock");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(ControlState::default());
        state.set_cluster("c1");
        let socket = runtime.block_on(bind(&path)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "root only");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(socket.serve(state, async move {
            let _ = stopped.await;
        }));

        let info = client::call(&path, Method::Info).unwrap();
        assert_eq!(info["cluster"], "c1");
        let e = client::call(&path, Method::BgpStatus)
            .unwrap_err()
            .to_string();
        assert!(e.contains("still joining cluster c1"), "{e}");
        let e = runtime.block_on(bind(&path)).err().unwrap().to_string();
        assert!(e.contains("another weft daemon"), "{e}");
        // Garbage gets an error line, not a hang or a crash.
        let mut raw = std::os::unix::net::UnixStream::connect(&path).unwrap();
        std::io::Write::write_all(&mut raw, b"hello\n").unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut raw, &mut answer).unwrap();
        assert!(answer.contains("not a control request"), "{answer}");

        stop.send(()).unwrap();
        runtime.block_on(served).unwrap();
        assert!(!path.exists(), "the socket file is removed at shutdown");
    }
}
