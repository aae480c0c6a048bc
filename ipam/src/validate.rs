//! Checks of a `PoolRequest` (pure logic), all made before anything is written.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::addr::{overlaps, to_num};
use crate::alloc::{allocation_bounds, host_bounds};
use crate::error::IpamError;
use crate::pool::{Pool, PoolRequest};

/// Shortest IPv4 prefix a pool may have; anything bigger is a typo rather than a network.
pub const MIN_V4_PREFIX: u8 = 8;
/// Shortest IPv6 prefix a pool may have.
pub const MIN_V6_PREFIX: u8 = 16;
/// Longest IPv6 prefix a pool may have: /127 and /128 leave no room for a gateway and a host
/// once the subnet-router anycast address is excluded.
pub const MAX_V6_PREFIX: u8 = 126;

/// Checks everything a request says about itself: the subnet's shape and family, and that the
/// range, gateway and aux addresses lie inside it. Overlaps with other pools are checked by
/// [`check_overlap`].
pub fn check_request(req: &PoolRequest) -> Result<(), IpamError> {
    let Some(subnet) = req.subnet else {
        return check_without_subnet(req);
    };
    check_subnet(&subnet, req.v6)?;
    if let Some(range) = &req.ip_range {
        check_range(range, &subnet)?;
    }
    if let Some(gateway) = req.gateway {
        check_gateway(gateway, req, &subnet)?;
    }
    for (name, address) in &req.aux {
        if !subnet.contains(address) {
            return Err(IpamError::AuxOutside {
                name: name.clone(),
                address: *address,
                subnet,
            });
        }
    }
    Ok(())
}

/// Fails with `Overlap`, naming the other pool and its owner, if `subnet` shares an address
/// with any of `pools`.
pub fn check_overlap(subnet: &IpNet, pools: &[Pool]) -> Result<(), IpamError> {
    match pools.iter().find(|p| overlaps(subnet, &p.subnet)) {
        Some(other) => Err(IpamError::Overlap {
            subnet: *subnet,
            other: other.subnet,
            owner: if other.owner.is_empty() {
                "no recorded owner".to_string()
            } else {
                format!("owned by {}", other.owner)
            },
        }),
        None => Ok(()),
    }
}

/// Default pools are chosen by weft, so there is nothing to hang a range, gateway or aux on.
fn check_without_subnet(req: &PoolRequest) -> Result<(), IpamError> {
    let what = if req.ip_range.is_some() {
        "an ip range"
    } else if req.gateway.is_some() {
        "a gateway"
    } else if !req.aux.is_empty() {
        "an auxiliary address"
    } else {
        return Ok(());
    };
    Err(IpamError::NeedsSubnet { what })
}

fn check_subnet(subnet: &IpNet, v6: bool) -> Result<(), IpamError> {
    let invalid = |reason: String| IpamError::InvalidSubnet {
        subnet: subnet.to_string(),
        reason,
    };
    let is_v6 = subnet.addr().is_ipv6();
    if is_v6 != v6 {
        return Err(invalid(if is_v6 {
            "it is an IPv6 subnet but an IPv4 pool was requested; request an IPv6 pool for it"
                .into()
        } else {
            "it is an IPv4 subnet but an IPv6 pool was requested; request an IPv4 pool for it"
                .into()
        }));
    }
    if subnet.addr() != subnet.network() {
        return Err(invalid(format!(
            "it is not a network address (host bits are set); did you mean {}?",
            subnet.trunc()
        )));
    }
    let len = subnet.prefix_len();
    if !is_v6 && len < MIN_V4_PREFIX {
        return Err(invalid(format!(
            "/{len} is too large for one network; use /{MIN_V4_PREFIX} or longer"
        )));
    }
    if is_v6 && len < MIN_V6_PREFIX {
        return Err(invalid(format!(
            "/{len} is too large for one network; use /{MIN_V6_PREFIX} or longer"
        )));
    }
    if is_v6 && len > MAX_V6_PREFIX {
        return Err(invalid(format!(
            "/{len} leaves no room for hosts once the subnet-router anycast address is excluded; use /{MAX_V6_PREFIX} or shorter"
        )));
    }
    Ok(())
}

fn check_range(range: &IpNet, subnet: &IpNet) -> Result<(), IpamError> {
    if range.addr() != range.network() {
        return Err(IpamError::InvalidRange {
            range: range.to_string(),
            reason: format!(
                "it is not a network address (host bits are set); did you mean {}?",
                range.trunc()
            ),
        });
    }
    if !subnet.contains(range) {
        return Err(IpamError::RangeOutside {
            range: *range,
            subnet: *subnet,
        });
    }
    if allocation_bounds(subnet, Some(range)).is_none() {
        return Err(IpamError::InvalidRange {
            range: range.to_string(),
            reason: format!(
                "it holds only the network or broadcast address of {subnet}, nothing to allocate; use a larger range"
            ),
        });
    }
    Ok(())
}

fn check_gateway(gateway: IpAddr, req: &PoolRequest, subnet: &IpNet) -> Result<(), IpamError> {
    if !subnet.contains(&gateway) {
        return Err(IpamError::GatewayOutside {
            gateway,
            subnet: *subnet,
        });
    }
    let invalid = |reason: String| IpamError::InvalidGateway {
        gateway,
        subnet: *subnet,
        reason,
    };
    let (first, last) = host_bounds(subnet);
    if to_num(gateway) < to_num(first) {
        return Err(invalid(if gateway.is_ipv6() {
            "it is the subnet-router anycast address".into()
        } else {
            "it is the network address".into()
        }));
    }
    if to_num(gateway) > to_num(last) {
        return Err(invalid("it is the broadcast address".into()));
    }
    if let Some((name, _)) = req.aux.iter().find(|(_, a)| **a == gateway) {
        return Err(invalid(format!("it is also auxiliary address {name:?}")));
    }
    Ok(())
}
