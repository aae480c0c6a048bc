//! One TCP connection: a reader task that frames the byte stream and a writer task that drains
//! an outgoing queue. Both report to the owning peer task.

use crate::codec::{DecodeError, FrameSplitter};
use crate::fsm::{ConnId, Direction};
use bytes::Bytes;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What connection tasks tell the peer task.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// A connection is ready (outgoing connect finished or the listener handed one over).
    Connected(TcpStream, Direction),
    /// The outgoing connect failed.
    ConnectFailed(String),
    /// A whole message arrived.
    Frame(ConnId, Bytes),
    /// The stream lost framing.
    FrameError(ConnId, DecodeError),
    /// The connection closed or broke.
    Closed(ConnId),
}

/// The peer task's grip on a live connection.
pub(crate) struct ConnHandle {
    /// Queue toward the writer; dropping it flushes and closes the socket.
    pub tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Our end of the connection.
    pub local: SocketAddr,
    reader: JoinHandle<()>,
}

impl ConnHandle {
    /// Splits the stream and starts both tasks.
    pub fn start(
        id: ConnId,
        stream: TcpStream,
        events: mpsc::UnboundedSender<ConnEvent>,
    ) -> std::io::Result<Self> {
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        let reader = tokio::spawn(async move {
            let mut splitter = FrameSplitter::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                splitter.feed(&buf[..n]);
                while let Some(frame) = splitter.next_frame() {
                    let ev = match frame {
                        Ok(b) => ConnEvent::Frame(id, b),
                        Err(e) => {
                            let _ = events.send(ConnEvent::FrameError(id, e));
                            return;
                        }
                    };
                    if events.send(ev).is_err() {
                        return;
                    }
                }
            }
            let _ = events.send(ConnEvent::Closed(id));
        });
        Ok(ConnHandle { tx, local, reader })
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        // The writer finishes what was queued (a NOTIFICATION, say) and shuts the socket down.
        self.reader.abort();
    }
}

/// Connects out, reporting the outcome as a [`ConnEvent`].
pub(crate) fn spawn_connect(
    remote: SocketAddr,
    local: Option<std::net::IpAddr>,
    timeout: std::time::Duration,
    events: mpsc::UnboundedSender<ConnEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let attempt = async {
            let socket = match remote {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            if let Some(ip) = local {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            socket.connect(remote).await
        };
        let ev = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(s)) => ConnEvent::Connected(s, Direction::Outgoing),
            Ok(Err(e)) => ConnEvent::ConnectFailed(e.to_string()),
            Err(_) => ConnEvent::ConnectFailed("connect timed out".into()),
        };
        let _ = events.send(ev);
    })
}
