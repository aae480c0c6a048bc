//! The CNI result: interfaces, IPs, routes and DNS, read from any supported version (a
//! prevResult, a delegated IPAM plugin's answer) and written in the version the config asked for.
//!
//! Fields weft does not model (1.1.0's `socketPath`, `pciID`, route `table`, …) ride along
//! untouched in `extra`, so a chained result passes through without losing what other plugins
//! put in it.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Map, Value};

use super::error::CniError;
use super::version::Version;

/// One interface a plugin made or configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// 1.1.0 and later.
    pub mtu: Option<u32>,
    /// The namespace path for container interfaces; `None` for host interfaces.
    pub sandbox: Option<String>,
    pub extra: Map<String, Value>,
}

/// One address and the interface (index into `interfaces`) it is on.
#[derive(Debug, Clone, PartialEq)]
pub struct IpConfig {
    /// The address with its prefix length.
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    pub interface: Option<usize>,
    pub extra: Map<String, Value>,
}

/// One route in the container.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEntry {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub extra: Map<String, Value>,
}

/// A whole result (an IPAM plugin's has no interfaces).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<RouteEntry>,
    /// The `dns` object as given (nameservers, domain, search, options); `None` when absent.
    pub dns: Option<Value>,
}

impl CniResult {
    /// Reads a result of version 0.3.0 or later; `what` names it in errors (`"prevResult"`).
    pub fn parse(v: &Value, what: &str) -> Result<CniResult, CniError> {
        let bad = |why: String| CniError::Decoding(format!("{what}: {why}"));
        let obj = v
            .as_object()
            .ok_or_else(|| bad("expected a JSON object".into()))?;
        let mut out = CniResult::default();
        for (i, item) in array(obj, "interfaces").map_err(&bad)?.iter().enumerate() {
            let at = format!("interfaces[{i}]");
            let mut m = item
                .as_object()
                .cloned()
                .ok_or_else(|| bad(format!("{at} is not an object")))?;
            out.interfaces.push(Interface {
                name: take_str(&mut m, "name")
                    .map_err(|e| bad(format!("{at}.{e}")))?
                    .ok_or_else(|| bad(format!("{at} has no name")))?,
                mac: take_str(&mut m, "mac").map_err(|e| bad(format!("{at}.{e}")))?,
                mtu: take_u32(&mut m, "mtu").map_err(|e| bad(format!("{at}.{e}")))?,
                sandbox: take_str(&mut m, "sandbox")
                    .map_err(|e| bad(format!("{at}.{e}")))?
                    .filter(|s| !s.is_empty()),
                extra: m,
            });
        }
        for (i, item) in array(obj, "ips").map_err(&bad)?.iter().enumerate() {
            let at = format!("ips[{i}]");
            let mut m = item
                .as_object()
                .cloned()
                .ok_or_else(|| bad(format!("{at} is not an object")))?;
            // Pre-1.0 results say "version": "4"|"6"; the address says it too.
            m.remove("version");
            let address = take_str(&mut m, "address")
                .map_err(|e| bad(format!("{at}.{e}")))?
                .ok_or_else(|| bad(format!("{at} has no address")))?;
            let address: IpNet = address.parse().map_err(|_| {
                bad(format!(
                    "{at}.address {address:?} is not an address in CIDR form"
                ))
            })?;
            let gateway = take_ip(&mut m, "gateway").map_err(|e| bad(format!("{at}.{e}")))?;
            let interface = match m.remove("interface") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(
                    n.as_u64()
                        .ok_or_else(|| bad(format!("{at}.interface is not an index")))?
                        as usize,
                ),
                Some(_) => return Err(bad(format!("{at}.interface is not a number"))),
            };
            if let Some(idx) = interface {
                if idx >= out.interfaces.len() {
                    return Err(bad(format!(
                        "{at}.interface {idx} points past the {} interfaces",
                        out.interfaces.len()
                    )));
                }
            }
            out.ips.push(IpConfig {
                address,
                gateway,
                interface,
                extra: m,
            });
        }
        for (i, item) in array(obj, "routes").map_err(&bad)?.iter().enumerate() {
            out.routes
                .push(parse_route(item).map_err(|e| bad(format!("routes[{i}].{e}")))?);
        }
        out.dns = match obj.get("dns") {
            None | Some(Value::Null) => None,
            Some(d @ Value::Object(_)) => Some(d.clone()),
            Some(_) => return Err(bad("dns is not an object".into())),
        };
        Ok(out)
    }

    /// The result as `version` writes it. IPAM results (no interfaces) omit `interfaces`.
    pub fn to_json(&self, version: Version) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.as_str()));
        if !self.interfaces.is_empty() {
            let list: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut m = i.extra.clone();
                    m.insert("name".into(), json!(i.name));
                    if let Some(mac) = &i.mac {
                        m.insert("mac".into(), json!(mac));
                    }
                    match i.mtu {
                        Some(mtu) if version.has_interface_mtu() => {
                            m.insert("mtu".into(), json!(mtu));
                        }
                        _ => {}
                    }
                    if let Some(s) = &i.sandbox {
                        m.insert("sandbox".into(), json!(s));
                    }
                    Value::Object(m)
                })
                .collect();
            out.insert("interfaces".into(), Value::Array(list));
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut m = ip.extra.clone();
                if version.ips_carry_version() {
                    let family = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    m.insert("version".into(), json!(family));
                }
                if let Some(i) = ip.interface {
                    m.insert("interface".into(), json!(i));
                }
                m.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    m.insert("gateway".into(), json!(gw.to_string()));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("ips".into(), Value::Array(ips));
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|r| {
                    let mut m = r.extra.clone();
                    m.insert("dst".into(), json!(r.dst.to_string()));
                    if let Some(gw) = r.gw {
                        m.insert("gw".into(), json!(gw.to_string()));
                    }
                    Value::Object(m)
                })
                .collect();
            out.insert("routes".into(), Value::Array(routes));
        }
        out.insert("dns".into(), self.dns.clone().unwrap_or_else(|| json!({})));
        Value::Object(out)
    }

    /// `prev` followed by this result: interfaces appended (this result's interface indexes
    /// shifted past prev's), IPs and routes appended, DNS from prev unless it has none.
    pub fn chained_after(self, prev: CniResult) -> CniResult {
        let shift = prev.interfaces.len();
        let mut out = prev;
        out.interfaces.extend(self.interfaces);
        out.ips.extend(self.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + shift);
            ip
        }));
        out.routes.extend(self.routes);
        if out.dns.as_ref().is_none_or(is_empty_object) {
            out.dns = self.dns;
        }
        out
    }
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// A route object as CNI writes it: `{"dst": CIDR, "gw": IP, …}`.
pub fn parse_route(item: &Value) -> Result<RouteEntry, String> {
    let mut m = item
        .as_object()
        .cloned()
        .ok_or_else(|| "route is not an object".to_string())?;
    let dst = take_str(&mut m, "dst")?.ok_or_else(|| "dst is missing".to_string())?;
    let dst: IpNet = dst
        .parse()
        .map_err(|_| format!("dst {dst:?} is not a prefix in CIDR form"))?;
    let gw = take_ip(&mut m, "gw")?;
    Ok(RouteEntry {
        dst: dst.trunc(),
        gw,
        extra: m,
    })
}

fn array<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{key} is not an array")),
    }
}

fn take_str(m: &mut Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key} is not a string")),
    }
}

fn take_u32(m: &mut Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} is not a small unsigned number")),
        Some(_) => Err(format!("{key} is not a number")),
    }
}

fn take_ip(m: &mut Map<String, Value>, key: &str) -> Result<Option<IpAddr>, String> {
    match take_str(m, key)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} {s:?} is not an IP address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "cniVersion": "0.4.0",
            "interfaces": [
                {"name": "br0", "mac": "02:00:00:00:00:01"},
                {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/run/netns/x", "socketPath": "/s"}
            ],
            "ips": [{"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "table": 5}],
            "dns": {"nameservers": ["10.1.0.1"]}
        })
    }

    #[test]
    fn reads_and_writes_every_version_shape() {
        let r = CniResult::parse(&sample(), "prevResult").unwrap();
        assert_eq!(r.interfaces[1].sandbox.as_deref(), Some("/run/netns/x"));
        assert_eq!(r.ips[0].interface, Some(1));
        let old = r.to_json(Version::V0_3_1);
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["cniVersion"], "0.3.1");
        let new = r.to_json(Version::V1_0_0);
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["routes"][0]["table"], 5, "unknown fields pass through");
        assert_eq!(new["interfaces"][1]["socketPath"], "/s");
        assert_eq!(CniResult::parse(&new, "x").unwrap(), r, "round trip");
    }

    #[test]
    fn bad_results_are_decoding_errors() {
        for bad in [
            json!([]),
            json!({"ips": [{"address": "banana"}]}),
            json!({"ips": [{"address": "10.0.0.1/24", "interface": 3}]}),
            json!({"interfaces": [{"mac": "x"}]}),
            json!({"routes": [{"gw": "10.0.0.1"}]}),
            json!({"dns": []}),
        ] {
            let e = CniResult::parse(&bad, "prevResult").unwrap_err();
            assert_eq!(e.code(), crate::cni::error::DECODING_FAILURE, "{bad}");
            assert!(e.to_string().starts_with("prevResult"), "{e}");
        }
    }

    #[test]
    fn chaining_shifts_interface_indexes() {
        let prev = CniResult::parse(&sample(), "p").unwrap();
        let mine = CniResult::parse(
            &json!({"interfaces": [{"name": "eth1", "sandbox": "/n"}],
                    "ips": [{"address": "10.2.0.5/24", "interface": 0}]}),
            "m",
        )
        .unwrap();
        let all = mine.chained_after(prev);
        assert_eq!(all.interfaces.len(), 3);
        assert_eq!(all.ips[1].interface, Some(2));
        assert!(all.dns.is_some());
    }
}
