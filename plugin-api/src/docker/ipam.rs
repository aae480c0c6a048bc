//! IpamDriver handlers over weft's IPAM: Docker's pools are weft pools (ids like
//! `10.1.0.0_24`), so `weft network inspect` and the CLI see the same allocations.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};
use tracing::info;
use weft_engine::ids;
use weft_ipam::{Ipam, IpamError, Pool, PoolRequest, GATEWAY_OWNER};

use super::api::{DockerApi, Method};
use super::error::DockerError;
use super::options::{self, CLUSTER, GATEWAY_ADDRESS_TYPE, REQUEST_ADDRESS_TYPE};
use super::wire::{
    ReleaseAddressRequest, ReleasePoolRequest, RequestAddressRequest, RequestPoolRequest,
};

/// Address space names weft reports; it keeps one space, so they are labels only.
pub const LOCAL_SPACE: &str = "local";
pub const GLOBAL_SPACE: &str = "global";

/// Owner of a pool Docker asks for: derived from the request (the subnet, or a fresh id for a
/// default pool), so that a RequestPool retried after weft died half-way finds its pool.
fn pool_owner(subnet: Option<IpNet>) -> String {
    match subnet {
        Some(subnet) => format!(
            "{DOCKER_OWNER_PREFIX}pool:{}",
            Pool::id_for(&subnet.trunc())
        ),
        None => format!("{DOCKER_OWNER_PREFIX}{}", &ids::random_id()[..12]),
    }
}

/// Owner of the addresses Docker holds in a pool: derived from the pool, so that ReleasePool
/// (Docker has released every address it knew of by then) can take back the ones an interrupted
/// RequestAddress allocated but never answered with.
fn address_owner(pool_id: &str) -> String {
    format!("{DOCKER_OWNER_PREFIX}addr:{pool_id}")
}

const DOCKER_OWNER_PREFIX: &str = "docker:";

/// Whether a pool or address owner is one `docker_owner` made.
pub(super) fn is_docker_owner(owner: &str) -> bool {
    owner.starts_with(DOCKER_OWNER_PREFIX)
}

impl DockerApi {
    pub(super) fn request_pool(&self, req: RequestPoolRequest) -> Result<Value, DockerError> {
        let method = Method::RequestPool.name();
        let bad = |e: String| DockerError::bad(method, e);
        let opts =
            options::string_map(req.options.clone().map(Value::Object).as_ref()).map_err(bad)?;
        if let Some(cluster) = opts.get(CLUSTER) {
            return self.cluster_pool(cluster, &req);
        }
        let subnet = match req.pool.as_str() {
            "" => None,
            p => Some(options::cidr("Pool", p).map_err(bad)?),
        };
        let ip_range = match req.sub_pool.as_str() {
            "" => None,
            p => Some(options::cidr("SubPool", p).map_err(bad)?),
        };
        let store = self.controller.store();
        let ipam = Ipam::new(store);
        let _lock = store.lock().map_err(IpamError::from)?;
        if let Some(subnet) = subnet {
            if let Some(existing) = ipam.pool(&Pool::id_for(&subnet.trunc()))? {
                if existing.owner == pool_owner(Some(subnet)) && !self.subnet_in_use(&existing)? {
                    // Docker asked before and never created a network on it: weft died before
                    // its answer, or Docker gave up. The pool is this request's.
                    info!(pool = %existing.id, "docker address pool requested again");
                    return Ok(pool_reply(&existing));
                }
                return Err(IpamError::Overlap {
                    subnet,
                    other: existing.subnet,
                    owner: existing.owner,
                }
                .into());
            }
        }
        let host_prefixes = if subnet.is_none() {
            (self.host_prefixes)()?
        } else {
            Vec::new()
        };
        let pool = ipam.request_pool(
            &PoolRequest {
                subnet,
                ip_range,
                gateway: None,
                aux: Default::default(),
                v6: req.v6,
                mode: Default::default(),
                owner: pool_owner(subnet),
            },
            &host_prefixes,
        )?;
        info!(pool = %pool.id, space = %req.address_space, "docker address pool created");
        Ok(pool_reply(&pool))
    }

    /// Whether a network record has the pool's subnet (Docker's networks record the subnet
    /// their IPAM gave, not its pool id).
    fn subnet_in_use(&self, pool: &Pool) -> Result<bool, DockerError> {
        Ok(self.controller.networks()?.iter().any(|n| {
            n.network
                .subnets
                .iter()
                .any(|s| s.pool_id == pool.id || s.subnet == pool.subnet)
        }))
    }

    pub(super) fn release_pool(&self, req: ReleasePoolRequest) -> Result<Value, DockerError> {
        if self.cluster_of_pool(&req.pool_id)?.is_some() {
            // The cluster network's pool outlives every Docker network that uses it.
            return Ok(json!({}));
        }
        let store = self.controller.store();
        let ipam = Ipam::new(store);
        let _lock = store.lock().map_err(IpamError::from)?;
        if ipam.pool(&req.pool_id)?.is_some() {
            // Docker releases its pool after every address it knew of; what its owner still
            // holds was allocated by a request whose answer never reached Docker.
            let owner = address_owner(&req.pool_id);
            for (address, holder) in ipam.allocated(&req.pool_id)? {
                if holder == owner {
                    info!(pool = %req.pool_id, %address, "releasing an address Docker never received");
                    ipam.release_address(&req.pool_id, address)?;
                }
            }
        }
        ipam.release_pool(&req.pool_id)?;
        Ok(json!({}))
    }

    pub(super) fn request_address(&self, req: RequestAddressRequest) -> Result<Value, DockerError> {
        let method = Method::RequestAddress.name();
        let opts = options::string_map(req.options.map(Value::Object).as_ref())
            .map_err(|e| DockerError::bad(method, e))?;
        let want =
            options::address("Address", &req.address).map_err(|e| DockerError::bad(method, e))?;
        let gateway =
            opts.get(REQUEST_ADDRESS_TYPE).map(String::as_str) == Some(GATEWAY_ADDRESS_TYPE);
        let store = self.controller.store();
        let ipam = Ipam::new(store);
        let _lock = store.lock().map_err(IpamError::from)?;
        if gateway {
            if let Some(gw) = self.cluster_gateway(&req.pool_id, want)? {
                return Ok(json!({ "Address": gw, "Data": {} }));
            }
        }
        let address = if gateway {
            // Docker's own IPAM puts the gateway on the subnet's first address, also when
            // --ip-range narrows where containers get theirs.
            let pool = ipam
                .pool(&req.pool_id)?
                .ok_or_else(|| IpamError::UnknownPool {
                    pool: req.pool_id.clone(),
                })?;
            let want = want.or_else(|| first_host(&pool.subnet));
            ipam.request_address(&req.pool_id, want, GATEWAY_OWNER)?
        } else {
            let owner = address_owner(&req.pool_id);
            if let Some(address) = want {
                // One owner for all of Docker's addresses in the pool: an address asked for by
                // name must be free, not merely Docker's already (two containers, one --ip).
                if let Some((_, holder)) = ipam
                    .allocated(&req.pool_id)?
                    .into_iter()
                    .find(|(a, _)| *a == address)
                {
                    return Err(IpamError::AddressInUse {
                        address,
                        owner: holder,
                        pool: req.pool_id.clone(),
                    }
                    .into());
                }
            }
            ipam.request_address(&req.pool_id, want, &owner)?
        };
        Ok(json!({ "Address": address.to_string(), "Data": {} }))
    }

    pub(super) fn release_address(&self, req: ReleaseAddressRequest) -> Result<Value, DockerError> {
        let method = Method::ReleaseAddress.name();
        let address = options::address("Address", &req.address)
            .map_err(|e| DockerError::bad(method, e))?
            .ok_or_else(|| DockerError::bad(method, "Address is empty"))?;
        if self.is_cluster_gateway(&req.pool_id, address)? {
            // The cluster network's gateway, which Docker only borrowed.
            return Ok(json!({}));
        }
        Ipam::new(self.controller.store()).release_address(&req.pool_id, address)?;
        Ok(json!({}))
    }
}

fn pool_reply(pool: &Pool) -> Value {
    json!({ "PoolID": pool.id, "Pool": pool.subnet.to_string(), "Data": {} })
}

/// The subnet's first host address (network address + 1).
fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    match subnet {
        IpNet::V4(n) => {
            let a = u32::from(n.network()).checked_add(1)?;
            (n.prefix_len() < 31).then(|| IpAddr::V4(a.into()))
        }
        IpNet::V6(n) => {
            let a = u128::from(n.network()).checked_add(1)?;
            (n.prefix_len() < 127).then(|| IpAddr::V6(a.into()))
        }
    }
}
