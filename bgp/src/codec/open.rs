//! OPEN messages (RFC 4271 §4.2) and capabilities (RFC 5492).

use super::attribute::AS_TRANS;
use super::error::DecodeError;
use super::family::Family;
use std::net::Ipv4Addr;

/// Capability codes.
pub mod cap_code {
    /// Multiprotocol extensions (RFC 4760).
    pub const MULTIPROTOCOL: u8 = 1;
    /// Route refresh (RFC 2918).
    pub const ROUTE_REFRESH: u8 = 2;
    /// Graceful restart (RFC 4724).
    pub const GRACEFUL_RESTART: u8 = 64;
    /// 4-octet AS numbers (RFC 6793).
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// Optional parameter type for capabilities.
const PARAM_CAPABILITIES: u8 = 2;

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Protocol version, 4.
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the real AS needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Optional parameters in wire order; each Capabilities parameter keeps its own grouping so
    /// that captured OPENs re-encode byte for byte.
    pub params: Vec<Vec<Capability>>,
}

/// Graceful-restart per-family entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GrFamily {
    /// The family.
    pub family: Family,
    /// Flags octet; 0x80 = forwarding state preserved.
    pub flags: u8,
}

impl GrFamily {
    /// Whether the sender preserved forwarding state for this family across its restart.
    pub fn forwarding_preserved(&self) -> bool {
        self.flags & 0x80 != 0
    }
}

/// Graceful restart capability value (RFC 4724 §3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GracefulRestartCap {
    /// The 4 flag bits (0x8 = Restart State, 0x4 = Notification / RFC 8538).
    pub flags: u8,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Families whose routes the receiver should retain.
    pub families: Vec<GrFamily>,
}

impl GracefulRestartCap {
    /// The Restart State bit: the sender has just restarted.
    pub fn restarting(&self) -> bool {
        self.flags & 0x8 != 0
    }
}

/// One capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions for one family.
    MultiProtocol(Family),
    /// Route refresh.
    RouteRefresh,
    /// Graceful restart.
    GracefulRestart(GracefulRestartCap),
    /// 4-octet AS support, carrying the real AS.
    FourOctetAs(u32),
    /// Anything else, kept raw.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    fn encode(&self, out: &mut Vec<u8>) {
        let (code, value): (u8, Vec<u8>) = match self {
            Capability::MultiProtocol(f) => {
                let mut v = f.afi.to_be_bytes().to_vec();
                v.extend_from_slice(&[0, f.safi]);
                (cap_code::MULTIPROTOCOL, v)
            }
            Capability::RouteRefresh => (cap_code::ROUTE_REFRESH, Vec::new()),
            Capability::GracefulRestart(gr) => {
                let head = (u16::from(gr.flags & 0xf) << 12) | (gr.restart_time & 0x0fff);
                let mut v = head.to_be_bytes().to_vec();
                for f in &gr.families {
                    v.extend_from_slice(&f.family.afi.to_be_bytes());
                    v.push(f.family.safi);
                    v.push(f.flags);
                }
                (cap_code::GRACEFUL_RESTART, v)
            }
            Capability::FourOctetAs(asn) => (cap_code::FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::Unknown { code, value } => (*code, value.clone()),
        };
        out.push(code);
        out.push(value.len() as u8);
        out.extend_from_slice(&value);
    }

    fn decode(code: u8, v: &[u8]) -> Result<Capability, DecodeError> {
        let bad = |reason| DecodeError::MalformedOpen { reason };
        Ok(match code {
            cap_code::MULTIPROTOCOL => {
                if v.len() != 4 {
                    return Err(bad("multiprotocol capability is not 4 octets"));
                }
                Capability::MultiProtocol(Family {
                    afi: u16::from_be_bytes([v[0], v[1]]),
                    safi: v[3],
                })
            }
            cap_code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
            cap_code::GRACEFUL_RESTART => {
                if v.len() < 2 || (v.len() - 2) % 4 != 0 {
                    return Err(bad("graceful restart capability length is not 2 + 4n"));
                }
                let head = u16::from_be_bytes([v[0], v[1]]);
                let families = v[2..]
                    .chunks(4)
                    .map(|c| GrFamily {
                        family: Family {
                            afi: u16::from_be_bytes([c[0], c[1]]),
                            safi: c[2],
                        },
                        flags: c[3],
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestartCap {
                    flags: (head >> 12) as u8,
                    restart_time: head & 0x0fff,
                    families,
                })
            }
            cap_code::FOUR_OCTET_AS => {
                if v.len() != 4 {
                    return Err(bad("4-octet AS capability is not 4 octets"));
                }
                Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            code => Capability::Unknown {
                code,
                value: v.to_vec(),
            },
        })
    }
}

impl Open {
    /// An OPEN for `asn` (AS_TRANS in the 2-octet field when needed) with one Capabilities
    /// parameter. A 4-octet AS capability is added when `asn` needs it and it is missing.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, mut caps: Vec<Capability>) -> Open {
        let has_four = caps.iter().any(|c| matches!(c, Capability::FourOctetAs(_)));
        if asn > 0xffff && !has_four {
            caps.push(Capability::FourOctetAs(asn));
        }
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
            hold_time,
            bgp_id,
            params: if caps.is_empty() {
                Vec::new()
            } else {
                vec![caps]
            },
        }
    }

    /// Every capability, across parameters.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flatten()
    }

    /// The AS the sender claims: the 4-octet capability's if present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The 4-octet AS capability value, if sent.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// Families announced with the multiprotocol capability. A speaker that sends no
    /// multiprotocol capability at all speaks IPv4 unicast only (RFC 4760 §8).
    pub fn families(&self) -> Vec<Family> {
        let v: Vec<Family> = self
            .capabilities()
            .filter_map(|c| match c {
                Capability::MultiProtocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if v.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            v
        }
    }

    /// The graceful restart capability, if sent.
    pub fn graceful_restart(&self) -> Option<&GracefulRestartCap> {
        self.capabilities().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
    }

    /// Whether route refresh was offered.
    pub fn route_refresh(&self) -> bool {
        self.capabilities()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// Encodes the body.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut params = Vec::new();
        for group in &self.params {
            let mut v = Vec::new();
            group.iter().for_each(|c| c.encode(&mut v));
            params.push(PARAM_CAPABILITIES);
            params.push(v.len() as u8);
            params.extend_from_slice(&v);
        }
        out.push(params.len() as u8);
        out.extend_from_slice(&params);
    }

    /// Decodes a body (the header has already guaranteed at least 10 octets).
    pub fn decode_body(b: &[u8]) -> Result<Open, DecodeError> {
        let bad = |reason| DecodeError::MalformedOpen { reason };
        if b.len() < 10 {
            return Err(bad("OPEN shorter than its fixed fields"));
        }
        if b[0] != 4 {
            return Err(DecodeError::UnsupportedVersion { version: b[0] });
        }
        let opt_len = usize::from(b[9]);
        if 10 + opt_len != b.len() {
            return Err(bad(
                "optional parameters length does not match the message length",
            ));
        }
        let mut params = Vec::new();
        let mut p = &b[10..];
        while !p.is_empty() {
            if p.len() < 2 || 2 + usize::from(p[1]) > p.len() {
                return Err(bad("optional parameter runs past the parameters"));
            }
            let (ty, len) = (p[0], usize::from(p[1]));
            if ty != PARAM_CAPABILITIES {
                return Err(DecodeError::UnsupportedOptionalParameter { ty });
            }
            params.push(decode_capabilities(&p[2..2 + len])?);
            p = &p[2 + len..];
        }
        Ok(Open {
            version: 4,
            my_as: u16::from_be_bytes([b[1], b[2]]),
            hold_time: u16::from_be_bytes([b[3], b[4]]),
            bgp_id: Ipv4Addr::new(b[5], b[6], b[7], b[8]),
            params,
        })
    }
}

fn decode_capabilities(mut c: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let mut caps = Vec::new();
    while !c.is_empty() {
        if c.len() < 2 || 2 + usize::from(c[1]) > c.len() {
            return Err(DecodeError::MalformedOpen {
                reason: "capability runs past its parameter",
            });
        }
        let len = usize::from(c[1]);
        caps.push(Capability::decode(c[0], &c[2..2 + len])?);
        c = &c[2 + len..];
    }
    Ok(caps)
}
