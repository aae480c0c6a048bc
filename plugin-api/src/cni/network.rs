//! From a CNI network config to a weft network, and back: the request that creates it on the
//! first ADD, and the check that a later ADD's config still describes the recorded network.
//!
//! A config that contradicts the recorded network (another subnet, bridge, MTU, masquerade,
//! hairpin, ICC or internal setting, or another source of addresses) is **refused** with code 7
//! rather than reconciled: changing a network under running containers would renumber or cut
//! them off. The message says what differs and how to get out (remove the network once its
//! containers are gone, or give the config another name). Fields left out of the config (no
//! subnet, no gateway, no bridge name, no MTU) match whatever the network has; a cluster
//! network's subnets (one or two families, this host's lease) match a config without ranges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use weft_drivers::SubnetInfo;
use weft_engine::{ids, IpamRequest, NetworkRecord, NetworkRequest, Origin};
use weft_ipam::{AllocMode, PoolRequest};

use super::config::{BridgeConf, Range};
use super::error::CniError;

// The bridge driver's option keys (weft_bridge::options; Docker's names where Docker has one).
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
const ENABLE_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
const MTU: &str = "com.docker.network.driver.mtu";
const HAIRPIN: &str = "weft.hairpin";

/// The routed driver's option (weft_routed::options) for masquerading.
const MASQUERADE: &str = "weft.masquerade";

impl BridgeConf {
    /// The engine driver the configuration asks for.
    pub fn driver(&self) -> &'static str {
        if self.routed {
            "routed"
        } else {
            "bridge"
        }
    }
}

/// Where the network's subnets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subnets {
    /// weft's IPAM: one pool per range; none = one default IPv4 pool.
    Weft(Vec<Range>),
    /// A delegated IPAM plugin's subnets (with the gateway the bridge holds).
    Given(Vec<SubnetInfo>),
}

/// What a config wants its weft network to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub bridge: BridgeConf,
    pub subnets: Subnets,
}

/// The id of the network a CNI config names: derived from the name, so concurrent first ADDs
/// (and every later one) agree on it without asking anyone.
pub fn network_id(name: &str) -> String {
    ids::derived_id(&["cni-network", name])
}

impl NetworkSpec {
    /// The request that creates the network.
    pub fn request(&self) -> NetworkRequest {
        let enable_ipv6 = match &self.subnets {
            Subnets::Weft(r) => r.iter().any(|r| r.subnet.addr().is_ipv6()),
            Subnets::Given(s) => s.iter().any(|s| s.subnet.addr().is_ipv6()),
        };
        let ipam = match &self.subnets {
            Subnets::Weft(ranges) => {
                let pool = |r: &Range| PoolRequest {
                    subnet: Some(r.subnet),
                    ip_range: r.ip_range,
                    gateway: r.gateway,
                    v6: r.subnet.addr().is_ipv6(),
                    // host-local's behaviour: a released address is not handed out again
                    // until the range wraps, so stale ARP/conntrack entries die first.
                    mode: AllocMode::Serial,
                    ..PoolRequest::default()
                };
                let (v6, v4): (Vec<_>, Vec<_>) =
                    ranges.iter().partition(|r| r.subnet.addr().is_ipv6());
                let mut v4: Vec<PoolRequest> = v4.into_iter().map(pool).collect();
                if v4.is_empty() && v6.is_empty() {
                    v4.push(PoolRequest {
                        mode: AllocMode::Serial,
                        ..PoolRequest::default()
                    });
                }
                IpamRequest::Weft {
                    v4,
                    v6: v6.into_iter().map(pool).collect(),
                }
            }
            Subnets::Given(s) => IpamRequest::Given(s.clone()),
        };
        NetworkRequest {
            name: self.name.clone(),
            id: Some(network_id(&self.name)),
            driver: self.bridge.driver().into(),
            internal: self.bridge.internal,
            enable_ipv6,
            ipam,
            options: self.options(),
            labels: BTreeMap::new(),
            origin: Origin::Cni,
        }
    }

    fn options(&self) -> BTreeMap<String, String> {
        let b = &self.bridge;
        let mut o = BTreeMap::new();
        if b.routed {
            if let Some(mtu) = b.mtu {
                o.insert(MTU.into(), mtu.to_string());
            }
            o.insert(MASQUERADE.into(), b.ip_masq.to_string());
            return o;
        }
        if let Some(name) = &b.bridge {
            o.insert(BRIDGE_NAME.into(), name.clone());
        }
        if let Some(mtu) = b.mtu {
            o.insert(MTU.into(), mtu.to_string());
        }
        o.insert(ENABLE_ICC.into(), b.icc.to_string());
        o.insert(ENABLE_IP_MASQUERADE.into(), b.ip_masq.to_string());
        o.insert(HAIRPIN.into(), b.hairpin.to_string());
        o
    }

    /// Refuses (code 7) when `existing` is not the network this config describes.
    pub fn check_matches(&self, existing: &NetworkRecord, state_dir: &str) -> Result<(), CniError> {
        let diffs = self.differences(existing);
        if diffs.is_empty() {
            return Ok(());
        }
        Err(CniError::InvalidConfig(format!(
            "network {:?} recorded in {state_dir} differs from this configuration: {}. weft does not change a network under its containers: DEL them and run `weft network rm {}`, or give this configuration another name",
            self.name,
            diffs.join("; "),
            self.name
        )))
    }

    /// Each way `existing` differs from this spec, as "what: recorded vs configured".
    pub fn differences(&self, existing: &NetworkRecord) -> Vec<String> {
        let net = &existing.network;
        let mut d = Vec::new();
        let b = &self.bridge;
        if net.driver != b.driver() {
            d.push(format!("driver: recorded {} vs {}", net.driver, b.driver()));
            return d;
        }
        let recorded_bridge = net
            .options
            .get(BRIDGE_NAME)
            .cloned()
            // The bridge driver's default name.
            .unwrap_or_else(|| format!("br-{}", &net.id[..12.min(net.id.len())]));
        if let Some(want) = &b.bridge {
            if *want != recorded_bridge {
                d.push(format!("bridge: recorded {recorded_bridge} vs {want}"));
            }
        }
        if let Some(want) = b.mtu {
            let have = net.options.get(MTU).and_then(|m| m.parse::<u32>().ok());
            if have != Some(want) {
                d.push(format!(
                    "mtu: recorded {} vs {want}",
                    have.map(|m| m.to_string())
                        .unwrap_or_else(|| "default".into())
                ));
            }
        }
        let flags: &[(&str, &str, bool)] = if b.routed {
            &[("ipMasq", MASQUERADE, b.ip_masq)]
        } else {
            &[
                ("ipMasq", ENABLE_IP_MASQUERADE, b.ip_masq),
                ("hairpinMode", HAIRPIN, b.hairpin),
                ("icc", ENABLE_ICC, b.icc),
            ]
        };
        for &(what, key, want) in flags {
            let have = flag(&net.options, key);
            if have != want {
                d.push(format!("{what}: recorded {have} vs {want}"));
            }
        }
        if net.internal != b.internal {
            d.push(format!(
                "internal: recorded {} vs {}",
                net.internal, b.internal
            ));
        }
        match &self.subnets {
            Subnets::Weft(ranges) => self.weft_subnet_differences(existing, ranges, &mut d),
            Subnets::Given(given) => {
                if !existing.pools.is_empty() {
                    d.push("ipam: recorded weft's own vs a delegated IPAM plugin".into());
                }
                for s in given {
                    if !net
                        .subnets
                        .iter()
                        .any(|r| r.subnet.trunc() == s.subnet.trunc())
                    {
                        d.push(format!(
                            "subnets: recorded {} vs {} from the IPAM plugin",
                            list(net.subnets.iter().map(|s| s.subnet)),
                            s.subnet
                        ));
                    }
                }
            }
        }
        d
    }

    fn weft_subnet_differences(
        &self,
        existing: &NetworkRecord,
        ranges: &[Range],
        d: &mut Vec<String>,
    ) {
        let net = &existing.network;
        if existing.pools.is_empty() {
            d.push("ipam: recorded a delegated IPAM plugin vs weft's own".into());
            return;
        }
        let recorded = || list(net.subnets.iter().map(|s| s.subnet));
        if ranges.is_empty() && existing.cluster().is_some() {
            // A cluster network's subnets are this host's lease, whatever they are.
            return;
        }
        if ranges.is_empty() {
            // A default pool: any one IPv4 subnet will do.
            if net.v4_subnets().count() != 1 || net.v6_subnets().next().is_some() {
                d.push(format!(
                    "subnets: recorded {} vs one default IPv4 pool",
                    recorded()
                ));
            }
            return;
        }
        if net.subnets.len() != ranges.len() {
            d.push(format!(
                "subnets: recorded {} vs {}",
                recorded(),
                list(ranges.iter().map(|r| r.subnet))
            ));
            return;
        }
        for r in ranges {
            let Some(s) = net.subnets.iter().find(|s| s.subnet.trunc() == r.subnet) else {
                d.push(format!("subnets: recorded {} vs {}", recorded(), r.subnet));
                continue;
            };
            let have_gw: Option<IpAddr> = s.gateway.map(|g| g.addr());
            if let Some(gw) = r.gateway {
                if have_gw != Some(gw) {
                    d.push(format!(
                        "gateway of {}: recorded {} vs {gw}",
                        r.subnet,
                        have_gw
                            .map(|g| g.to_string())
                            .unwrap_or_else(|| "none".into())
                    ));
                }
            }
            if r.ip_range != s.ip_range.filter(|x| *x != s.subnet) {
                d.push(format!(
                    "allocation range of {}: recorded {} vs {}",
                    r.subnet,
                    s.ip_range
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "the whole subnet".into()),
                    r.ip_range
                        .map(|x| x.to_string())
                        .unwrap_or_else(|| "the whole subnet".into())
                ));
            }
        }
    }
}

/// A bridge driver flag as the driver reads it (absent or empty = true).
fn flag(opts: &BTreeMap<String, String>, key: &str) -> bool {
    !matches!(
        opts.get(key).map(|v| v.to_ascii_lowercase()).as_deref(),
        Some("false" | "0")
    )
}

fn list(subnets: impl Iterator<Item = IpNet>) -> String {
    let v: Vec<String> = subnets.map(|s| s.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_drivers::Network;

    fn range(s: &str) -> Range {
        Range {
            subnet: s.parse().unwrap(),
            gateway: None,
            ip_range: None,
        }
    }

    fn spec(ranges: Vec<Range>) -> NetworkSpec {
        NetworkSpec {
            name: "n1".into(),
            bridge: BridgeConf::default(),
            subnets: Subnets::Weft(ranges),
        }
    }

    /// What the engine records for `spec`'s request, with gateways filled in as IPAM would.
    fn recorded(spec: &NetworkSpec) -> NetworkRecord {
        let req = spec.request();
        let IpamRequest::Weft { v4, v6 } = &req.ipam else {
            panic!()
        };
        let subnets = v4
            .iter()
            .chain(v6)
            .map(|p| {
                let subnet = p.subnet.unwrap_or("172.17.0.0/16".parse().unwrap());
                let gw = p
                    .gateway
                    .unwrap_or_else(|| weft_ipam::alloc::host_bounds(&subnet).0);
                SubnetInfo {
                    subnet,
                    gateway: Some(IpNet::new(gw, subnet.prefix_len()).unwrap()),
                    ip_range: p.ip_range,
                    pool_id: weft_ipam::Pool::id_for(&subnet),
                }
            })
            .collect::<Vec<_>>();
        NetworkRecord {
            pools: subnets.iter().map(|s| s.pool_id.clone()).collect(),
            network: Network {
                id: req.id.clone().unwrap(),
                name: req.name.clone(),
                driver: req.driver.clone(),
                internal: req.internal,
                enable_ipv6: req.enable_ipv6,
                subnets,
                options: req.options.clone(),
            },
            origin: Origin::Cni,
            labels: BTreeMap::new(),
            created: 0,
            docker_ids: Vec::new(),
        }
    }

    #[test]
    fn requests_carry_every_bridge_setting() {
        let mut s = spec(vec![range("10.1.0.0/24"), range("fd00:1::/64")]);
        s.bridge.bridge = Some("wb0".into());
        s.bridge.mtu = Some(1400);
        s.bridge.icc = false;
        let r = s.request();
        assert_eq!(r.id.as_deref(), Some(network_id("n1").as_str()));
        assert!(r.enable_ipv6);
        assert_eq!(r.options[BRIDGE_NAME], "wb0");
        assert_eq!(r.options[MTU], "1400");
        assert_eq!(r.options[ENABLE_ICC], "false");
        assert_eq!(r.origin, Origin::Cni);
        let IpamRequest::Weft { v4, v6 } = r.ipam else {
            panic!()
        };
        assert_eq!((v4.len(), v6.len()), (1, 1));
        assert!(v6[0].v6);
    }

    #[test]
    fn the_same_config_matches_and_a_different_one_says_what_differs() {
        let s = spec(vec![range("10.1.0.0/24")]);
        let rec = recorded(&s);
        s.check_matches(&rec, "/s").unwrap();
        let mut other = spec(vec![range("10.2.0.0/24")]);
        other.bridge.ip_masq = false;
        let e = other.check_matches(&rec, "/s").unwrap_err();
        assert_eq!(e.code(), crate::cni::error::INVALID_CONFIG);
        let m = e.to_string();
        assert!(
            m.contains("10.1.0.0/24") && m.contains("10.2.0.0/24"),
            "{m}"
        );
        assert!(
            m.contains("ipMasq") && m.contains("weft network rm n1"),
            "{m}"
        );
    }

    #[test]
    fn a_cluster_networks_subnets_match_a_config_without_ranges() {
        let dual = spec(vec![range("10.244.1.0/24"), range("fd00:244::/64")]);
        let mut rec = recorded(&dual);
        let bare = spec(vec![]);
        assert!(
            bare.check_matches(&rec, "/s").is_err(),
            "an ordinary network with two subnets is not one default pool"
        );
        rec.labels
            .insert(weft_engine::CLUSTER_LABEL.into(), "c1".into());
        bare.check_matches(&rec, "/s").unwrap();
        let e = spec(vec![range("10.9.0.0/24")])
            .check_matches(&rec, "/s")
            .unwrap_err();
        assert!(e.to_string().contains("10.244.1.0/24"), "{e}");
    }

    #[test]
    fn left_out_fields_match_anything() {
        let mut full = spec(vec![Range {
            gateway: Some("10.1.0.9".parse().unwrap()),
            ..range("10.1.0.0/24")
        }]);
        full.bridge.bridge = Some("wb0".into());
        let rec = recorded(&full);
        spec(vec![range("10.1.0.0/24")])
            .check_matches(&rec, "/s")
            .unwrap();
        let default = spec(vec![]);
        default.check_matches(&recorded(&default), "/s").unwrap();
        let mut gw = spec(vec![Range {
            gateway: Some("10.1.0.1".parse().unwrap()),
            ..range("10.1.0.0/24")
        }]);
        assert!(gw.check_matches(&rec, "/s").is_err());
        gw.subnets = Subnets::Given(rec.network.subnets.clone());
        assert!(gw.differences(&rec).iter().any(|d| d.contains("delegated")));
    }
}
