//! Value parsers for the flags that take a network in CIDR form (`--subnet`, `--ip-range`,
//! `weft cluster init --network`, …).
//!
//! clap's default, `FromStr` of `ipnet`, answers "invalid IP address syntax" for every mistake —
//! a prefix length too long for the family, a missing `/LEN`, an IPv6 network given to an
//! IPv4-only flag. These say which part of the input is wrong and what would be right; clap adds
//! the flag and the input in front ("invalid value '10.0.0.0/33' for '--subnet <SUBNET>': …").

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An IPv4 or IPv6 network: `10.10.0.0/24`, `fd00::/48`.
pub fn ip_net(s: &str) -> Result<IpNet, String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| {
        format!("{s} has no prefix length; write ADDRESS/LENGTH, e.g. 10.10.0.0/24 or fd00:1::/64")
    })?;
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!("{addr:?} (before the /) is not an IPv4 or IPv6 address; write ADDRESS/LENGTH, e.g. 10.10.0.0/24 or fd00:1::/64")
    })?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("prefix length {len:?} of {s} is not a number from 0 to 128"))?;
    let (max, family) = match addr {
        IpAddr::V4(_) => (32, "IPv4"),
        IpAddr::V6(_) => (128, "IPv6"),
    };
    if len > max {
        return Err(format!(
            "prefix length {len} is longer than {max} for {family} ({s})"
        ));
    }
    IpNet::new(addr, len).map_err(|e| format!("{s}: {e}"))
}

/// An IPv4 network; an IPv6 one is refused as such.
pub fn ipv4_net(s: &str) -> Result<Ipv4Net, String> {
    match ip_net(s)? {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(_) => Err(format!(
            "{s} is an IPv6 network; this flag takes an IPv4 one, e.g. 10.244.0.0/16"
        )),
    }
}

/// The IPv4 cluster network of `weft cluster init --network`: as [`ipv4_net`], and an IPv6
/// network is pointed to the flag that takes it.
pub fn cluster_ipv4_net(s: &str) -> Result<Ipv4Net, String> {
    match ip_net(s)? {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(_) => Err(format!(
            "{s} is an IPv6 network; --network is the IPv4 cluster network (e.g. 10.244.0.0/16) and an IPv6 one goes in --network-v6 next to it"
        )),
    }
}

/// An IPv6 network; an IPv4 one is refused as such.
pub fn ipv6_net(s: &str) -> Result<Ipv6Net, String> {
    match ip_net(s)? {
        IpNet::V6(n) => Ok(n),
        IpNet::V4(_) => Err(format!(
            "{s} is an IPv4 network; this flag takes an IPv6 one, e.g. fd00:10:244::/48"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_networks_of_both_families_parse_as_ipnet_does() {
        for s in [
            "10.244.0.0/16",
            "10.0.0.1/32",
            "0.0.0.0/0",
            "fd00::/48",
            "2001:db8::/128",
            "::/0",
        ] {
            assert_eq!(ip_net(s).unwrap(), s.parse::<IpNet>().unwrap(), "{s}");
        }
        assert_eq!(ipv6_net("fd00::/48").unwrap().to_string(), "fd00::/48");
        assert_eq!(ipv4_net("10.1.0.0/16").unwrap().to_string(), "10.1.0.0/16");
    }

    #[test]
    fn a_prefix_too_long_names_the_length_and_the_family() {
        let e = ip_net("10.244.0.0/33").unwrap_err();
        assert!(
            e.contains("prefix length 33 is longer than 32 for IPv4"),
            "{e}"
        );
        let e = ip_net("fd00::/129").unwrap_err();
        assert!(
            e.contains("prefix length 129 is longer than 128 for IPv6"),
            "{e}"
        );
    }

    #[test]
    fn other_mistakes_say_which_part_is_wrong() {
        let e = ip_net("10.244.0.0").unwrap_err();
        assert!(
            e.contains("no prefix length") && e.contains("10.244.0.0"),
            "{e}"
        );
        let e = ip_net("banana/16").unwrap_err();
        assert!(
            e.contains("\"banana\"") && e.contains("not an IPv4 or IPv6 address"),
            "{e}"
        );
        let e = ip_net("10.0.0.0/x").unwrap_err();
        assert!(
            e.contains("prefix length \"x\"") && e.contains("not a number"),
            "{e}"
        );
    }

    #[test]
    fn a_family_only_flag_says_which_family_it_takes() {
        let e = ipv4_net("fd00::/48").unwrap_err();
        assert!(
            e.contains("fd00::/48 is an IPv6 network") && e.contains("IPv4"),
            "{e}"
        );
        let e = cluster_ipv4_net("fd00::/48").unwrap_err();
        assert!(e.contains("--network-v6"), "{e}");
        let e = ipv6_net("10.0.0.0/8").unwrap_err();
        assert!(e.contains("10.0.0.0/8 is an IPv4 network"), "{e}");
    }
}
