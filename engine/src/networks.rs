//! Creating, finding, inspecting and removing networks.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde_json::json;
use tracing::{info, warn};
use weft_drivers::netlink::Netlink;
use weft_drivers::{Network, SubnetInfo};
use weft_ipam::{Ipam, Pool, PoolRequest};

use crate::error::EngineError;
use crate::intents::Intent;
use crate::records::{self, load, save, NetworkRecord, Origin};
use crate::{ids, Controller, EndpointRecord};

/// Where a network's subnets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamRequest {
    /// weft's IPAM: one pool per request. No IPv4 request means one default IPv4 pool; IPv6
    /// enabled without a request means one default IPv6 (ULA) pool.
    Weft {
        v4: Vec<PoolRequest>,
        v6: Vec<PoolRequest>,
    },
    /// Subnets allocated elsewhere (Docker's IPAM, or weft's through Docker's IpamDriver API).
    Given(Vec<SubnetInfo>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    pub name: String,
    /// Docker gives its own id; otherwise one is made.
    pub id: Option<String>,
    pub driver: String,
    pub internal: bool,
    pub enable_ipv6: bool,
    pub ipam: IpamRequest,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub origin: Origin,
}

impl Controller {
    /// Creates a network: claims its name, allocates its subnets and gateways, has the driver
    /// build it, and records it. Repeating a request with the same id returns the existing
    /// network.
    pub fn create_network(&self, req: NetworkRequest) -> Result<NetworkRecord, EngineError> {
        ids::check_name(&req.name).map_err(EngineError::Invalid)?;
        self.refuse_builtin(&req.name, "created again")?;
        if let Some(id) = &req.id {
            if !ids::is_id(id) {
                return Err(EngineError::Invalid(format!(
                    "network id {id:?} is not 64 lowercase hex characters"
                )));
            }
        }
        crate::validate::given_subnets(&req)?;
        let driver = self.driver(&req.driver)?;
        let _lock = self.change()?;
        if let Some(id) = &req.id {
            if let Some(existing) = load::<NetworkRecord>(self.store(), &records::network_key(id))?
            {
                return Ok(existing);
            }
        }
        if self.store.get(&records::name_key(&req.name))?.is_some() {
            return Err(name_taken(&req.name));
        }
        let id = req.id.clone().unwrap_or_else(ids::random_id);
        let intent = self.record_intent(Intent::CreateNetwork {
            id: id.clone(),
            name: req.name.clone(),
            driver: req.driver.clone(),
            internal: req.internal,
            enable_ipv6: req.enable_ipv6,
            options: req.options.clone(),
            pool_owner: records::network_pool_owner(&req.name, &id),
        })?;
        if !self
            .store
            .create(&records::name_key(&req.name), id.as_bytes())?
        {
            self.forget_intent(&intent)?;
            return Err(name_taken(&req.name));
        }
        let mut pools = Vec::new();
        let result = self.build_network(&req, &id, driver, &mut pools);
        match result {
            Ok(record) => {
                self.forget_intent(&intent)?;
                info!(network = %record.network.name, id = %id, "network created");
                Ok(record)
            }
            Err(e) => {
                let undone = self
                    .release_pools(&pools)
                    .and_then(|()| Ok(self.store.delete(&records::name_key(&req.name))?));
                match undone {
                    Ok(_) => self.forget_intent(&intent)?,
                    // The intent stays: the next command finishes the undo.
                    Err(undo) => {
                        warn!(network = %req.name, error = %undo, "undoing a failed create")
                    }
                }
                Err(e)
            }
        }
    }

    fn build_network(
        &self,
        req: &NetworkRequest,
        id: &str,
        driver: &dyn weft_drivers::NetworkDriver,
        pools: &mut Vec<(Pool, Option<IpNet>)>,
    ) -> Result<NetworkRecord, EngineError> {
        let subnets = match &req.ipam {
            IpamRequest::Given(subnets) => subnets.clone(),
            IpamRequest::Weft { v4, v6 } => {
                self.allocate_subnets(req, id, v4, v6, driver.uses_gateway(), pools)?;
                pools
                    .iter()
                    .map(|(p, gw)| SubnetInfo {
                        subnet: p.subnet,
                        gateway: *gw,
                        ip_range: p.ip_range,
                        pool_id: p.id.clone(),
                    })
                    .collect()
            }
        };
        if req.enable_ipv6 && !subnets.iter().any(|s| matches!(s.subnet, IpNet::V6(_))) {
            return Err(EngineError::Invalid(format!(
                "network {}: IPv6 is enabled but no IPv6 subnet was given",
                req.name
            )));
        }
        let network = Network {
            id: id.to_string(),
            name: req.name.clone(),
            driver: req.driver.clone(),
            internal: req.internal,
            enable_ipv6: req.enable_ipv6,
            subnets,
            options: req.options.clone(),
        };
        driver.validate_network(&network)?;
        let record = NetworkRecord {
            network,
            origin: req.origin,
            pools: pools.iter().map(|(p, _)| p.id.clone()).collect(),
            labels: req.labels.clone(),
            created: records::now(),
            docker_ids: Vec::new(),
        };
        driver.create_network(&record.network)?;
        if let Err(e) = save(self.store(), &records::network_key(id), &record) {
            let _ = driver.delete_network(&record.network);
            return Err(e);
        }
        Ok(record)
    }

    fn allocate_subnets(
        &self,
        req: &NetworkRequest,
        id: &str,
        v4: &[PoolRequest],
        v6: &[PoolRequest],
        gateways: bool,
        pools: &mut Vec<(Pool, Option<IpNet>)>,
    ) -> Result<(), EngineError> {
        let mut wanted: Vec<PoolRequest> = Vec::new();
        if v4.is_empty() {
            wanted.push(PoolRequest::default());
        }
        wanted.extend(v4.iter().cloned());
        wanted.extend(v6.iter().cloned().map(|mut r| {
            r.v6 = true;
            r
        }));
        if req.enable_ipv6 && v6.is_empty() {
            wanted.push(PoolRequest {
                v6: true,
                ..PoolRequest::default()
            });
        }
        if !req.enable_ipv6 && !v6.is_empty() {
            return Err(EngineError::Invalid(format!(
                "network {}: an IPv6 subnet was given without --ipv6",
                req.name
            )));
        }
        let host_prefixes = if wanted.iter().any(|r| r.subnet.is_none()) {
            host_prefixes()?
        } else {
            Vec::new()
        };
        let ipam = Ipam::new(self.store());
        for mut r in wanted {
            r.owner = records::network_pool_owner(&req.name, id);
            if !gateways && r.gateway.is_some() {
                return Err(EngineError::Invalid(format!(
                    "network {}: driver {} uses no gateway address; drop --gateway",
                    req.name, req.driver
                )));
            }
            let pool = ipam.request_pool(&r, &host_prefixes)?;
            pools.push((pool.clone(), None));
            if gateways {
                let gw = ipam.request_address(&pool.id, r.gateway, "gateway")?;
                pools.last_mut().expect("just pushed").1 = Some(gw);
            }
        }
        Ok(())
    }

    fn release_pools(&self, pools: &[(Pool, Option<IpNet>)]) -> Result<(), EngineError> {
        let ipam = Ipam::new(self.store());
        for (pool, gw) in pools {
            if let Some(gw) = gw {
                ipam.release_address(&pool.id, gw.addr())?;
            }
            ipam.release_pool(&pool.id)?;
        }
        Ok(())
    }

    /// Finds a network by name, full id or unique id prefix. The full id of an alias (see
    /// `aliases`) finds the network it names.
    pub fn network(&self, name_or_id: &str) -> Result<NetworkRecord, EngineError> {
        if let Some(rec) = self.builtin(name_or_id) {
            return Ok(rec);
        }
        if ids::check_name(name_or_id).is_ok() {
            if let Some(id) = self.store.get(&records::name_key(name_or_id))? {
                let id = String::from_utf8_lossy(&id).into_owned();
                if let Some(rec) = load(self.store(), &records::network_key(&id))? {
                    return Ok(rec);
                }
            }
        }
        if ids::is_id(name_or_id) {
            if let Some(rec) = load(self.store(), &records::network_key(name_or_id))? {
                return Ok(rec);
            }
            if let Some(rec) = self.resolve_alias(name_or_id)? {
                return Ok(rec);
            }
        }
        let matches: Vec<NetworkRecord> =
            if name_or_id.len() >= 3 && name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.networks()?
                    .into_iter()
                    .filter(|n| n.network.id.starts_with(name_or_id))
                    .collect()
            } else {
                Vec::new()
            };
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one")),
            0 => Err(EngineError::not_found(
                "network",
                name_or_id,
                "`weft network ls` lists the networks",
            )),
            _ => Err(EngineError::Ambiguous {
                what: format!("network id prefix {name_or_id:?}"),
                matches: matches
                    .iter()
                    .map(|n| n.network.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Every network: the stored ones and the built-in `none` and `host`, each with the Docker
    /// network ids that alias it (`docker_ids`).
    pub fn networks(&self) -> Result<Vec<NetworkRecord>, EngineError> {
        let mut out = self.listed_builtins();
        out.extend(records::readable(self.store.list("networks")?));
        out.sort_by(|a, b| a.network.name.cmp(&b.network.name));
        self.add_alias_ids(&mut out)?;
        Ok(out)
    }

    pub fn endpoints(&self, network_id: &str) -> Result<Vec<EndpointRecord>, EngineError> {
        Ok(records::readable(
            self.store.list(&records::endpoints_prefix(network_id))?,
        ))
    }

    /// Removes a network that has no endpoints. If the kernel teardown fails the record stays,
    /// so the removal can be retried. The id of an alias removes only the alias.
    pub fn delete_network(&self, name_or_id: &str) -> Result<(), EngineError> {
        self.refuse_builtin(name_or_id, "removed")?;
        let _lock = self.change()?;
        if self.delete_alias(name_or_id)? {
            return Ok(());
        }
        let rec = self.network(name_or_id)?;
        let eps = self.endpoints(&rec.network.id)?;
        if !eps.is_empty() {
            return Err(EngineError::InUse(format!(
                "network {} has {} endpoint(s) ({}); disconnect them first with `weft network disconnect`",
                rec.network.name,
                eps.len(),
                eps.iter().take(3).map(|e| &e.endpoint.id[..12]).collect::<Vec<_>>().join(", ")
            )));
        }
        let intent = self.record_removal_intent(Intent::RemoveNetwork {
            id: rec.network.id.clone(),
        })?;
        // A failure leaves the record (the removal can be retried) and so needs no intent.
        let result = self.remove_network(&rec);
        if let Some(intent) = intent {
            self.forget_intent(&intent)?;
        }
        result
    }

    /// Kernel, pools, then records: the removal of a network with no endpoints, from wherever
    /// an earlier attempt stopped.
    pub(crate) fn remove_network(&self, rec: &NetworkRecord) -> Result<(), EngineError> {
        self.driver(&rec.network.driver)?
            .delete_network(&rec.network)?;
        let ipam = Ipam::new(self.store());
        for s in &rec.network.subnets {
            if rec.pools.contains(&s.pool_id) {
                if let Some(gw) = s.gateway {
                    ipam.release_address(&s.pool_id, gw.addr())?;
                }
                ipam.release_pool(&s.pool_id)?;
            }
        }
        self.unpin_endpoints(&rec.network.id)?;
        self.store.delete(&records::network_key(&rec.network.id))?;
        let name_key = records::name_key(&rec.network.name);
        if self.store.get(&name_key)?.as_deref() == Some(rec.network.id.as_bytes()) {
            self.store.delete(&name_key)?;
        }
        info!(network = %rec.network.name, id = %rec.network.id, "network removed");
        if self.store.children("networks")?.is_empty() {
            if let Some(fw) = &self.firewall {
                fw.remove_all()?;
            }
        }
        Ok(())
    }

    /// The record, its endpoints, its address allocations, and what the kernel really has.
    pub fn inspect_network(&self, name_or_id: &str) -> Result<serde_json::Value, EngineError> {
        let _lock = self.store.lock()?;
        let mut rec = self.network(name_or_id)?;
        self.add_alias_ids(std::slice::from_mut(&mut rec))?;
        let eps = self.endpoints(&rec.network.id)?;
        let endpoints: Vec<_> = eps.iter().map(|e| e.endpoint.clone()).collect();
        let kernel = self
            .driver(&rec.network.driver)?
            .inspect_network(&rec.network, &endpoints)?;
        let ipam = Ipam::new(self.store());
        let mut allocations = serde_json::Map::new();
        for pool in &rec.pools {
            let list: Vec<_> = ipam
                .allocated(pool)?
                .into_iter()
                .map(|(a, owner)| json!({"address": a, "owner": owner}))
                .collect();
            allocations.insert(pool.clone(), json!(list));
        }
        Ok(json!({
            "network": rec,
            "endpoints": eps,
            "ipam": allocations,
            "kernel": kernel,
        }))
    }
}

fn name_taken(name: &str) -> EngineError {
    EngineError::Exists {
        kind: "network",
        name: name.to_string(),
        hint: "choose another name or remove it first with `weft network rm`".into(),
    }
}

/// Every prefix the host routes or owns, so default pools avoid them.
fn host_prefixes() -> Result<Vec<IpNet>, EngineError> {
    Ok(Netlink::open()?.host_prefixes()?)
}

/// The default network's name (Docker's `bridge`); the bridge driver names its bridge `weft0`.
pub const DEFAULT_NETWORK: &str = "weft";

impl Controller {
    /// Creates the default bridge network `weft` on the first free default pool unless it
    /// exists. Returns it when it was made.
    pub fn ensure_default_network(&self) -> Result<Option<NetworkRecord>, EngineError> {
        let _lock = self.change()?;
        match self.network(DEFAULT_NETWORK) {
            Ok(_) => Ok(None),
            Err(EngineError::NotFound { .. }) => self
                .create_network(NetworkRequest {
                    name: DEFAULT_NETWORK.into(),
                    id: None,
                    driver: "bridge".into(),
                    internal: false,
                    enable_ipv6: false,
                    ipam: IpamRequest::Weft {
                        v4: Vec::new(),
                        v6: Vec::new(),
                    },
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    origin: Origin::Daemon,
                })
                .map(Some),
            Err(e) => Err(e),
        }
    }
}
