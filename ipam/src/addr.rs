//! Addresses as numbers, so IPv4 and IPv6 share one arithmetic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address as an unsigned number (IPv4 in the low 32 bits).
pub(crate) fn to_num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of family `v6` with number `n` (IPv4 takes the low 32 bits).
pub(crate) fn from_num(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

/// Whether two prefixes share any address (prefixes of different families never do).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn numbers_round_trip() {
        for ip in [
            "0.0.0.0",
            "172.18.0.5",
            "255.255.255.255",
            "::",
            "fd00::1",
            "ffff::",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(from_num(to_num(ip), ip.is_ipv6()), ip);
        }
    }

    #[test]
    fn overlap_is_containment_either_way() {
        assert!(overlaps(&net("172.16.0.0/12"), &net("172.17.0.0/16")));
        assert!(overlaps(&net("172.17.0.5/32"), &net("172.17.0.0/16")));
        assert!(!overlaps(&net("172.17.0.0/16"), &net("172.18.0.0/16")));
        assert!(!overlaps(&net("0.0.0.0/0"), &net("::/0")));
    }
}
