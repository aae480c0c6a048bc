//! Choosing the next address of a pool (pure logic).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllocMode {
    /// The lowest free address (Docker's default IPAM behaviour).
    #[default]
    FirstFree,
    /// Round robin from the last address handed out (CNI host-local behaviour): a released address
    /// is not reused until the range wraps.
    Serial,
}
