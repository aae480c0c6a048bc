//! Published-port map elements written straight over NETLINK_NETFILTER: one batch, one round
//! trip, instead of starting the `nft` program (about 4 ms each time) for every container.
//! Only the elements of existing maps go this way; the table's structure is still written as nft
//! text. Element keys and data use nft's register layout: each part of a concatenation padded to
//! 4 bytes, ports in network byte order.

use std::io;
use std::net::IpAddr;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::ruleset::{port_map, TABLE};
use super::PortTarget;
use crate::error::DriverError;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
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

/// The whole batch; the element messages get sequence numbers `first..first + ops.len()`.
pub(super) fn encode(ops: &[ElementOp], first: u32) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128 * (ops.len() + 2));
    let subsys = NFNL_SUBSYS_NFTABLES;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        first.wrapping_sub(1),
        0,
        subsys,
        |_| {},
    );
    for (i, op) in ops.iter().enumerate() {
        let (kind, flags, p, with_data) = match op {
            ElementOp::Add(p) => (NFT_MSG_NEWSETELEM, NLM_F_CREATE, p, true),
            ElementOp::Delete(p) => (NFT_MSG_DELSETELEM, 0, p, false),
        };
        message(
            &mut buf,
            (subsys << 8) | kind,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            first + i as u32,
            NFPROTO_INET,
            0,
            |a| {
                a.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
                a.put_str(NFTA_SET_ELEM_LIST_SET, port_map(p));
                a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
                    a.nest(NFTA_LIST_ELEM, |a| {
                        a.nest(NFTA_SET_ELEM_KEY, |a| a.put(NFTA_DATA_VALUE, &key(p)));
                        if with_data {
                            a.nest(NFTA_SET_ELEM_DATA, |a| a.put(NFTA_DATA_VALUE, &data(p)));
                        }
                    });
                });
            },
        );
    }
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        first + ops.len() as u32,
        0,
        subsys,
        |_| {},
    );
    buf
}

/// Sends the batch and waits for every element message's ack. The kernel applies a batch
/// whole or not at all; the first error is returned with the operation it belongs to.
pub(super) fn apply(ops: &[ElementOp]) -> Result<(), DriverError> {
    if ops.is_empty() {
        return Ok(());
    }
    let fail = |what: &str, e: io::Error| DriverError::Firewall {
        message: format!("netfilter netlink {what}: {e}"),
    };
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| fail("socket", e))?;
    socket.bind_auto().map_err(|e| fail("bind", e))?;
    let first = 1;
    let batch = encode(ops, first);
    socket
        .send_to(&batch, &SocketAddr::new(0, 0), 0)
        .map_err(|e| fail("send", e))?;
    let mut pending = ops.len();
    let mut buf = vec![0u8; 64 * 1024];
    let mut failure: Option<DriverError> = None;
    while pending > 0 {
        let n = socket
            .recv(&mut &mut buf[..], 0)
            .map_err(|e| fail("receive", e))?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().expect("2 bytes"));
            let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
            if len < 16 || off + len > n {
                break;
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let errno =
                    -i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                pending = pending.saturating_sub(1);
                if errno != 0 && failure.is_none() {
                    let op = seq.checked_sub(first).and_then(|i| ops.get(i as usize));
                    failure = Some(DriverError::Firewall {
                        message: format!(
                            "kernel refused {}: {}",
                            op.map(describe).unwrap_or_else(|| "the batch".into()),
                            io::Error::from_raw_os_error(errno)
                        ),
                    });
                    // After an error the kernel aborts the batch; no more acks are coming.
                    pending = 0;
                }
            }
            off += (len + 3) & !3;
        }
    }
    failure.map_or(Ok(()), Err)
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

    #[test]
    fn batch_is_framed_and_aligned() {
        let ops = [
            ElementOp::Add(target(None, "172.18.0.2")),
            ElementOp::Delete(target(None, "172.18.0.2")),
        ];
        let buf = encode(&ops, 1);
        let mut off = 0;
        let mut kinds = Vec::new();
        while off < buf.len() {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            assert!(len.is_multiple_of(4));
            kinds.push(u16::from_ne_bytes(
                buf[off + 4..off + 6].try_into().unwrap(),
            ));
            off += len;
        }
        assert_eq!(off, buf.len());
        assert_eq!(kinds, [0x10, 0x0a0c, 0x0a0e, 0x11]);
    }
}
