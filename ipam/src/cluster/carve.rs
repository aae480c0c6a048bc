//! Splitting a cluster network into per-host subnets.
//!
//! Like flannel, the first subnet (the one holding the cluster network's own address) is never
//! handed out: `10.244.0.0/16` in /24s gives `10.244.1.0/24` … `10.244.255.0/24`.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// How many subnets of length `len` the network yields (the skipped first one not counted).
pub fn subnet_count(network: Ipv4Net, len: u8) -> u64 {
    if len <= network.prefix_len() || len > 32 {
        return 0;
    }
    (1u64 << (len - network.prefix_len())) - 1
}

/// The `index`-th handed-out subnet (0-based, after the skipped first one).
pub fn nth_subnet(network: Ipv4Net, len: u8, index: u64) -> Option<Ipv4Net> {
    if index >= subnet_count(network, len) {
        return None;
    }
    let base = u64::from(u32::from(network.network()));
    let size = 1u64 << (32 - len);
    let start = base + (index + 1) * size;
    Ipv4Net::new(Ipv4Addr::from(start as u32), len).ok()
}

/// Every handed-out subnet in order.
pub fn subnets(network: Ipv4Net, len: u8) -> impl Iterator<Item = Ipv4Net> {
    (0..subnet_count(network, len)).map_while(move |i| nth_subnet(network, len, i))
}

/// Whether `subnet` is one of the network's handed-out subnets.
pub fn is_host_subnet(network: Ipv4Net, len: u8, subnet: Ipv4Net) -> bool {
    subnet.prefix_len() == len
        && subnet.network() == subnet.addr()
        && network.contains(&subnet)
        && subnet.network() != network.network()
}

/// The IPv6 subnet that goes with a host's IPv4 subnet: the one with the same index in the IPv6
/// network, so one claim covers both families. `None` when the IPv6 network has too few.
pub fn v6_for(
    network: Ipv4Net,
    len: u8,
    subnet: Ipv4Net,
    network_v6: Ipv6Net,
    len_v6: u8,
) -> Option<Ipv6Net> {
    if !is_host_subnet(network, len, subnet) || len_v6 <= network_v6.prefix_len() || len_v6 > 128 {
        return None;
    }
    let index = (u32::from(subnet.network()) - u32::from(network.network())) >> (32 - len);
    let bits = len_v6 - network_v6.prefix_len();
    if bits < 64 && u128::from(index) >= 1u128 << bits {
        return None;
    }
    let base = u128::from(network_v6.network());
    let start = base + (u128::from(index) << (128 - len_v6));
    Ipv6Net::new(Ipv6Addr::from(start), len_v6).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn first_subnet_is_skipped() {
        let n = net("10.244.0.0/16");
        assert_eq!(subnet_count(n, 24), 255);
        let all: Vec<_> = subnets(n, 24).collect();
        assert_eq!(all.first(), Some(&net("10.244.1.0/24")));
        assert_eq!(all.last(), Some(&net("10.244.255.0/24")));
        assert_eq!(all.len(), 255);
        assert!(!is_host_subnet(n, 24, net("10.244.0.0/24")));
        assert!(is_host_subnet(n, 24, net("10.244.7.0/24")));
        assert!(!is_host_subnet(n, 24, net("10.245.7.0/24")));
        assert!(!is_host_subnet(n, 24, net("10.244.7.0/25")));
    }

    #[test]
    fn v6_subnet_follows_the_v4_index() {
        let v6: Ipv6Net = "fd00:10:244::/56".parse().unwrap();
        assert_eq!(
            v6_for(net("10.244.0.0/16"), 24, net("10.244.3.0/24"), v6, 64),
            Some("fd00:10:244:3::/64".parse().unwrap())
        );
        let small: Ipv6Net = "fd00::/62".parse().unwrap();
        assert_eq!(
            v6_for(net("10.244.0.0/16"), 24, net("10.244.9.0/24"), small, 64),
            None
        );
    }

    #[test]
    fn other_lengths() {
        let n = net("10.0.0.0/8");
        assert_eq!(nth_subnet(n, 26, 0), Some(net("10.0.0.64/26")));
        assert_eq!(subnet_count(n, 8), 0);
        assert_eq!(
            nth_subnet(net("192.168.0.0/30"), 31, 0),
            Some(net("192.168.0.2/31"))
        );
        assert_eq!(nth_subnet(net("192.168.0.0/30"), 31, 1), None);
    }
}
