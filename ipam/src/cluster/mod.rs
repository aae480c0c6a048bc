//! Cluster networks: one network (e.g. 10.244.0.0/16) split into per-host subnets leased from
//! etcd.
//!
//! - [`config`]: the cluster config (network, subnet length, backend) kept in etcd.
//! - [`lease`]: the etcd key layout, lease and reservation values and their validation.
//! - [`carve`]: splitting the cluster network into host subnets.
//! - [`choose`]: which subnet a host claims (pure).
//! - [`keeper`]: the sans-IO lease keeper (claim, renew, watch peers, re-acquire).
//! - [`etcd`]: the etcd v3 I/O that executes the keeper's requests, and the admin calls the CLI
//!   makes (config, reservations, status).
//! - [`local`]: what this host keeps in its local store (node id, the record local consumers
//!   read).

pub mod carve;
pub mod choose;
pub mod config;
pub mod error;
pub mod etcd;
pub mod keeper;
pub mod lease;
pub mod local;

pub use choose::{choose_subnet, ChoiceInput, Claim};
pub use config::{Attachment, BackendConfig, BgpClusterConfig, ClusterConfig};
pub use error::ClusterError;
pub use keeper::{Action, Event, Input, Keeper, KeeperConfig, Request};
pub use lease::{Keys, Lease, LeaseValue, Reservation, DEFAULT_PREFIX};
