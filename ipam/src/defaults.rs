//! Docker's default address pools and this host's IPv6 ULA pools (pure logic).
//!
//! IPv4: 172.17.0.0/16, then 172.18.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 split into /20s.
//! IPv6: a random ULA /48 (fdXX:XXXX:XXXX::/48, RFC 4193), made once per host and stored, split
//! into /64s starting at subnet id 1 (subnet id 0 stays free for the host's own use).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::Rng;

use crate::addr::overlaps;

/// Docker's default IPv4 pools, in the order Docker tries them.
pub fn default_v4_pools() -> impl Iterator<Item = IpNet> {
    let sixteens = (17u8..=31).map(|b| v4net(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0u8..16).map(|i| v4net(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens.chain(twenties)
}

/// The default IPv6 pools carved from `ula`: its /64s with subnet ids 1, 2, … 65535.
pub fn ula_pools(ula: Ipv6Net) -> impl Iterator<Item = IpNet> {
    let base = u128::from(ula.network());
    (1u128..=0xffff).map(move |id| {
        let net = Ipv6Net::new(Ipv6Addr::from(base | (id << 64)), 64)
            .expect("64 is a valid IPv6 prefix length");
        IpNet::V6(net)
    })
}

/// A fresh random ULA /48: `fd` followed by a 40-bit random global id (RFC 4193 §3.2).
pub fn random_ula(rng: &mut impl Rng) -> Ipv6Net {
    let global_id = u128::from(rng.random::<u64>() & 0xff_ffff_ffff);
    let addr = Ipv6Addr::from((0xfd_u128 << 120) | (global_id << 80));
    Ipv6Net::new(addr, 48).expect("48 is a valid IPv6 prefix length")
}

/// Parses a stored ULA, accepting only what `random_ula` makes: a /48 network inside fd00::/8.
pub fn parse_ula(text: &str) -> Option<Ipv6Net> {
    let net: Ipv6Net = text.trim().parse().ok()?;
    let is_ula = net.addr().octets()[0] == 0xfd;
    (net.prefix_len() == 48 && net.addr() == net.network() && is_ula).then_some(net)
}

/// The first of `candidates` that overlaps neither a pool in `taken` nor a host prefix. Host
/// prefixes of length 0 (default routes) are ignored: they overlap everything.
pub fn first_free(
    candidates: impl IntoIterator<Item = IpNet>,
    taken: &[IpNet],
    host_prefixes: &[IpNet],
) -> Option<IpNet> {
    let host: Vec<&IpNet> = host_prefixes
        .iter()
        .filter(|p| p.prefix_len() > 0)
        .collect();
    candidates.into_iter().find(|candidate| {
        !taken.iter().any(|t| overlaps(candidate, t))
            && !host.iter().any(|h| overlaps(candidate, h))
    })
}

fn v4net(addr: Ipv4Addr, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(addr, len).expect("constant prefix length is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn v4_defaults_are_dockers_in_order() {
        let all: Vec<IpNet> = default_v4_pools().collect();
        assert_eq!(all.len(), 15 + 16);
        assert_eq!(all[0], net("172.17.0.0/16"));
        assert_eq!(all[1], net("172.18.0.0/16"));
        assert_eq!(all[14], net("172.31.0.0/16"));
        assert_eq!(all[15], net("192.168.0.0/20"));
        assert_eq!(all[16], net("192.168.16.0/20"));
        assert_eq!(all[30], net("192.168.240.0/20"));
    }

    #[test]
    fn first_free_skips_pools_and_host_prefixes() {
        let taken = [net("172.17.0.0/16")];
        let host = [net("172.18.0.5/32"), net("172.19.0.0/16")];
        assert_eq!(
            first_free(default_v4_pools(), &taken, &host),
            Some(net("172.20.0.0/16"))
        );
    }

    #[test]
    fn a_covering_route_skips_every_pool_inside_it() {
        let host = [net("172.16.0.0/12"), net("192.168.0.0/19")];
        assert_eq!(
            first_free(default_v4_pools(), &[], &host),
            Some(net("192.168.32.0/20"))
        );
    }

    #[test]
    fn default_routes_and_loopback_do_not_block() {
        let host = [
            net("0.0.0.0/0"),
            net("::/0"),
            net("127.0.0.0/8"),
            net("::1/128"),
        ];
        assert_eq!(
            first_free(default_v4_pools(), &[], &host),
            Some(net("172.17.0.0/16"))
        );
    }

    #[test]
    fn all_taken_gives_none() {
        let taken: Vec<IpNet> = default_v4_pools().collect();
        assert_eq!(first_free(default_v4_pools(), &taken, &[]), None);
        assert_eq!(
            first_free(default_v4_pools(), &[], &[net("128.0.0.0/1")]),
            None
        );
    }

    #[test]
    fn ula_is_fd_plus_40_bits() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = random_ula(&mut rng);
        let b = random_ula(&mut rng);
        assert_ne!(a, b);
        for ula in [a, b] {
            assert_eq!(ula.prefix_len(), 48);
            assert_eq!(ula.addr().octets()[0], 0xfd);
            assert_eq!(ula.addr(), ula.network());
            assert_eq!(parse_ula(&ula.to_string()), Some(ula));
        }
    }

    #[test]
    fn parse_ula_rejects_anything_else() {
        for bad in [
            "fc00::/48",
            "fd00::/64",
            "fd00::1/48",
            "10.0.0.0/8",
            "garbage",
        ] {
            assert_eq!(parse_ula(bad), None, "{bad}");
        }
    }

    #[test]
    fn ula_pools_start_at_subnet_one() {
        let ula = parse_ula("fd12:3456:789a::/48").unwrap();
        let pools: Vec<IpNet> = ula_pools(ula).take(2).collect();
        assert_eq!(
            pools,
            vec![net("fd12:3456:789a:1::/64"), net("fd12:3456:789a:2::/64")]
        );
        assert_eq!(ula_pools(ula).last(), Some(net("fd12:3456:789a:ffff::/64")));
        assert_eq!(ula_pools(ula).count(), 0xffff);
    }
}
