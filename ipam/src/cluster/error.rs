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
    /// This host cannot take part as configured (a daemon flag, a setting the kernel lacks
    /// support for, a port taken): retrying would change nothing, so the daemon stops.
    #[error("cluster {cluster}: {reason}")]
    HostConfig { cluster: String, reason: String },
    /// A reservation names a subnet another host holds a live lease on: reserving it would
    /// make that host take a new subnet on its next restart and strand its containers.
    #[error("subnet {subnet} is leased by another live host ({holder}, public address {holder_ip}); reserving it for {public_ip} would make that host move to another subnet on its next restart and cut off its containers; reserve a free subnet (see `weft cluster status`), or stop that host and reserve after its lease has expired")]
    SubnetLeased {
        subnet: Ipv4Net,
        public_ip: IpAddr,
        holder: String,
        holder_ip: IpAddr,
    },
    /// The subnet is already reserved for another host.
    #[error("subnet {subnet} is already reserved for {reserved_for}; pass --force to give it to {public_ip} instead, or `weft cluster unreserve` it first")]
    AlreadyReserved {
        subnet: Ipv4Net,
        public_ip: IpAddr,
        reserved_for: IpAddr,
    },
    /// `weft cluster rm` of a cluster whose hosts still hold leases.
    #[error("cluster {cluster} still has {} live lease(s) ({}); run `weft cluster leave` on those hosts (or stop their daemons and wait for the TTL), or pass --force to remove it anyway", leases.len(), leases.join(", "))]
    ClusterInUse {
        cluster: String,
        leases: Vec<String>,
    },
    /// A reservation names a subnet outside the cluster network or of the wrong length.
    #[error("invalid reservation {subnet}: {reason}")]
    InvalidReservation { subnet: String, reason: String },
    /// etcd could not be reached or refused a request. One line: `failure` names etcd's
    /// endpoints and the cause, `op` what weft was doing, `fix` what the user can do.
    #[error("{failure} while {op}: {fix}")]
    Etcd {
        endpoints: String,
        op: String,
        failure: String,
        fix: String,
        /// etcd answered and said no (credentials, permissions, limits): waiting for etcd
        /// to come back would not help.
        refused: bool,
    },
    /// The settings for reaching etcd are unusable (TLS files, credentials).
    #[error("{reason}")]
    EtcdSettings { reason: String },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
