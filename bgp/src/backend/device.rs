//! The backend's tunnel devices: one VXLAN device and one IPIP tunnel per host, made,
//! checked and re-made.
//!
//! Each device's alias records how it was made (`weft:bgp:vxlan:CLUSTER vni=… port=…
//! local=… dev=…`): the link dump does not give tunnel settings back in a form the wrapper
//! reads, so a device whose alias differs from what is wanted is deleted and made again.

use std::net::IpAddr;

use weft_drivers::netlink::{Netlink, VxlanSpec};
use weft_drivers::owned_link::OwnedLink;
use weft_drivers::{DriverError, MacAddr};

/// Prefix of every alias this module sets.
pub const ALIAS_PREFIX: &str = "weft:bgp:";
/// The VXLAN device.
pub const VXLAN_NAME: &str = "weftbgp.vxlan";
/// The IPIP tunnel.
pub const IPIP_NAME: &str = "weftbgp.tunl";

/// A device to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The VXLAN device: learning off, source = the public address, on the underlay.
    Vxlan {
        /// Cluster name (for the alias).
        cluster: String,
        /// VXLAN id.
        vni: u32,
        /// UDP port.
        port: u16,
        /// Public address.
        local: IpAddr,
        /// Underlay ifindex.
        underlay: u32,
        /// MTU.
        mtu: u32,
        /// The VTEP MAC peers use.
        mac: MacAddr,
    },
    /// The IPIP tunnel without a fixed remote.
    Ipip {
        /// Cluster name (for the alias).
        cluster: String,
        /// Public address (IPv4).
        local: std::net::Ipv4Addr,
        /// Underlay ifindex.
        underlay: u32,
        /// MTU.
        mtu: u32,
    },
}

impl DeviceSpec {
    /// The interface name.
    pub fn name(&self) -> &'static str {
        match self {
            DeviceSpec::Vxlan { .. } => VXLAN_NAME,
            DeviceSpec::Ipip { .. } => IPIP_NAME,
        }
    }

    /// The alias that records the settings.
    pub fn alias(&self) -> String {
        match self {
            DeviceSpec::Vxlan {
                cluster,
                vni,
                port,
                local,
                underlay,
                ..
            } => format!(
                "{ALIAS_PREFIX}vxlan:{cluster} vni={vni} port={port} local={local} dev={underlay}"
            ),
            DeviceSpec::Ipip {
                cluster,
                local,
                underlay,
                ..
            } => format!("{ALIAS_PREFIX}ipip:{cluster} local={local} dev={underlay}"),
        }
    }

    fn mtu(&self) -> u32 {
        match self {
            DeviceSpec::Vxlan { mtu, .. } | DeviceSpec::Ipip { mtu, .. } => *mtu,
        }
    }
}

/// Makes the device exist as `spec` says, up. Returns its index and what changed; on
/// failure a device made here is deleted again.
pub fn ensure(nl: &mut Netlink, spec: &DeviceSpec) -> Result<(u32, Vec<String>), DriverError> {
    let name = spec.name();
    let alias = spec.alias();
    let owned = OwnedLink {
        name,
        alias: &alias,
        prefix: ALIAS_PREFIX,
    };
    let (index, created, mut changes) =
        owned.ensure(nl, "use another encapsulation", |nl| create(nl, spec))?;
    let finish = |nl: &mut Netlink, changes: &mut Vec<String>| -> Result<(), DriverError> {
        let link = nl.link_by_index(index)?.ok_or_else(|| {
            DriverError::Invalid(format!("{name} vanished while being set up; retry"))
        })?;
        if link.mtu != spec.mtu() {
            nl.set_mtu(index, spec.mtu())?;
            changes.push(format!("set mtu {} on {name}", spec.mtu()));
        }
        if let DeviceSpec::Vxlan { mac, .. } = spec {
            if link.mac != Some(*mac) {
                nl.set_mac(index, *mac)?;
                changes.push(format!("set address {mac} on {name}"));
            }
        }
        if !link.up {
            nl.set_up(index)?;
            changes.push(format!("set {name} up"));
        }
        Ok(())
    };
    if let Err(e) = finish(nl, &mut changes) {
        if created {
            let _ = nl.del_link(index);
        }
        return Err(e);
    }
    Ok((index, changes))
}

fn create(nl: &mut Netlink, spec: &DeviceSpec) -> Result<u32, DriverError> {
    match spec {
        DeviceSpec::Vxlan {
            vni,
            port,
            local,
            underlay,
            mtu,
            mac,
            ..
        } => nl.add_vxlan(&VxlanSpec {
            name: VXLAN_NAME.into(),
            vni: *vni,
            port: *port,
            local: Some(*local),
            dev_index: Some(*underlay),
            mtu: Some(*mtu),
            mac: Some(*mac),
            learning: false,
        }),
        DeviceSpec::Ipip {
            local,
            underlay,
            mtu,
            ..
        } => nl.add_ipip(IPIP_NAME, Some(*local), Some(*underlay), Some(*mtu)),
    }
}

/// The device's index if it exists and was made with `spec`.
pub fn find(nl: &mut Netlink, spec: &DeviceSpec) -> Result<Option<u32>, DriverError> {
    let alias = spec.alias();
    OwnedLink {
        name: spec.name(),
        alias: &alias,
        prefix: ALIAS_PREFIX,
    }
    .find(nl)
}

/// Deletes the device if it is weft's; true when something was deleted.
pub fn remove(nl: &mut Netlink, name: &str) -> Result<bool, DriverError> {
    OwnedLink {
        name,
        alias: "",
        prefix: ALIAS_PREFIX,
    }
    .remove(nl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_aliases_record_settings() {
        assert!(VXLAN_NAME.len() <= 15 && IPIP_NAME.len() <= 15);
        let spec = DeviceSpec::Vxlan {
            cluster: "prod".into(),
            vni: 4096,
            port: 4789,
            local: "192.168.0.1".parse().unwrap(),
            underlay: 3,
            mtu: 1450,
            mac: MacAddr([0x0e, 0, 192, 168, 0, 1]),
        };
        assert_eq!(
            spec.alias(),
            "weft:bgp:vxlan:prod vni=4096 port=4789 local=192.168.0.1 dev=3"
        );
        let ipip = DeviceSpec::Ipip {
            cluster: "prod".into(),
            local: "192.168.0.1".parse().unwrap(),
            underlay: 3,
            mtu: 1480,
        };
        assert_eq!(ipip.alias(), "weft:bgp:ipip:prod local=192.168.0.1 dev=3");
    }
}
