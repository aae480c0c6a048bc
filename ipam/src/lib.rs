//! Address management for weft: address pools (user-given and Docker-style defaults), subnet carving,
//! address allocation, and the `Store` that keeps all of weft's local state crash-safe.

pub mod alloc;
pub mod defaults;
pub mod error;
pub mod file_store;
pub mod ipam;
pub mod pool;
pub mod store;

pub use alloc::AllocMode;
pub use error::IpamError;
pub use file_store::FileStore;
pub use ipam::Ipam;
pub use pool::{Pool, PoolRequest};
pub use store::{Store, StoreError, StoreLock};
