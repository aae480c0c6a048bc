use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum IpamError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid subnet {subnet}: {reason}")]
    InvalidSubnet { subnet: String, reason: String },
    #[error("subnet {subnet} overlaps {other} ({owner}); choose a subnet that does not overlap")]
    Overlap {
        subnet: IpNet,
        other: IpNet,
        owner: String,
    },
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutside { gateway: IpAddr, subnet: IpNet },
    #[error("ip range {range} is not inside subnet {subnet}")]
    RangeOutside { range: IpNet, subnet: IpNet },
    #[error("auxiliary address {name}={address} is not inside subnet {subnet}")]
    AuxOutside {
        name: String,
        address: IpAddr,
        subnet: IpNet,
    },
    #[error("no free default address pool: every default {family} pool overlaps an existing network, route or address; pass an explicit subnet")]
    NoDefaultPool { family: &'static str },
    #[error("address pool {pool} not found")]
    UnknownPool { pool: String },
    #[error("address pool {pool} is exhausted: no free address left; release addresses or use a larger subnet or ip range")]
    Exhausted { pool: String },
    #[error("address {address} is already in use by {owner} in pool {pool}; choose another address or omit it to get a free one")]
    AddressInUse {
        address: IpAddr,
        owner: String,
        pool: String,
    },
    #[error("address {address} is not usable in pool {pool}: {reason}")]
    AddressNotUsable {
        address: IpAddr,
        pool: String,
        reason: String,
    },
    #[error("address pool {pool} still has {count} allocated addresses; remove its endpoints first")]
    PoolInUse { pool: String, count: usize },
}
