//! Pools and addresses over a `Store`. Every method takes the store lock itself (the lock is
//! re-entrant, so a caller may hold it around several calls to make them one transaction).
//!
//! Store layout:
//! - `ipam/pools/<pool id>`            → `Pool` (JSON)
//! - `ipam/addrs/<pool id>/<address>`  → owner (UTF-8), one key per allocated address
//! - `ipam/cursor/<pool id>`           → allocation `Hint` (JSON; not needed for correctness)
//! - `ipam/ula`                        → this host's random ULA /48 (created once)
//!
//! Write order keeps crashes harmless: an address key is created before the hint moves past it,
//! the hint records a released address before its key is deleted, and a pool's record is deleted only after
//! its addresses, so no address key outlives its pool.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

use crate::addr::to_num;
use crate::alloc::{next_free, unusable_reason, Hint};
use crate::defaults::{default_v4_pools, first_free, parse_ula, random_ula, ula_pools};
use crate::error::IpamError;
use crate::pool::{Pool, PoolRequest};
use crate::store::{Store, StoreError};
use crate::validate::{check_overlap, check_request};

/// The owner string callers record for a network's gateway address. `release_pool` releases
/// addresses with this owner (and the pool's gateway) itself instead of counting them as in use.
pub const GATEWAY_OWNER: &str = "gateway";

const POOLS: &str = "ipam/pools";
const ULA: &str = "ipam/ula";

fn pool_key(id: &str) -> String {
    format!("{POOLS}/{id}")
}

fn addrs_prefix(id: &str) -> String {
    format!("ipam/addrs/{id}")
}

fn addr_key(id: &str, address: IpAddr) -> String {
    format!("ipam/addrs/{id}/{address}")
}

fn hint_key(id: &str) -> String {
    format!("ipam/cursor/{id}")
}

/// Address management over a store; cheap to make, holds nothing but the store reference.
pub struct Ipam<'s> {
    store: &'s dyn Store,
}

impl<'s> Ipam<'s> {
    /// IPAM over `store`.
    pub fn new(store: &'s dyn Store) -> Self {
        Ipam { store }
    }

    /// Validates and records a pool. With no subnet, picks the first default pool of the family
    /// (see `defaults`) that overlaps neither an existing pool nor any of `host_prefixes` (the
    /// host's routes and addresses). An explicit subnet must not overlap an existing pool, but
    /// may overlap a host prefix (as in Docker).
    ///
    /// Repeating a request with an explicit subnet and a non-empty owner returns the pool it
    /// made the first time, so a retried request is harmless.
    pub fn request_pool(
        &self,
        req: &PoolRequest,
        host_prefixes: &[IpNet],
    ) -> Result<Pool, IpamError> {
        let _lock = self.store.lock()?;
        check_request(req)?;
        let pools = self.pools()?;
        let subnet = match req.subnet {
            Some(subnet) => {
                if let Some(same) = pools.iter().find(|p| is_repeat_of(p, req)) {
                    return Ok(same.clone());
                }
                check_overlap(&subnet, &pools)?;
                subnet
            }
            None => self.pick_default(req.v6, &pools, host_prefixes)?,
        };
        let pool = Pool {
            id: Pool::id_for(&subnet),
            subnet,
            ip_range: req.ip_range,
            gateway: req.gateway,
            aux: req.aux.clone(),
            mode: req.mode,
            owner: req.owner.clone(),
        };
        let json = serde_json::to_vec(&pool).expect("a Pool always serializes");
        if !self.store.create(&pool_key(&pool.id), &json)? {
            // Only possible if someone wrote the store without taking its lock.
            let existing: Vec<Pool> = self.pool(&pool.id)?.into_iter().collect();
            check_overlap(&subnet, &existing)?;
            return Err(StoreError::Corrupt {
                key: pool_key(&pool.id),
                reason: "it exists but cannot be read back; check the state directory".into(),
            }
            .into());
        }
        tracing::info!(pool = %pool.id, owner = %pool.owner, mode = ?pool.mode, "address pool created");
        Ok(pool)
    }

    /// Removes a pool. Fails with `PoolInUse` if addresses other than its gateway (the pool's
    /// `gateway`, or any address owned by [`GATEWAY_OWNER`]) are still allocated; releases those.
    /// Removing a pool that does not exist succeeds (teardown may be repeated).
    pub fn release_pool(&self, pool_id: &str) -> Result<(), IpamError> {
        let _lock = self.store.lock()?;
        let Some(pool) = self.pool(pool_id)? else {
            tracing::debug!(pool = %pool_id, "release of unknown pool: nothing to do");
            return Ok(());
        };
        let allocated = self.allocated(pool_id)?;
        let in_use = allocated
            .iter()
            .filter(|(address, owner)| Some(*address) != pool.gateway && owner != GATEWAY_OWNER)
            .count();
        if in_use > 0 {
            return Err(IpamError::PoolInUse {
                pool: pool.id,
                count: in_use,
            });
        }
        for (address, _) in &allocated {
            self.store.delete(&addr_key(&pool.id, *address))?;
        }
        self.store.delete(&hint_key(&pool.id))?;
        self.store.delete(&pool_key(&pool.id))?;
        tracing::info!(pool = %pool.id, "address pool released");
        Ok(())
    }

    /// The pool with this id, or `None` when there is none.
    pub fn pool(&self, pool_id: &str) -> Result<Option<Pool>, IpamError> {
        check_pool_id(pool_id)?;
        let key = pool_key(pool_id);
        match self.store.get(&key)? {
            Some(json) => decode_pool(&key, &json).map(Some),
            None => Ok(None),
        }
    }

    /// Every pool, ordered by id.
    pub fn pools(&self) -> Result<Vec<Pool>, IpamError> {
        let _lock = self.store.lock()?;
        self.store
            .list(POOLS)?
            .iter()
            .map(|(key, json)| decode_pool(key, json))
            .collect()
    }

    /// Allocates `want` if given (refused clearly if taken, outside the subnet, or the network or
    /// broadcast address), else a free address from the range per the pool's mode. Never returns
    /// the network address, the IPv4 broadcast address, an aux address or one already allocated.
    /// Returns the address with the subnet's prefix length.
    ///
    /// Asking again for an address this same owner already holds returns it (retries are
    /// harmless). The cost does not grow with the number of allocated addresses (see `alloc`).
    pub fn request_address(
        &self,
        pool_id: &str,
        want: Option<IpAddr>,
        owner: &str,
    ) -> Result<IpNet, IpamError> {
        let _lock = self.store.lock()?;
        let pool = self.existing_pool(pool_id)?;
        let address = match want {
            Some(address) => self.claim(&pool, address, owner)?,
            None => self.claim_next(&pool, owner)?,
        };
        tracing::debug!(pool = %pool.id, %address, %owner, "address allocated");
        Ok(IpNet::new(address, pool.subnet.prefix_len()).expect("prefix length of a valid subnet"))
    }

    /// Releases an address; releasing one that is not allocated, or from a pool that does not
    /// exist, is not an error (idempotent).
    pub fn release_address(&self, pool_id: &str, address: IpAddr) -> Result<(), IpamError> {
        let _lock = self.store.lock()?;
        let Some(pool) = self.pool(pool_id)? else {
            return Ok(());
        };
        let key = addr_key(&pool.id, address);
        if self.store.get(&key)?.is_none() {
            return Ok(());
        }
        // Record the hole first: a crash in between leaves a hole that is still taken, which
        // costs one check later; the other order could hide a free address until a wrap.
        // The hint only saves time: one that cannot be written (a full disk) must not keep
        // the address reserved, it only hides the hole until the allocator wraps.
        let mut hint = self.hint(&pool)?;
        if hint.after_release(&pool, address) {
            self.save_hint(&pool, &hint);
        }
        self.store.delete(&key)?;
        tracing::debug!(pool = %pool.id, %address, "address released");
        Ok(())
    }

    /// Every allocated address of a pool with its owner, in address order.
    pub fn allocated(&self, pool_id: &str) -> Result<Vec<(IpAddr, String)>, IpamError> {
        let _lock = self.store.lock()?;
        let pool = self.existing_pool(pool_id)?;
        let mut out = Vec::new();
        for (key, owner) in self.store.list(&addrs_prefix(&pool.id))? {
            let name = key.rsplit('/').next().unwrap_or(&key);
            let corrupt = |reason: &str| StoreError::Corrupt {
                key: key.clone(),
                reason: reason.to_string(),
            };
            let address: IpAddr = name
                .parse()
                .map_err(|_| corrupt("the key does not end in an IP address"))?;
            let owner = String::from_utf8(owner).map_err(|_| {
                corrupt("the owner is not UTF-8; delete the file to free the address")
            })?;
            out.push((address, owner));
        }
        out.sort_by_key(|(address, _)| to_num(*address));
        Ok(out)
    }

    /// This host's ULA /48, made at random the first time it is needed and kept in the store.
    pub fn ula(&self) -> Result<Ipv6Net, IpamError> {
        let _lock = self.store.lock()?;
        if let Some(ula) = self.stored_ula()? {
            return Ok(ula);
        }
        let ula = random_ula(&mut rand::rng());
        if self.store.create(ULA, ula.to_string().as_bytes())? {
            tracing::info!(%ula, "generated this host's IPv6 ULA prefix");
            return Ok(ula);
        }
        // Someone not honouring the lock made one first: theirs wins, it may already be in use.
        Ok(self.stored_ula()?.expect("create said the key exists"))
    }

    fn stored_ula(&self) -> Result<Option<Ipv6Net>, IpamError> {
        let Some(text) = self.store.get(ULA)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&text);
        match parse_ula(&text) {
            Some(ula) => Ok(Some(ula)),
            None => Err(StoreError::Corrupt {
                key: ULA.to_string(),
                reason: format!("{text:?} is not a ULA /48 (fdXX:XXXX:XXXX::/48); fix or delete it while no IPv6 default pool is in use"),
            }
            .into()),
        }
    }

    fn pick_default(
        &self,
        v6: bool,
        pools: &[Pool],
        host_prefixes: &[IpNet],
    ) -> Result<IpNet, IpamError> {
        let taken: Vec<IpNet> = pools.iter().map(|p| p.subnet).collect();
        let (found, family) = if v6 {
            let ula = self.ula()?;
            (first_free(ula_pools(ula), &taken, host_prefixes), "IPv6")
        } else {
            (
                first_free(default_v4_pools(), &taken, host_prefixes),
                "IPv4",
            )
        };
        found.ok_or(IpamError::NoDefaultPool { family })
    }

    fn existing_pool(&self, pool_id: &str) -> Result<Pool, IpamError> {
        self.pool(pool_id)?.ok_or_else(|| IpamError::UnknownPool {
            pool: pool_id.to_string(),
        })
    }

    /// Allocates the address the caller named.
    fn claim(&self, pool: &Pool, address: IpAddr, owner: &str) -> Result<IpAddr, IpamError> {
        if let Some(reason) = unusable_reason(pool, address) {
            return Err(IpamError::AddressNotUsable {
                address,
                pool: pool.id.clone(),
                reason,
            });
        }
        let key = addr_key(&pool.id, address);
        if self.store.create(&key, owner.as_bytes())? {
            return Ok(address);
        }
        let holder = self
            .store
            .get(&key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default();
        if holder == owner {
            return Ok(address);
        }
        Err(IpamError::AddressInUse {
            address,
            owner: holder,
            pool: pool.id.clone(),
        })
    }

    /// Allocates the next free address per the pool's mode, checking candidates one `get` each
    /// as the stored hint directs.
    fn claim_next(&self, pool: &Pool, owner: &str) -> Result<IpAddr, IpamError> {
        let mut hint = self.hint(pool)?;
        loop {
            let found = next_free(pool, &hint, |candidate| {
                self.store
                    .get(&addr_key(&pool.id, candidate))
                    .map(|v| v.is_some())
            })?;
            let Some(address) = found else {
                return Err(IpamError::Exhausted {
                    pool: pool.id.clone(),
                });
            };
            let created = self
                .store
                .create(&addr_key(&pool.id, address), owner.as_bytes())?;
            hint.after_alloc(pool, address);
            if created {
                self.save_hint(pool, &hint);
                return Ok(address);
            }
            // Taken between the check and the create by a writer not honouring the lock; every
            // round consumes an address, so this ends.
        }
    }

    /// The stored hint; an unreadable one is ignored, since it only saves time.
    fn hint(&self, pool: &Pool) -> Result<Hint, IpamError> {
        let Some(json) = self.store.get(&hint_key(&pool.id))? else {
            return Ok(Hint::default());
        };
        Ok(serde_json::from_slice(&json).unwrap_or_else(|e| {
            tracing::warn!(pool = %pool.id, error = %e, "ignoring unreadable allocation hint");
            Hint::default()
        }))
    }

    /// Stores the hint; failing to is only logged, since the address is already allocated and an
    /// old hint is merely slower, never wrong.
    fn save_hint(&self, pool: &Pool, hint: &Hint) {
        if let Err(e) = self.store.put_hint(&hint_key(&pool.id), &encode_hint(hint)) {
            tracing::warn!(pool = %pool.id, error = %e, "cannot store allocation hint");
        }
    }
}

fn encode_hint(hint: &Hint) -> Vec<u8> {
    serde_json::to_vec(hint).expect("a Hint always serializes")
}

/// Whether `pool` is what `req` (with an explicit subnet) would create, asked by the same owner.
fn is_repeat_of(pool: &Pool, req: &PoolRequest) -> bool {
    !req.owner.is_empty()
        && req.owner == pool.owner
        && req.subnet == Some(pool.subnet)
        && req.ip_range == pool.ip_range
        && req.gateway == pool.gateway
        && req.aux == pool.aux
        && req.mode == pool.mode
}

fn check_pool_id(pool_id: &str) -> Result<(), IpamError> {
    match Pool::subnet_from_id(pool_id) {
        Some(_) => Ok(()),
        None => Err(IpamError::InvalidPoolId {
            pool: pool_id.to_string(),
        }),
    }
}

fn decode_pool(key: &str, json: &[u8]) -> Result<Pool, IpamError> {
    serde_json::from_slice(json).map_err(|e| {
        StoreError::Corrupt {
            key: key.to_string(),
            reason: format!("not a pool record ({e}); restore it from a backup or delete it"),
        }
        .into()
    })
}
