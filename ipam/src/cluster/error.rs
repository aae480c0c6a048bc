//! What can go wrong with cluster leases.

use std::net::IpAddr;

use ipnet::Ipv4Net;
use thiserror::Error;

use crate::store::StoreError;

/// Why a cluster operation failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The stored or requested cluster config is unusable.
    #[error("invalid cluster config: {reason}; fix it with `weft cluster init`")]
    InvalidConfig { reason: String },
    /// The cluster has no config in etcd.
    #[error("cluster {cluster} has no config under {key}; create it with `weft cluster init {cluster} --network CIDR`")]
    NoConfig { cluster: String, key: String },
    /// A lease value (or key) in etcd is malformed. The caller logs it and ignores the lease.
    #[error(
        "malformed lease {key}: {reason}; delete it with `etcdctl del {key}` if nobody owns it"
    )]
    MalformedLease { key: String, reason: String },
    /// Every subnet of the cluster network is leased or reserved.
    #[error("no free subnet in cluster network {network}: all {total} /{len} subnets are leased or reserved; use a larger cluster network or remove stale reservations")]
    Exhausted {
        network: Ipv4Net,
        total: u64,
        len: u8,
    },
    /// Another daemon with the same public address holds a live lease.
    #[error("another weft daemon (node {other_node}) with public address {public_ip} holds subnet {subnet}; stop it or give this host another --public-ip (a stopped daemon's lease expires after its TTL)")]
    DuplicatePublicIp {
        public_ip: IpAddr,
        subnet: Ipv4Net,
        other_node: String,
    },
    /// A reservation names a subnet outside the cluster network or of the wrong length.
    #[error("invalid reservation {subnet}: {reason}")]
    InvalidReservation { subnet: String, reason: String },
    /// etcd could not be reached or refused a request.
    #[error("etcd at {endpoints}: {op} failed: {message}; check that etcd is running and reachable (weft keeps retrying)")]
    Etcd {
        endpoints: String,
        op: String,
        message: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
