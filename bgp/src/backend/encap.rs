//! Which path each cluster host's routes take, and the VXLAN entries that path needs (pure).
//!
//! `cross-subnet` encapsulates only toward hosts outside this host's underlay subnet: on the
//! same segment a plain route via the host's address works and costs nothing.

use super::config::{BgpBackendConfig, Encapsulation, Tunnel};
use crate::kernel::resolve::vxlan_gateways;
use crate::kernel::{Path, Resolver};
use ipnet::IpNet;
use serde_json::json;
use std::net::IpAddr;
use weft_drivers::backend::{is_connected, Objects, Peer};
use weft_drivers::{vxlan, DriverError, MacAddr};

/// The key of the VTEP MAC in a host's published backend data (as the vxlan backend).
pub const VTEP_MAC: &str = "vtep_mac";
/// The key that says a host is a route reflector (`true`) in its published data.
pub const ROUTE_REFLECTOR: &str = "route_reflector";

/// This host's tunnel devices and underlay, as the paths need them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Local {
    /// The VXLAN device, when the configuration uses one.
    pub vxlan: Option<u32>,
    /// The IPIP tunnel, when the configuration uses one.
    pub ipip: Option<u32>,
    /// The underlay's connected prefixes (`cross-subnet` compares peers against them).
    pub connected: Vec<IpNet>,
}

/// The path toward the host at `public_ip`.
pub fn path(cfg: &BgpBackendConfig, local: &Local, public_ip: IpAddr) -> Path {
    let tunnel = |t: Tunnel| match t {
        Tunnel::Ipip => local.ipip.map(|device| Path::Ipip { device }),
        Tunnel::Vxlan => local.vxlan.map(|device| Path::Vxlan { device }),
    };
    let chosen = match cfg.encapsulation {
        Encapsulation::None => None,
        Encapsulation::Ipip => tunnel(Tunnel::Ipip),
        Encapsulation::Vxlan => tunnel(Tunnel::Vxlan),
        Encapsulation::CrossSubnet if is_connected(&local.connected, public_ip) => None,
        Encapsulation::CrossSubnet => tunnel(cfg.cross_subnet_tunnel),
    };
    chosen.unwrap_or(Path::Native)
}

/// The resolver for a set of cluster hosts.
pub fn resolver<'a>(
    cfg: &BgpBackendConfig,
    local: &Local,
    hosts: impl IntoIterator<Item = &'a Peer>,
) -> Resolver {
    let mut r = Resolver::new();
    for h in hosts {
        r.set(h.public_ip, path(cfg, local, h.public_ip));
    }
    r
}

/// The neighbour and FDB entries a host reached over VXLAN needs on the device: its
/// gateways resolve to its VTEP MAC, which lives behind its public address. Nothing for a
/// host on another path.
pub fn vxlan_objects(
    cfg: &BgpBackendConfig,
    local: &Local,
    host: &Peer,
) -> Result<Objects, DriverError> {
    let mut objects = Objects::default();
    let Path::Vxlan { device } = path(cfg, local, host.public_ip) else {
        return Ok(objects);
    };
    let mac = vxlan::peer_vtep_mac(host)?;
    objects.fdb.insert((device, mac), host.public_ip);
    for gateway in vxlan_gateways(host.public_ip) {
        objects.neighbours.insert((device, gateway), mac);
    }
    Ok(objects)
}

/// This host's VTEP MAC (first octet 0x0e marks the bgp backend's device).
pub fn local_mac(vni: u32, public_ip: IpAddr) -> MacAddr {
    vxlan::local_vtep_mac(0x0e, vni, public_ip)
}

/// What this host publishes for the others: its VTEP MAC when it has one, and whether it is a
/// route reflector.
pub fn published(vtep: Option<MacAddr>, reflector: bool) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    if let Some(mac) = vtep {
        data.insert(VTEP_MAC.into(), json!(mac.to_string()));
    }
    if reflector {
        data.insert(ROUTE_REFLECTOR.into(), json!(true));
    }
    serde_json::Value::Object(data)
}

/// Whether the host says it is a route reflector.
pub fn is_reflector(host: &Peer) -> bool {
    host.data.get(ROUTE_REFLECTOR) == Some(&json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn local() -> Local {
        Local {
            vxlan: Some(9),
            ipip: Some(7),
            connected: vec!["192.168.0.0/24".parse().unwrap()],
        }
    }
    fn cfg(e: Encapsulation, t: Tunnel) -> BgpBackendConfig {
        BgpBackendConfig {
            encapsulation: e,
            cross_subnet_tunnel: t,
            ..Default::default()
        }
    }
    fn host(public: &str, mac: Option<&str>) -> Peer {
        Peer {
            name: "h".into(),
            subnets: vec![],
            public_ip: ip(public),
            data: mac.map_or(serde_json::Value::Null, |m| json!({ VTEP_MAC: m })),
        }
    }

    #[test]
    fn paths_per_encapsulation() {
        let near = ip("192.168.0.2");
        let far = ip("172.16.0.2");
        let p = |e, t, at| path(&cfg(e, t), &local(), at);
        assert_eq!(p(Encapsulation::None, Tunnel::Ipip, far), Path::Native);
        assert_eq!(
            p(Encapsulation::Ipip, Tunnel::Ipip, near),
            Path::Ipip { device: 7 }
        );
        assert_eq!(
            p(Encapsulation::Vxlan, Tunnel::Ipip, near),
            Path::Vxlan { device: 9 }
        );
        assert_eq!(
            p(Encapsulation::CrossSubnet, Tunnel::Ipip, near),
            Path::Native
        );
        assert_eq!(
            p(Encapsulation::CrossSubnet, Tunnel::Ipip, far),
            Path::Ipip { device: 7 }
        );
        assert_eq!(
            p(Encapsulation::CrossSubnet, Tunnel::Vxlan, far),
            Path::Vxlan { device: 9 }
        );
    }

    #[test]
    fn vxlan_hosts_need_fdb_and_neighbours_for_both_families() {
        let c = cfg(Encapsulation::Vxlan, Tunnel::Ipip);
        let o = vxlan_objects(
            &c,
            &local(),
            &host("192.168.0.2", Some("0e:00:c0:a8:00:02")),
        )
        .unwrap();
        let mac: MacAddr = "0e:00:c0:a8:00:02".parse().unwrap();
        assert_eq!(o.fdb[&(9, mac)], ip("192.168.0.2"));
        assert_eq!(o.neighbours[&(9, ip("192.168.0.2"))], mac);
        assert_eq!(o.neighbours[&(9, ip("::ffff:192.168.0.2"))], mac);
        let e = vxlan_objects(&c, &local(), &host("192.168.0.2", None)).unwrap_err();
        assert!(
            e.to_string().contains("has not published its VTEP MAC"),
            "{e}"
        );
        // A native host needs nothing, MAC or not.
        let none = cfg(Encapsulation::None, Tunnel::Ipip);
        assert!(vxlan_objects(&none, &local(), &host("192.168.0.2", None))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn published_mac_is_stable_and_local() {
        let mac = local_mac(4096, ip("192.168.0.1"));
        assert_eq!(mac.to_string(), "0e:00:c0:a8:00:01");
        assert_eq!(published(Some(mac), false)[VTEP_MAC], "0e:00:c0:a8:00:01");
        assert_eq!(published(None, false), json!({}));
        let reflector = published(None, true);
        assert!(is_reflector(&Peer {
            data: reflector,
            ..host("192.168.0.2", None)
        }));
        assert!(!is_reflector(&host(
            "192.168.0.2",
            Some("0e:00:c0:a8:00:02")
        )));
    }
}
