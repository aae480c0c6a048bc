//! Address management for weft: address pools (user-given and Docker-style defaults), subnet carving,
//! address allocation, and the `Store` that keeps all of weft's local state crash-safe.

mod addr;
pub mod alloc;
pub mod cluster;
pub mod defaults;
pub mod error;
pub mod file_store;
pub mod ipam;
pub mod pool;
mod reentrant;
pub mod store;
pub mod testing;
pub mod validate;

pub use addr::overlaps;
pub use alloc::AllocMode;
pub use error::IpamError;
pub use file_store::FileStore;
pub use ipam::{Ipam, GATEWAY_OWNER};
pub use pool::{Pool, PoolRequest};
pub use store::{Store, StoreError, StoreLock};
