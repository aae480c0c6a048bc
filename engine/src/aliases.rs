//! Cluster networks as local consumers find them, and the Docker networks that alias them.
//!
//! `weft daemon --cluster NAME` keeps one local network per cluster on the subnet this host
//! leases: named NAME and labelled [`CLUSTER_LABEL`]`=NAME`. Docker cannot be pointed at an
//! existing network: `docker network create -d weft -o weft.cluster=NAME …` makes a network with
//! its own id on every host. That id becomes an *alias* of the cluster network:
//!
//! - `network-aliases/<docker id>` → [`AliasRecord`] (the cluster network's id and name)
//!
//! [`Controller::network`] resolves an alias id to the cluster network's record, so every call
//! Docker makes with its id lands on the cluster network: the same bridge, the same pool,
//! endpoints recorded under the cluster network. Removing an alias removes only the alias.
//!
//! The agent re-makes the cluster network (with a new id) when its MTU changes and nothing is
//! attached; an alias then follows the network by name, as long as it is still that cluster's.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::info;
use weft_drivers::SubnetInfo;

use crate::error::EngineError;
use crate::records::{self, load, save, NetworkRecord};
use crate::{ids, Controller};

/// The label the cluster agent puts on the local network of a cluster (value: the cluster's
/// name).
pub const CLUSTER_LABEL: &str = "weft.cluster";

const ALIASES: &str = "network-aliases";

fn alias_key(alias_id: &str) -> String {
    format!("{ALIASES}/{alias_id}")
}

/// What an alias names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The cluster network's id when the alias was made.
    pub network_id: String,
    /// Its name (the cluster's): how the alias finds the network if it was re-made.
    pub network_name: String,
    /// Seconds since the epoch.
    pub created: u64,
}

impl NetworkRecord {
    /// The cluster this network is the local network of, if it is one.
    pub fn cluster(&self) -> Option<&str> {
        self.labels.get(CLUSTER_LABEL).map(String::as_str)
    }
}

impl Controller {
    /// The local network of `cluster` on this host. Not found when the host has not joined it
    /// (yet); invalid when a network of that name is not a cluster network.
    pub fn cluster_network(&self, cluster: &str) -> Result<NetworkRecord, EngineError> {
        let not_joined = || {
            EngineError::not_found(
                "cluster network",
                cluster,
                &format!(
                    "this host has not joined cluster {cluster}: start `weft daemon --etcd-endpoints URL --cluster {cluster}` and wait until `weft network inspect {cluster}` shows it"
                ),
            )
        };
        if ids::check_name(cluster).is_err() {
            return Err(not_joined());
        }
        let Some(id) = self.store.get(&records::name_key(cluster))? else {
            return Err(not_joined());
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        let rec: NetworkRecord =
            load(self.store(), &records::network_key(&id))?.ok_or_else(not_joined)?;
        match rec.cluster() {
            Some(c) if c == cluster => Ok(rec),
            _ => Err(EngineError::Invalid(format!(
                "network {cluster} is not the local network of a cluster (it has no {CLUSTER_LABEL}={cluster} label); join the cluster with `weft daemon --cluster {cluster}` on a host without such a network"
            ))),
        }
    }

    /// The cluster network whose weft pool `pool_id` is, if any.
    pub fn cluster_network_of_pool(
        &self,
        pool_id: &str,
    ) -> Result<Option<NetworkRecord>, EngineError> {
        Ok(self
            .networks()?
            .into_iter()
            .find(|n| n.cluster().is_some() && n.pools.iter().any(|p| p == pool_id)))
    }

    /// Makes `alias_id` (a Docker network id) name the local network of `cluster`. `subnets`
    /// are what the alias was given (Docker's IPAM data): each must be one of the cluster
    /// network's subnets, with its gateway. The cluster network's kernel state is re-applied
    /// (idempotent), so rules another program needs (dockerd's FORWARD chain) are in place even
    /// when it started after the network was made. Repeating the call returns the same network.
    pub fn create_alias(
        &self,
        alias_id: &str,
        cluster: &str,
        subnets: &[SubnetInfo],
    ) -> Result<NetworkRecord, EngineError> {
        if !ids::is_id(alias_id) {
            return Err(EngineError::Invalid(format!(
                "network id {alias_id:?} is not 64 lowercase hex characters"
            )));
        }
        let _lock = self.store.lock()?;
        if self.store.get(&records::network_key(alias_id))?.is_some() {
            return Err(EngineError::Exists {
                kind: "network",
                name: alias_id.to_string(),
                hint: format!(
                    "a network with this id exists, so it cannot alias cluster network {cluster}"
                ),
            });
        }
        let net = self.cluster_network(cluster)?;
        check_subnets(alias_id, &net, subnets)?;
        if let Some(existing) = load::<AliasRecord>(self.store(), &alias_key(alias_id))? {
            if existing.network_name == net.network.name {
                return Ok(net);
            }
            return Err(EngineError::Exists {
                kind: "network alias",
                name: alias_id.to_string(),
                hint: format!(
                    "it names network {}; remove it first",
                    existing.network_name
                ),
            });
        }
        self.driver(&net.network.driver)?
            .create_network(&net.network)?;
        let record = AliasRecord {
            network_id: net.network.id.clone(),
            network_name: net.network.name.clone(),
            created: records::now(),
        };
        save(self.store(), &alias_key(alias_id), &record)?;
        info!(alias = %&alias_id[..12], network = %net.network.name, "network alias created");
        Ok(net)
    }

    /// Removes the alias `alias_id`; `false` when there is none (nothing else is touched).
    pub fn delete_alias(&self, alias_id: &str) -> Result<bool, EngineError> {
        if !ids::is_id(alias_id) {
            return Ok(false);
        }
        let _lock = self.store.lock()?;
        let removed = self.store.delete(&alias_key(alias_id))?;
        if removed {
            info!(alias = %&alias_id[..12], "network alias removed");
        }
        Ok(removed)
    }

    /// Every alias: (alias id, record).
    pub fn aliases(&self) -> Result<Vec<(String, AliasRecord)>, EngineError> {
        let mut out = Vec::new();
        for (key, bytes) in self.store.list(ALIASES)? {
            let rec: AliasRecord =
                serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
            let id = key.rsplit('/').next().unwrap_or(&key).to_string();
            out.push((id, rec));
        }
        Ok(out)
    }

    /// Fills in each record's `docker_ids` from the aliases.
    pub(crate) fn add_alias_ids(&self, records: &mut [NetworkRecord]) -> Result<(), EngineError> {
        let aliases = self.aliases()?;
        for rec in records.iter_mut() {
            rec.docker_ids = aliases
                .iter()
                .filter(|(_, a)| names(a, rec))
                .map(|(id, _)| id.clone())
                .collect();
        }
        Ok(())
    }

    /// The network `id` names if it is an alias; an alias whose network is gone is an error
    /// that says how to get out.
    pub(crate) fn resolve_alias(&self, id: &str) -> Result<Option<NetworkRecord>, EngineError> {
        let Some(alias) = load::<AliasRecord>(self.store(), &alias_key(id))? else {
            return Ok(None);
        };
        if let Some(rec) =
            load::<NetworkRecord>(self.store(), &records::network_key(&alias.network_id))?
        {
            return Ok(Some(rec));
        }
        match self.cluster_network(&alias.network_name) {
            Ok(rec) => Ok(Some(rec)),
            Err(EngineError::NotFound { .. } | EngineError::Invalid(_)) => Err(EngineError::not_found(
                "network",
                id,
                &format!(
                    "it is an alias of cluster network {}, which this host no longer has; restart `weft daemon --cluster {}`, or remove the alias (`docker network rm`)",
                    alias.network_name, alias.network_name
                ),
            )),
            Err(e) => Err(e),
        }
    }
}

/// Whether `alias` names the network `rec` (by id, or by name after a re-make).
fn names(alias: &AliasRecord, rec: &NetworkRecord) -> bool {
    alias.network_id == rec.network.id
        || (alias.network_name == rec.network.name
            && rec.cluster() == Some(alias.network_name.as_str()))
}

/// Each given subnet must be one of the cluster network's, with the same gateway.
fn check_subnets(
    alias_id: &str,
    net: &NetworkRecord,
    given: &[SubnetInfo],
) -> Result<(), EngineError> {
    let name = &net.network.name;
    let have = || {
        net.network
            .subnets
            .iter()
            .map(|s| match s.gateway {
                Some(g) => format!("{} (gateway {})", s.subnet, g.addr()),
                None => s.subnet.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hint = format!(
        "its addresses must come from the cluster network's pool (Docker: --ipam-driver weft --ipam-opt weft.cluster={name})"
    );
    if given.is_empty() {
        return Err(EngineError::Invalid(format!(
            "network {}: no subnet given for cluster network {name}; {hint}",
            &alias_id[..12]
        )));
    }
    for s in given {
        let Some(ours) = net
            .network
            .subnets
            .iter()
            .find(|o| o.subnet.trunc() == s.subnet.trunc())
        else {
            return Err(EngineError::Invalid(format!(
                "network {}: subnet {} is not this host's subnet of cluster network {name}, which is {}; {hint}",
                &alias_id[..12],
                s.subnet,
                have()
            )));
        };
        let addr = |g: Option<IpNet>| g.map(|g| g.addr());
        if let Some(gw) = addr(s.gateway) {
            if addr(ours.gateway) != Some(gw) {
                return Err(EngineError::Invalid(format!(
                    "network {}: gateway {gw} is not the gateway of cluster network {name} on {}, which is {}; leave the gateway to the cluster network",
                    &alias_id[..12],
                    ours.subnet,
                    ours.gateway
                        .map(|g| g.addr().to_string())
                        .unwrap_or_else(|| "none".into())
                )));
            }
        }
    }
    Ok(())
}
