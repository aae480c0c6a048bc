//! From an endpoint's published ports to the DNAT entries the firewall holds.

use std::net::IpAddr;

use weft_drivers::firewall::PortTarget;
use weft_drivers::{DriverError, Endpoint, Network};

use crate::options::BridgeConfig;

/// One DNAT entry per mapping and address family. A mapping on all host addresses reaches the
/// container over both IPv4 and IPv6 when it has both; one bound to a host address uses that
/// address's family.
pub fn targets(net: &Network, ep: &Endpoint) -> Result<Vec<PortTarget>, DriverError> {
    let config = BridgeConfig::from_network(net)?;
    let v4 = ep.v4().map(IpAddr::V4);
    let v6 = ep.v6().map(IpAddr::V6);
    let mut out = Vec::new();
    for m in &ep.ports {
        let host_ip = m
            .host_ip
            .filter(|ip| !ip.is_unspecified())
            .or(config.host_binding);
        let families: Vec<IpAddr> = match host_ip {
            None => v4.into_iter().chain(v6).collect(),
            Some(IpAddr::V4(_)) => v4.into_iter().collect(),
            Some(IpAddr::V6(_)) => v6.into_iter().collect(),
        };
        if families.is_empty() {
            return Err(DriverError::Invalid(format!(
                "cannot publish {}:{}/{}: endpoint {} has no address of that family",
                host_ip.map(|i| i.to_string()).unwrap_or_default(),
                m.host_port,
                m.protocol,
                &ep.id[..12.min(ep.id.len())]
            )));
        }
        for container_ip in families {
            out.push(PortTarget {
                protocol: m.protocol,
                host_ip,
                host_port: m.host_port,
                container_ip,
                container_port: m.container_port,
            });
        }
    }
    Ok(out)
}
