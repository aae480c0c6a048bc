//! Address families (AFI/SAFI pairs, RFC 4760).

use serde::{Deserialize, Serialize};

/// An AFI/SAFI pair. Unknown pairs are representable so that capabilities round-trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Family {
    /// Address Family Identifier (1 = IPv4, 2 = IPv6).
    pub afi: u16,
    /// Subsequent AFI (1 = unicast).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// The family a prefix belongs to (unicast).
    pub fn of(net: &ipnet::IpNet) -> Family {
        match net {
            ipnet::IpNet::V4(_) => Self::IPV4_UNICAST,
            ipnet::IpNet::V6(_) => Self::IPV6_UNICAST,
        }
    }

    /// Whether this implementation can parse NLRI of this family.
    pub fn is_supported(self) -> bool {
        self == Self::IPV4_UNICAST || self == Self::IPV6_UNICAST
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::IPV4_UNICAST => write!(f, "ipv4-unicast"),
            Self::IPV6_UNICAST => write!(f, "ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi{afi}/safi{safi}"),
        }
    }
}
