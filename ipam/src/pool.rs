//! An address pool: one subnet, optionally narrowed to an allocation range, with its reserved
//! addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::alloc::AllocMode;

/// What a caller asks for. Everything is optional: an empty request with `v6 = false` picks the
/// next free default IPv4 pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRequest {
    pub subnet: Option<IpNet>,
    pub ip_range: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    /// Docker's `--aux-address name=ip`: addresses never handed out.
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
    #[serde(default)]
    pub v6: bool,
    #[serde(default)]
    pub mode: AllocMode,
    /// Who asked (network id or name), recorded for overlap messages.
    #[serde(default)]
    pub owner: String,
}

/// A pool as stored under `ipam/pools/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Derived from the subnet: `172.18.0.0_16`, `fd12:3456:789a:1::_64`.
    pub id: String,
    pub subnet: IpNet,
    pub ip_range: Option<IpNet>,
    /// The gateway the user asked for, if any (it is reserved like any address when requested).
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
    #[serde(default)]
    pub mode: AllocMode,
    #[serde(default)]
    pub owner: String,
}

impl Pool {
    pub fn id_for(subnet: &IpNet) -> String {
        subnet.to_string().replace('/', "_")
    }
}
