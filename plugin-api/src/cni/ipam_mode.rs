//! weft as an IPAM plugin (`"ipam": {"type": "weft", ...}` under another plugin such as the
//! reference `bridge`): addresses from weft's pools in weft's store, shared with weft's own
//! networks (so the two never hand out overlapping subnets), and no kernel changes.
//!
//! Store layout, beside the engine's:
//! - `cni-ipam/<network name>/<attachment id>` → [`Allocation`] (JSON)
//!
//! Pools are owned by `cni-ipam network <name>`; each range's gateway defaults to the subnet's
//! first host address (as host-local does) and is never handed out.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_engine::ids;
use weft_ipam::{AllocMode, Ipam, Pool, PoolRequest, Store};

use super::config::{Attachment, Range};
use super::env::Command;
use super::error::CniError;
use super::result::{CniResult, IpConfig};
use super::{collect, plugin, Ctx};

/// What one attachment holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub addresses: Vec<Lease>,
}

/// One address with the pool it came from and that pool's gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub pool: String,
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
}

fn prefix(network: &str) -> String {
    format!("cni-ipam/{network}")
}

fn key(network: &str, container_id: &str, ifname: &str) -> String {
    let id = ids::derived_id(&["cni-ipam", network, container_id, ifname]);
    format!("{}/{id}", prefix(network))
}

fn pool_owner(network: &str) -> String {
    format!("cni-ipam network {network}")
}

fn address_owner(network: &str, container_id: &str, ifname: &str) -> String {
    format!("cni-ipam:{network}:{container_id}:{ifname}")
}

/// Runs the command as an IPAM plugin.
pub fn run(ctx: &Ctx) -> Result<Option<Value>, CniError> {
    match ctx.env.command {
        Command::Add => add(ctx).map(Some),
        Command::Del => del(ctx).map(|()| None),
        Command::Check => check(ctx).map(|()| None),
        Command::Gc => gc(ctx).map(|()| None),
        Command::Status => plugin::store_usable(ctx).map(|()| None),
        Command::Version => unreachable!("VERSION is answered before the config is read"),
    }
}

fn load(store: &dyn Store, key: &str) -> Result<Option<Allocation>, CniError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            CniError::Io(format!(
                "store record {key} is corrupt ({e}); delete it to release its addresses by hand"
            ))
        }),
    }
}

fn add(ctx: &Ctx) -> Result<Value, CniError> {
    let ranges = &ctx.conf.ipam.ranges;
    if ranges.is_empty() {
        return Err(CniError::InvalidConfig(
            "weft as an IPAM plugin needs ipam.ranges or ipam.subnet".into(),
        ));
    }
    let static_ips = ctx.static_ips();
    for ip in &static_ips {
        if !ranges.iter().any(|r| r.subnet.contains(ip)) {
            return Err(CniError::InvalidConfig(format!(
                "static address {ip} is in none of the configured subnets"
            )));
        }
    }
    let c = ctx.controller()?;
    let store = c.store();
    let _lock = store.lock()?;
    let (name, cid, ifname) = (&ctx.conf.name, &ctx.env.container_id, &ctx.env.ifname);
    let key = key(name, cid, ifname);
    // A repeated ADD (a runtime retrying) gets what the first one got.
    let alloc = match load(store, &key)? {
        Some(a) => a,
        None => {
            let a = allocate(store, name, cid, ifname, ranges, &static_ips)?;
            let json = serde_json::to_vec_pretty(&a).expect("allocations serialize");
            if let Err(e) = store.put(&key, &json) {
                release(store, &a);
                return Err(e.into());
            }
            a
        }
    };
    let result = CniResult {
        interfaces: Vec::new(),
        ips: alloc
            .addresses
            .iter()
            .map(|l| IpConfig {
                address: l.address,
                gateway: l.gateway,
                interface: None,
                extra: Default::default(),
            })
            .collect(),
        routes: ctx.conf.ipam.routes.clone(),
        dns: ctx.conf.ipam.dns.clone(),
    };
    Ok(result.to_json(ctx.conf.version))
}

/// One address per range, all or nothing.
fn allocate(
    store: &dyn Store,
    network: &str,
    cid: &str,
    ifname: &str,
    ranges: &[Range],
    static_ips: &[IpAddr],
) -> Result<Allocation, CniError> {
    let ipam = Ipam::new(store);
    let mut alloc = Allocation {
        container_id: cid.to_string(),
        ifname: ifname.to_string(),
        addresses: Vec::new(),
    };
    let owner = address_owner(network, cid, ifname);
    for r in ranges {
        let step = pool_for(store, network, r).and_then(|pool| {
            let want = static_ips.iter().find(|ip| r.subnet.contains(*ip)).copied();
            let address = ipam.request_address(&pool.id, want, &owner)?;
            Ok(Lease {
                pool: pool.id.clone(),
                address,
                gateway: pool.gateway,
            })
        });
        match step {
            Ok(lease) => alloc.addresses.push(lease),
            Err(e) => {
                release(store, &alloc);
                return Err(e);
            }
        }
    }
    Ok(alloc)
}

/// The network's pool for `r`, made on first use. A pool of the same subnet that this network
/// made with other settings means the config changed under live allocations: refused.
fn pool_for(store: &dyn Store, network: &str, r: &Range) -> Result<Pool, CniError> {
    let ipam = Ipam::new(store);
    let gateway = r
        .gateway
        .unwrap_or_else(|| weft_ipam::alloc::host_bounds(&r.subnet).0);
    let req = PoolRequest {
        subnet: Some(r.subnet),
        ip_range: r.ip_range,
        gateway: Some(gateway),
        v6: r.subnet.addr().is_ipv6(),
        mode: AllocMode::Serial,
        owner: pool_owner(network),
        ..PoolRequest::default()
    };
    if let Some(p) = ipam.pool(&Pool::id_for(&r.subnet))? {
        if p.owner == req.owner && (p.gateway != req.gateway || p.ip_range != req.ip_range) {
            return Err(CniError::InvalidConfig(format!(
                "the IPAM range {} of network {network:?} changed (recorded gateway {}, range {}); release its addresses (DEL or GC) before changing it",
                r.subnet,
                p.gateway.map(|g| g.to_string()).unwrap_or_else(|| "none".into()),
                p.ip_range.map(|g| g.to_string()).unwrap_or_else(|| "the whole subnet".into()),
            )));
        }
    }
    Ok(ipam.request_pool(&req, &[])?)
}

/// Best effort: what cannot be released now is found again by GC.
fn release(store: &dyn Store, alloc: &Allocation) {
    let ipam = Ipam::new(store);
    for l in &alloc.addresses {
        if let Err(e) = ipam.release_address(&l.pool, l.address.addr()) {
            tracing::warn!(address = %l.address, error = %e, "releasing an address");
        }
    }
}

fn release_checked(store: &dyn Store, key: &str, alloc: &Allocation) -> Result<(), CniError> {
    let ipam = Ipam::new(store);
    let mut errors = Vec::new();
    for l in &alloc.addresses {
        if let Err(e) = ipam.release_address(&l.pool, l.address.addr()) {
            errors.push(CniError::from(e));
        }
    }
    if errors.is_empty() {
        store.delete(key)?;
    }
    collect(errors)
}

fn del(ctx: &Ctx) -> Result<(), CniError> {
    if !ctx.state_dir.exists() {
        return Ok(());
    }
    let c = ctx.controller()?;
    let store = c.store();
    let _lock = store.lock()?;
    let (name, cid, ifname) = (&ctx.conf.name, &ctx.env.container_id, &ctx.env.ifname);
    let key = key(name, cid, ifname);
    match load(store, &key)? {
        // An ADD killed between its claims and its record (the runtime calls DEL after a
        // failed ADD): its addresses are found by their owner.
        None => {
            let owner = address_owner(name, cid, ifname);
            release_owned(store, name, &|o| o == owner)
        }
        Some(a) => release_checked(store, &key, &a),
    }
}

/// Releases the addresses of `network`'s pools whose owner `drop` names; for claims whose
/// allocation record was never written.
fn release_owned(
    store: &dyn Store,
    network: &str,
    drop: &dyn Fn(&str) -> bool,
) -> Result<(), CniError> {
    let ipam = Ipam::new(store);
    for pool in ipam.pools()? {
        if pool.owner != pool_owner(network) {
            continue;
        }
        for (address, owner) in ipam.allocated(&pool.id)? {
            if drop(&owner) {
                tracing::info!(%address, %owner, "releasing an address whose ADD never recorded it");
                ipam.release_address(&pool.id, address)?;
            }
        }
    }
    Ok(())
}

fn check(ctx: &Ctx) -> Result<(), CniError> {
    let c = ctx.controller()?;
    let store = c.store();
    let _lock = store.lock()?;
    let (name, cid, ifname) = (&ctx.conf.name, &ctx.env.container_id, &ctx.env.ifname);
    let alloc = load(store, &key(name, cid, ifname))?.ok_or_else(|| {
        CniError::UnknownContainer(format!(
            "weft's IPAM holds no addresses for {} on network {name:?}",
            ctx.attachment_text()
        ))
    })?;
    let ipam = Ipam::new(store);
    let owner = address_owner(name, cid, ifname);
    let mut problems = Vec::new();
    for l in &alloc.addresses {
        let holder = ipam
            .allocated(&l.pool)?
            .into_iter()
            .find(|(a, _)| *a == l.address.addr())
            .map(|(_, o)| o);
        if holder.as_deref() != Some(owner.as_str()) {
            problems.push(format!(
                "address {} is no longer reserved for it",
                l.address
            ));
        }
    }
    if let Some(prev) = &ctx.conf.prev_result {
        for l in &alloc.addresses {
            if !prev.ips.iter().any(|ip| ip.address == l.address) {
                problems.push(format!("prevResult does not list address {}", l.address));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CniError::Drift(format!(
            "CHECK of {}: {}",
            ctx.attachment_text(),
            problems.join("; ")
        )))
    }
}

/// Releases the allocations of attachments not listed, then the network's pools left empty.
fn gc(ctx: &Ctx) -> Result<(), CniError> {
    let valid: Vec<Attachment> = ctx.conf.valid_attachments.clone().ok_or_else(|| {
        CniError::InvalidConfig(
            "GC needs cni.dev/valid-attachments (the attachments to keep; [] keeps none)".into(),
        )
    })?;
    if !ctx.state_dir.exists() {
        return Ok(());
    }
    let c = ctx.controller()?;
    let store = c.store();
    let _lock = store.lock()?;
    let name = &ctx.conf.name;
    let mut errors = Vec::new();
    for (key, bytes) in store.list(&prefix(name))? {
        let alloc: Allocation = match serde_json::from_slice(&bytes) {
            Ok(a) => a,
            Err(e) => {
                errors.push(CniError::Io(format!("store record {key} is corrupt: {e}")));
                continue;
            }
        };
        let listed = valid
            .iter()
            .any(|a| a.container_id == alloc.container_id && a.ifname == alloc.ifname);
        if !listed {
            if let Err(e) = release_checked(store, &key, &alloc) {
                errors.push(e);
            }
        }
    }
    // Claims of attachments that never got a record and are not to be kept (an ADD killed
    // half-way).
    let recorded: Vec<String> = store
        .list(&prefix(name))?
        .into_iter()
        .filter_map(|(_, bytes)| serde_json::from_slice::<Allocation>(&bytes).ok())
        .map(|a| address_owner(name, &a.container_id, &a.ifname))
        .collect();
    let attachment_prefix = format!("cni-ipam:{name}:");
    let unrecorded = |owner: &str| {
        let Some((cid, ifname)) = owner
            .strip_prefix(&attachment_prefix)
            .and_then(|rest| rest.rsplit_once(':'))
        else {
            return false;
        };
        !recorded.iter().any(|r| r == owner)
            && !valid
                .iter()
                .any(|a| a.container_id == cid && a.ifname == ifname)
    };
    if let Err(e) = release_owned(store, name, &unrecorded) {
        errors.push(e);
    }
    let ipam = Ipam::new(store);
    for pool in ipam.pools()? {
        if pool.owner == pool_owner(name) && ipam.allocated(&pool.id)?.is_empty() {
            if let Err(e) = ipam.release_pool(&pool.id) {
                errors.push(e.into());
            }
        }
    }
    collect(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_store_keys_and_per_attachment() {
        let k = key("net-1.a_b", "c1", "eth0");
        weft_ipam::store::validate_key(&k).unwrap();
        assert_ne!(k, key("net-1.a_b", "c1", "eth1"));
        assert!(k.starts_with(&prefix("net-1.a_b")));
    }
}
