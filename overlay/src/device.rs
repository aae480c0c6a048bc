//! The VXLAN device of a cluster network: made, checked, re-made.
//!
//! Its alias records how it was made (`weft:vxlan:CLUSTER vni=1 port=8472 local=IP dev=N`):
//! the kernel's link dump does not report VXLAN attributes in a form this crate reads back, so a
//! device whose alias differs from what is wanted (the public address changed, another port) is
//! deleted and made again rather than patched.

use std::net::IpAddr;

use ipnet::IpNet;
use weft_drivers::netlink::{Netlink, VxlanSpec};
use weft_drivers::owned_link::OwnedLink;
use weft_drivers::{DriverError, MacAddr};

/// Prefix of every alias this crate sets.
pub const ALIAS_PREFIX: &str = "weft:vxlan:";

/// The device to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// `weft.<vni>`.
    pub name: String,
    /// Cluster network name.
    pub cluster: String,
    /// VXLAN network id.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Source address.
    pub local: IpAddr,
    /// Underlay interface.
    pub underlay: u32,
    /// MTU.
    pub mtu: u32,
    /// MAC (the VTEP MAC peers use).
    pub mac: MacAddr,
    /// VTEP addresses (the network address of each local subnet, as /32 or /128).
    pub addresses: Vec<IpNet>,
}

impl DeviceSpec {
    /// The alias that records this spec.
    pub fn alias(&self) -> String {
        format!(
            "{ALIAS_PREFIX}{} vni={} port={} local={} dev={}",
            self.cluster, self.vni, self.port, self.local, self.underlay
        )
    }
}

/// The device name for `vni`.
pub fn device_name(vni: u32) -> String {
    format!("weft.{vni}")
}

impl DeviceSpec {
    fn owned<'a>(&'a self, alias: &'a str) -> OwnedLink<'a> {
        OwnedLink {
            name: &self.name,
            alias,
            prefix: ALIAS_PREFIX,
        }
    }
}

/// Makes the device exist as `spec` says, up, with exactly its VTEP addresses. Returns its
/// index and what was changed.
pub fn ensure(nl: &mut Netlink, spec: &DeviceSpec) -> Result<(u32, Vec<String>), DriverError> {
    let alias = spec.alias();
    let (index, _, mut changes) =
        spec.owned(&alias)
            .ensure(nl, "configure another VXLAN id", |nl| {
                nl.add_vxlan(&VxlanSpec {
                    name: spec.name.clone(),
                    vni: spec.vni,
                    port: spec.port,
                    local: Some(spec.local),
                    dev_index: Some(spec.underlay),
                    mtu: Some(spec.mtu),
                    mac: Some(spec.mac),
                    learning: false,
                })
            })?;
    let link = nl.link_by_index(index)?.ok_or_else(|| {
        DriverError::Invalid(format!("{} vanished while being set up", spec.name))
    })?;
    if link.mtu != spec.mtu {
        nl.set_mtu(index, spec.mtu)?;
        changes.push(format!("set mtu {} on {}", spec.mtu, spec.name));
    }
    if link.mac != Some(spec.mac) {
        nl.set_mac(index, spec.mac)?;
        changes.push(format!("set address {} on {}", spec.mac, spec.name));
    }
    let present: Vec<IpNet> = nl
        .addresses(Some(index))?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    for address in &spec.addresses {
        if !present.contains(address) {
            nl.add_address(index, *address)?;
            changes.push(format!("add address {address} on {}", spec.name));
        }
    }
    for address in present {
        let link_local =
            matches!(address.addr(), IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
        if !spec.addresses.contains(&address) && !link_local {
            nl.del_address(index, address)?;
            changes.push(format!("delete address {address} on {}", spec.name));
        }
    }
    if !link.up {
        nl.set_up(index)?;
        changes.push(format!("set {} up", spec.name));
    }
    Ok((index, changes))
}

/// The device's index if it exists and is ours with this spec.
pub fn find(nl: &mut Netlink, spec: &DeviceSpec) -> Result<Option<u32>, DriverError> {
    spec.owned(&spec.alias()).find(nl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_records_the_settings() {
        let spec = DeviceSpec {
            name: device_name(42),
            cluster: "prod".into(),
            vni: 42,
            port: 4789,
            local: "192.168.0.1".parse().unwrap(),
            underlay: 3,
            mtu: 1450,
            mac: MacAddr([0x0a, 42, 192, 168, 0, 1]),
            addresses: vec![],
        };
        assert_eq!(spec.name, "weft.42");
        assert_eq!(
            spec.alias(),
            "weft:vxlan:prod vni=42 port=4789 local=192.168.0.1 dev=3"
        );
        assert!(device_name(16_777_215).len() <= 15);
    }
}
