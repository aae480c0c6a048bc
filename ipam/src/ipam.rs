//! Pools and addresses over a `Store`. Every method takes the store lock itself (the lock is
//! re-entrant, so a caller may hold it around several calls to make them one transaction).
//!
//! Store layout:
//! - `ipam/pools/<pool id>`            → `Pool` (JSON)
//! - `ipam/addrs/<pool id>/<address>`  → owner (UTF-8), one key per allocated address
//! - `ipam/cursor/<pool id>`           → allocation hint (not needed for correctness)
//! - `ipam/ula`                        → this host's random ULA /48 (created once)

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::IpamError;
use crate::pool::{Pool, PoolRequest};
use crate::store::Store;

pub struct Ipam<'s> {
    store: &'s dyn Store,
}

impl<'s> Ipam<'s> {
    pub fn new(store: &'s dyn Store) -> Self {
        Ipam { store }
    }

    /// Validates and records a pool. With no subnet, picks the first default pool of the family
    /// (see `defaults`) that overlaps neither an existing pool nor any of `host_prefixes` (the
    /// host's routes and addresses). An explicit subnet must not overlap an existing pool.
    pub fn request_pool(&self, req: &PoolRequest, host_prefixes: &[IpNet]) -> Result<Pool, IpamError> {
        let _ = (req, host_prefixes, self.store);
        todo!()
    }

    /// Removes a pool. Fails with `PoolInUse` if addresses other than its gateway and aux
    /// addresses are still allocated; releases those.
    pub fn release_pool(&self, pool_id: &str) -> Result<(), IpamError> {
        let _ = pool_id;
        todo!()
    }

    pub fn pool(&self, pool_id: &str) -> Result<Option<Pool>, IpamError> {
        let _ = pool_id;
        todo!()
    }

    pub fn pools(&self) -> Result<Vec<Pool>, IpamError> {
        todo!()
    }

    /// Allocates `want` if given (refused clearly if taken, outside the subnet, or the network or
    /// broadcast address), else a free address from the range per the pool's mode. Never returns
    /// the network address, the IPv4 broadcast address, an aux address or one already allocated.
    /// Returns the address with the subnet's prefix length.
    pub fn request_address(&self, pool_id: &str, want: Option<IpAddr>, owner: &str) -> Result<IpNet, IpamError> {
        let _ = (pool_id, want, owner);
        todo!()
    }

    /// Releases an address; releasing one that is not allocated is not an error (idempotent).
    pub fn release_address(&self, pool_id: &str, address: IpAddr) -> Result<(), IpamError> {
        let _ = (pool_id, address);
        todo!()
    }

    /// Every allocated address of a pool with its owner.
    pub fn allocated(&self, pool_id: &str) -> Result<Vec<(IpAddr, String)>, IpamError> {
        let _ = pool_id;
        todo!()
    }
}
