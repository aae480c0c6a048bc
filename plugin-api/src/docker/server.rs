//! The HTTP server on the plugin's unix socket.

use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::UnixListener;
use tracing::{debug, info, warn};

use super::api::{DockerApi, Reply};
use super::error::DockerError;

/// Where dockerd looks for the plugin named `weft`.
pub const SOCKET_PATH: &str = "/run/docker/plugins/weft.sock";

/// Largest request body accepted; Docker's are a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

/// Serves `api` on `socket` until `shutdown` completes, then stops accepting, lets in-flight
/// requests finish and removes the socket file. A stale socket file left by a crash is
/// replaced; a live one (another daemon answering on it) is an error.
pub async fn serve(
    api: Arc<DockerApi>,
    socket: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DockerError> {
    let listener = bind(socket).await?;
    let leaves = Arc::clone(&api);
    info!(socket = %socket.display(), "serving Docker's NetworkDriver and IpamDriver");
    let app = Router::new()
        .fallback(move |uri: Uri, body: Bytes| handle(api.clone(), uri, body))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| socket_error(socket, e.to_string()));
    if tokio::task::spawn_blocking(move || leaves.finish_leaves())
        .await
        .is_err()
    {
        warn!("waiting for the link removals of answered Leaves failed");
    }
    if let Err(e) = std::fs::remove_file(socket) {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(socket = %socket.display(), error = %e, "cannot remove the plugin socket");
        }
    }
    info!("plugin server stopped");
    result
}

async fn handle(api: Arc<DockerApi>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let started = std::time::Instant::now();
    let logged = path.clone();
    // Engine calls block on the store's file lock and on the kernel.
    let reply = match tokio::task::spawn_blocking(move || api.handle(&path, &body)).await {
        Ok(reply) => reply,
        Err(e) => Reply {
            status: 500,
            body: serde_json::json!({ "Err": format!("weft's handler failed: {e}") }),
        },
    };
    debug!(path = %logged, status = reply.status, ms = started.elapsed().as_secs_f64() * 1000.0, "plugin request");
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/vnd.docker.plugins.v1+json",
        )],
        reply.body.to_string(),
    )
        .into_response()
}

async fn bind(socket: &Path) -> Result<UnixListener, DockerError> {
    if let Some(dir) = socket.parent() {
        // A directory weft makes is at most 0755 (a umask only takes bits away), so never
        // writable by others even under umask 000: one others could write to would
        // let them put their own socket where dockerd looks for weft's. An existing one
        // (dockerd's /run/docker/plugins) is left as it is.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| socket_error(socket, e.to_string()))?;
    }
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Err(socket_error(
                socket,
                "another process is serving it (is a weft daemon already running?)".into(),
            ));
        }
        std::fs::remove_file(socket)
            .map_err(|e| socket_error(socket, format!("cannot replace a stale socket: {e}")))?;
    }
    // Root only, whatever the umask: whoever may connect can make bridges and firewall rules.
    crate::socket::bind_private(socket)
        .and_then(UnixListener::from_std)
        .map_err(|e| socket_error(socket, e.to_string()))
}

fn socket_error(socket: &Path, reason: String) -> DockerError {
    DockerError::Socket {
        path: PathBuf::from(socket).display().to_string(),
        reason,
    }
}
