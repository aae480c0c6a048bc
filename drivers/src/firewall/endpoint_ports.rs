//! From an endpoint's published ports to DNAT entries, and bringing the kernel's entries for a
//! network back to what its endpoints publish. Shared by every driver that publishes ports.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{Firewall, NftRunner, PortTarget};
use crate::error::DriverError;
use crate::model::Endpoint;

/// One DNAT entry per mapping and address family. A mapping on all host addresses (and no
/// `default_host_ip`) reaches the container over IPv4 and, if it has one, IPv6; one bound to a
/// host address uses that address's family.
pub fn targets(
    ep: &Endpoint,
    default_host_ip: Option<IpAddr>,
) -> Result<Vec<PortTarget>, DriverError> {
    let v4 = ep.v4().map(IpAddr::V4);
    let v6 = ep.v6().map(IpAddr::V6);
    let mut out = Vec::new();
    for m in &ep.ports {
        let host_ip = m
            .host_ip
            .filter(|ip| !ip.is_unspecified())
            .or(default_host_ip);
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
                crate::names::short(&ep.id)
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

impl<R: NftRunner> Firewall<R> {
    /// The kernel's DNAT entries that lead into `subnets`.
    pub fn published_into(&self, subnets: &[IpNet]) -> Result<Vec<PortTarget>, DriverError> {
        Ok(self
            .published()?
            .into_iter()
            .filter(|p| subnets.iter().any(|s| s.contains(&p.container_ip)))
            .collect())
    }

    /// Makes the DNAT entries leading into `subnets` exactly `expected`: removes stale ones,
    /// adds missing ones. Returns one line per change.
    pub fn sync_published(
        &self,
        subnets: &[IpNet],
        expected: &[PortTarget],
    ) -> Result<Vec<String>, DriverError> {
        let expected: BTreeSet<PortTarget> = expected.iter().copied().collect();
        let present: BTreeSet<PortTarget> = self.published_into(subnets)?.into_iter().collect();
        let stale: Vec<PortTarget> = present.difference(&expected).copied().collect();
        let missing: Vec<PortTarget> = expected.difference(&present).copied().collect();
        let mut done = Vec::new();
        let mut errors = Vec::new();
        if !stale.is_empty() {
            match self.unpublish(&stale) {
                Ok(()) => done.extend(
                    stale
                        .iter()
                        .map(|p| format!("removed stale published port {p}")),
                ),
                Err(e) => errors.push(e),
            }
        }
        if !missing.is_empty() {
            match self.publish(&missing) {
                Ok(()) => done.extend(missing.iter().map(|p| format!("re-published port {p}"))),
                Err(e) => errors.push(e),
            }
        }
        DriverError::collect(errors).map(|()| done)
    }
}

impl std::fmt::Display for PortTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self
            .host_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "*".into());
        write!(
            f,
            "{host}:{}/{} -> {}:{}",
            self.host_port, self.protocol, self.container_ip, self.container_port
        )
    }
}
