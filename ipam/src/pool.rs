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
    /// The subnet to use; `None` picks a default pool.
    pub subnet: Option<IpNet>,
    /// Narrows automatic allocation to this part of the subnet (Docker's `--ip-range`).
    pub ip_range: Option<IpNet>,
    /// The gateway address; recorded on the pool and never handed out automatically.
    pub gateway: Option<IpAddr>,
    /// Docker's `--aux-address name=ip`: addresses never handed out.
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
    /// Whether an IPv6 pool is wanted; must match the subnet's family when one is given.
    #[serde(default)]
    pub v6: bool,
    /// How addresses are picked.
    #[serde(default)]
    pub mode: AllocMode,
    /// Who asked (network id or name), recorded for overlap messages.
    #[serde(default)]
    pub owner: String,
}

/// A pool as stored under `ipam/pools/<id>`. Automatic allocation hands out addresses of
/// `ip_range` (or the whole subnet), never the gateway or an aux address; the gateway and
/// addresses outside `ip_range` may still be requested by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Derived from the subnet: `172.18.0.0_16`, `fd12:3456:789a:1::_64`.
    pub id: String,
    /// The pool's subnet (a network address).
    pub subnet: IpNet,
    /// Where automatic allocation picks from, if narrower than the subnet.
    pub ip_range: Option<IpNet>,
    /// The gateway the user asked for, if any (it is reserved like any address when requested).
    pub gateway: Option<IpAddr>,
    /// Addresses never handed out, by name.
    #[serde(default)]
    pub aux: BTreeMap<String, IpAddr>,
    /// How addresses are picked.
    #[serde(default)]
    pub mode: AllocMode,
    /// Who requested the pool (network id or name).
    #[serde(default)]
    pub owner: String,
}

impl Pool {
    /// The id of the pool for `subnet`: the subnet with `_` for `/` (a valid store key segment).
    pub fn id_for(subnet: &IpNet) -> String {
        subnet.to_string().replace('/', "_")
    }

    /// The subnet a pool id names, if `id` is exactly what `id_for` makes of some subnet.
    pub fn subnet_from_id(id: &str) -> Option<IpNet> {
        let (addr, len) = id.rsplit_once('_')?;
        let subnet: IpNet = format!("{addr}/{len}").parse().ok()?;
        (Self::id_for(&subnet) == id).then_some(subnet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for subnet in ["172.18.0.0/16", "fd12:3456:789a:1::/64", "10.0.0.0/31"] {
            let subnet: IpNet = subnet.parse().unwrap();
            let id = Pool::id_for(&subnet);
            assert_eq!(Pool::subnet_from_id(&id), Some(subnet));
        }
        assert_eq!(
            Pool::id_for(&"172.18.0.0/16".parse().unwrap()),
            "172.18.0.0_16"
        );
    }

    #[test]
    fn malformed_ids_name_no_subnet() {
        for id in [
            "",
            "172.18.0.0",
            "172.18.0.0/16",
            "172.18.0.0_33",
            "x_16",
            "../etc_16",
            "172.018.0.0_16",
        ] {
            assert_eq!(Pool::subnet_from_id(id), None, "{id}");
        }
    }
}
