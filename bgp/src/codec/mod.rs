//! BGP-4 message codec: every message type, encode and decode, with exact errors.
//!
//! Decoding never panics. It yields a [`Message`] or a [`DecodeError`] that names the fault and
//! the NOTIFICATION (or RFC 7606 treat-as-withdraw) it calls for.

pub mod as4;
pub mod attribute;
pub mod error;
pub mod family;
pub mod frame;
pub mod notification;
pub mod open;
pub mod prefix;
pub mod update;

pub use attribute::{
    Aggregator, AsPath, AsSegment, AttrValue, Attribute, MpNextHop, MpReach, MpUnreach, Origin,
    SegmentKind, AS_TRANS,
};
pub use error::{DecodeError, ErrorAction};
pub use family::Family;
pub use frame::FrameSplitter;
pub use notification::{
    CeaseSubcode, FsmSubcode, HeaderSubcode, Notification, NotificationError, OpenSubcode,
    UpdateSubcode,
};
pub use open::{Capability, GrFamily, GracefulRestartCap, Open};
pub use update::Update;

use notification::NotificationError as NE;

/// Length of the fixed header (marker, length, type).
pub const HEADER_LEN: usize = 19;
/// Largest message RFC 4271 allows (without RFC 8654 extended messages).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Message type codes.
pub mod msg_type {
    /// OPEN.
    pub const OPEN: u8 = 1;
    /// UPDATE.
    pub const UPDATE: u8 = 2;
    /// NOTIFICATION.
    pub const NOTIFICATION: u8 = 3;
    /// KEEPALIVE.
    pub const KEEPALIVE: u8 = 4;
    /// ROUTE-REFRESH.
    pub const ROUTE_REFRESH: u8 = 5;
}

/// What the session negotiated that changes how messages are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodecContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH and AGGREGATOR carry 4-octet ASNs.
    pub four_octet_as: bool,
}

impl CodecContext {
    /// The context of a session where both sides support 4-octet AS numbers.
    pub const FOUR_OCTET: CodecContext = CodecContext {
        four_octet_as: true,
    };
}

/// ROUTE-REFRESH (RFC 2918; the subtype octet is RFC 7313's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// Family to re-send.
    pub family: Family,
    /// 0 = normal request, 1 = BoRR, 2 = EoRR (RFC 7313).
    pub subtype: u8,
}

/// Any BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

/// The message would exceed 4096 octets; split its prefixes over several UPDATEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong {
    /// The length it would have had.
    pub len: usize,
}

impl Message {
    /// Encodes the whole message, header included.
    pub fn encode(&self, ctx: &CodecContext) -> Result<Vec<u8>, TooLong> {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&[0, 0, self.type_code()]);
        match self {
            Message::Open(o) => o.encode_body(&mut out),
            Message::Update(u) => u.encode_body(ctx, &mut out),
            Message::Notification(n) => {
                let (c, s) = n.error.to_bytes();
                out.extend_from_slice(&[c, s]);
                out.extend_from_slice(&n.data);
            }
            Message::Keepalive => {}
            Message::RouteRefresh(r) => {
                out.extend_from_slice(&r.family.afi.to_be_bytes());
                out.extend_from_slice(&[r.subtype, r.family.safi]);
            }
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(TooLong { len: out.len() });
        }
        let len = (out.len() as u16).to_be_bytes();
        out[16..18].copy_from_slice(&len);
        Ok(out)
    }

    /// The message type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Message::Open(_) => msg_type::OPEN,
            Message::Update(_) => msg_type::UPDATE,
            Message::Notification(_) => msg_type::NOTIFICATION,
            Message::Keepalive => msg_type::KEEPALIVE,
            Message::RouteRefresh(_) => msg_type::ROUTE_REFRESH,
        }
    }

    /// Decodes exactly one whole message (header included).
    pub fn decode(buf: &[u8], ctx: &CodecContext) -> Result<Message, DecodeError> {
        let (len, ty) = check_header(buf)?;
        if len != buf.len() {
            return Err(DecodeError::BadLength {
                len: u16::try_from(len).unwrap_or(u16::MAX),
            });
        }
        let body = &buf[HEADER_LEN..];
        Ok(match ty {
            msg_type::OPEN => Message::Open(Open::decode_body(body)?),
            msg_type::UPDATE => Message::Update(Update::decode_body(body, ctx)?),
            msg_type::NOTIFICATION => Message::Notification(Notification {
                error: NE::from_bytes(body[0], body[1]),
                data: body[2..].to_vec(),
            }),
            msg_type::KEEPALIVE => Message::Keepalive,
            _ => Message::RouteRefresh(RouteRefresh {
                family: Family {
                    afi: u16::from_be_bytes([body[0], body[1]]),
                    safi: body[3],
                },
                subtype: body[2],
            }),
        })
    }
}

/// Validates marker, length and type of a header; returns (length, type). Needs 19 octets.
pub fn check_header(buf: &[u8]) -> Result<(usize, u8), DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::BadLength {
            len: buf.len() as u16,
        });
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::BadMarker);
    }
    let len16 = u16::from_be_bytes([buf[16], buf[17]]);
    let len = usize::from(len16);
    let ty = buf[18];
    let (min, exact) = match ty {
        msg_type::OPEN => (29, false),
        msg_type::UPDATE => (23, false),
        msg_type::NOTIFICATION => (21, false),
        msg_type::KEEPALIVE => (19, true),
        msg_type::ROUTE_REFRESH => (23, true),
        _ => {
            if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
                return Err(DecodeError::BadLength { len: len16 });
            }
            return Err(DecodeError::BadType { ty });
        }
    };
    if len < min || len > MAX_MESSAGE_LEN || (exact && len != min) {
        if ty == msg_type::ROUTE_REFRESH && (HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(DecodeError::RouteRefreshLength { len: len16 });
        }
        return Err(DecodeError::BadLength { len: len16 });
    }
    Ok((len, ty))
}
