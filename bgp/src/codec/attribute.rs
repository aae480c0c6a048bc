//! Path attributes (RFC 4271 §4.3/§5, RFC 4760, RFC 6793, RFC 1997, RFC 4456) and their wire forms.

use super::error::AttrFault;
use super::family::Family;
use super::notification::UpdateSubcode;
use super::prefix::{decode_ip_prefixes, encode_prefix};
use super::CodecContext;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Attribute flag bits.
pub mod flags {
    /// The attribute is optional.
    pub const OPTIONAL: u8 = 0x80;
    /// The attribute is transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Some speaker on the path did not recognise this optional transitive attribute.
    pub const PARTIAL: u8 = 0x20;
    /// The length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes.
pub mod code {
    /// ORIGIN.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP.
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC.
    pub const MED: u8 = 4;
    /// LOCAL_PREF.
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES.
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID.
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST.
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH.
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR.
    pub const AS4_AGGREGATOR: u8 = 18;
}

/// AS_TRANS (RFC 6793): stands in for a 4-octet AS number toward a 2-octet speaker.
pub const AS_TRANS: u32 = 23456;

/// One path attribute: its flags as received (or defaulted) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Flag octet. The extended-length bit is honoured on encode (and forced when needed).
    pub flags: u8,
    /// The decoded value.
    pub value: AttrValue,
}

/// ORIGIN values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Origin {
    /// Learned from an IGP (0).
    Igp,
    /// Learned from EGP (1).
    Egp,
    /// Learned some other way (2).
    Incomplete,
}

/// AS_PATH segment kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SegmentKind {
    /// AS_SET (1).
    Set,
    /// AS_SEQUENCE (2).
    Sequence,
    /// AS_CONFED_SEQUENCE (3, RFC 5065).
    ConfedSequence,
    /// AS_CONFED_SET (4, RFC 5065).
    ConfedSet,
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AsSegment {
    /// Set or sequence.
    pub kind: SegmentKind,
    /// AS numbers, always held as 4 octets.
    pub asns: Vec<u32>,
}

/// An AS_PATH or AS4_PATH.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AsPath {
    /// Segments in wire order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE.
    pub fn sequence(asns: Vec<u32>) -> Self {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// Path length for best-path selection: a set counts one, confederation segments none.
    pub fn len_for_selection(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// Number of AS numbers as RFC 6793 §4.2.3 counts them (a set counts one).
    pub fn as4_count(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence | SegmentKind::ConfedSequence => s.asns.len(),
                SegmentKind::Set | SegmentKind::ConfedSet => 1,
            })
            .sum()
    }

    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        self.segments.iter().find_map(|s| match s.kind {
            SegmentKind::Sequence => s.asns.first().copied(),
            SegmentKind::Set => None,
            _ => None,
        })
    }

    /// Whether `asn` occurs anywhere in the path.
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Whether any AS number needs four octets.
    pub fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|&a| a > 0xffff))
    }

    /// Prepends `asn` to the leading AS_SEQUENCE, starting one if needed.
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence && s.asns.len() < 255 => {
                s.asns.insert(0, asn)
            }
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
    }
}

/// AGGREGATOR / AS4_AGGREGATOR value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Aggregator {
    /// The AS that formed the aggregate.
    pub asn: u32,
    /// The router that formed it.
    pub address: Ipv4Addr,
}

/// Next hop of an MP_REACH_NLRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum MpNextHop {
    /// A 4-octet IPv4 next hop.
    V4(Ipv4Addr),
    /// A 16-octet global IPv6 next hop, optionally followed by a link-local one (32 octets).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when 32 octets were sent.
        link_local: Option<Ipv6Addr>,
    },
}

impl MpNextHop {
    /// The address to route toward (the global one for IPv6).
    pub fn addr(&self) -> IpAddr {
        match *self {
            MpNextHop::V4(a) => IpAddr::V4(a),
            MpNextHop::V6 { global, .. } => IpAddr::V6(global),
        }
    }
}

/// MP_REACH_NLRI for IPv4/IPv6 unicast.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// Address family of the NLRI.
    pub family: Family,
    /// Next hop.
    pub next_hop: MpNextHop,
    /// Reachable prefixes.
    pub nlri: Vec<IpNet>,
}

/// MP_UNREACH_NLRI for IPv4/IPv6 unicast.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// Address family of the withdrawn prefixes.
    pub family: Family,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<IpNet>,
}

/// A decoded attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttrValue {
    /// ORIGIN.
    Origin(Origin),
    /// AS_PATH, in the session's AS width.
    AsPath(AsPath),
    /// NEXT_HOP.
    NextHop(Ipv4Addr),
    /// MULTI_EXIT_DISC.
    Med(u32),
    /// LOCAL_PREF.
    LocalPref(u32),
    /// ATOMIC_AGGREGATE.
    AtomicAggregate,
    /// AGGREGATOR, in the session's AS width.
    Aggregator(Aggregator),
    /// COMMUNITIES.
    Communities(Vec<u32>),
    /// ORIGINATOR_ID.
    OriginatorId(Ipv4Addr),
    /// CLUSTER_LIST.
    ClusterList(Vec<Ipv4Addr>),
    /// MP_REACH_NLRI (IPv4/IPv6 unicast only; other families stay `Unknown`).
    MpReach(MpReach),
    /// MP_UNREACH_NLRI (IPv4/IPv6 unicast only; other families stay `Unknown`).
    MpUnreach(MpUnreach),
    /// AS4_PATH (always 4-octet).
    As4Path(AsPath),
    /// AS4_AGGREGATOR (always 4-octet).
    As4Aggregator(Aggregator),
    /// Any other attribute, kept raw.
    Unknown {
        /// Type code.
        code: u8,
        /// Value octets.
        data: Vec<u8>,
    },
}

impl AttrValue {
    /// The attribute type code.
    pub fn code(&self) -> u8 {
        match self {
            AttrValue::Origin(_) => code::ORIGIN,
            AttrValue::AsPath(_) => code::AS_PATH,
            AttrValue::NextHop(_) => code::NEXT_HOP,
            AttrValue::Med(_) => code::MED,
            AttrValue::LocalPref(_) => code::LOCAL_PREF,
            AttrValue::AtomicAggregate => code::ATOMIC_AGGREGATE,
            AttrValue::Aggregator(_) => code::AGGREGATOR,
            AttrValue::Communities(_) => code::COMMUNITIES,
            AttrValue::OriginatorId(_) => code::ORIGINATOR_ID,
            AttrValue::ClusterList(_) => code::CLUSTER_LIST,
            AttrValue::MpReach(_) => code::MP_REACH_NLRI,
            AttrValue::MpUnreach(_) => code::MP_UNREACH_NLRI,
            AttrValue::As4Path(_) => code::AS4_PATH,
            AttrValue::As4Aggregator(_) => code::AS4_AGGREGATOR,
            AttrValue::Unknown { code, .. } => *code,
        }
    }
}

/// The optional/transitive flags a known attribute must carry; `None` for unknown codes.
pub fn expected_flags(code: u8) -> Option<u8> {
    use flags::*;
    match code {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => Some(TRANSITIVE),
        code::MED
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => Some(OPTIONAL),
        code::AGGREGATOR | code::COMMUNITIES | code::AS4_PATH | code::AS4_AGGREGATOR => {
            Some(OPTIONAL | TRANSITIVE)
        }
        _ => None,
    }
}

impl Attribute {
    /// An attribute with the standard flags for its type.
    pub fn new(value: AttrValue) -> Self {
        let flags = expected_flags(value.code()).unwrap_or(flags::OPTIONAL | flags::TRANSITIVE);
        Attribute { flags, value }
    }

    /// The attribute type code.
    pub fn code(&self) -> u8 {
        self.value.code()
    }

    /// Appends the attribute (flags, type, length, value).
    pub fn encode(&self, ctx: &CodecContext, out: &mut Vec<u8>) {
        let mut value = Vec::new();
        encode_value(&self.value, ctx, &mut value);
        let mut flags = self.flags & 0xf0;
        if value.len() > 255 {
            flags |= flags::EXTENDED_LENGTH;
        }
        out.push(flags);
        out.push(self.code());
        if flags & flags::EXTENDED_LENGTH != 0 {
            let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(&value);
    }
}

fn encode_as(asn: u32, four: bool, out: &mut Vec<u8>) {
    if four {
        out.extend_from_slice(&asn.to_be_bytes());
    } else {
        let two = u16::try_from(asn).unwrap_or(AS_TRANS as u16);
        out.extend_from_slice(&two.to_be_bytes());
    }
}

fn encode_as_path(path: &AsPath, four: bool, out: &mut Vec<u8>) {
    for seg in &path.segments {
        let kind = match seg.kind {
            SegmentKind::Set => 1,
            SegmentKind::Sequence => 2,
            SegmentKind::ConfedSequence => 3,
            SegmentKind::ConfedSet => 4,
        };
        // Segments hold at most 255 AS numbers; longer ones are split.
        for chunk in seg.asns.chunks(255) {
            out.push(kind);
            out.push(chunk.len() as u8);
            for &a in chunk {
                encode_as(a, four, out);
            }
        }
    }
}

fn encode_mp_next_hop(nh: &MpNextHop, out: &mut Vec<u8>) {
    match nh {
        MpNextHop::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        MpNextHop::V6 { global, link_local } => {
            out.push(if link_local.is_some() { 32 } else { 16 });
            out.extend_from_slice(&global.octets());
            if let Some(ll) = link_local {
                out.extend_from_slice(&ll.octets());
            }
        }
    }
}

fn encode_value(v: &AttrValue, ctx: &CodecContext, out: &mut Vec<u8>) {
    match v {
        AttrValue::Origin(o) => out.push(match o {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }),
        AttrValue::AsPath(p) => encode_as_path(p, ctx.four_octet_as, out),
        AttrValue::NextHop(a) | AttrValue::OriginatorId(a) => out.extend_from_slice(&a.octets()),
        AttrValue::Med(x) | AttrValue::LocalPref(x) => out.extend_from_slice(&x.to_be_bytes()),
        AttrValue::AtomicAggregate => {}
        AttrValue::Aggregator(a) => {
            encode_as(a.asn, ctx.four_octet_as, out);
            out.extend_from_slice(&a.address.octets());
        }
        AttrValue::Communities(cs) => cs
            .iter()
            .for_each(|c| out.extend_from_slice(&c.to_be_bytes())),
        AttrValue::ClusterList(ids) => ids.iter().for_each(|a| out.extend_from_slice(&a.octets())),
        AttrValue::MpReach(r) => {
            out.extend_from_slice(&r.family.afi.to_be_bytes());
            out.push(r.family.safi);
            encode_mp_next_hop(&r.next_hop, out);
            out.push(0); // reserved (formerly SNPA count)
            r.nlri.iter().for_each(|n| encode_prefix(n, out));
        }
        AttrValue::MpUnreach(u) => {
            out.extend_from_slice(&u.family.afi.to_be_bytes());
            out.push(u.family.safi);
            u.withdrawn.iter().for_each(|n| encode_prefix(n, out));
        }
        AttrValue::As4Path(p) => encode_as_path(p, true, out),
        AttrValue::As4Aggregator(a) => {
            out.extend_from_slice(&a.asn.to_be_bytes());
            out.extend_from_slice(&a.address.octets());
        }
        AttrValue::Unknown { data, .. } => out.extend_from_slice(data),
    }
}

fn fault(subcode: UpdateSubcode) -> AttrFault {
    AttrFault { subcode }
}

fn exact_len(v: &[u8], n: usize) -> Result<(), AttrFault> {
    if v.len() == n {
        Ok(())
    } else {
        Err(fault(UpdateSubcode::AttributeLengthError))
    }
}

fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

fn v4(v: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(v[0], v[1], v[2], v[3])
}

fn decode_as_path(v: &[u8], four: bool) -> Result<AsPath, AttrFault> {
    let width = if four { 4 } else { 2 };
    let mut segments = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if i + 2 > v.len() {
            return Err(fault(UpdateSubcode::MalformedAsPath));
        }
        let kind = match v[i] {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return Err(fault(UpdateSubcode::MalformedAsPath)),
        };
        let count = usize::from(v[i + 1]);
        // RFC 7606 §7.2: a zero-length segment is malformed.
        if count == 0 {
            return Err(fault(UpdateSubcode::MalformedAsPath));
        }
        let end = i + 2 + count * width;
        if end > v.len() {
            return Err(fault(UpdateSubcode::MalformedAsPath));
        }
        let asns = v[i + 2..end]
            .chunks(width)
            .map(|c| {
                if four {
                    be32(c)
                } else {
                    u32::from(u16::from_be_bytes([c[0], c[1]]))
                }
            })
            .collect();
        segments.push(AsSegment { kind, asns });
        i = end;
    }
    Ok(AsPath { segments })
}

fn decode_mp_next_hop(family: Family, v: &[u8]) -> Result<MpNextHop, AttrFault> {
    let bad = || fault(UpdateSubcode::OptionalAttributeError);
    match (family.afi, v.len()) {
        (1, 4) => Ok(MpNextHop::V4(v4(v))),
        (2, 16) | (2, 32) => {
            let mut g = [0u8; 16];
            g.copy_from_slice(&v[..16]);
            let link_local = (v.len() == 32).then(|| {
                let mut l = [0u8; 16];
                l.copy_from_slice(&v[16..32]);
                Ipv6Addr::from(l)
            });
            Ok(MpNextHop::V6 {
                global: Ipv6Addr::from(g),
                link_local,
            })
        }
        _ => Err(bad()),
    }
}

fn decode_family(v: &[u8]) -> Family {
    Family {
        afi: u16::from_be_bytes([v[0], v[1]]),
        safi: v[2],
    }
}

fn decode_mp_reach(v: &[u8]) -> Result<AttrValue, AttrFault> {
    if v.len() < 5 {
        return Err(fault(UpdateSubcode::AttributeLengthError));
    }
    let family = decode_family(v);
    if !family.is_supported() {
        return Ok(AttrValue::Unknown {
            code: code::MP_REACH_NLRI,
            data: v.to_vec(),
        });
    }
    let nh_len = usize::from(v[3]);
    let nh_end = 4 + nh_len;
    // The next hop, the reserved octet: both must fit.
    if nh_end + 1 > v.len() {
        return Err(fault(UpdateSubcode::AttributeLengthError));
    }
    let next_hop = decode_mp_next_hop(family, &v[4..nh_end])?;
    let nlri = decode_ip_prefixes(&v[nh_end + 1..], family.afi == 2)
        .map_err(|_| fault(UpdateSubcode::InvalidNetworkField))?;
    Ok(AttrValue::MpReach(MpReach {
        family,
        next_hop,
        nlri,
    }))
}

fn decode_mp_unreach(v: &[u8]) -> Result<AttrValue, AttrFault> {
    if v.len() < 3 {
        return Err(fault(UpdateSubcode::AttributeLengthError));
    }
    let family = decode_family(v);
    if !family.is_supported() {
        return Ok(AttrValue::Unknown {
            code: code::MP_UNREACH_NLRI,
            data: v.to_vec(),
        });
    }
    let withdrawn = decode_ip_prefixes(&v[3..], family.afi == 2)
        .map_err(|_| fault(UpdateSubcode::InvalidNetworkField))?;
    Ok(AttrValue::MpUnreach(MpUnreach { family, withdrawn }))
}

fn decode_aggregator(v: &[u8], four: bool) -> Result<Aggregator, AttrFault> {
    if four {
        exact_len(v, 8)?;
        Ok(Aggregator {
            asn: be32(v),
            address: v4(&v[4..]),
        })
    } else {
        exact_len(v, 6)?;
        Ok(Aggregator {
            asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
            address: v4(&v[2..]),
        })
    }
}

fn valid_next_hop(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

/// Decodes the value of a known attribute; unknown codes come back raw.
pub fn decode_value(code: u8, v: &[u8], ctx: &CodecContext) -> Result<AttrValue, AttrFault> {
    use UpdateSubcode::*;
    Ok(match code {
        code::ORIGIN => {
            exact_len(v, 1)?;
            AttrValue::Origin(match v[0] {
                0 => Origin::Igp,
                1 => Origin::Egp,
                2 => Origin::Incomplete,
                _ => return Err(fault(InvalidOriginAttribute)),
            })
        }
        code::AS_PATH => AttrValue::AsPath(decode_as_path(v, ctx.four_octet_as)?),
        code::NEXT_HOP => {
            exact_len(v, 4)?;
            let a = v4(v);
            if !valid_next_hop(a) {
                return Err(fault(InvalidNextHopAttribute));
            }
            AttrValue::NextHop(a)
        }
        code::MED => {
            exact_len(v, 4)?;
            AttrValue::Med(be32(v))
        }
        code::LOCAL_PREF => {
            exact_len(v, 4)?;
            AttrValue::LocalPref(be32(v))
        }
        code::ATOMIC_AGGREGATE => {
            exact_len(v, 0)?;
            AttrValue::AtomicAggregate
        }
        code::AGGREGATOR => AttrValue::Aggregator(decode_aggregator(v, ctx.four_octet_as)?),
        code::COMMUNITIES => {
            if v.is_empty() || v.len() % 4 != 0 {
                return Err(fault(AttributeLengthError));
            }
            AttrValue::Communities(v.chunks(4).map(be32).collect())
        }
        code::ORIGINATOR_ID => {
            exact_len(v, 4)?;
            AttrValue::OriginatorId(v4(v))
        }
        code::CLUSTER_LIST => {
            if v.is_empty() || v.len() % 4 != 0 {
                return Err(fault(AttributeLengthError));
            }
            AttrValue::ClusterList(v.chunks(4).map(v4).collect())
        }
        code::MP_REACH_NLRI => decode_mp_reach(v)?,
        code::MP_UNREACH_NLRI => decode_mp_unreach(v)?,
        code::AS4_PATH => AttrValue::As4Path(decode_as_path(v, true)?),
        code::AS4_AGGREGATOR => AttrValue::As4Aggregator(decode_aggregator(v, true)?),
        other => AttrValue::Unknown {
            code: other,
            data: v.to_vec(),
        },
    })
}
