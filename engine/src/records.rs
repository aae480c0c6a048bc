//! What the engine keeps in the store, and under which keys.
//!
//! - `networks/<network id>`               → `NetworkRecord`
//! - `network-names/<name>`                → network id (claimed with `create`: names are unique)
//! - `endpoints/<network id>/<endpoint id>` → `EndpointRecord`
//! - `ports/<proto>/<port>/<host ip|any>`   → owner of a published host port
//! - `ports-cursor`                        → where the next ephemeral host port search starts
//! - `network-aliases/<docker id>`          → `AliasRecord` (see `aliases`)
//! - `intents/<object>`                     → `IntentRecord` (see `intents`)

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weft_drivers::driver::JoinInfo;
use weft_drivers::{Endpoint, Network, Protocol};
use weft_ipam::Store;

use crate::error::EngineError;

/// Who made a network (and therefore who may remove it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    #[default]
    Cli,
    Docker,
    Cni,
    Daemon,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    #[serde(flatten)]
    pub network: Network,
    pub origin: Origin,
    /// Pools weft's IPAM made for this network (released with it). Empty when addresses come
    /// from another IPAM (Docker's default one, or a CNI IPAM plugin).
    #[serde(default)]
    pub pools: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Docker network ids that are aliases of this network (see `aliases`). Filled in by
    /// `Controller::networks` and `inspect_network` from the alias records; never read from a
    /// stored record, so it cannot go stale there.
    #[serde(default, skip_deserializing, skip_serializing_if = "Vec::is_empty")]
    pub docker_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// Addresses weft's IPAM allocated for this endpoint (pool id, address), released with it.
    #[serde(default)]
    pub leases: Vec<(String, std::net::IpAddr)>,
    #[serde(default)]
    pub join: Option<JoinInfo>,
    /// Ports are published in the kernel.
    #[serde(default)]
    pub published: bool,
    /// Consumer's reference: CNI container id, Docker sandbox key, CLI netns path.
    #[serde(default)]
    pub owner: String,
    pub created: u64,
}

pub fn network_key(id: &str) -> String {
    format!("networks/{id}")
}

pub fn name_key(name: &str) -> String {
    format!("network-names/{name}")
}

pub fn endpoints_prefix(network_id: &str) -> String {
    format!("endpoints/{network_id}")
}

pub fn endpoint_key(network_id: &str, endpoint_id: &str) -> String {
    format!("endpoints/{network_id}/{endpoint_id}")
}

pub fn port_prefix(protocol: Protocol, port: u16) -> String {
    format!("ports/{protocol}/{port}")
}

pub fn port_key(protocol: Protocol, port: u16, host_ip: Option<std::net::IpAddr>) -> String {
    let ip = host_ip
        .map(|i| i.to_string())
        .unwrap_or_else(|| "any".into());
    format!("{}/{ip}", port_prefix(protocol, port))
}

pub const PORTS_CURSOR: &str = "ports-cursor";

pub const INTENTS: &str = "intents";

pub fn network_intent_key(network_id: &str) -> String {
    format!("{INTENTS}/network:{network_id}")
}

pub fn endpoint_intent_key(network_id: &str, endpoint_id: &str) -> String {
    format!("{INTENTS}/endpoint:{network_id}:{endpoint_id}")
}

/// Owner of the pools weft's IPAM made for a network: how an interrupted create, and
/// reconciliation, find them.
pub fn network_pool_owner(name: &str, id: &str) -> String {
    format!("network {name} ({})", weft_drivers::names::short(id))
}

pub fn is_network_pool_owner(owner: &str) -> bool {
    owner.starts_with("network ") && owner.ends_with(')')
}

/// Owner string of addresses and ports held by an endpoint; reconciliation releases those whose
/// endpoint record is gone.
pub fn endpoint_owner(network_id: &str, endpoint_id: &str) -> String {
    format!("endpoint:{network_id}:{endpoint_id}")
}

pub fn parse_endpoint_owner(owner: &str) -> Option<(&str, &str)> {
    owner.strip_prefix("endpoint:")?.split_once(':')
}

pub fn load<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<T>, EngineError> {
    match store.get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EngineError::Corrupt {
                key: key.to_string(),
                reason: e.to_string(),
            }),
    }
}

/// The records of a listing that decode; each one that does not is logged with its key and
/// skipped, so that one damaged file never stops operations on every other object
/// (`Controller::corrupt_records` lists them for `weft status`).
pub fn readable<T: DeserializeOwned>(listing: Vec<(String, Vec<u8>)>) -> Vec<T> {
    listing
        .into_iter()
        .filter_map(|(key, bytes)| match serde_json::from_slice(&bytes) {
            Ok(rec) => Some(rec),
            Err(e) => {
                tracing::warn!(%key, error = %e, "skipping a corrupt record; `weft status` lists it");
                None
            }
        })
        .collect()
}

pub fn save<T: Serialize>(store: &dyn Store, key: &str, value: &T) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec_pretty(value).expect("records serialize");
    store.put(key, &bytes)?;
    Ok(())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
