//! Route programming: keeps the kernel's routes equal to the Loc-RIB's best (ECMP) paths.
//!
//! ```text
//! speaker ──RouteChange──▶ ChangeSender::forward (tokio task, batches what is queued)
//!                              │ std channel
//!                              ▼
//!                        programmer thread: RouteTable (coalesce, resolve next hops)
//!                              │ RouteBatch: a window of requests per datagram
//!                              ▼
//!                        kernel: ip route replace PREFIX proto 87 nexthop via A nexthop via B
//! ```
//!
//! - [`resolve`]: BGP next hop → kernel next hop (native, IPIP tunnel, VXLAN device).
//! - [`table`]: the desired routes, their coalescing into kernel operations, the full sync
//!   against what the kernel has, and which kernel routes are the programmer's ([`Scope`]).
//! - [`programmer`]: the thread and its handle.
//!
//! Graceful restart needs nothing here: the RIB keeps a restarting peer's routes (stale)
//! and sends no change, so the kernel keeps them until the RIB removes them.

pub mod programmer;
pub mod resolve;
pub mod table;

pub use programmer::{
    ChangeSender, ProgrammerConfig, ProgrammerStatus, RouteProgrammer, SyncSummary,
};
pub use resolve::{Path, Resolver};
pub use table::{ProgrammedRoute, RouteTable, Scope};
