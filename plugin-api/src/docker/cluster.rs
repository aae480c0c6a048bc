//! Docker networks that are the local face of a cluster network. On every host that runs
//! `weft daemon --cluster NAME`:
//!
//! ```text
//! docker network create -d weft --ipam-driver weft --subnet CLUSTER_CIDR \
//!     -o weft.cluster=NAME --ipam-opt weft.cluster=NAME NAME
//! ```
//!
//! - `RequestPool` with `weft.cluster=NAME` answers the pool of the cluster network (this host's
//!   subnet) without making one; `--subnet` names the cluster's whole network (see
//!   [`DockerApi::cluster_pool`] for why dockerd needs it). `RequestAddress` of its gateway
//!   answers the cluster network's gateway; releasing either does nothing: they belong to the
//!   cluster network, not to Docker. Container addresses come from that pool like any other.
//! - `CreateNetwork` with `-o weft.cluster=NAME` makes Docker's id an alias of the cluster
//!   network (see the engine's `aliases`), so containers join the cluster network's bridge;
//!   `DeleteNetwork` removes only the alias.
//!
//! Each host's Docker network has its own id and this host's subnet: no swarm is needed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};
use tracing::info;
use weft_drivers::SubnetInfo;
use weft_engine::{EngineError, NetworkRecord};
use weft_ipam::cluster::local;
use weft_ipam::Ipam;

use super::api::{DockerApi, Method};
use super::error::DockerError;
use super::ipam::{is_docker_owner, GLOBAL_SPACE, LOCAL_SPACE};
use super::options::{self, CLUSTER};
use super::wire::{CreateNetworkRequest, RequestPoolRequest};

/// What to add to `docker network create` so that every host's addresses come from its own
/// share of the cluster network.
fn ipam_flags(cluster: &str, whole: Option<IpNet>) -> String {
    let cidr = whole.map_or_else(|| "CLUSTER_CIDR".to_string(), |w| w.to_string());
    format!("--ipam-driver weft --ipam-opt {CLUSTER}={cluster} --subnet {cidr}")
}

fn invalid(message: String) -> DockerError {
    DockerError::Engine(EngineError::Invalid(message))
}

impl DockerApi {
    /// `RequestPool` with `weft.cluster=NAME`: the cluster network's pool of the asked family.
    ///
    /// dockerd checks an IPv4 pool it did not ask for by subnet against the host's routes and,
    /// finding one, asks again, holding on to the first, until the IPAM hands out another:
    /// this host's subnet is always routed (it is on the cluster network's bridge) and is the
    /// only answer, so that would never end. The subnet must therefore be asked for: the
    /// cluster's whole network (`--subnet 10.244.0.0/16`, the same command on every host) or
    /// this host's part of it.
    pub(super) fn cluster_pool(
        &self,
        cluster: &str,
        req: &RequestPoolRequest,
    ) -> Result<Value, DockerError> {
        let method = Method::RequestPool.name();
        if !req.sub_pool.is_empty() {
            return Err(invalid(format!(
                "--ip-range {} cannot narrow cluster network {cluster}: containers take addresses from this host's whole subnet of it; drop --ip-range",
                req.sub_pool
            )));
        }
        let net = self.controller.cluster_network(cluster)?;
        let family = if req.v6 { "IPv6" } else { "IPv4" };
        let subnet = net
            .network
            .subnets
            .iter()
            .find(|s| s.subnet.addr().is_ipv6() == req.v6 && net.pools.contains(&s.pool_id))
            .ok_or_else(|| {
                invalid(format!(
                    "cluster network {cluster} has no {family} subnet on this host{}",
                    if req.v6 { "; drop --ipv6" } else { "" }
                ))
            })?;
        let whole = self.cluster_cidr(cluster, req.v6)?;
        let subnet_flag = if req.v6 {
            "a second --subnet"
        } else {
            "--subnet"
        };
        let give = match whole {
            Some(w) => {
                format!("{subnet_flag} {w} (cluster {cluster}'s network, the same on every host)")
            }
            None => format!(
                "{subnet_flag} {} (this host's subnet of cluster {cluster})",
                subnet.subnet
            ),
        };
        if req.pool.is_empty() {
            if !req.v6 {
                return Err(invalid(format!(
                    "a Docker network on cluster {cluster} needs {give}: without it dockerd checks the pool against this host's routes, which already hold this host's subnet {}, and asks again without end",
                    subnet.subnet
                )));
            }
        } else {
            let asked = options::cidr("Pool", &req.pool)
                .map_err(|e| DockerError::bad(method, e))?
                .trunc();
            if asked != subnet.subnet && Some(asked) != whole {
                return Err(invalid(format!(
                    "--subnet {asked} is not cluster {cluster}'s network nor this host's subnet of it ({}); give {give}",
                    subnet.subnet
                )));
            }
        }
        info!(pool = %subnet.pool_id, cluster, "docker uses the cluster network's pool");
        Ok(json!({ "PoolID": subnet.pool_id, "Pool": subnet.subnet.to_string(), "Data": {} }))
    }

    /// The cluster's whole network of a family, as the agent recorded it for local consumers.
    fn cluster_cidr(&self, cluster: &str, v6: bool) -> Result<Option<IpNet>, DockerError> {
        let record = local::load_record(self.controller.store(), cluster).map_err(|e| {
            DockerError::Engine(EngineError::System(format!(
                "reading this host's record of cluster {cluster}: {e}"
            )))
        })?;
        Ok(record.and_then(|r| match v6 {
            false => Some(IpNet::V4(r.network)),
            true => r.network_v6.map(IpNet::V6),
        }))
    }

    /// The cluster network whose pool `pool_id` is, if it is one. Pools Docker asked weft for
    /// are told apart by their owner without reading every network.
    pub(super) fn cluster_of_pool(
        &self,
        pool_id: &str,
    ) -> Result<Option<NetworkRecord>, DockerError> {
        match Ipam::new(self.controller.store()).pool(pool_id)? {
            Some(pool) if !is_docker_owner(&pool.owner) => {
                Ok(self.controller.cluster_network_of_pool(pool_id)?)
            }
            _ => Ok(None),
        }
    }

    /// The gateway of a cluster pool, for `RequestAddress` of the gateway (`want` must be it
    /// when given). `None` when the pool is not a cluster network's.
    pub(super) fn cluster_gateway(
        &self,
        pool_id: &str,
        want: Option<IpAddr>,
    ) -> Result<Option<String>, DockerError> {
        let Some(net) = self.cluster_of_pool(pool_id)? else {
            return Ok(None);
        };
        let name = &net.network.name;
        let gateway = pool_gateway(&net, pool_id).ok_or_else(|| {
            invalid(format!(
                "cluster network {name} has no gateway on pool {pool_id}"
            ))
        })?;
        if let Some(want) = want.filter(|w| *w != gateway.addr()) {
            return Err(invalid(format!(
                "--gateway {want}: the gateway of cluster network {name} on this host is {}; drop --gateway",
                gateway.addr()
            )));
        }
        Ok(Some(gateway.to_string()))
    }

    /// Whether `address` is the gateway of a cluster pool (which Docker must not release).
    pub(super) fn is_cluster_gateway(
        &self,
        pool_id: &str,
        address: IpAddr,
    ) -> Result<bool, DockerError> {
        Ok(self
            .cluster_of_pool(pool_id)?
            .and_then(|net| pool_gateway(&net, pool_id))
            .is_some_and(|gw| gw.addr() == address))
    }

    /// `CreateNetwork` with `-o weft.cluster=NAME`: Docker's id becomes an alias of the cluster
    /// network, after checking that nothing Docker asked for contradicts it.
    pub(super) fn create_cluster_alias(
        &self,
        req: &CreateNetworkRequest,
        cluster: &str,
        generic: &BTreeMap<String, String>,
        internal: bool,
        subnets: &[SubnetInfo],
    ) -> Result<Value, DockerError> {
        let foreign = req
            .ipv4_data
            .iter()
            .flatten()
            .chain(req.ipv6_data.iter().flatten())
            .map(|d| d.address_space.as_str())
            .find(|s| !s.is_empty() && *s != LOCAL_SPACE && *s != GLOBAL_SPACE);
        if let Some(space) = foreign {
            return Err(invalid(format!(
                "-o {CLUSTER}={cluster} needs weft's IPAM, but this network's addresses come from another IPAM (address space {space:?}), which would pick a different subnet on every host: add {}",
                ipam_flags(cluster, self.cluster_cidr(cluster, false)?)
            )));
        }
        if internal {
            return Err(invalid(format!(
                "--internal cannot apply to cluster network {cluster}: its traffic crosses hosts; drop --internal"
            )));
        }
        let net = self.controller.cluster_network(cluster)?;
        for (key, value) in generic.iter().filter(|(k, _)| *k != CLUSTER) {
            let have = net.network.options.get(key);
            if have != Some(value) {
                return Err(invalid(format!(
                    "-o {key}={value}: cluster network {cluster} has {}; its settings are weft daemon's, drop -o {key}",
                    have.map(|h| format!("{key}={h}"))
                        .unwrap_or_else(|| format!("no {key}"))
                )));
            }
        }
        let rec = self
            .controller
            .create_alias(&req.network_id, cluster, subnets)?;
        let pinned = self.controller.pin_endpoints(&rec.network.id);
        if let Err(e) = pinned
            .map_err(DockerError::from)
            .and_then(|()| self.injected(Method::CreateNetwork))
        {
            self.controller.delete_alias(&req.network_id)?;
            return Err(e);
        }
        info!(network = %&req.network_id[..12], cluster, "docker network is an alias of the cluster network");
        Ok(json!({}))
    }
}

/// The gateway of the cluster network's subnet on `pool_id`.
fn pool_gateway(net: &NetworkRecord, pool_id: &str) -> Option<ipnet::IpNet> {
    net.network
        .subnets
        .iter()
        .find(|s| s.pool_id == pool_id)
        .and_then(|s| s.gateway)
}
