//! `weft port CONTAINER [PORT[/PROTO]]`: the host ports weft published for a container, in
//! `docker port`'s format. Docker drops a remote driver's port answer (see the README, "What
//! Docker shows"), so for a Docker container this is the only place a picked host port shows.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use clap::Args;
use weft_drivers::{PortMapping, Protocol, Sandbox};
use weft_engine::{Controller, EndpointRecord, EngineError};

use super::docker_api::Client;
use crate::setup;

#[derive(Args, Debug)]
pub struct PortArgs {
    /// A Docker container name or id (asked of dockerd's API: DOCKER_HOST or
    /// /var/run/docker.sock), a namespace path given to `weft network connect`, or a CNI
    /// container id.
    pub container: String,
    /// Only this container port: PORT or PORT/tcp|udp|sctp (default tcp).
    pub port: Option<String>,
}

pub fn run(state_dir: &Path, args: PortArgs) -> Result<(), EngineError> {
    let filter = args.port.as_deref().map(parse_port).transpose()?;
    let c = setup::controller(state_dir)?;
    let eps = find(&c, &args.container)?;
    let mut lines = lines(&eps, filter);
    lines.sort();
    lines.dedup();
    match filter {
        Some((port, proto)) if lines.is_empty() => Err(EngineError::NotFound {
            kind: "public port",
            name: format!("{port}/{proto}"),
            hint: format!(
                "; no public port '{port}/{proto}' published for {}; `weft port {}` lists what is",
                args.container, args.container
            ),
        }),
        Some(_) => {
            for (_, _, host) in lines {
                println!("{host}");
            }
            Ok(())
        }
        None => {
            for (port, proto, host) in lines {
                println!("{port}/{proto} -> {host}");
            }
            Ok(())
        }
    }
}

fn parse_port(s: &str) -> Result<(u16, Protocol), EngineError> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let bad = || {
        EngineError::Invalid(format!(
            "port {s:?} is not PORT[/tcp|udp|sctp] (e.g. 80 or 53/udp)"
        ))
    };
    let proto = match proto {
        "tcp" | "" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => return Err(bad()),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    Ok((port, proto))
}

/// `(container port, protocol, HOST_IP:HOST_PORT)`, as `docker port` (20.10) writes them: the
/// address and port joined by `:` without brackets. A mapping on every address (`host_ip`
/// unset) is shown as `0.0.0.0`, and also as `::` when the container has an IPv6 address,
/// since weft's one mapping then reaches it over both families.
fn lines(eps: &[EndpointRecord], filter: Option<(u16, Protocol)>) -> Vec<(u16, Protocol, String)> {
    let mut out = Vec::new();
    for ep in eps {
        let v6 = ep.endpoint.v6().is_some();
        for m in &ep.endpoint.ports {
            if filter.is_some_and(|f| f != (m.container_port, m.protocol)) {
                continue;
            }
            for host in hosts(m, v6) {
                out.push((m.container_port, m.protocol, host));
            }
        }
    }
    out
}

fn hosts(m: &PortMapping, v6: bool) -> Vec<String> {
    match m.host_ip {
        Some(ip) => vec![format!("{ip}:{}", m.host_port)],
        None if v6 => vec![
            format!("0.0.0.0:{}", m.host_port),
            format!(":::{}", m.host_port),
        ],
        None => vec![format!("0.0.0.0:{}", m.host_port)],
    }
}

/// The endpoints CONTAINER names: a Docker container's (by the endpoint ids Docker reports),
/// else those connected with that namespace, else those of that CNI container id.
fn find(c: &Controller, container: &str) -> Result<Vec<EndpointRecord>, EngineError> {
    let all = all_endpoints(c)?;
    let mut docker_note = None;
    match Client::from_env().and_then(|client| client.container(container)) {
        Ok(Some(dc)) => {
            let ids: Vec<&str> = dc
                .endpoints
                .iter()
                .map(|e| e.endpoint_id.as_str())
                .collect();
            let mine: Vec<EndpointRecord> = all
                .into_iter()
                .filter(|e| ids.contains(&e.endpoint.id.as_str()))
                .collect();
            if mine.is_empty() {
                let nets: Vec<&str> = dc
                    .endpoints
                    .iter()
                    .map(|e| e.network_name.as_str())
                    .collect();
                return Err(EngineError::NotFound {
                    kind: "weft endpoint of Docker container",
                    name: dc.name,
                    hint: format!(
                        "; it is on {} and none is a weft network (or it is not running); for Docker's own networks use `docker port`",
                        if nets.is_empty() { "no network".to_string() } else { nets.join(", ") }
                    ),
                });
            }
            return Ok(mine);
        }
        Ok(None) => {}
        Err(e) if e.is_unreachable() => docker_note = Some(e.to_string()),
        Err(e) => return Err(e.into()),
    }
    let path = Path::new(container);
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let wanted = if container.contains('/') {
        identity(path)
    } else {
        None
    };
    let mine: Vec<EndpointRecord> = all
        .into_iter()
        .filter(|e| {
            let cli = match &e.endpoint.sandbox {
                Some(Sandbox::Netns(p)) => p == path || (wanted.is_some() && identity(p) == wanted),
                _ => false,
            };
            let cni = cni_container(&e.owner) == Some(container);
            cli || cni
        })
        .collect();
    if mine.is_empty() {
        return Err(EngineError::NotFound {
            kind: "container",
            name: container.to_string(),
            hint: format!(
                "; it is neither a Docker container ({}), a namespace connected with `weft network connect`, nor a CNI container id; `weft network inspect NETWORK` lists the endpoints",
                docker_note.unwrap_or_else(|| "dockerd has none of that name or id".into())
            ),
        });
    }
    Ok(mine)
}

fn all_endpoints(c: &Controller) -> Result<Vec<EndpointRecord>, EngineError> {
    let mut out = Vec::new();
    for n in c.networks()? {
        out.extend(c.endpoints(&n.network.id)?);
    }
    Ok(out)
}

/// The container id of a CNI endpoint's owner mark, `cni:<container id>:<ifname>[:<config>]`
/// (made by plugin-api's `cni::attachment::owner`; CNI container ids hold no `:`).
fn cni_container(owner: &str) -> Option<&str> {
    owner.strip_prefix("cni:")?.split(':').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_arguments() {
        assert_eq!(parse_port("80").unwrap(), (80, Protocol::Tcp));
        assert_eq!(parse_port("53/udp").unwrap(), (53, Protocol::Udp));
        for bad in ["0", "http", "80/icmp", "70000"] {
            assert!(
                matches!(parse_port(bad), Err(EngineError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn docker_port_format() {
        let m = |host_ip: Option<&str>, host_port, container_port| PortMapping {
            protocol: Protocol::Tcp,
            host_ip: host_ip.map(|i| i.parse().unwrap()),
            host_port,
            container_port,
        };
        assert_eq!(hosts(&m(None, 8081, 80), false), ["0.0.0.0:8081"]);
        assert_eq!(hosts(&m(None, 8081, 80), true), ["0.0.0.0:8081", ":::8081"]);
        assert_eq!(
            hosts(&m(Some("127.0.0.1"), 32768, 80), true),
            ["127.0.0.1:32768"]
        );
    }

    #[test]
    fn cni_owner_marks() {
        assert_eq!(cni_container("cni:f877:eth0"), Some("f877"));
        assert_eq!(cni_container("cni:f877:eth0:pods"), Some("f877"));
        assert_eq!(cni_container("docker"), None);
        assert_eq!(cni_container("/run/netns/c1"), None);
    }
}
