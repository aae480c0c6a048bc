//! Docker's option maps and port bindings translated to weft's model (pure).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value};
use weft_drivers::{PortMapping, Protocol};
use weft_engine::PortSpec;

use super::wire::PortBinding;

/// `-o KEY=VALUE` options of `docker network create`.
pub const GENERIC: &str = "com.docker.network.generic";
/// `--ipv6`.
pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";
/// `--internal`.
pub const INTERNAL: &str = "com.docker.network.internal";
/// The `-p` bindings of an endpoint (Docker leaves publishing to remote drivers).
pub const PORTMAP: &str = "com.docker.network.portmap";
/// `RequestAddress` option naming what the address is for.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
/// `REQUEST_ADDRESS_TYPE` of the network's gateway.
pub const GATEWAY_ADDRESS_TYPE: &str = "com.docker.network.gateway";
/// `-o weft.cluster=NAME` (network) and `--ipam-opt weft.cluster=NAME` (pool): the network is
/// this host's part of cluster network NAME (see `cluster`).
pub const CLUSTER: &str = "weft.cluster";
/// `-o weft.mode=routed` picks the routed (Calico-style, no bridge) driver; `bridge` is the
/// default.
pub const MODE: &str = "weft.mode";

/// The engine driver a Docker network's `-o weft.mode` asks for.
pub fn driver_of(generic: &BTreeMap<String, String>) -> Result<&'static str, String> {
    match generic.get(MODE).map(String::as_str) {
        None | Some("") | Some("bridge") => Ok("bridge"),
        Some("routed") => Ok("routed"),
        Some(other) => Err(format!("option {MODE}={other:?}: use bridge or routed")),
    }
}

/// A string option map (`-o` values are strings; anything else is written as JSON text).
pub fn string_map(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()),
        Some(other) => Err(format!("expected an object of options, got {other}")),
    }
}

/// A boolean flag that Docker sends as a JSON bool (or, from older clients, a string).
pub fn flag(options: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("false") || s == "0" => {
            Ok(false)
        }
        Some(other) => Err(format!("option {key} must be true or false, got {other}")),
    }
}

/// A CIDR string (`10.1.0.0/24`, `10.1.0.1/24`); `what` names it in the error.
pub fn cidr(what: &str, s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .map_err(|_| format!("{what} {s:?} is not an address with a prefix length (CIDR)"))
}

/// An address with or without a prefix length; empty is `None`.
pub fn address(what: &str, s: &str) -> Result<Option<IpAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    cidr(what, s).map(|n| Some(n.addr()))
}

/// The bindings in `com.docker.network.portmap` (absent or `null` = none).
pub fn port_bindings(options: &Map<String, Value>) -> Result<Vec<PortBinding>, String> {
    match options.get(PORTMAP) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| format!("option {PORTMAP} is not a list of port bindings: {e}")),
    }
}

/// Docker's bindings as weft's port requests. Docker writes a binding on every address as
/// `""`, `0.0.0.0` or `::`; a binding that only repeats another once written that way is dropped,
/// since one weft mapping on every address already covers both families.
pub fn port_specs(bindings: &[PortBinding]) -> Result<Vec<PortSpec>, String> {
    let mut out: Vec<PortSpec> = Vec::new();
    for b in bindings {
        let protocol = Protocol::from_number(b.proto).ok_or_else(|| {
            format!(
                "port binding {}: protocol number {} is not tcp (6), udp (17) or sctp (132)",
                b.port, b.proto
            )
        })?;
        if b.port == 0 {
            return Err("port binding with container port 0".into());
        }
        let host_ip = address("host address of a port binding", &b.host_ip)?
            .filter(|ip| !ip.is_unspecified());
        let end = if b.host_port_end == 0 {
            b.host_port
        } else {
            b.host_port_end
        };
        if b.host_port == 0 && end != 0 {
            return Err(format!(
                "port binding {}/{protocol}: host port range 0-{end} is invalid",
                b.port
            ));
        }
        if end < b.host_port {
            return Err(format!(
                "port binding {}/{protocol}: host port range {}-{end} is reversed",
                b.port, b.host_port
            ));
        }
        let spec = PortSpec {
            protocol,
            host_ip,
            host_ports: (b.host_port, end),
            container_ports: (b.port, b.port),
        };
        if !out.contains(&spec) {
            out.push(spec);
        }
    }
    Ok(out)
}

/// What was really published, as Docker reads it back from `EndpointOperInfo`.
pub fn bindings_of(ports: &[PortMapping], container_ip: Option<IpAddr>) -> Vec<PortBinding> {
    ports
        .iter()
        .map(|m| PortBinding {
            proto: m.protocol.number(),
            ip: container_ip.map(|i| i.to_string()).unwrap_or_default(),
            port: m.container_port,
            host_ip: m
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into()),
            host_port: m.host_port,
            host_port_end: m.host_port,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn binding(v: Value) -> PortBinding {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn captured_binding_becomes_one_spec() {
        let b = binding(
            json!({"Proto": 6, "IP": "", "Port": 80, "HostIP": "127.0.0.1",
            "HostPort": 8082, "HostPortEnd": 8082}),
        );
        let specs = port_specs(&[b]).unwrap();
        assert_eq!(
            specs,
            vec![PortSpec::single(
                Protocol::Tcp,
                Some("127.0.0.1".parse().unwrap()),
                8082,
                80
            )]
        );
    }

    #[test]
    fn any_port_any_address_and_ranges() {
        let specs = port_specs(&[
            binding(json!({"Proto": 17, "Port": 53, "HostIP": "", "HostPort": 0, "HostPortEnd": 0})),
            binding(json!({"Proto": 6, "Port": 80, "HostIP": "0.0.0.0", "HostPort": 8000, "HostPortEnd": 8010})),
            binding(json!({"Proto": 6, "Port": 80, "HostIP": "::", "HostPort": 8000, "HostPortEnd": 8010})),
        ])
        .unwrap();
        assert_eq!(specs.len(), 2, "{specs:?}");
        assert_eq!(specs[0], PortSpec::single(Protocol::Udp, None, 0, 53));
        assert_eq!(specs[1].host_ports, (8000, 8010));
        assert_eq!(specs[1].host_ip, None);
    }

    #[test]
    fn bad_bindings_are_refused_with_reasons() {
        for (b, why) in [
            (json!({"Proto": 1, "Port": 80}), "protocol number 1"),
            (json!({"Proto": 6, "Port": 0}), "container port 0"),
            (
                json!({"Proto": 6, "Port": 80, "HostIP": "nope"}),
                "\"nope\"",
            ),
            (
                json!({"Proto": 6, "Port": 80, "HostPort": 90, "HostPortEnd": 85}),
                "reversed",
            ),
        ] {
            let e = port_specs(&[binding(b)]).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let bad_list = json!({PORTMAP: "80:80"});
        assert!(port_bindings(bad_list.as_object().unwrap()).is_err());
    }

    #[test]
    fn published_ports_read_back_as_bindings() {
        let m = PortMapping {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port: 32768,
            container_port: 80,
        };
        let b = bindings_of(&[m], Some("10.0.0.2".parse().unwrap()));
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!([{"Proto": 6, "IP": "10.0.0.2", "Port": 80, "HostIP": "0.0.0.0",
                "HostPort": 32768, "HostPortEnd": 32768}])
        );
    }

    #[test]
    fn flags_accept_bools_and_strings() {
        let o = json!({"a": true, "b": "false", "c": "TRUE", "d": 3});
        let o = o.as_object().unwrap();
        assert!(flag(o, "a").unwrap());
        assert!(!flag(o, "b").unwrap());
        assert!(flag(o, "c").unwrap());
        assert!(!flag(o, "missing").unwrap());
        assert!(flag(o, "d").is_err());
    }
}
