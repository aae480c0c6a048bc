//! Checks every consumer's requests go through (CLI, Docker, CNI), made before anything is
//! claimed or built, each naming the input and the fix. They live here, not in the consumers,
//! so that a subnet the CLI refuses is refused from Docker too.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_drivers::MacAddr;
use weft_ipam::PoolRequest;

use crate::error::EngineError;
use crate::networks::{IpamRequest, NetworkRequest};
use crate::records::NetworkRecord;

/// Longest consumer reference (CNI container id, Docker sandbox key, CLI netns path) weft
/// records: the CNI spec gives no limit, and an unbounded one would be stored as is.
pub const MAX_OWNER_LEN: usize = 1024;

/// Subnets another IPAM chose (Docker's) get the checks weft's own pools get: no `0.0.0.0/0`,
/// gateways and ranges inside their subnet.
pub(crate) fn given_subnets(req: &NetworkRequest) -> Result<(), EngineError> {
    let IpamRequest::Given(subnets) = &req.ipam else {
        return Ok(());
    };
    for s in subnets {
        let pool = PoolRequest {
            subnet: Some(s.subnet),
            v6: matches!(s.subnet, IpNet::V6(_)),
            gateway: s.gateway.map(|g| g.addr()),
            ip_range: s.ip_range,
            ..PoolRequest::default()
        };
        weft_ipam::validate::check_request(&pool).map_err(|e| {
            EngineError::Invalid(format!("network {}: subnet {}: {e}", req.name, s.subnet))
        })?;
    }
    Ok(())
}

/// An endpoint's addresses, MAC and owner, whichever IPAM gave the addresses.
pub(crate) fn endpoint(
    net: &NetworkRecord,
    addresses: &[IpNet],
    mac: MacAddr,
    owner: &str,
) -> Result<(), EngineError> {
    for a in addresses {
        if let Some(why) = unusable(net, a.addr()) {
            return Err(EngineError::Invalid(format!(
                "address {} cannot be an endpoint's on network {}: {why}; pick another address",
                a.addr(),
                net.network.name
            )));
        }
    }
    if mac.0 == [0; 6] {
        return Err(EngineError::Invalid(format!(
            "MAC address {mac} is all zeros; give a unicast address such as 02:42:ac:11:00:02, or none to have one made"
        )));
    }
    if mac.0[0] & 1 == 1 {
        return Err(EngineError::Invalid(format!(
            "MAC address {mac} is a multicast address (lowest bit of the first byte set); give a unicast one such as 02:42:ac:11:00:02"
        )));
    }
    if owner.len() > MAX_OWNER_LEN {
        return Err(EngineError::Invalid(format!(
            "the container reference ({} characters, starting {:?}) is longer than {MAX_OWNER_LEN} characters",
            owner.len(),
            owner.chars().take(32).collect::<String>()
        )));
    }
    Ok(())
}

/// Why `addr` cannot be an endpoint's: the network address or IPv4 broadcast of its subnet.
fn unusable(net: &NetworkRecord, addr: IpAddr) -> Option<String> {
    let subnet = net
        .network
        .subnets
        .iter()
        .map(|s| s.subnet)
        .find(|s| s.contains(&addr))?;
    let long = match subnet {
        IpNet::V4(n) => n.prefix_len() >= 31,
        IpNet::V6(n) => n.prefix_len() >= 127,
    };
    if long {
        return None;
    }
    if addr == subnet.network() {
        return Some(format!("it is the network address of {subnet}"));
    }
    if matches!(subnet, IpNet::V4(_)) && addr == subnet.broadcast() {
        return Some(format!("it is the broadcast address of {subnet}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_drivers::{Network, SubnetInfo};

    fn net(subnet: &str) -> NetworkRecord {
        NetworkRecord {
            network: Network {
                id: "a".repeat(64),
                name: "n".into(),
                driver: "bridge".into(),
                internal: false,
                enable_ipv6: false,
                subnets: vec![SubnetInfo {
                    subnet: subnet.parse().unwrap(),
                    gateway: None,
                    ip_range: None,
                    pool_id: String::new(),
                }],
                options: Default::default(),
            },
            origin: Default::default(),
            pools: Vec::new(),
            labels: Default::default(),
            created: 0,
            docker_ids: Vec::new(),
        }
    }

    const MAC: MacAddr = MacAddr([2, 0x42, 10, 0, 0, 2]);

    #[test]
    fn refuses_network_and_broadcast_addresses() {
        let n = net("10.0.0.0/24");
        for bad in ["10.0.0.0/24", "10.0.0.255/24"] {
            let e = endpoint(&n, &[bad.parse().unwrap()], MAC, "o").unwrap_err();
            assert!(matches!(e, EngineError::Invalid(_)), "{bad}: {e}");
        }
        endpoint(&n, &["10.0.0.7/24".parse().unwrap()], MAC, "o").unwrap();
        let p2p = net("10.0.0.0/31");
        endpoint(&p2p, &["10.0.0.0/31".parse().unwrap()], MAC, "o").unwrap();
        let v6 = net("fd00::/64");
        assert!(endpoint(&v6, &["fd00::/64".parse().unwrap()], MAC, "o").is_err());
    }

    #[test]
    fn refuses_zero_and_multicast_macs_and_huge_owners() {
        let n = net("10.0.0.0/24");
        let a = ["10.0.0.7/24".parse().unwrap()];
        assert!(endpoint(&n, &a, MacAddr([0; 6]), "o").is_err());
        assert!(endpoint(&n, &a, MacAddr([1, 0, 0, 0, 0, 1]), "o").is_err());
        assert!(endpoint(&n, &a, MAC, &"x".repeat(MAX_OWNER_LEN + 1)).is_err());
    }

    #[test]
    fn refuses_a_whole_address_family_from_another_ipam() {
        let req = NetworkRequest {
            name: "n".into(),
            id: None,
            driver: "bridge".into(),
            internal: false,
            enable_ipv6: false,
            ipam: IpamRequest::Given(vec![SubnetInfo {
                subnet: "0.0.0.0/0".parse().unwrap(),
                gateway: None,
                ip_range: None,
                pool_id: String::new(),
            }]),
            options: Default::default(),
            labels: Default::default(),
            origin: Default::default(),
        };
        let e = given_subnets(&req).unwrap_err();
        assert!(e.to_string().contains("0.0.0.0/0"), "{e}");
    }
}
