//! Decoding errors and how RFC 4271 §6 / RFC 7606 say to handle each.

use super::notification::{
    HeaderSubcode, Notification, NotificationError, OpenSubcode, RouteRefreshSubcode, UpdateSubcode,
};
use super::update::Update;

/// What a fault inside one attribute's value is, before we know which attribute it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttrFault {
    /// The UPDATE error subcode RFC 4271 assigns.
    pub subcode: UpdateSubcode,
}

/// How the receiver must react to a malformed message (RFC 7606 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// Send this NOTIFICATION and close the session.
    SessionReset(Notification),
    /// Keep the session; the UPDATE's reachable prefixes become withdrawals.
    TreatAsWithdraw,
    /// Keep the session; the offending attribute was dropped.
    AttributeDiscard,
}

/// A message that could not be decoded. Every variant says precisely what was wrong and maps to
/// the NOTIFICATION (or RFC 7606 action) a receiver owes its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The 16-octet marker was not all ones.
    BadMarker,
    /// The header length is below 19, above 4096, or wrong for the message type.
    BadLength {
        /// The length field as received.
        len: u16,
    },
    /// The message type is not one we know.
    BadType {
        /// The type octet as received.
        ty: u8,
    },
    /// OPEN with a version other than 4.
    UnsupportedVersion {
        /// The version octet as received.
        version: u8,
    },
    /// OPEN whose optional parameters do not parse.
    MalformedOpen {
        /// What did not add up.
        reason: &'static str,
    },
    /// OPEN with an optional parameter type other than Capabilities.
    UnsupportedOptionalParameter {
        /// The parameter type.
        ty: u8,
    },
    /// ROUTE-REFRESH whose length is not 23.
    RouteRefreshLength {
        /// The length field as received.
        len: u16,
    },
    /// UPDATE whose withdrawn-routes or attribute lengths overrun the message, or with a
    /// duplicated MP_REACH_NLRI/MP_UNREACH_NLRI.
    MalformedAttributeList {
        /// What did not add up.
        reason: &'static str,
    },
    /// An NLRI or withdrawn prefix longer than the address.
    PrefixTooLong {
        /// The prefix length octet.
        len: u8,
        /// 32 or 128.
        max: u8,
    },
    /// An NLRI or withdrawn prefix running past the end of its field.
    PrefixOverflow {
        /// The prefix length octet.
        len: u8,
    },
    /// An attribute whose flags, length or value is wrong.
    Attribute {
        /// Attribute type code.
        code: u8,
        /// The RFC 4271 subcode for this fault.
        subcode: UpdateSubcode,
        /// The whole attribute (flags, type, length, value) as received, for the NOTIFICATION data.
        raw: Vec<u8>,
    },
    /// A well-known attribute that is required for these NLRI is missing.
    MissingWellKnown {
        /// The missing attribute's type code.
        code: u8,
    },
    /// RFC 7606 treat-as-withdraw: the UPDATE was malformed but the session stays up; `withdraw`
    /// is the UPDATE to process instead (all its reachable prefixes withdrawn).
    TreatAsWithdraw {
        /// The fault that caused it.
        cause: Box<DecodeError>,
        /// The withdraw-only UPDATE to apply.
        withdraw: Box<Update>,
    },
}

impl DecodeError {
    /// The NOTIFICATION to send, unless the session survives (treat-as-withdraw).
    pub fn notification(&self) -> Option<Notification> {
        use DecodeError::*;
        let n = match self {
            BadMarker => Notification::bare(NotificationError::MessageHeader(
                HeaderSubcode::ConnectionNotSynchronized,
            )),
            BadLength { len } => Notification::new(
                NotificationError::MessageHeader(HeaderSubcode::BadMessageLength),
                len.to_be_bytes().to_vec(),
            ),
            BadType { ty } => Notification::new(
                NotificationError::MessageHeader(HeaderSubcode::BadMessageType),
                vec![*ty],
            ),
            UnsupportedVersion { .. } => Notification::new(
                NotificationError::Open(OpenSubcode::UnsupportedVersionNumber),
                4u16.to_be_bytes().to_vec(),
            ),
            MalformedOpen { .. } => {
                Notification::bare(NotificationError::Open(OpenSubcode::Unspecific))
            }
            UnsupportedOptionalParameter { .. } => Notification::bare(NotificationError::Open(
                OpenSubcode::UnsupportedOptionalParameter,
            )),
            RouteRefreshLength { len } => Notification::new(
                NotificationError::RouteRefresh(RouteRefreshSubcode::InvalidMessageLength),
                len.to_be_bytes().to_vec(),
            ),
            MalformedAttributeList { .. } => Notification::bare(NotificationError::Update(
                UpdateSubcode::MalformedAttributeList,
            )),
            PrefixTooLong { .. } | PrefixOverflow { .. } => Notification::bare(
                NotificationError::Update(UpdateSubcode::InvalidNetworkField),
            ),
            Attribute { subcode, raw, .. } => {
                Notification::new(NotificationError::Update(*subcode), raw.clone())
            }
            MissingWellKnown { code } => Notification::new(
                NotificationError::Update(UpdateSubcode::MissingWellKnownAttribute),
                vec![*code],
            ),
            TreatAsWithdraw { .. } => return None,
        };
        Some(n)
    }

    /// The RFC 7606 action for this error as returned by the decoder.
    pub fn action(&self) -> ErrorAction {
        match self.notification() {
            Some(n) => ErrorAction::SessionReset(n),
            None => ErrorAction::TreatAsWithdraw,
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use DecodeError::*;
        match self {
            BadMarker => write!(f, "message marker is not all ones (stream out of sync)"),
            BadLength { len } => write!(f, "bad message length {len}"),
            BadType { ty } => write!(f, "unknown message type {ty}"),
            UnsupportedVersion { version } => {
                write!(f, "OPEN version {version}, only 4 is supported")
            }
            MalformedOpen { reason } => write!(f, "malformed OPEN: {reason}"),
            UnsupportedOptionalParameter { ty } => {
                write!(f, "OPEN carries unsupported optional parameter type {ty}")
            }
            RouteRefreshLength { len } => write!(f, "ROUTE-REFRESH length {len}, must be 23"),
            MalformedAttributeList { reason } => write!(f, "malformed UPDATE: {reason}"),
            PrefixTooLong { len, max } => write!(f, "prefix length {len} exceeds {max}"),
            PrefixOverflow { len } => write!(f, "prefix of length {len} runs past its field"),
            Attribute { code, subcode, .. } => write!(f, "attribute {code}: {subcode:?}"),
            MissingWellKnown { code } => write!(f, "missing well-known attribute {code}"),
            TreatAsWithdraw { cause, .. } => write!(f, "treat-as-withdraw: {cause}"),
        }
    }
}

impl std::error::Error for DecodeError {}
