//! Published ports as users write them (Docker's `-p` syntax), and their host-port reservations
//! in the store.

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use weft_drivers::{PortMapping, Protocol};
use weft_ipam::Store;

use crate::error::EngineError;
use crate::records::{port_key, port_prefix, PORTS_CURSOR};

/// One `-p` request: a host port or range (0 = pick one) to a container port or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub protocol: Protocol,
    pub host_ip: Option<IpAddr>,
    /// Inclusive; `(0, 0)` = any free port from the ephemeral range.
    pub host_ports: (u16, u16),
    /// Inclusive.
    pub container_ports: (u16, u16),
}

impl PortSpec {
    pub fn single(
        protocol: Protocol,
        host_ip: Option<IpAddr>,
        host_port: u16,
        container_port: u16,
    ) -> Self {
        PortSpec {
            protocol,
            host_ip,
            host_ports: (host_port, host_port),
            container_ports: (container_port, container_port),
        }
    }

    fn validate(&self) -> Result<(), String> {
        let (cs, ce) = self.container_ports;
        let (hs, he) = self.host_ports;
        if cs == 0 || ce < cs {
            return Err(format!("container port range {cs}-{ce} is invalid"));
        }
        if he < hs || (hs == 0 && he != 0) {
            return Err(format!("host port range {hs}-{he} is invalid"));
        }
        let n_host = he - hs;
        let n_cont = ce - cs;
        if hs != 0 && n_host != n_cont && n_cont != 0 {
            return Err(format!(
                "host port range {hs}-{he} and container port range {cs}-{ce} differ in size"
            ));
        }
        Ok(())
    }
}

impl FromStr for PortSpec {
    type Err = String;

    /// `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, ports or ranges `A-B`, IPv6 host
    /// addresses in brackets (`[::1]:8080:80`).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid port mapping {s:?}: {why}; expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp]")
        };
        let (body, protocol) = match s.rsplit_once('/') {
            Some((b, p)) => (b, p.parse::<Protocol>().map_err(|e| bad(&e))?),
            None => (s, Protocol::Tcp),
        };
        let (host_ip, rest) = if let Some(after) = body.strip_prefix('[') {
            let (ip, rest) = after.split_once("]:").ok_or_else(|| bad("unclosed '['"))?;
            let ip: IpAddr = ip.parse().map_err(|_| bad("bad host address"))?;
            (Some(ip), rest)
        } else {
            let parts: Vec<&str> = body.split(':').collect();
            match parts.len() {
                1 | 2 => (None, body),
                3 => {
                    let ip: IpAddr = parts[0].parse().map_err(|_| bad("bad host address"))?;
                    (Some(ip), &body[parts[0].len() + 1..])
                }
                _ => return Err(bad("too many ':' (put IPv6 addresses in brackets)")),
            }
        };
        let (host, container) = match rest.split_once(':') {
            Some((h, c)) => (h, c),
            None => ("", rest),
        };
        let container_ports = parse_range(container).map_err(|e| bad(&e))?;
        let host_ports = if host.is_empty() {
            (0, 0)
        } else {
            parse_range(host).map_err(|e| bad(&e))?
        };
        let spec = PortSpec {
            protocol,
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_ports,
            container_ports,
        };
        spec.validate().map_err(|e| bad(&e))?;
        Ok(spec)
    }
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let num = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port number"))
    };
    match s.split_once('-') {
        Some((a, b)) => Ok((num(a)?, num(b)?)),
        None => {
            let p = num(s)?;
            Ok((p, p))
        }
    }
}

/// Reserves host ports for `specs` (all or nothing) and returns the resolved mappings.
/// Conflicts: the same protocol and port on the same host address, or where either side binds
/// every address.
pub(crate) fn reserve(
    store: &dyn Store,
    specs: &[PortSpec],
    owner: &str,
    ephemeral: (u16, u16),
) -> Result<Vec<PortMapping>, EngineError> {
    let mut taken: Vec<PortMapping> = Vec::new();
    let result = reserve_all(store, specs, owner, ephemeral, &mut taken);
    if let Err(e) = result {
        // Best effort: what stays reserved belongs to this owner, and recovery or the
        // owner's teardown finds it.
        let _ = release(store, &taken);
        return Err(e);
    }
    Ok(taken)
}

fn reserve_all(
    store: &dyn Store,
    specs: &[PortSpec],
    owner: &str,
    ephemeral: (u16, u16),
    taken: &mut Vec<PortMapping>,
) -> Result<(), EngineError> {
    for spec in specs {
        spec.validate().map_err(EngineError::Invalid)?;
        let (cs, ce) = spec.container_ports;
        let (hs, he) = spec.host_ports;
        if hs != 0 && (he - hs) == (ce - cs) {
            for i in 0..=(ce - cs) {
                let m = mapping(spec, hs + i, cs + i);
                claim(store, &m, owner)?;
                taken.push(m);
            }
            continue;
        }
        // Any one free host port, from the given range or the ephemeral one, per container port.
        for c in cs..=ce {
            let m = pick(
                store,
                spec,
                c,
                owner,
                if hs == 0 { ephemeral } else { (hs, he) },
                hs == 0,
            )?;
            taken.push(m);
        }
    }
    Ok(())
}

fn mapping(spec: &PortSpec, host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        protocol: spec.protocol,
        host_ip: spec.host_ip,
        host_port,
        container_port,
    }
}

fn conflict(store: &dyn Store, m: &PortMapping) -> Result<Option<String>, EngineError> {
    let prefix = port_prefix(m.protocol, m.host_port);
    for child in store.children(&prefix)? {
        let clash = child == "any"
            || m.host_ip.is_none()
            || m.host_ip.map(|i| i.to_string()) == Some(child.clone());
        if clash {
            let owner = store
                .get(&format!("{prefix}/{child}"))?
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            return Ok(Some(owner));
        }
    }
    Ok(None)
}

/// Claims one host port; a port this owner already holds (a retried operation's) is claimed
/// again without complaint.
fn claim(store: &dyn Store, m: &PortMapping, owner: &str) -> Result<(), EngineError> {
    let key = port_key(m.protocol, m.host_port, m.host_ip);
    if store.get(&key)?.as_deref() == Some(owner.as_bytes()) {
        return Ok(());
    }
    if let Some(other) = conflict(store, m)? {
        let host = m
            .host_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "0.0.0.0".into());
        return Err(EngineError::InUse(format!(
            "host port {host}:{}/{} is already published by {other}; choose another host port or 0 for any",
            m.host_port, m.protocol
        )));
    }
    store.create(&key, owner.as_bytes())?;
    Ok(())
}

fn pick(
    store: &dyn Store,
    spec: &PortSpec,
    container_port: u16,
    owner: &str,
    (lo, hi): (u16, u16),
    advance_cursor: bool,
) -> Result<PortMapping, EngineError> {
    let span = u32::from(hi - lo) + 1;
    let start = if advance_cursor {
        store
            .get(PORTS_CURSOR)?
            .and_then(|v| String::from_utf8_lossy(&v).trim().parse::<u16>().ok())
            .filter(|p| (lo..=hi).contains(p))
            .unwrap_or(lo)
    } else {
        lo
    };
    for i in 0..span {
        let port = (lo as u32 + (u32::from(start - lo) + i) % span) as u16;
        let m = mapping(spec, port, container_port);
        if conflict(store, &m)?.is_none() {
            store.create(&port_key(m.protocol, port, m.host_ip), owner.as_bytes())?;
            if advance_cursor {
                let next = if port >= hi { lo } else { port + 1 };
                store.put_hint(PORTS_CURSOR, next.to_string().as_bytes())?;
            }
            return Ok(m);
        }
    }
    Err(EngineError::InUse(format!(
        "no free host port for {}/{} in {lo}-{hi}",
        container_port, spec.protocol
    )))
}

/// Releases reservations; absent ones are fine. Keeps going past failures and reports the
/// first, so that a teardown never claims success while a port stays reserved.
pub(crate) fn release(store: &dyn Store, mappings: &[PortMapping]) -> Result<(), EngineError> {
    let mut first = None;
    for m in mappings {
        if let Err(e) = store.delete(&port_key(m.protocol, m.host_port, m.host_ip)) {
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(e.into()),
    }
}

/// Every host port `owner` holds, read from the reservations themselves (recovery of an
/// operation that died before it recorded them). Walks every reservation: for recovery only.
pub(crate) fn owned_by(store: &dyn Store, owner: &str) -> Result<Vec<PortMapping>, EngineError> {
    let mut out = Vec::new();
    for proto in store.children("ports")? {
        let Ok(protocol) = proto.parse::<Protocol>() else {
            continue;
        };
        for port in store.children(&format!("ports/{proto}"))? {
            let Ok(host_port) = port.parse::<u16>() else {
                continue;
            };
            for (key, holder) in store.list(&port_prefix(protocol, host_port))? {
                if holder != owner.as_bytes() {
                    continue;
                }
                let host_ip = match key.rsplit('/').next() {
                    Some("any") => None,
                    Some(ip) => match ip.parse() {
                        Ok(ip) => Some(ip),
                        Err(_) => continue,
                    },
                    None => continue,
                };
                // The container port is not kept with the reservation; removing a published
                // port needs only the host side.
                out.push(PortMapping {
                    protocol,
                    host_ip,
                    host_port,
                    container_port: host_port,
                });
            }
        }
    }
    Ok(out)
}

/// The host's ephemeral port range (`net.ipv4.ip_local_port_range`), where ports published as
/// 0 come from.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(a, b)| a <= b && *a > 0)
        .unwrap_or((32768, 60999))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_dockers_forms() {
        assert_eq!(p("80"), PortSpec::single(Protocol::Tcp, None, 0, 80));
        assert_eq!(
            p("8080:80"),
            PortSpec::single(Protocol::Tcp, None, 8080, 80)
        );
        assert_eq!(
            p("8080:80/udp"),
            PortSpec::single(Protocol::Udp, None, 8080, 80)
        );
        assert_eq!(
            p("127.0.0.1:8080:80/sctp"),
            PortSpec::single(Protocol::Sctp, Some("127.0.0.1".parse().unwrap()), 8080, 80)
        );
        assert_eq!(p("127.0.0.1::80").host_ports, (0, 0));
        assert_eq!(p("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p("0.0.0.0:8080:80").host_ip, None);
        let r = p("8000-8010:80-90");
        assert_eq!((r.host_ports, r.container_ports), ((8000, 8010), (80, 90)));
        assert_eq!(p("8000-8010:80").container_ports, (80, 80));
    }

    #[test]
    fn refuses_bad_forms() {
        for s in [
            "",
            "x",
            "80/icmp",
            "1:2:3:4",
            "8000-8010:80-85",
            "70000:80",
            "8080:0",
            "9-8:80",
            "bad::80",
            "[::1:80",
        ] {
            assert!(s.parse::<PortSpec>().is_err(), "{s:?} accepted");
        }
    }
}
