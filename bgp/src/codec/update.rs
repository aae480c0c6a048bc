//! UPDATE messages (RFC 4271 §4.3) with RFC 7606 revised error handling.

use super::attribute::{
    code, decode_value, expected_flags, flags, AttrValue, Attribute, MpReach, MpUnreach,
};
use super::error::DecodeError;
use super::family::Family;
use super::notification::UpdateSubcode;
use super::prefix::{decode_v4_prefixes, encode_prefix};
use super::CodecContext;
use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeMap;

/// An UPDATE: IPv4 withdrawals, path attributes (MP_* carry other families) and IPv4 NLRI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 prefixes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes in wire order.
    pub attributes: Vec<Attribute>,
    /// Reachable IPv4 prefixes.
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2).
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: vec![Attribute::new(AttrValue::MpUnreach(MpUnreach {
                family,
                withdrawn: Vec::new(),
            }))],
            ..Update::default()
        }
    }

    /// The family whose End-of-RIB this is, if it is one.
    pub fn as_end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [a] => match &a.value {
                AttrValue::MpUnreach(u) if u.withdrawn.is_empty() => Some(u.family),
                _ => None,
            },
            _ => None,
        }
    }

    /// The first attribute with this type code.
    pub fn attr(&self, code: u8) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|a| a.code() == code)
            .map(|a| &a.value)
    }

    /// The MP_REACH_NLRI attribute, if any.
    pub fn mp_reach(&self) -> Option<&MpReach> {
        match self.attr(code::MP_REACH_NLRI) {
            Some(AttrValue::MpReach(r)) => Some(r),
            _ => None,
        }
    }

    /// The MP_UNREACH_NLRI attribute, if any.
    pub fn mp_unreach(&self) -> Option<&MpUnreach> {
        match self.attr(code::MP_UNREACH_NLRI) {
            Some(AttrValue::MpUnreach(u)) => Some(u),
            _ => None,
        }
    }

    /// Every reachable prefix (IPv4 NLRI and MP_REACH_NLRI).
    pub fn announced(&self) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self.nlri.iter().copied().map(IpNet::V4).collect();
        if let Some(r) = self.mp_reach() {
            v.extend(r.nlri.iter().copied());
        }
        v
    }

    /// Every withdrawn prefix (IPv4 withdrawn routes and MP_UNREACH_NLRI).
    pub fn withdrawals(&self) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self.withdrawn.iter().copied().map(IpNet::V4).collect();
        if let Some(u) = self.mp_unreach() {
            v.extend(u.withdrawn.iter().copied());
        }
        v
    }

    /// Encodes the body (everything after the header).
    pub fn encode_body(&self, ctx: &CodecContext, out: &mut Vec<u8>) {
        let mut wd = Vec::new();
        self.withdrawn
            .iter()
            .for_each(|n| encode_prefix(&IpNet::V4(*n), &mut wd));
        let mut attrs = Vec::new();
        self.attributes
            .iter()
            .for_each(|a| a.encode(ctx, &mut attrs));
        out.extend_from_slice(&(wd.len() as u16).to_be_bytes());
        out.extend_from_slice(&wd);
        out.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        out.extend_from_slice(&attrs);
        self.nlri
            .iter()
            .for_each(|n| encode_prefix(&IpNet::V4(*n), out));
    }

    /// Decodes a body. Malformed attributes are handled per RFC 7606: discarded, turned into a
    /// [`DecodeError::TreatAsWithdraw`], or reported as a session-resetting error.
    pub fn decode_body(body: &[u8], ctx: &CodecContext) -> Result<Update, DecodeError> {
        let list_err = |reason| DecodeError::MalformedAttributeList { reason };
        if body.len() < 4 {
            return Err(list_err("body shorter than its two length fields"));
        }
        let wd_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        if 2 + wd_len + 2 > body.len() {
            return Err(list_err("withdrawn routes length overruns the message"));
        }
        let withdrawn = decode_v4_prefixes(&body[2..2 + wd_len])?;
        let a = 2 + wd_len;
        let attr_len = usize::from(u16::from_be_bytes([body[a], body[a + 1]]));
        let attr_start = a + 2;
        if attr_start + attr_len > body.len() {
            return Err(list_err("total path attribute length overruns the message"));
        }
        let nlri = decode_v4_prefixes(&body[attr_start + attr_len..])?;
        let mut parsed = AttrParse::default();
        parsed.run(&body[attr_start..attr_start + attr_len], ctx)?;
        let update = Update {
            withdrawn,
            attributes: parsed.attributes,
            nlri,
        };
        let fault = parsed
            .withdraw_cause
            .or_else(|| missing_well_known(&update));
        match fault {
            None => Ok(update),
            Some(cause) => Err(DecodeError::TreatAsWithdraw {
                cause: Box::new(cause),
                withdraw: Box::new(update.into_withdrawal()),
            }),
        }
    }

    /// The same prefixes, all withdrawn, with no other attributes.
    fn into_withdrawal(self) -> Update {
        let mut mp: BTreeMap<Family, Vec<IpNet>> = BTreeMap::new();
        for a in &self.attributes {
            match &a.value {
                AttrValue::MpReach(r) => mp.entry(r.family).or_default().extend(&r.nlri),
                AttrValue::MpUnreach(u) => mp.entry(u.family).or_default().extend(&u.withdrawn),
                _ => {}
            }
        }
        let mut withdrawn = self.withdrawn;
        withdrawn.extend(self.nlri);
        withdrawn.extend(
            mp.remove(&Family::IPV4_UNICAST)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|n| match n {
                    IpNet::V4(n) => Some(n),
                    IpNet::V6(_) => None,
                }),
        );
        let attributes = mp
            .into_iter()
            .map(|(family, withdrawn)| {
                Attribute::new(AttrValue::MpUnreach(MpUnreach { family, withdrawn }))
            })
            .collect();
        Update {
            withdrawn,
            attributes,
            nlri: Vec::new(),
        }
    }
}

/// RFC 7606 §3.d: reachable NLRI need ORIGIN and AS_PATH, IPv4 NLRI also NEXT_HOP.
fn missing_well_known(u: &Update) -> Option<DecodeError> {
    let has_mp_nlri = u.mp_reach().is_some_and(|r| !r.nlri.is_empty());
    if u.nlri.is_empty() && !has_mp_nlri {
        return None;
    }
    let mut required = vec![code::ORIGIN, code::AS_PATH];
    if !u.nlri.is_empty() {
        required.push(code::NEXT_HOP);
    }
    required
        .into_iter()
        .find(|c| u.attr(*c).is_none())
        .map(|code| DecodeError::MissingWellKnown { code })
}

/// How RFC 7606 §7 handles a malformed instance of each attribute.
enum Handling {
    Withdraw,
    Discard,
    Reset,
}

fn handling(code: u8) -> Handling {
    match code {
        code::ATOMIC_AGGREGATE | code::AGGREGATOR | code::AS4_PATH | code::AS4_AGGREGATOR => {
            Handling::Discard
        }
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => Handling::Reset,
        _ => Handling::Withdraw,
    }
}

/// Walks the attribute list, remembering the first treat-as-withdraw fault.
#[derive(Default)]
struct AttrParse {
    attributes: Vec<Attribute>,
    seen: std::collections::HashSet<u8>,
    withdraw_cause: Option<DecodeError>,
}

impl AttrParse {
    fn run(&mut self, mut buf: &[u8], ctx: &CodecContext) -> Result<(), DecodeError> {
        while !buf.is_empty() {
            let Some((flags_octet, code, value, raw_len)) = split_attribute(buf) else {
                // RFC 7606 §4: an attribute header or length running past the list.
                self.note_withdraw(DecodeError::MalformedAttributeList {
                    reason: "attribute runs past the total path attribute length",
                });
                return self.check_mp_after_truncation(buf);
            };
            let raw = &buf[..raw_len];
            buf = &buf[raw_len..];
            // The low four flag bits are unused: ignored on receipt, zero when sent.
            self.one(flags_octet & 0xf0, code, value, raw, ctx)?;
        }
        Ok(())
    }

    /// After a truncated list the rest may hide MP attributes we cannot parse: RFC 7606 §5.3
    /// allows treat-as-withdraw only if every NLRI was found, so reset unless MP_REACH was seen.
    fn check_mp_after_truncation(&self, rest: &[u8]) -> Result<(), DecodeError> {
        let maybe_mp =
            rest.len() >= 2 && (rest[1] == code::MP_REACH_NLRI || rest[1] == code::MP_UNREACH_NLRI);
        if maybe_mp {
            return Err(DecodeError::MalformedAttributeList {
                reason: "truncated MP_REACH_NLRI/MP_UNREACH_NLRI",
            });
        }
        Ok(())
    }

    fn note_withdraw(&mut self, e: DecodeError) {
        if self.withdraw_cause.is_none() {
            self.withdraw_cause = Some(e);
        }
    }

    fn one(
        &mut self,
        flags_octet: u8,
        code: u8,
        value: &[u8],
        raw: &[u8],
        ctx: &CodecContext,
    ) -> Result<(), DecodeError> {
        if !self.seen.insert(code) {
            if code == code::MP_REACH_NLRI || code == code::MP_UNREACH_NLRI {
                return Err(DecodeError::MalformedAttributeList {
                    reason: "MP_REACH_NLRI or MP_UNREACH_NLRI appears twice",
                });
            }
            tracing::debug!(code, "discarding duplicate path attribute");
            return Ok(());
        }
        let attr_err = |subcode| DecodeError::Attribute {
            code,
            subcode,
            raw: raw.to_vec(),
        };
        let Some(expected) = expected_flags(code) else {
            if flags_octet & flags::OPTIONAL == 0 {
                return Err(attr_err(UpdateSubcode::UnrecognizedWellKnownAttribute));
            }
            self.attributes.push(Attribute {
                flags: flags_octet,
                value: AttrValue::Unknown {
                    code,
                    data: value.to_vec(),
                },
            });
            return Ok(());
        };
        let ot = flags::OPTIONAL | flags::TRANSITIVE;
        let result = if flags_octet & ot != expected {
            Err(attr_err(UpdateSubcode::AttributeFlagsError))
        } else {
            decode_value(code, value, ctx).map_err(|f| attr_err(f.subcode))
        };
        match result {
            Ok(v) => {
                self.attributes.push(Attribute {
                    flags: flags_octet,
                    value: v,
                });
                Ok(())
            }
            Err(e) => match handling(code) {
                Handling::Reset => Err(e),
                Handling::Discard => {
                    tracing::debug!(code, "discarding malformed path attribute (RFC 7606)");
                    Ok(())
                }
                Handling::Withdraw => {
                    self.note_withdraw(e);
                    Ok(())
                }
            },
        }
    }
}

/// Splits the first attribute: (flags, code, value, total raw length), or None if it overruns.
fn split_attribute(buf: &[u8]) -> Option<(u8, u8, &[u8], usize)> {
    if buf.len() < 3 {
        return None;
    }
    let f = buf[0];
    let code = buf[1];
    let (len, hdr) = if f & flags::EXTENDED_LENGTH != 0 {
        if buf.len() < 4 {
            return None;
        }
        (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
    } else {
        (usize::from(buf[2]), 3)
    };
    if hdr + len > buf.len() {
        return None;
    }
    Some((f, code, &buf[hdr..hdr + len], hdr + len))
}
