//! Pipelined route changes, for programs that install routes by the hundred thousand (a BGP
//! speaker): many requests go out in one datagram, and one ack closes the window.
//!
//! [`super::Netlink`] sends one request and waits for its ack, which costs two system calls
//! and a scheduler round trip per route. Here a window of requests is packed into one
//! `sendto`. The kernel answers a refused request with an error whether or not it asked for
//! an ack, and it answers the requests of a socket in order, so only the last request of a
//! window carries `NLM_F_ACK`: once its ack (or error) is read, every earlier request of the
//! window has been handled, and the errors that came before it name exactly the refused
//! ones. Skipping the per-route ack saves about a quarter of the kernel's work per route.
//! The window is sized so that even a window refused in full fits the socket's receive
//! buffer (raised where the caller may): an error lost to an overflowing buffer would go
//! unnoticed.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLMSG_ERROR,
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::errors::Failure;
use super::route::{describe, route_message, Purpose};
use super::{Result, Route};
use crate::error::DriverError;
use crate::netns::Netns;

/// Receive buffer asked for (SO_RCVBUFFORCE needs CAP_NET_ADMIN; otherwise the system's
/// maximum applies and the window shrinks to match).
const WANTED_RCVBUF: usize = 8 << 20;
/// The kernel accounts every reply as one socket buffer of roughly this size (`truesize`), so
/// the receive buffer holds this many bytes per request that may be refused.
const ACK_COST: usize = 2048;
/// Upper bound of requests per datagram (the send side is limited by SO_SNDBUF too).
const MAX_WINDOW: usize = 1024;
/// `nlmsghdr` size.
const NLMSG_HEADER_LEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;
const RECV_BUFFER: usize = 256 * 1024;

/// One change of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOp {
    /// `ip route replace …` (creates or replaces the route with the same destination, table
    /// and metric).
    Replace(Route),
    /// `ip route del DEST [table T] [proto P] [metric M]`; the protocol always narrows the
    /// match.
    Delete(Route),
}

impl RouteOp {
    /// The route the change concerns.
    pub fn route(&self) -> &Route {
        match self {
            RouteOp::Replace(r) | RouteOp::Delete(r) => r,
        }
    }
}

/// A NETLINK_ROUTE socket for pipelined route changes, bound to the network namespace it was
/// opened in.
pub struct RouteBatch {
    socket: Socket,
    sequence: u32,
    window: usize,
    send_buffer: Vec<u8>,
    recv_buffer: Vec<u8>,
}

impl std::fmt::Debug for RouteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteBatch")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl RouteBatch {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<RouteBatch> {
        let fail = |e: io::Error| DriverError::Netlink {
            op: "open socket",
            object: "NETLINK_ROUTE (route batch)".into(),
            message: e.to_string(),
            errno: e.raw_os_error().unwrap_or(0),
        };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let rcvbuf = raise_rcvbuf(&socket);
        Ok(RouteBatch {
            socket,
            sequence: 0,
            window: (rcvbuf / ACK_COST).clamp(1, MAX_WINDOW),
            send_buffer: Vec::new(),
            recv_buffer: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// A socket inside `ns` (made on a helper thread; the caller stays where it is).
    pub fn open_in(ns: &Netns) -> Result<RouteBatch> {
        ns.run(RouteBatch::open)?
    }

    /// Requests per datagram.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Applies `ops` in order and returns the failures as (index into `ops`, error); the
    /// other changes are made. Deleting a route that is not there fails with ESRCH like
    /// [`super::Netlink::del_route`]. `Err` only when the socket itself fails (then an
    /// unknown part of the window may have been applied).
    pub fn apply(&mut self, ops: &[RouteOp]) -> Result<Vec<(usize, DriverError)>> {
        let mut failures = Vec::new();
        for (chunk_index, chunk) in ops.chunks(self.window).enumerate() {
            let base = chunk_index * self.window;
            let mut encoded = Vec::with_capacity(chunk.len());
            for (i, op) in chunk.iter().enumerate() {
                match encode(op) {
                    Ok(message) => encoded.push((base + i, message)),
                    Err(e) => failures.push((base + i, e)),
                }
            }
            if encoded.is_empty() {
                continue;
            }
            self.send_buffer.clear();
            let first = self.sequence.wrapping_add(1);
            let last = encoded.len() - 1;
            let mut pending = Vec::with_capacity(encoded.len());
            for (n, (index, message)) in encoded.into_iter().enumerate() {
                self.sequence = self.sequence.wrapping_add(1);
                pack(
                    &mut self.send_buffer,
                    message,
                    &ops[index],
                    self.sequence,
                    n == last,
                );
                pending.push(index);
            }
            self.send()?;
            self.collect(first, &pending, ops, &mut failures)?;
        }
        failures.sort_by_key(|(i, _)| *i);
        Ok(failures)
    }

    fn send(&mut self) -> Result<()> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.socket.send_to(&self.send_buffer, &kernel, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::io(&e).into_error("send route batch", "NETLINK_ROUTE"))
                }
            }
        }
    }

    /// Reads the window's replies until the one of its last request; `pending` holds the op
    /// index of each request in sending order, the first with sequence number `first`.
    fn collect(
        &mut self,
        first: u32,
        pending: &[usize],
        ops: &[RouteOp],
        failures: &mut Vec<(usize, DriverError)>,
    ) -> Result<()> {
        let last = pending.len() - 1;
        loop {
            self.receive()?;
            let mut offset = 0;
            while offset < self.recv_buffer.len() {
                let bytes = &self.recv_buffer[offset..];
                let header = NetlinkBuffer::new_checked(bytes).map_err(|e| {
                    Failure::decode(format!("bad netlink header: {e}"))
                        .into_error("read route batch replies", "NETLINK_ROUTE")
                })?;
                let length = header.length() as usize;
                if length < NLMSG_HEADER_LEN {
                    return Err(
                        Failure::decode(format!("netlink message of length {length}"))
                            .into_error("read route batch replies", "NETLINK_ROUTE"),
                    );
                }
                let (kind, flags) = (header.message_type(), header.flags());
                // Sequence numbers of one window are consecutive (modulo wrap).
                let slot = header.sequence_number().wrapping_sub(first) as usize;
                let message = &bytes[..length.min(bytes.len())];
                offset += align4(length);
                if kind != NLMSG_ERROR || slot > last {
                    continue; // not a reply of this window (a leftover of an abandoned one)
                }
                if let Some(failure) = parse_ack(message, flags) {
                    let index = pending[slot];
                    let op = &ops[index];
                    let what = match op {
                        RouteOp::Replace(_) => "replace route",
                        RouteOp::Delete(_) => "delete route",
                    };
                    failures.push((index, failure.into_error(what, describe(op.route()))));
                }
                if slot == last {
                    return Ok(());
                }
            }
        }
    }

    fn receive(&mut self) -> Result<()> {
        loop {
            self.recv_buffer.clear();
            match self.socket.recv(&mut self.recv_buffer, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::io(&e).into_error("read route batch acks", "NETLINK_ROUTE"))
                }
            }
        }
    }
}

/// Raises SO_RCVBUF as far as allowed and returns what the kernel granted.
fn raise_rcvbuf(socket: &Socket) -> usize {
    use std::os::fd::AsRawFd;
    let size = WANTED_RCVBUF as libc::c_int;
    let fd = socket.as_raw_fd();
    // SAFETY: setsockopt with a pointer to a live c_int of the size given.
    let forced = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        let _ = socket.set_rx_buf_sz(WANTED_RCVBUF);
    }
    // The kernel reports twice the value set (its bookkeeping overhead); half is usable.
    socket.get_rx_buf_sz().unwrap_or(212_992) / 2
}

/// Appends one request; `ack` asks for a reply even on success (the window's last).
fn pack(
    buffer: &mut Vec<u8>,
    message: RouteNetlinkMessage,
    op: &RouteOp,
    sequence: u32,
    ack: bool,
) {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST
        | if ack { NLM_F_ACK } else { 0 }
        | match op {
            RouteOp::Replace(_) => NLM_F_CREATE | NLM_F_REPLACE,
            RouteOp::Delete(_) => 0,
        };
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let start = buffer.len();
    buffer.resize(start + align4(packet.buffer_len()), 0);
    packet.serialize(&mut buffer[start..]);
}

/// `None` for an ack, the refusal otherwise.
fn parse_ack(bytes: &[u8], flags: u16) -> Option<Failure> {
    let code = i32::from_ne_bytes(
        bytes
            .get(NLMSG_HEADER_LEN..NLMSG_HEADER_LEN + 4)?
            .try_into()
            .ok()?,
    );
    if code == 0 {
        return None;
    }
    let detail = (flags & NLM_F_ACK_TLVS != 0)
        .then(|| {
            // The TLVs follow the echoed request: only its header with NLM_F_CAPPED.
            let echoed = bytes.get(NLMSG_HEADER_LEN + 4..)?;
            let request_len = if flags & NLM_F_CAPPED != 0 {
                NLMSG_HEADER_LEN
            } else {
                u32::from_ne_bytes(echoed.get(..4)?.try_into().ok()?) as usize
            };
            NlasIterator::new(echoed.get(align4(request_len)..)?)
                .map_while(std::result::Result::ok)
                .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
                .map(|nla| {
                    String::from_utf8_lossy(nla.value())
                        .trim_end_matches('\0')
                        .to_string()
                })
        })
        .flatten()
        .filter(|text| !text.is_empty());
    Some(Failure::kernel(code.abs(), detail))
}

/// The request for one change ([`super::route::route_message`]): a delete matches by
/// destination, table, protocol and metric, whatever the next hops are now.
fn encode(op: &RouteOp) -> Result<RouteNetlinkMessage> {
    Ok(match op {
        RouteOp::Replace(route) => {
            RouteNetlinkMessage::NewRoute(route_message(route, Purpose::Install)?)
        }
        RouteOp::Delete(route) => {
            RouteNetlinkMessage::DelRoute(route_message(route, Purpose::DeleteByPrefix)?)
        }
    })
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{IpFamily, Netlink, RouteKind};
    use ipnet::IpNet;
    use netlink_packet_route::route::{RouteAttribute, RouteType, RouteVia};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn cross_family_gateway_becomes_via() {
        let mut route = Route::new(net("10.9.0.0/24"));
        route.gateway = Some("fe80::1".parse().unwrap());
        route.oif = Some(3);
        let RouteNetlinkMessage::NewRoute(m) = encode(&RouteOp::Replace(route)).unwrap() else {
            panic!("not a new-route request");
        };
        assert!(m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Via(RouteVia::Inet6(_)))));
    }

    #[test]
    fn delete_matches_loosely_and_carries_no_gateway() {
        let mut route = Route::new(net("10.9.0.0/24"));
        route.gateway = Some("10.0.0.1".parse().unwrap());
        route.protocol = 87;
        let RouteNetlinkMessage::DelRoute(m) = encode(&RouteOp::Delete(route)).unwrap() else {
            panic!("not a delete request");
        };
        assert_eq!(u8::from(m.header.scope), 255, "any scope");
        assert_eq!(m.header.kind, RouteType::Unspec);
        assert_eq!(u8::from(m.header.protocol), 87);
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Gateway(_))));
    }

    #[test]
    fn host_bits_are_refused_before_the_kernel() {
        let e = encode(&RouteOp::Replace(Route::new(net("10.9.0.1/24")))).unwrap_err();
        assert!(e.to_string().contains("use 10.9.0.0/24"), "{e}");
    }

    /// Runs `f` on a thread inside a fresh network namespace; None (reason printed) when not
    /// root.
    fn in_new_netns<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIPPED: needs root to create a network namespace");
            return None;
        }
        Some(
            std::thread::scope(|s| {
                s.spawn(|| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
                    f()
                })
                .join()
            })
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    }

    #[test]
    fn thousands_of_routes_with_one_failure_in_the_middle() {
        in_new_netns(|| {
            let mut nl = Netlink::open().unwrap();
            let lo = nl.link_by_name("lo").unwrap().unwrap().index;
            nl.set_up(lo).unwrap();
            let mut batch = RouteBatch::open().unwrap();
            let route = |i: u32| {
                let mut r = Route::new(
                    IpNet::new(std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(), 24)
                        .unwrap(),
                );
                r.kind = RouteKind::Blackhole;
                r.protocol = 87;
                r
            };
            let mut ops: Vec<RouteOp> = (0..5000).map(|i| RouteOp::Replace(route(i))).collect();
            // A gateway no interface reaches: refused, and only this one.
            let mut bad = Route::new(net("192.0.2.0/24"));
            bad.gateway = Some("198.51.100.1".parse().unwrap());
            bad.protocol = 87;
            ops.insert(2500, RouteOp::Replace(bad));
            let failures = batch.apply(&ops).unwrap();
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert_eq!(failures[0].0, 2500);
            assert!(
                failures[0].1.to_string().contains("192.0.2.0/24"),
                "{}",
                failures[0].1
            );
            let installed = nl
                .routes(Some(IpFamily::V4), Some(254))
                .unwrap()
                .into_iter()
                .filter(|r| r.protocol == 87)
                .count();
            assert_eq!(installed, 5000);
            // Deleting all of them, twice: the second time every one is already gone.
            let deletes: Vec<RouteOp> = (0..5000).map(|i| RouteOp::Delete(route(i))).collect();
            assert!(batch.apply(&deletes).unwrap().is_empty());
            let again = batch.apply(&deletes).unwrap();
            assert_eq!(again.len(), 5000);
            assert_eq!(again[0].1.errno(), Some(libc::ESRCH));
        });
    }
}
