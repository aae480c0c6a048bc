//! What a host keeps about its cluster membership in the local store (`/var/lib/weft`).
//!
//! - `cluster-node-id`: this host's random node id, made once and kept, so a restarted daemon
//!   can be told from a second daemon with the same public address.
//! - `clusters/<name>`: a [`LocalRecord`], what local consumers (the CLI, CNI, Docker) need: the
//!   host's subnet, the MTU for container interfaces, the cluster CIDR, the backend. It is also
//!   where a restarted daemon finds its previous subnet.

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::error::ClusterError;
use crate::store::{Store, StoreError};

/// Key of the node id.
pub const NODE_ID_KEY: &str = "cluster-node-id";

/// What local consumers need to use the cluster network on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecord {
    /// Cluster network name (also the local network's name).
    pub cluster: String,
    /// This host's IPv4 subnet.
    pub subnet: Ipv4Net,
    /// This host's IPv6 subnet, if the cluster has one.
    #[serde(default)]
    pub subnet_v6: Option<Ipv6Net>,
    /// MTU for the bridge and container interfaces.
    pub mtu: u32,
    /// The IPv4 cluster network.
    pub network: Ipv4Net,
    /// The IPv6 cluster network.
    #[serde(default)]
    pub network_v6: Option<Ipv6Net>,
    /// `vxlan` or `host-gw`.
    pub backend: String,
    /// This host's public address.
    pub public_ip: IpAddr,
    /// Whether the lease is held right now (false after a loss until re-acquired).
    #[serde(default)]
    pub lease_held: bool,
    /// Problems the agent reports (unreachable peers, a lost lease), newest last.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// The store key of a cluster's record.
pub fn record_key(cluster: &str) -> String {
    format!("clusters/{cluster}")
}

/// This host's node id, made (16 random hex digits) and stored on first use.
pub fn node_id(store: &dyn Store) -> Result<String, ClusterError> {
    if let Some(id) = store.get(NODE_ID_KEY)? {
        return decode_id(&id);
    }
    let fresh = format!("{:016x}", rand::rng().random::<u64>());
    // Two processes racing here: `create` lets exactly one id win, and both use it.
    store.create(NODE_ID_KEY, fresh.as_bytes())?;
    let id = store
        .get(NODE_ID_KEY)?
        .ok_or_else(|| corrupt("the node id vanished right after it was written"))?;
    decode_id(&id)
}

fn decode_id(bytes: &[u8]) -> Result<String, ClusterError> {
    let id = String::from_utf8_lossy(bytes).trim().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(corrupt(
            "it is not an id; delete the file to make a new one",
        ));
    }
    Ok(id)
}

fn corrupt(reason: &str) -> ClusterError {
    ClusterError::Store(StoreError::Corrupt {
        key: NODE_ID_KEY.into(),
        reason: reason.into(),
    })
}

/// The record of `cluster`, if this host has joined it before.
pub fn load_record(store: &dyn Store, cluster: &str) -> Result<Option<LocalRecord>, ClusterError> {
    let key = record_key(cluster);
    let Some(bytes) = store.get(&key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ClusterError::Store(StoreError::Corrupt {
            key,
            reason: e.to_string(),
        })
    })
}

/// Writes the record atomically.
pub fn save_record(store: &dyn Store, record: &LocalRecord) -> Result<(), ClusterError> {
    let bytes = serde_json::to_vec_pretty(record).expect("record serializes");
    Ok(store.put(&record_key(&record.cluster), &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemStore;

    #[test]
    fn node_id_is_made_once() {
        let s = MemStore::new();
        let a = node_id(&s).unwrap();
        assert_eq!(a.len(), 16);
        assert_eq!(node_id(&s).unwrap(), a);
        s.put(NODE_ID_KEY, b"../../x").unwrap();
        assert!(node_id(&s).is_err());
    }

    #[test]
    fn record_round_trip() {
        let s = MemStore::new();
        assert_eq!(load_record(&s, "c1").unwrap(), None);
        let r = LocalRecord {
            cluster: "c1".into(),
            subnet: "10.244.3.0/24".parse().unwrap(),
            subnet_v6: None,
            mtu: 1450,
            network: "10.244.0.0/16".parse().unwrap(),
            network_v6: None,
            backend: "vxlan".into(),
            public_ip: "192.168.0.1".parse().unwrap(),
            lease_held: true,
            problems: vec![],
        };
        save_record(&s, &r).unwrap();
        assert_eq!(load_record(&s, "c1").unwrap(), Some(r));
    }
}
