//! weft's nft firewall. weft owns the `inet weft` table and touches nothing else; every change is
//! one text transaction piped to `nft -f -` (Debian 12's nft 1.0.6 JSON input cannot express the
//! concatenated port maps).
//!
//! The static structure (sets, maps, base chains) is written idempotently with each network
//! change; per-endpoint state (published ports) lives only in map elements, so publishing the
//! 10,000th port costs what the first did. Each network's own rules live in chains named after
//! it, reached through interface-keyed verdict maps, so removing a network never touches another
//! network's rules.

pub mod docker_user;
mod elements;
mod endpoint_ports;
mod nft;
mod ruleset;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

pub use elements::ElementOp;
pub use endpoint_ports::targets as endpoint_targets;
pub use nft::{NftRunner, RecordingNft, SystemNft};
pub use ruleset::TABLE;

use crate::error::DriverError;
use crate::model::Protocol;

/// The firewall view of one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// Short, stable id used in chain names (first 12 hex of the network id).
    pub key: String,
    /// The host-side interface traffic of the network enters through (the bridge); `None` for
    /// drivers without one.
    pub interface: Option<String>,
    pub subnets: Vec<IpNet>,
    /// Masquerade traffic leaving for destinations outside every weft network.
    pub masquerade: bool,
    /// No traffic in or out except within the network.
    pub internal: bool,
    /// Cluster-wide prefixes (multi-host): never masqueraded as destinations.
    pub cluster: Vec<IpNet>,
}

/// One published port as the kernel sees it: DNAT of `host_ip:host_port` to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PortTarget {
    pub protocol: Protocol,
    /// `None`: every local address of the host.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

pub struct Firewall<R: NftRunner = SystemNft> {
    runner: R,
    /// iptables for Docker's `DOCKER-USER` chain; only with the real kernel behind `runner`.
    docker_user: Option<Box<dyn docker_user::Iptables>>,
}

impl Firewall<SystemNft> {
    pub fn system() -> Self {
        Firewall {
            runner: SystemNft,
            docker_user: Some(Box::new(docker_user::SystemIptables)),
        }
    }
}

impl<R: NftRunner> Firewall<R> {
    pub fn with_runner(runner: R) -> Self {
        Firewall {
            runner,
            docker_user: None,
        }
    }

    /// Where Docker's `DOCKER-USER` rules find the network's traffic.
    fn docker_scope(net: &NetworkRules) -> docker_user::Scope<'_> {
        match &net.interface {
            Some(interface) => docker_user::Scope::Interface(interface),
            None => docker_user::Scope::Subnets(&net.subnets),
        }
    }

    /// Accepts the network's traffic in Docker's `DOCKER-USER` chain when a dockerd's is there
    /// (see `docker_user`); repeating it adds nothing.
    fn allow_through_docker(&self, net: &NetworkRules) -> Result<(), DriverError> {
        match &self.docker_user {
            Some(ipt) => docker_user::allow(
                ipt.as_ref(),
                &docker_user::NetworkPorts {
                    scope: Self::docker_scope(net),
                    key: &net.key,
                    ipv6: net.subnets.iter().any(|s| matches!(s, IpNet::V6(_))),
                    cluster: &net.cluster,
                },
            ),
            None => Ok(()),
        }
    }

    /// Removes what `allow_through_docker` added; absent rules are not an error.
    fn revoke_from_docker(&self, net: &NetworkRules) -> Result<(), DriverError> {
        match &self.docker_user {
            Some(ipt) => docker_user::revoke(
                ipt.as_ref(),
                Self::docker_scope(net),
                &net.key,
                &net.cluster,
            ),
            None => Ok(()),
        }
    }

    pub fn runner(&self) -> &R {
        &self.runner
    }

    /// Creates (or repairs) the table's structure, then the network's rules, each in one
    /// transaction. Two, because nft 1.0.6 refuses an element of an interval verdict map in the
    /// transaction that creates the map and a rule using it.
    /// With a dockerd next door, the network's traffic is accepted in its `DOCKER-USER` chain too.
    pub fn apply_network(&self, net: &NetworkRules) -> Result<(), DriverError> {
        self.runner.run(&ruleset::base())?;
        self.runner.run(&ruleset::network_add(net))?;
        self.allow_through_docker(net)
    }

    /// Removes the network's rules and set elements (and its `DOCKER-USER` rules); absent ones
    /// are not an error. Keeps going past a failure and reports every one.
    pub fn remove_network(&self, net: &NetworkRules) -> Result<(), DriverError> {
        let mut script = ruleset::base();
        script.push_str(&ruleset::network_remove(net));
        let errors: Vec<DriverError> = [self.revoke_from_docker(net), self.runner.run(&script)]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        DriverError::collect(errors)
    }

    /// Adds DNAT entries. Fails as a whole (nothing added) if any host port is taken in the
    /// kernel; the error names the taken ones. Adding an entry that is already there is not an
    /// error.
    pub fn publish(&self, targets: &[PortTarget]) -> Result<(), DriverError> {
        if targets.is_empty() {
            return Ok(());
        }
        let ops: Vec<ElementOp> = targets.iter().copied().map(ElementOp::Add).collect();
        self.runner.elements(&ops)
    }

    /// Removes DNAT entries; absent ones are not an error, so a teardown retried after a crash
    /// half-way finishes the job. A refused one does not keep the others.
    pub fn unpublish(&self, targets: &[PortTarget]) -> Result<(), DriverError> {
        if targets.is_empty() {
            return Ok(());
        }
        let ops: Vec<ElementOp> = targets.iter().copied().map(ElementOp::Delete).collect();
        self.runner.elements(&ops)
    }

    /// Every DNAT entry in the kernel (empty when the table does not exist).
    pub fn published(&self) -> Result<Vec<PortTarget>, DriverError> {
        let mut out = Vec::new();
        for map in ruleset::PORT_MAPS {
            let json = match self.runner.list(&["map", "inet", TABLE, map]) {
                Ok(j) => j,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(e),
            };
            out.extend(ruleset::parse_port_map(&json)?);
        }
        out.sort();
        Ok(out)
    }

    /// The whole table as nft JSON, or `null` when it does not exist (for `inspect`).
    pub fn snapshot(&self) -> Result<serde_json::Value, DriverError> {
        match self.runner.list(&["table", "inet", TABLE]) {
            Ok(json) => serde_json::from_str(&json).map_err(|e| DriverError::Firewall {
                message: format!("cannot parse nft's JSON listing: {e}"),
            }),
            Err(e) if is_missing(&e) => Ok(serde_json::Value::Null),
            Err(e) => Err(e),
        }
    }

    /// Removes the whole table (when no weft network is left); absent is not an error.
    pub fn remove_all(&self) -> Result<(), DriverError> {
        self.runner.run(&format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\n"
        ))
    }
}

fn is_missing(e: &DriverError) -> bool {
    matches!(e, DriverError::Firewall { message } if message.contains("No such file or directory"))
}

#[cfg(test)]
mod tests;
