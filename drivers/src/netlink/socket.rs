//! The request/reply engine: one NETLINK_ROUTE socket, sequence numbers, acks, dumps.
//!
//! Every request carries `NLM_F_ACK` so success is confirmed rather than assumed, and the
//! kernel's extended-ack text ("Nexthop has invalid gateway") is kept for the error message.
//! Dumps interrupted by a concurrent change (`NLM_F_DUMP_INTR`) are redone from the start, like
//! containernetworking's `netlinksafe`, a bounded number of times.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLMSG_DONE,
    NLMSG_ERROR, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::errors::Failure;

/// Dump replies are at most 32 KiB per datagram; single replies are far smaller.
const RECV_BUFFER: usize = 64 * 1024;
/// How often a dump is redone when the kernel keeps reporting it as interrupted.
const DUMP_ATTEMPTS: usize = 10;
/// `nlmsghdr` size: what an error reply echoes of the request when `NETLINK_CAP_ACK` is on.
const NLMSG_HEADER_LEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A bound NETLINK_ROUTE socket with its sequence counter and reusable buffers.
pub(super) struct Channel {
    socket: Socket,
    sequence: u32,
    send_buffer: Vec<u8>,
    recv_buffer: Vec<u8>,
}

/// What one request produced, read until its ack or the end of its dump.
#[derive(Default)]
struct Exchange {
    replies: Vec<RouteNetlinkMessage>,
    /// The dump saw `NLM_F_DUMP_INTR`: its content may be inconsistent.
    interrupted: bool,
}

impl Channel {
    /// A socket in the calling thread's network namespace, bound to a kernel-chosen port.
    pub fn open() -> io::Result<Channel> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Both are optional comforts (better messages, smaller error replies): an old kernel
        // without them still works.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Channel {
            socket,
            sequence: 0,
            send_buffer: Vec::new(),
            recv_buffer: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Sends `message` with `NLM_F_REQUEST | NLM_F_ACK | flags` and waits for the ack. Returns the
    /// replies that came before it (a `get`, or an `NLM_F_ECHO`).
    pub fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let sequence = self.send(message, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        Ok(self.collect(sequence, false)?.replies)
    }

    /// Dumps everything `message` asks for, redoing the dump while the kernel reports it as
    /// interrupted by a concurrent change.
    pub fn dump(
        &mut self,
        message: &RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        for _ in 0..DUMP_ATTEMPTS {
            let sequence = self.send(message.clone(), NLM_F_REQUEST | NLM_F_DUMP)?;
            let exchange = self.collect(sequence, true)?;
            if !exchange.interrupted {
                return Ok(exchange.replies);
            }
        }
        Err(Failure::kernel(
            libc::EINTR,
            Some(format!(
                "the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times in a row; \
                 retry when the system is quieter"
            )),
        ))
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, Failure> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        self.send_buffer.clear();
        self.send_buffer.resize(packet.buffer_len(), 0);
        packet.serialize(&mut self.send_buffer);
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.socket.send_to(&self.send_buffer, &kernel, 0) {
                Ok(_) => return Ok(self.sequence),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::io(&e)),
            }
        }
    }

    /// Reads replies to `sequence` until its ack (requests) or `NLMSG_DONE` (dumps). Messages
    /// of other sequence numbers are leftovers of an earlier, abandoned exchange and are skipped.
    fn collect(&mut self, sequence: u32, dump: bool) -> Result<Exchange, Failure> {
        let mut exchange = Exchange::default();
        // A failure is remembered, not returned at once, so the rest of a dump is still drained
        // and cannot be mistaken for the reply to the next request.
        let mut failure = None;
        loop {
            self.receive()?;
            let mut offset = 0;
            while offset < self.recv_buffer.len() {
                let datagram = &self.recv_buffer[offset..];
                let header = NetlinkBuffer::new_checked(datagram)
                    .map_err(|e| Failure::decode(format!("bad netlink header: {e}")))?;
                let length = header.length() as usize;
                if length < NLMSG_HEADER_LEN {
                    return Err(Failure::decode(format!(
                        "netlink message of length {length}"
                    )));
                }
                let (kind, flags) = (header.message_type(), header.flags());
                let mine = header.sequence_number() == sequence;
                let bytes = &datagram[..length];
                offset += align4(length);
                if !mine {
                    continue;
                }
                exchange.interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_ERROR => {
                        // An ack (code 0) or a refusal ends a request; a dump ends with DONE
                        // unless it failed outright.
                        if let Some(f) = parse_error(bytes, flags)? {
                            return Err(failure.unwrap_or(f));
                        }
                        if !dump {
                            return failure.map_or(Ok(exchange), Err);
                        }
                    }
                    NLMSG_DONE => {
                        if let Some(f) = parse_done(bytes, flags) {
                            failure.get_or_insert(f);
                        }
                        return failure.map_or(Ok(exchange), Err);
                    }
                    _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                        Ok(message) => {
                            if let NetlinkPayload::InnerMessage(inner) = message.payload {
                                exchange.replies.push(inner);
                            }
                        }
                        // One object we cannot parse must not hide all the others of a dump.
                        Err(e) if dump => {
                            tracing::warn!(message_type = kind, error = %e, "skipping undecodable netlink message in dump");
                        }
                        Err(e) => {
                            failure.get_or_insert(Failure::decode(e.to_string()));
                        }
                    },
                }
            }
        }
    }

    /// Receives one datagram into `recv_buffer`.
    fn receive(&mut self) -> Result<(), Failure> {
        loop {
            self.recv_buffer.clear();
            match self.socket.recv(&mut self.recv_buffer, libc::MSG_TRUNC) {
                Ok(size) if size > self.recv_buffer.len() => {
                    return Err(Failure::decode(format!(
                        "a reply of {size} bytes did not fit the {RECV_BUFFER}-byte buffer"
                    )))
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::io(&e)),
            }
        }
    }
}

/// `None` for an ack, the kernel's refusal otherwise.
fn parse_error(bytes: &[u8], flags: u16) -> Result<Option<Failure>, Failure> {
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .map_err(|e| Failure::decode(format!("bad error reply: {e}")))?;
    let NetlinkPayload::Error(error) = message.payload else {
        return Err(Failure::decode("error reply without an error".into()));
    };
    let Some(code) = error.code else {
        return Ok(None);
    };
    let detail = (flags & NLM_F_ACK_TLVS != 0)
        .then(|| ext_ack_after_request(&error.header, flags))
        .flatten();
    Ok(Some(Failure::kernel(code.get().abs(), detail)))
}

/// A failed dump ends with `NLMSG_DONE` carrying a negative code (and maybe ext-ack TLVs).
fn parse_done(bytes: &[u8], flags: u16) -> Option<Failure> {
    let payload = bytes.get(NLMSG_HEADER_LEN..)?;
    let code = i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?);
    if code >= 0 {
        return None;
    }
    let detail = (flags & NLM_F_ACK_TLVS != 0)
        .then(|| ext_ack_text(&payload[4..]))
        .flatten();
    Some(Failure::kernel(code.abs(), detail))
}

/// The TLVs of an error reply follow the echoed request: only its header when `NLM_F_CAPPED`,
/// the whole request otherwise.
fn ext_ack_after_request(echoed: &[u8], flags: u16) -> Option<String> {
    let request_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HEADER_LEN
    } else {
        u32::from_ne_bytes(echoed.get(..4)?.try_into().ok()?) as usize
    };
    ext_ack_text(echoed.get(align4(request_len)..)?)
}

fn ext_ack_text(tlvs: &[u8]) -> Option<String> {
    NlasIterator::new(tlvs)
        .map_while(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            String::from_utf8_lossy(nla.value())
                .trim_end_matches('\0')
                .to_string()
        })
        .filter(|text| !text.is_empty())
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error reply as the kernel sends it with CAP_ACK and EXT_ACK on.
    fn error_reply(code: i32, text: &str) -> Vec<u8> {
        let mut tlv = Vec::new();
        let value = format!("{text}\0");
        tlv.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        tlv.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        tlv.extend_from_slice(value.as_bytes());
        tlv.resize(align4(tlv.len()), 0);
        let echoed = [0u8; NLMSG_HEADER_LEN];
        let length = NLMSG_HEADER_LEN + 4 + echoed.len() + tlv.len();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(length as u32).to_ne_bytes());
        bytes.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        bytes.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        bytes.extend_from_slice(&7u32.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.extend_from_slice(&echoed);
        bytes.extend_from_slice(&tlv);
        bytes
    }

    #[test]
    fn refusal_keeps_extended_ack_text() {
        let bytes = error_reply(-libc::EINVAL, "Nexthop has invalid gateway");
        let failure = parse_error(&bytes, NLM_F_CAPPED | NLM_F_ACK_TLVS)
            .unwrap()
            .unwrap();
        assert_eq!(failure.errno, libc::EINVAL);
        assert_eq!(failure.detail, "Nexthop has invalid gateway");
    }

    #[test]
    fn ack_is_not_a_failure() {
        let mut bytes = error_reply(0, "");
        bytes.truncate(NLMSG_HEADER_LEN + 4 + NLMSG_HEADER_LEN);
        let length = bytes.len() as u32;
        bytes[..4].copy_from_slice(&length.to_ne_bytes());
        assert_eq!(parse_error(&bytes, NLM_F_CAPPED).unwrap(), None);
    }

    #[test]
    fn failed_dump_done_carries_errno() {
        let mut bytes = vec![0u8; NLMSG_HEADER_LEN];
        bytes.extend_from_slice(&(-libc::EOPNOTSUPP).to_ne_bytes());
        let failure = parse_done(&bytes, 0).unwrap();
        assert_eq!(failure.errno, libc::EOPNOTSUPP);
        assert_eq!(parse_done(&[0u8; 20], 0), None);
    }
}
