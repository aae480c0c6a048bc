//! Everything that can go wrong in this crate.

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::store::StoreError;

/// Why an IPAM operation failed. Validation errors are returned before anything is written.
#[derive(Debug, Error)]
pub enum IpamError {
    /// The store failed or holds something unreadable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The requested subnet is malformed (not a network address, bad prefix length, wrong family).
    #[error("invalid subnet {subnet}: {reason}")]
    InvalidSubnet { subnet: String, reason: String },
    /// The subnet overlaps a pool that already exists.
    #[error("subnet {subnet} overlaps {other} ({owner}); choose a subnet that does not overlap")]
    Overlap {
        subnet: IpNet,
        other: IpNet,
        owner: String,
    },
    /// The gateway is not inside the subnet.
    #[error("gateway {gateway} is not inside subnet {subnet}; choose a gateway inside the subnet")]
    GatewayOutside { gateway: IpAddr, subnet: IpNet },
    /// The gateway is inside the subnet but cannot be a host address.
    #[error("gateway {gateway} is not usable in subnet {subnet}: {reason}; choose a host address of the subnet")]
    InvalidGateway {
        gateway: IpAddr,
        subnet: IpNet,
        reason: String,
    },
    /// The ip range is not inside the subnet.
    #[error("ip range {range} is not inside subnet {subnet}; choose a range inside the subnet")]
    RangeOutside { range: IpNet, subnet: IpNet },
    /// The ip range is malformed or leaves nothing to allocate.
    #[error("invalid ip range {range}: {reason}")]
    InvalidRange { range: String, reason: String },
    /// An aux address is not inside the subnet.
    #[error("auxiliary address {name}={address} is not inside subnet {subnet}; choose an address inside the subnet")]
    AuxOutside {
        name: String,
        address: IpAddr,
        subnet: IpNet,
    },
    /// A gateway, ip range or aux address came without the subnet it belongs to.
    #[error("{what} was given without a subnet; pass the subnet it belongs to as well")]
    NeedsSubnet { what: &'static str },
    /// Every default pool of the family is taken.
    #[error("no free default address pool: every default {family} pool overlaps an existing network, route or address; pass an explicit subnet")]
    NoDefaultPool { family: &'static str },
    /// No pool has this id.
    #[error("address pool {pool} not found; list pools to see which exist")]
    UnknownPool { pool: String },
    /// The pool id cannot name any pool.
    #[error("address pool id {pool:?} is malformed: pool ids are the subnet with '_' for '/', e.g. 172.18.0.0_16")]
    InvalidPoolId { pool: String },
    /// Every address of the pool's range is allocated.
    #[error("address pool {pool} is exhausted: no free address left; release addresses or use a larger subnet or ip range")]
    Exhausted { pool: String },
    /// The requested address belongs to someone else.
    #[error("address {address} is already in use by {owner} in pool {pool}; choose another address or omit it to get a free one")]
    AddressInUse {
        address: IpAddr,
        owner: String,
        pool: String,
    },
    /// The requested address can never be allocated in this pool.
    #[error("address {address} is not usable in pool {pool}: {reason}; choose another address or omit it to get a free one")]
    AddressNotUsable {
        address: IpAddr,
        pool: String,
        reason: String,
    },
    /// The pool cannot be removed while endpoints hold addresses in it.
    #[error(
        "address pool {pool} still has {count} allocated addresses; remove its endpoints first"
    )]
    PoolInUse { pool: String, count: usize },
}
