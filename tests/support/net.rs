//! In-process TCP and UDP peers bound inside test namespaces. A server answers every request
//! with its name and the address it saw the request come from, so tests can check NAT.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Ns;

pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server in `ns` on `addr` answering "NAME from PEER_IP".
pub fn tcp_server(ns: &Ns, addr: SocketAddr, name: &str) -> Server {
    let listener = ns
        .open()
        .run(move || TcpListener::bind(addr))
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind {addr} in {}: {e}", ns.name));
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = name.to_string();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.write_all(format!("{name} from {}", peer.ip()).as_bytes());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
    });
    Server {
        stop,
        thread: Some(thread),
    }
}

/// A UDP server in `ns` answering each datagram with "NAME from PEER_IP".
pub fn udp_server(ns: &Ns, addr: SocketAddr, name: &str) -> Server {
    let sock = ns
        .open()
        .run(move || UdpSocket::bind(addr))
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind udp {addr} in {}: {e}", ns.name));
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let name = name.to_string();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::SeqCst) {
            if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(format!("{name} from {}", peer.ip()).as_bytes(), peer);
            }
        }
    });
    Server {
        stop,
        thread: Some(thread),
    }
}

/// Connects from inside `ns` and returns what the server said, or the error.
pub fn tcp_request(ns: &Ns, to: SocketAddr) -> std::io::Result<String> {
    let stream = ns
        .open()
        .run(move || TcpStream::connect_timeout(&to, Duration::from_millis(1500)))
        .expect("enter namespace")?;
    read_reply(stream)
}

fn read_reply(mut stream: TcpStream) -> std::io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut s = String::new();
    stream.read_to_string(&mut s)?;
    Ok(s)
}

/// Sends one datagram from inside `ns` and returns the reply (or the error after ~1.5 s).
pub fn udp_request(ns: &Ns, to: SocketAddr) -> std::io::Result<String> {
    let local: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .unwrap();
    let sock = ns
        .open()
        .run(move || UdpSocket::bind(local))
        .expect("enter namespace")?;
    sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
    sock.send_to(b"hello", to)?;
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}
