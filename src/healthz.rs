//! `weft daemon --healthz ADDR:PORT` (flanneld's `--healthz-ip`/`--healthz-port`): a minimal
//! HTTP/1.1 endpoint for supervisors. `GET /healthz` answers 200 while the daemon holds its
//! lease and etcd answered its last call, 503 otherwise, with the reason as the body.
//!
//! Hand-written rather than a web framework: one path, one method, `Connection: close`; the
//! request head is read with a size limit and a deadline, so a slow or hostile client costs
//! one task for at most a few seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};
use weft_engine::EngineError;

use crate::control::ControlState;

/// Longest request head read.
const MAX_HEAD: usize = 8192;
/// How long a client may take to send its request.
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// Binds `addr` (before the daemon serves anything, so a bad flag stops it at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, EngineError> {
    TcpListener::bind(addr).await.map_err(|e| {
        let what = format!("--healthz {addr}: cannot listen there: {e}");
        match e.kind() {
            std::io::ErrorKind::AddrInUse => EngineError::InUse(format!(
                "{what}; another program holds the port: pick another"
            )),
            _ => EngineError::Invalid(format!(
                "{what}; give an address of this host and a free port, e.g. 127.0.0.1:8285"
            )),
        }
    })
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ControlState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "health endpoint: GET /healthz");
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = shutdown.as_mut() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &state).await {
                            warn!("health endpoint: {e}");
                        }
                    });
                }
                Err(e) => warn!("health endpoint: accept failed: {e}"),
            },
        }
    }
}

async fn answer(mut stream: TcpStream, state: &ControlState) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_DEADLINE, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let (status, body) = respond(&head, state);
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_HEAD {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The status line and body for a request head.
fn respond(head: &str, state: &ControlState) -> (&'static str, String) {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/healthz") => match state.healthz() {
            (true, body) => ("200 OK", body),
            (false, body) => ("503 Service Unavailable", body),
        },
        (_, "/healthz") => (
            "405 Method Not Allowed",
            "only GET /healthz is served\n".into(),
        ),
        _ => ("404 Not Found", "only GET /healthz is served\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_lease_and_etcd() {
        let state = ControlState::default();
        let get = |s: &ControlState| respond("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", s);
        assert_eq!(
            get(&state).0,
            "200 OK",
            "no cluster: nothing to be unhealthy about"
        );
        state.set_cluster("c1");
        let (status, body) = get(&state);
        assert_eq!(status, "503 Service Unavailable");
        assert!(
            body.contains("holds no lease") && body.contains("not reached etcd"),
            "{body}"
        );
        state.update_health(|h| {
            h.lease = Some("10.244.1.0/24".into());
            h.etcd = Some(Ok(()));
        });
        let (status, body) = get(&state);
        assert_eq!(
            (status, body.as_str()),
            ("200 OK", "ok: cluster c1, subnet 10.244.1.0/24\n")
        );
        state.update_health(|h| h.etcd = Some(Err("connection refused".into())));
        let (status, body) = get(&state);
        assert_eq!(status, "503 Service Unavailable");
        assert!(
            body.contains("etcd unreachable: connection refused"),
            "{body}"
        );
        assert_eq!(
            respond("GET /metrics HTTP/1.1\r\n\r\n", &state).0,
            "404 Not Found"
        );
        assert_eq!(
            respond("POST /healthz HTTP/1.1\r\n\r\n", &state).0,
            "405 Method Not Allowed"
        );
    }
}
