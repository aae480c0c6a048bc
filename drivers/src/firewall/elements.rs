//! Published-port map elements written straight over NETLINK_NETFILTER, instead of starting
//! the `nft` program (about 4 ms each time) for every container. Only the elements of existing
//! maps go this way; the table's structure is still written as nft text. Element keys and data
//! use nft's register layout: each part of a concatenation padded to 4 bytes, ports in network
//! byte order.
//!
//! Any number of changes (a container publishing a range of 10,000 ports, a host with 100,000)
//! is split into batches (BATCH_BEGIN … BATCH_END, each one kernel transaction) that fit the
//! socket's buffers:
//!
//! - **Many elements per message**, as nft itself sends them: one NEWSETELEM/DELSETELEM carries
//!   a list of elements of one map (up to the 64 KiB that the list's 16-bit attribute length
//!   allows, about 1,800 IPv4 elements). Against one message per element this is about a third
//!   of the bytes (no header, table and map name per element), one kernel dispatch per list
//!   rather than per element, and a handful of messages per batch, so the replies can never
//!   overflow the receive buffer — which is what one ack per element did at ~130 ports
//!   (ENOBUFS), and one datagram for everything did at 10,000 (EMSGSIZE).
//! - **One ack per batch**: only the last message asks for one. The kernel answers a refused
//!   message whether or not it asked, and it delivers a batch's answers together, in order,
//!   once the batch is done; so the last message's answer closes the batch and the refusals
//!   before it name exactly the refused messages. Extended acks point at the refused element
//!   inside its message (`NLMSGERR_ATTR_OFFS`), which names it.
//! - **The buffers are raised** (SO_SNDBUFFORCE/SO_RCVBUFFORCE as root, else as far as the
//!   system allows) and batches are sized to what the kernel granted: the send buffer bounds a
//!   batch's bytes, the receive buffer the number of messages that could each be refused. A
//!   batch refused with EMSGSIZE is split smaller; an overflowing receive buffer (ENOBUFS: an
//!   answer was lost, the outcome is unknown) makes the batches hold fewer messages and the
//!   batch is sent again, which is safe because every change here is idempotent (below).
//!
//! Idempotence, so that a teardown retried after a crash converges: the kernel answers an add
//! of an element that is already there with the same data with success (no NLM_F_EXCL), and
//! a delete of an element that is gone with ENOENT, which counts as done. The kernel stops a
//! message at its first refused element and aborts the whole batch, so after a refusal the
//! rest of that batch is sent again without the refused elements, one element per message
//! (each then answered on its own: one more round finds every absent one), then packed again.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::ops::Range;
use std::os::fd::AsRawFd;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::ruleset::{port_map, TABLE};
use super::PortTarget;
use crate::error::DriverError;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
/// In an error answer: only the request's header is echoed (NETLINK_CAP_ACK).
const NLM_F_CAPPED: u16 = 0x100;
/// In an error answer: extended-ack attributes follow the echoed request.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSG_ERROR: u16 = 0x2;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;

/// `nlmsghdr` plus `nfgenmsg`.
const HEADER_LEN: usize = 16 + 4;
/// BATCH_BEGIN and BATCH_END around every batch.
const FRAME_LEN: usize = 2 * HEADER_LEN;
/// Most bytes of one message's element list: its nested attribute has a 16-bit length.
const MAX_LIST_BYTES: usize = 65_000;
/// As many elements per message as fit (see `Limits::per_message`).
const PACKED: usize = usize::MAX;
/// Buffers asked for. 4 MiB takes a whole 10,000-port dual-stack endpoint (~1 MiB) in one
/// batch, so a publish is normally one transaction.
const WANTED_SNDBUF: usize = 4 << 20;
const WANTED_RCVBUF: usize = 4 << 20;
/// Largest batch sent even when the send buffer is bigger (the kernel copies it in one piece).
const MAX_BATCH_BYTES: usize = 2 << 20;
/// The receive buffer is charged roughly this much (`truesize`) per answer, however small.
const ACK_COST: usize = 2048;
/// Upper bound of messages per batch.
const MAX_MESSAGES: usize = 1024;
/// Big enough for an uncapped error answer that echoes a whole 64 KiB message.
const RECV_BUFFER: usize = 128 * 1024;
/// How often the limits may shrink (EMSGSIZE, ENOBUFS) before giving up.
const MAX_SHRINKS: usize = 32;

/// One change to a port map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementOp {
    Add(PortTarget),
    Delete(PortTarget),
}

/// The key as the map stores it: `[host address .] protocol . port`.
fn key(p: &PortTarget) -> Vec<u8> {
    let mut k = Vec::with_capacity(28);
    if let Some(ip) = p.host_ip {
        push_ip(&mut k, ip);
    }
    k.extend_from_slice(&[p.protocol.number(), 0, 0, 0]);
    k.extend_from_slice(&p.host_port.to_be_bytes());
    k.extend_from_slice(&[0, 0]);
    k
}

/// The data: `container address . port`.
fn data(p: &PortTarget) -> Vec<u8> {
    let mut d = Vec::with_capacity(20);
    push_ip(&mut d, p.container_ip);
    d.extend_from_slice(&p.container_port.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d
}

fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => buf.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => buf.extend_from_slice(&v6.octets()),
    }
}

/// Netlink attribute writer (4-byte aligned TLVs).
struct Attrs<'a>(&'a mut Vec<u8>);

impl Attrs<'_> {
    fn put(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(value);
        self.pad();
    }

    fn put_str(&mut self, kind: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v);
    }

    /// Writes a nested attribute whose content `f` produces.
    fn nest(&mut self, kind: u16, f: impl FnOnce(&mut Attrs)) {
        let start = self.0.len();
        self.0.extend_from_slice(&[0, 0]);
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        f(&mut Attrs(self.0));
        let len = (self.0.len() - start) as u16;
        self.0[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.pad();
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
}

/// Appends one netlink message: header, `nfgenmsg`, then what `body` writes.
fn message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: impl FnOnce(&mut Attrs),
) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    body(&mut Attrs(buf));
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

// ---- Splitting into batches (pure) ----

impl ElementOp {
    fn target(&self) -> &PortTarget {
        match self {
            ElementOp::Add(p) | ElementOp::Delete(p) => p,
        }
    }

    fn is_add(&self) -> bool {
        matches!(self, ElementOp::Add(_))
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// An attribute with `payload` bytes of value, padded.
fn attr_len(payload: usize) -> usize {
    4 + align4(payload)
}

/// A message's bytes before its first element: headers, table and map names, the list's nest.
fn message_overhead(map: &str) -> usize {
    HEADER_LEN + attr_len(TABLE.len() + 1) + attr_len(map.len() + 1) + 4
}

/// One element in a message's list: the element's nest, its key and (for an add) its data
/// (the lengths of `key` and `data`, without building them).
fn element_len(op: &ElementOp) -> usize {
    let p = op.target();
    let ip_len = |ip: IpAddr| if ip.is_ipv4() { 4 } else { 16 };
    let key_len = p.host_ip.map_or(0, ip_len) + 8;
    let data_len = ip_len(p.container_ip) + 4;
    let key = 4 + attr_len(key_len);
    let data = if op.is_add() {
        4 + attr_len(data_len)
    } else {
        0
    };
    4 + key + data
}

/// What one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// Bytes of a whole batch (the send buffer: a bigger datagram is refused with EMSGSIZE).
    pub batch_bytes: usize,
    /// Messages of a batch: each may be refused, and a batch's answers all arrive at once, so
    /// they must fit the receive buffer together.
    pub messages: usize,
    /// Elements of a message; 1 makes the kernel answer for each element on its own.
    pub per_message: usize,
}

/// One NEWSETELEM/DELSETELEM: consecutive ops (of one kind and map) and its encoded size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Message {
    pub ops: Range<usize>,
    pub bytes: usize,
}

/// One kernel transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Batch {
    pub messages: Vec<Message>,
    /// Encoded size, BATCH_BEGIN and BATCH_END included.
    pub bytes: usize,
}

impl Batch {
    pub fn ops(&self) -> Range<usize> {
        let start = self.messages.first().map_or(0, |m| m.ops.start);
        let end = self.messages.last().map_or(0, |m| m.ops.end);
        start..end
    }
}

/// Splits `ops` (in order) into batches within `limits`. Consecutive ops of one kind on one map
/// share a message. An op too big for any batch still gets one of its own, and the kernel's
/// refusal then says so. (The sender takes one [`first_batch`] at a time, since what it sends
/// next depends on the kernel's answers.)
#[cfg(test)]
pub(super) fn plan(ops: &[ElementOp], limits: Limits) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < ops.len() {
        let mut batch = first_batch(&ops[start..], limits);
        for m in &mut batch.messages {
            m.ops = m.ops.start + start..m.ops.end + start;
        }
        start = batch.ops().end;
        batches.push(batch);
    }
    batches
}

/// The first batch of [`plan`]: as many of `ops` as fit (at least one). Looks at no more ops
/// than fit, so sending a long list batch by batch costs what the batches hold.
pub(super) fn first_batch(ops: &[ElementOp], limits: Limits) -> Batch {
    let mut batch = Batch {
        messages: Vec::new(),
        bytes: FRAME_LEN,
    };
    let per_message = limits.per_message.max(1);
    for (i, op) in ops.iter().enumerate() {
        let len = element_len(op);
        let map = port_map(op.target());
        let joins = batch.messages.last().is_some_and(|m| {
            let prev = &ops[m.ops.start];
            prev.is_add() == op.is_add()
                && port_map(prev.target()) == map
                && m.ops.len() < per_message
                && m.bytes - message_overhead(map) + len <= MAX_LIST_BYTES
        });
        let grows = if joins {
            len
        } else {
            message_overhead(map) + len
        };
        let full = batch.bytes + grows > limits.batch_bytes
            || (!joins && batch.messages.len() >= limits.messages.max(1));
        if full && !batch.messages.is_empty() {
            break;
        }
        match batch.messages.last_mut() {
            Some(m) if joins => {
                m.ops.end = i + 1;
                m.bytes += len;
            }
            _ => batch.messages.push(Message {
                ops: i..i + 1,
                bytes: grows,
            }),
        }
        batch.bytes += grows;
    }
    batch
}

// ---- Encoding ----

/// The encoded batch: BATCH_BEGIN with sequence number `first`, message `i` with `first + 1 +
/// i`, BATCH_END after them. Also, per message, where each element starts (from the message's
/// start), to tell which element an extended ack points at.
pub(super) fn encode(ops: &[ElementOp], batch: &Batch, first: u32) -> (Vec<u8>, Vec<Vec<u32>>) {
    let mut buf = Vec::with_capacity(batch.bytes);
    let mut starts = Vec::with_capacity(batch.messages.len());
    let subsys = NFNL_SUBSYS_NFTABLES;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        first,
        0,
        subsys,
        |_| {},
    );
    let last = batch.messages.len().saturating_sub(1);
    for (n, m) in batch.messages.iter().enumerate() {
        let head = &ops[m.ops.start];
        let (kind, create) = if head.is_add() {
            (NFT_MSG_NEWSETELEM, NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, 0)
        };
        // Only the last message asks for an ack: refusals are answered anyway.
        let ack = if n == last { NLM_F_ACK } else { 0 };
        let message_start = buf.len();
        let mut element_starts = Vec::with_capacity(m.ops.len());
        message(
            &mut buf,
            (subsys << 8) | kind,
            NLM_F_REQUEST | ack | create,
            first.wrapping_add(1 + n as u32),
            NFPROTO_INET,
            0,
            |a| {
                a.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
                a.put_str(NFTA_SET_ELEM_LIST_SET, port_map(head.target()));
                a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
                    for op in &ops[m.ops.clone()] {
                        element_starts.push((a.0.len() - message_start) as u32);
                        let p = op.target();
                        a.nest(NFTA_LIST_ELEM, |a| {
                            a.nest(NFTA_SET_ELEM_KEY, |a| a.put(NFTA_DATA_VALUE, &key(p)));
                            if op.is_add() {
                                a.nest(NFTA_SET_ELEM_DATA, |a| a.put(NFTA_DATA_VALUE, &data(p)));
                            }
                        });
                    }
                });
            },
        );
        starts.push(element_starts);
    }
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        first.wrapping_add(1 + batch.messages.len() as u32),
        0,
        subsys,
        |_| {},
    );
    (buf, starts)
}

// ---- Talking to the kernel ----

/// A refusal from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    /// The message refused; `None`: the batch as a whole (e.g. out of memory).
    message: Option<usize>,
    /// The element the extended ack points at, as an index into the message's ops.
    element: Option<usize>,
    errno: i32,
    /// The kernel's extended-ack text, if any.
    text: Option<String>,
}

/// What became of a batch.
enum Outcome {
    /// Every answer read: committed if `refusals` is empty, else aborted (nothing applied).
    Answered(Vec<Refusal>),
    /// The batch was bigger than the socket takes (EMSGSIZE); nothing applied.
    TooLong,
    /// An answer was lost to a full receive buffer (ENOBUFS): the outcome is unknown.
    Overflow,
}

fn fail(what: &str, e: &io::Error) -> DriverError {
    DriverError::Firewall {
        message: format!("netfilter netlink {what}: {e}"),
    }
}

struct Session {
    socket: Socket,
    sequence: u32,
    limits: Limits,
    recv: Vec<u8>,
}

impl Session {
    /// A NETLINK_NETFILTER socket in the calling thread's network namespace.
    fn open() -> Result<Session, DriverError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| fail("socket", &e))?;
        socket.bind_auto().map_err(|e| fail("bind", &e))?;
        // Errors echo only the request's header (not a 64 KiB element list) and say where in
        // the request the refused element is.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        // The kernel reports twice what was set (its bookkeeping overhead); half is usable.
        let sndbuf = raise_buffer(
            &socket,
            libc::SO_SNDBUFFORCE,
            libc::SO_SNDBUF,
            WANTED_SNDBUF,
        );
        let rcvbuf = raise_buffer(
            &socket,
            libc::SO_RCVBUFFORCE,
            libc::SO_RCVBUF,
            WANTED_RCVBUF,
        );
        Ok(Session {
            socket,
            sequence: 0,
            limits: limits_for(sndbuf / 2, rcvbuf / 2),
            recv: vec![0; RECV_BUFFER],
        })
    }

    /// A session whose receive buffer is `rcvbuf` and whose batches are within `limits`
    /// whatever the buffers say (tests of splitting and of lost answers).
    #[cfg(test)]
    fn open_with(limits: Limits, rcvbuf: Option<usize>) -> Session {
        let mut s = Session::open().unwrap();
        if let Some(size) = rcvbuf {
            s.socket.set_rx_buf_sz(size).unwrap();
        }
        s.limits = limits;
        s
    }

    fn send(&mut self, ops: &[ElementOp], batch: &Batch) -> Result<Outcome, DriverError> {
        let first = self.sequence.wrapping_add(1);
        self.sequence = first.wrapping_add(batch.messages.len() as u32 + 1);
        let (bytes, starts) = encode(ops, batch, first);
        loop {
            match self.socket.send_to(&bytes, &SocketAddr::new(0, 0), 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => return Ok(Outcome::TooLong),
                Err(e) => return Err(fail("send", &e)),
            }
        }
        let last = batch.messages.len() - 1;
        let mut refusals = Vec::new();
        loop {
            let n = match self.socket.recv(&mut &mut self.recv[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.drain();
                    return Ok(Outcome::Overflow);
                }
                Err(e) => return Err(fail("receive", &e)),
            };
            let mut done = false;
            let mut whole_batch = false;
            for answer in answers(&self.recv[..n.min(self.recv.len())]) {
                let slot = answer.sequence.wrapping_sub(first) as usize;
                if slot > last + 1 {
                    continue; // an answer to an earlier, abandoned batch
                }
                if slot == 0 {
                    // The batch itself (out of memory, a failed commit).
                    if answer.errno != 0 {
                        refusals.push(Refusal {
                            message: None,
                            element: None,
                            errno: answer.errno,
                            text: answer.text,
                        });
                        whole_batch = true;
                    }
                    continue;
                }
                let index = slot - 1;
                if index > last {
                    continue;
                }
                if answer.errno != 0 {
                    let element = answer.offset.map(|off| {
                        starts[index]
                            .partition_point(|&s| s <= off)
                            .saturating_sub(1)
                    });
                    refusals.push(Refusal {
                        message: Some(index),
                        element,
                        errno: answer.errno,
                        text: answer.text,
                    });
                }
                done |= index == last;
            }
            if done {
                return Ok(Outcome::Answered(refusals));
            }
            if whole_batch {
                // The kernel handles a batch while `send` runs, so every answer it will give
                // is queued already: take what is left and stop (after an out-of-memory
                // refusal no other answer comes).
                self.drain();
                return Ok(Outcome::Answered(refusals));
            }
        }
    }

    /// Throws away whatever answers are queued.
    fn drain(&mut self) {
        while let Ok(n) = self
            .socket
            .recv(&mut &mut self.recv[..], libc::MSG_DONTWAIT)
        {
            if n == 0 {
                break;
            }
        }
    }
}

/// Batch limits for the usable bytes of the send and receive buffers.
pub(super) fn limits_for(sndbuf: usize, rcvbuf: usize) -> Limits {
    Limits {
        batch_bytes: sndbuf.clamp(4096, MAX_BATCH_BYTES),
        messages: (rcvbuf / ACK_COST).clamp(1, MAX_MESSAGES),
        per_message: PACKED,
    }
}

/// Raises a socket buffer as far as allowed (the FORCE option needs CAP_NET_ADMIN; otherwise
/// the system's maximum applies) and returns what the kernel reports.
fn raise_buffer(socket: &Socket, force: libc::c_int, plain: libc::c_int, wanted: usize) -> usize {
    let fd = socket.as_raw_fd();
    let size = wanted as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt and getsockopt with pointers to live c_ints of the size given.
    unsafe {
        let value = (&size as *const libc::c_int).cast();
        if libc::setsockopt(fd, libc::SOL_SOCKET, force, value, len) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, plain, value, len);
        }
        let mut got: libc::c_int = 0;
        let mut got_len = len;
        if libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            plain,
            (&mut got as *mut libc::c_int).cast(),
            &mut got_len,
        ) != 0
        {
            return 212_992;
        }
        got.max(0) as usize
    }
}

/// One NLMSG_ERROR answer (an ack when `errno` is 0).
struct Answer {
    sequence: u32,
    errno: i32,
    /// Extended ack: where the refused attribute starts in the request.
    offset: Option<u32>,
    text: Option<String>,
}

/// The NLMSG_ERROR answers in one datagram.
fn answers(buf: &[u8]) -> Vec<Answer> {
    let u16_at = |b: &[u8], at: usize| b.get(at..at + 2).map(|v| u16::from_ne_bytes([v[0], v[1]]));
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|v| u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
    };
    let mut out = Vec::new();
    let mut off = 0;
    while let (Some(len), Some(kind), Some(flags), Some(sequence)) = (
        u32_at(buf, off),
        u16_at(buf, off + 4),
        u16_at(buf, off + 6),
        u32_at(buf, off + 8),
    ) {
        let len = len as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let msg = &buf[off..off + len];
        off += align4(len);
        if kind != NLMSG_ERROR {
            continue;
        }
        let Some(code) = u32_at(msg, 16) else {
            continue;
        };
        let mut answer = Answer {
            sequence,
            errno: -(code as i32),
            offset: None,
            text: None,
        };
        if flags & NLM_F_ACK_TLVS != 0 {
            // The attributes follow the echoed request (only its header when capped).
            let echoed = if flags & NLM_F_CAPPED != 0 {
                16
            } else {
                u32_at(msg, 20).unwrap_or(16) as usize
            };
            let mut at = 20 + align4(echoed);
            while let (Some(alen), Some(akind)) = (u16_at(msg, at), u16_at(msg, at + 2)) {
                let alen = alen as usize;
                if alen < 4 || at + alen > msg.len() {
                    break;
                }
                let value = &msg[at + 4..at + alen];
                match akind & 0x3fff {
                    NLMSGERR_ATTR_OFFS => answer.offset = u32_at(value, 0),
                    NLMSGERR_ATTR_MSG => {
                        let text = String::from_utf8_lossy(value)
                            .trim_end_matches('\0')
                            .to_string();
                        answer.text = (!text.is_empty()).then_some(text);
                    }
                    _ => {}
                }
                at += align4(alen);
            }
        }
        out.push(answer);
    }
    out
}

// ---- Applying ----

/// What a run of changes came to.
#[derive(Debug, Default)]
struct Report {
    /// Ops refused (index into the ops, errno, kernel text); deletes of absent elements are
    /// not among them.
    refused: Vec<(usize, i32, Option<String>)>,
    /// Adds that are in the kernel now (to take back when another add was refused).
    added: Vec<usize>,
}

/// Applies `ops` in batches, in order. With `stop_on_add_refusal`, the first refused add ends
/// the run (the caller takes back what was added); otherwise every change that can be made is.
fn run(
    session: &mut Session,
    ops: &[ElementOp],
    stop_on_add_refusal: bool,
) -> Result<Report, DriverError> {
    let mut report = Report::default();
    // Work still to do, in order: indexes into `ops`, and how many elements a message may hold.
    let mut work: VecDeque<(Vec<usize>, usize)> = VecDeque::new();
    work.push_back(((0..ops.len()).collect(), PACKED));
    let mut shrinks = 0;
    while let Some((indexes, per_message)) = work.pop_front() {
        if indexes.is_empty() {
            continue;
        }
        let limits = Limits {
            per_message,
            ..session.limits
        };
        // No batch holds more than this many ops (the smallest element is 20 bytes).
        let most = if per_message == 1 {
            limits.messages
        } else {
            limits.batch_bytes / 20
        };
        let sub: Vec<ElementOp> = indexes
            .iter()
            .take(most.max(1))
            .map(|&i| ops[i].clone())
            .collect();
        let batch = first_batch(&sub, limits);
        let span = batch.ops();
        if span.end < indexes.len() {
            work.push_front((indexes[span.end..].to_vec(), per_message));
        }
        let this = &indexes[span.clone()];
        let outcome = session.send(&sub, &batch)?;
        let refusals = match outcome {
            Outcome::Answered(r) => r,
            Outcome::TooLong | Outcome::Overflow => {
                shrinks += 1;
                let l = &mut session.limits;
                let smaller = match outcome {
                    Outcome::TooLong if l.batch_bytes > 4096 => {
                        l.batch_bytes /= 2;
                        true
                    }
                    Outcome::Overflow if l.messages > 1 => {
                        l.messages /= 2;
                        true
                    }
                    _ => false,
                };
                if !smaller || shrinks > MAX_SHRINKS {
                    let why = if matches!(outcome, Outcome::TooLong) {
                        "the batch is too long for the socket's send buffer (EMSGSIZE)"
                    } else {
                        "the kernel's answers overflow the socket's receive buffer (ENOBUFS)"
                    };
                    return Err(DriverError::Firewall {
                        message: format!(
                            "netfilter netlink: {} port-map changes not made: {why} even at {} bytes and {} messages per batch; raise net.core.wmem_max and net.core.rmem_max",
                            indexes.len(),
                            l.batch_bytes,
                            l.messages
                        ),
                    });
                }
                // Sent again: every change here is idempotent, whatever became of the batch.
                work.push_front((this.to_vec(), per_message));
                continue;
            }
        };
        if refusals.is_empty() {
            report
                .added
                .extend(this.iter().copied().filter(|&i| ops[i].is_add()));
            continue;
        }
        // The batch was aborted: none of it is in the kernel. The kernel read every message
        // of it, each up to its first refused element: drop the refused elements (an absent
        // one to delete is done), and send the rest again; what follows a refused element
        // was not looked at, so it goes one element per message.
        #[derive(Clone, Copy, PartialEq)]
        enum Next {
            Dropped,
            Packed,
            Single,
        }
        let mut next = vec![Next::Packed; this.len()];
        let mut add_refused = false;
        for r in &refusals {
            let Some(m) = r.message else {
                return Err(DriverError::Firewall {
                    message: format!(
                        "kernel refused a batch of {} port-map changes: {}{}; nothing of it was made",
                        this.len(),
                        io::Error::from_raw_os_error(r.errno),
                        r.text.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
                    ),
                });
            };
            let msg = &batch.messages[m];
            let first = msg.ops.start - span.start;
            let end = msg.ops.end - span.start;
            let refused = match r.element {
                Some(e) if first + e < end => first + e,
                // Not said which: with one element it is that one; else find out.
                _ if end - first == 1 => first,
                _ => {
                    next[first..end].fill(Next::Single);
                    continue;
                }
            };
            next[refused + 1..end].fill(Next::Single);
            next[refused] = Next::Dropped;
            let i = this[refused];
            if !is_gone(&ops[i], r.errno) {
                add_refused |= ops[i].is_add();
                report.refused.push((i, r.errno, r.text.clone()));
            }
        }
        if add_refused && stop_on_add_refusal {
            return Ok(report);
        }
        // Runs of one mode, in order, to the front of the work.
        let mut runs: Vec<(Vec<usize>, usize)> = Vec::new();
        for (&i, &mode) in this.iter().zip(&next) {
            let per = match mode {
                Next::Dropped => continue,
                Next::Packed => PACKED,
                Next::Single => 1,
            };
            match runs.last_mut() {
                Some((run, p)) if *p == per => run.push(i),
                _ => runs.push((vec![i], per)),
            }
        }
        for run in runs.into_iter().rev() {
            work.push_front(run);
        }
    }
    Ok(report)
}

/// A delete of an element that is not there: already done.
fn is_gone(op: &ElementOp, errno: i32) -> bool {
    !op.is_add() && errno == libc::ENOENT
}

/// Makes the changes. Deletes of absent elements are done; a refused add takes back every add
/// of the call (all or nothing, also across batches); a refused delete does not stop the
/// others. The error names the refused elements, why, and what to do.
pub(super) fn apply(ops: &[ElementOp]) -> Result<(), DriverError> {
    if ops.is_empty() {
        return Ok(());
    }
    apply_in(&mut Session::open()?, ops)
}

fn apply_in(session: &mut Session, ops: &[ElementOp]) -> Result<(), DriverError> {
    let report = run(session, ops, true)?;
    if report.refused.is_empty() {
        return Ok(());
    }
    let mut message = refusals_text(ops, &report.refused);
    if report.refused.iter().any(|(i, _, _)| ops[*i].is_add()) && !report.added.is_empty() {
        let undo: Vec<ElementOp> = report
            .added
            .iter()
            .map(|&i| ElementOp::Delete(*ops[i].target()))
            .collect();
        match run(session, &undo, false) {
            Ok(r) if r.refused.is_empty() => {}
            Ok(r) => message.push_str(&format!(
                "; taking back the {} ports added failed: {}",
                undo.len(),
                refusals_text(&undo, &r.refused)
            )),
            Err(e) => message.push_str(&format!(
                "; taking back the {} ports added failed: {e}",
                undo.len()
            )),
        }
    }
    Err(DriverError::Firewall { message })
}

/// "kernel refused publishing A: why (fix); … and N more".
fn refusals_text(ops: &[ElementOp], refused: &[(usize, i32, Option<String>)]) -> String {
    const NAMED: usize = 5;
    let mut parts: Vec<String> = refused
        .iter()
        .take(NAMED)
        .map(|(i, errno, text)| {
            let op = &ops[*i];
            let hint = match (op.is_add(), *errno) {
                (true, libc::EEXIST) => {
                    "; the host port is published to another container: choose another host port"
                }
                (_, libc::ENOENT) => {
                    "; weft's nft table or port map is missing: re-create the network or restart the daemon"
                }
                _ => "",
            };
            format!(
                "{}: {}{}{hint}",
                describe(op),
                io::Error::from_raw_os_error(*errno),
                text.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
            )
        })
        .collect();
    if refused.len() > NAMED {
        parts.push(format!("and {} more", refused.len() - NAMED));
    }
    format!("kernel refused {}", parts.join("; "))
}

fn describe(op: &ElementOp) -> String {
    match op {
        ElementOp::Add(p) => format!("publishing {p}"),
        ElementOp::Delete(p) => format!("unpublishing {p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn target(host_ip: Option<&str>, container: &str) -> PortTarget {
        PortTarget {
            protocol: Protocol::Tcp,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port: 8080,
            container_ip: container.parse().unwrap(),
            container_port: 80,
        }
    }

    #[test]
    fn keys_and_data_use_nfts_register_layout() {
        assert_eq!(
            key(&target(None, "172.18.0.2")),
            [6, 0, 0, 0, 0x1f, 0x90, 0, 0]
        );
        assert_eq!(
            key(&target(Some("127.0.0.1"), "172.18.0.2")),
            [127, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0]
        );
        assert_eq!(
            data(&target(None, "172.18.0.2")),
            [172, 18, 0, 2, 0, 80, 0, 0]
        );
        assert_eq!(key(&target(Some("::1"), "fd00::2")).len(), 24);
        assert_eq!(data(&target(None, "fd00::2")).len(), 20);
    }

    fn ports(n: usize, container: &str) -> Vec<PortTarget> {
        (0..n)
            .map(|i| PortTarget {
                host_port: 20_000 + i as u16,
                container_port: 20_000 + i as u16,
                ..target(None, container)
            })
            .collect()
    }

    fn adds(n: usize, container: &str) -> Vec<ElementOp> {
        ports(n, container)
            .into_iter()
            .map(ElementOp::Add)
            .collect()
    }

    /// Splits a batch's bytes into (type, flags, length) per message.
    fn frames(buf: &[u8]) -> Vec<(u16, u16, usize)> {
        let mut off = 0;
        let mut out = Vec::new();
        while off < buf.len() {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            assert!(len.is_multiple_of(4));
            let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
            let flags = u16::from_ne_bytes(buf[off + 6..off + 8].try_into().unwrap());
            out.push((kind, flags, len));
            off += len;
        }
        assert_eq!(off, buf.len());
        out
    }

    /// Every op once, in order, in contiguous messages; each batch within the limits.
    fn check_plan(ops: &[ElementOp], limits: Limits, batches: &[Batch]) {
        let mut next = 0;
        for b in batches {
            assert!(b.messages.len() <= limits.messages, "{b:?}");
            assert!(
                b.bytes <= limits.batch_bytes,
                "{} > {}",
                b.bytes,
                limits.batch_bytes
            );
            for m in &b.messages {
                assert_eq!(m.ops.start, next);
                assert!(!m.ops.is_empty() && m.ops.len() <= limits.per_message);
                next = m.ops.end;
            }
            let (bytes, _) = encode(ops, b, 1);
            assert_eq!(bytes.len(), b.bytes, "planned size is the encoded size");
            let sizes: Vec<usize> = frames(&bytes).iter().map(|f| f.2).collect();
            let planned: Vec<usize> = b.messages.iter().map(|m| m.bytes).collect();
            assert_eq!(sizes[1..sizes.len() - 1], planned[..]);
        }
        assert_eq!(next, ops.len());
    }

    #[test]
    fn ten_thousand_adds_pack_into_one_batch_of_few_messages() {
        let ops = adds(10_000, "172.18.0.2");
        let limits = limits_for(4 << 20, 4 << 20);
        let batches = plan(&ops, limits);
        check_plan(&ops, limits, &batches);
        assert_eq!(batches.len(), 1);
        // 36 bytes per IPv4 element, 65,000 per message: 1,805 a message.
        assert_eq!(batches[0].messages.len(), 6);
        assert_eq!(batches[0].messages[0].ops.len(), 1_805);
        assert_eq!(
            batches[0].bytes,
            10_000 * 36 + 6 * message_overhead("ports4_any") + 40
        );
    }

    #[test]
    fn the_send_buffer_bounds_a_batch() {
        // The system default (212,992, half of it usable) without SO_SNDBUFFORCE.
        let ops = adds(10_000, "172.18.0.2");
        let limits = limits_for(106_496, 106_496);
        let batches = plan(&ops, limits);
        check_plan(&ops, limits, &batches);
        assert_eq!(batches.len(), 4);
        assert!(batches[..3].iter().all(|b| b.bytes > 100_000));
    }

    #[test]
    fn one_element_per_message_is_bounded_by_the_answers_the_receive_buffer_holds() {
        let ops: Vec<ElementOp> = ports(10_000, "172.18.0.2")
            .into_iter()
            .map(ElementOp::Delete)
            .collect();
        let limits = Limits {
            per_message: 1,
            ..limits_for(4 << 20, 100 * ACK_COST)
        };
        let batches = plan(&ops, limits);
        check_plan(&ops, limits, &batches);
        assert_eq!(batches.len(), 100);
        assert!(batches.iter().all(|b| b.messages.len() == 100));
        // A delete carries no data: 20 bytes of element.
        assert_eq!(
            batches[0].messages[0].bytes,
            message_overhead("ports4_any") + 20
        );
    }

    #[test]
    fn messages_split_by_kind_and_map_and_keep_the_order() {
        let mut ops = adds(3, "172.18.0.2");
        ops.extend(adds(2, "fd00::2"));
        ops.push(ElementOp::Delete(ports(1, "172.18.0.2")[0]));
        ops.extend(adds(2, "172.18.0.2"));
        let limits = limits_for(1 << 20, 1 << 20);
        let batches = plan(&ops, limits);
        check_plan(&ops, limits, &batches);
        let runs: Vec<Range<usize>> = batches[0].messages.iter().map(|m| m.ops.clone()).collect();
        assert_eq!(runs, [0..3, 3..5, 5..6, 6..8]);
    }

    #[test]
    fn an_element_bigger_than_the_limit_still_gets_a_batch() {
        let ops = adds(3, "172.18.0.2");
        let limits = Limits {
            batch_bytes: 10,
            messages: 1,
            per_message: PACKED,
        };
        assert_eq!(plan(&ops, limits).len(), 3);
    }

    #[test]
    fn only_the_last_message_asks_for_an_ack() {
        let mut ops = adds(2, "172.18.0.2");
        ops.extend(adds(2, "fd00::2"));
        ops.push(ElementOp::Delete(ports(1, "fd00::2")[0]));
        let batch = first_batch(&ops, limits_for(1 << 20, 1 << 20));
        let (bytes, starts) = encode(&ops, &batch, 7);
        let f = frames(&bytes);
        let kinds: Vec<u16> = f.iter().map(|f| f.0).collect();
        assert_eq!(kinds, [0x10, 0x0a0c, 0x0a0c, 0x0a0e, 0x11]);
        let acks: Vec<bool> = f.iter().map(|f| f.1 & NLM_F_ACK != 0).collect();
        assert_eq!(acks, [false, false, false, true, false]);
        // Element starts point at NFTA_LIST_ELEM nests inside their message.
        let second = f[0].2 + f[1].2;
        for &start in &starts[1] {
            let at = second + start as usize;
            let kind = u16::from_ne_bytes(bytes[at + 2..at + 4].try_into().unwrap());
            assert_eq!(kind, NFTA_LIST_ELEM | NLA_F_NESTED);
        }
        assert_eq!(starts[1].len(), 2);
    }

    #[test]
    fn error_answers_name_the_refused_element() {
        // NLMSG_ERROR: EEXIST, the capped request header, NLMSGERR_ATTR_OFFS = 76.
        let mut m = Vec::new();
        m.extend_from_slice(&44u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        m.extend_from_slice(&9u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&NLMSGERR_ATTR_OFFS.to_ne_bytes());
        m.extend_from_slice(&76u32.to_ne_bytes());
        let a = answers(&m);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].sequence, a[0].errno, a[0].offset),
            (9, libc::EEXIST, Some(76))
        );
    }

    /// Runs `f` on a thread inside a fresh network namespace that has weft's table (the nft
    /// child inherits the thread's namespace); None (reason printed) when not root.
    fn with_table<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIPPED: needs root to create a network namespace");
            return None;
        }
        Some(
            std::thread::scope(|s| {
                s.spawn(|| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
                    let fw = crate::firewall::Firewall::system();
                    fw.apply_network(&crate::firewall::NetworkRules {
                        key: "aaaaaaaaaaaa".into(),
                        interface: Some("br-a".into()),
                        subnets: vec!["172.18.0.0/16".parse().unwrap()],
                        masquerade: true,
                        internal: false,
                        cluster: vec![],
                    })
                    .expect("table");
                    f()
                })
                .join()
            })
            .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    }

    fn in_kernel() -> usize {
        crate::firewall::Firewall::system()
            .published()
            .unwrap()
            .len()
    }

    #[test]
    fn a_refusal_in_a_later_batch_takes_back_the_earlier_ones() {
        with_table(|| {
            // Small batches: 3,000 adds in about 30.
            let limits = Limits {
                batch_bytes: 4096,
                messages: 8,
                per_message: PACKED,
            };
            let mut session = Session::open_with(limits, None);
            let taken = ports(1, "172.18.0.9");
            assert!(run(
                &mut session,
                &taken
                    .iter()
                    .copied()
                    .map(ElementOp::Add)
                    .collect::<Vec<_>>(),
                true
            )
            .unwrap()
            .refused
            .is_empty());
            // Host port 20,000 again, last of 3,000, to another container.
            let mut ops: Vec<ElementOp> = ports(3_000, "172.18.0.2")[1..]
                .iter()
                .copied()
                .map(ElementOp::Add)
                .collect();
            ops.push(ElementOp::Add(PortTarget {
                container_ip: "172.18.0.2".parse().unwrap(),
                ..taken[0]
            }));
            let e = apply_in(&mut session, &ops).unwrap_err().to_string();
            assert!(
                e.contains("*:20000/tcp -> 172.18.0.2:20000: File exists"),
                "{e}"
            );
            assert!(e.contains("choose another host port"), "{e}");
            assert_eq!(in_kernel(), 1, "the earlier batches were taken back");
            // `run` alone does not take back: it shows the earlier batches were committed.
            let report = run(&mut session, &ops, true).unwrap();
            assert_eq!(report.refused.len(), 1);
            assert_eq!(report.refused[0].0, 2_999);
            assert_eq!(report.refused[0].1, libc::EEXIST);
            assert!(report.added.len() > 2_000, "{}", report.added.len());
            assert_eq!(in_kernel(), 1 + report.added.len());
            apply_in(
                &mut session,
                &report
                    .added
                    .iter()
                    .map(|&i| ElementOp::Delete(*ops[i].target()))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            assert_eq!(in_kernel(), 1);
        });
    }

    #[test]
    fn lost_answers_shrink_the_batches_and_the_changes_are_made() {
        with_table(|| {
            // 1,000 messages that may each be refused against a receive buffer that holds a
            // few answers: all 1,000 deletes of absent elements are refused.
            let limits = Limits {
                batch_bytes: 1 << 20,
                messages: 1_000,
                per_message: 1,
            };
            let mut session = Session::open_with(limits, Some(4096));
            let gone: Vec<ElementOp> = ports(1_000, "172.18.0.2")
                .into_iter()
                .map(ElementOp::Delete)
                .collect();
            let report = run(&mut session, &gone, false).unwrap();
            assert!(report.refused.is_empty(), "{:?}", report.refused);
            assert!(session.limits.messages < 1_000, "{:?}", session.limits);
            let added = adds(1_000, "172.18.0.2");
            assert!(run(&mut session, &added, true).unwrap().refused.is_empty());
            assert_eq!(in_kernel(), 1_000);
            assert!(run(&mut session, &gone, false).unwrap().refused.is_empty());
            assert_eq!(in_kernel(), 0);
        });
    }
}
