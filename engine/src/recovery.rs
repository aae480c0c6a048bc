//! Settling intents that dead processes left (see `intents`): an operation that did not commit
//! is undone from what it had claimed — found by owner, so nothing it claimed can leak — and a
//! removal that began is finished. Each step is idempotent, so a recovery that is itself killed
//! is simply done again by the next command.

use ipnet::IpNet;
use tracing::{info, warn};
use weft_drivers::{Endpoint, MacAddr, Network, SubnetInfo};
use weft_ipam::Ipam;

use crate::error::EngineError;
use crate::intents::Intent;
use crate::records::{self, endpoint_owner, load, NetworkRecord};
use crate::{ports, Controller, EndpointRecord};

impl Controller {
    /// Settles every intent in the log; the caller holds the lock as the outermost operation, so
    /// each one is stale. Keeps going past failures (an intent that cannot be settled stays and
    /// is tried again by the next command) and returns one line per intent settled.
    pub(crate) fn settle_stale_intents(&self) -> Vec<String> {
        let intents = match self.intents() {
            Ok(intents) => intents,
            Err(e) => {
                warn!(error = %e, "cannot read the intent log");
                return Vec::new();
            }
        };
        let mut done = Vec::new();
        for (key, record) in intents {
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    warn!(%key, error = %e, "unreadable intent left in place; `weft status` lists it");
                    continue;
                }
            };
            let what = record.intent.describe();
            match self
                .settle(&record.intent)
                .and_then(|line| self.forget_intent(&record.intent).map(|()| line))
            {
                Ok(line) => {
                    info!(intent = %what, pid = record.pid, "{line}");
                    done.push(line);
                }
                Err(e) => warn!(intent = %what, pid = record.pid, error = %e,
                    "cannot settle an interrupted operation yet; the next command tries again"),
            }
        }
        done
    }

    fn settle(&self, intent: &Intent) -> Result<String, EngineError> {
        match intent {
            Intent::CreateNetwork { .. } => self.undo_create_network(intent),
            Intent::RemoveNetwork { id } => self.finish_network_removal(id),
            Intent::Connect {
                network_id,
                endpoint_id,
                ..
            } => self.undo_connect(network_id, endpoint_id),
            Intent::Publish {
                network_id,
                endpoint_id,
            } => self.undo_publish(network_id, endpoint_id),
            Intent::Disconnect {
                network_id,
                endpoint_id,
            } => self.finish_disconnect(network_id, endpoint_id),
        }
    }

    /// A create that did not commit: its kernel objects, pools and name go.
    fn undo_create_network(&self, intent: &Intent) -> Result<String, EngineError> {
        let Intent::CreateNetwork {
            id,
            name,
            driver,
            internal,
            enable_ipv6,
            options,
            pool_owner,
        } = intent
        else {
            unreachable!("called for CreateNetwork only");
        };
        if self.store.get(&records::network_key(id))?.is_some() {
            return Ok(format!("network {name}: its creation had committed"));
        }
        let ipam = Ipam::new(self.store());
        let pools: Vec<_> = ipam
            .pools()?
            .into_iter()
            .filter(|p| &p.owner == pool_owner)
            .collect();
        let mut subnets = Vec::new();
        for pool in &pools {
            let gateway = ipam
                .allocated(&pool.id)?
                .into_iter()
                .find(|(_, owner)| owner == weft_ipam::GATEWAY_OWNER)
                .and_then(|(addr, _)| IpNet::new(addr, pool.subnet.prefix_len()).ok());
            subnets.push(SubnetInfo {
                subnet: pool.subnet,
                gateway,
                ip_range: pool.ip_range,
                pool_id: pool.id.clone(),
            });
        }
        let network = Network {
            id: id.clone(),
            name: name.clone(),
            driver: driver.clone(),
            internal: *internal,
            enable_ipv6: *enable_ipv6,
            subnets,
            options: options.clone(),
        };
        self.driver(driver)?.delete_network(&network)?;
        for pool in &pools {
            ipam.release_pool(&pool.id)?;
        }
        let name_key = records::name_key(name);
        if self.store.get(&name_key)?.as_deref() == Some(id.as_bytes()) {
            self.store.delete(&name_key)?;
        }
        Ok(format!(
            "network {name}: undid its interrupted creation ({} pool(s) released)",
            pools.len()
        ))
    }

    /// A removal that began: finished.
    fn finish_network_removal(&self, id: &str) -> Result<String, EngineError> {
        match load::<NetworkRecord>(self.store(), &records::network_key(id))? {
            Some(rec) => {
                self.remove_network(&rec)?;
                Ok(format!(
                    "network {}: finished its interrupted removal",
                    rec.network.name
                ))
            }
            None => Ok(format!(
                "network {}: its removal had committed",
                weft_drivers::names::short(id)
            )),
        }
    }

    /// A connect that did not commit: what it claimed (addresses and host ports of its owner)
    /// and built (links, published ports) goes.
    fn undo_connect(&self, network_id: &str, endpoint_id: &str) -> Result<String, EngineError> {
        let short = weft_drivers::names::short(endpoint_id);
        if self
            .store
            .get(&records::endpoint_key(network_id, endpoint_id))?
            .is_some()
        {
            return Ok(format!("endpoint {short}: its connect had committed"));
        }
        let owner = endpoint_owner(network_id, endpoint_id);
        let held_ports = ports::owned_by(self.store(), &owner)?;
        let Some(net) = load::<NetworkRecord>(self.store(), &records::network_key(network_id))?
        else {
            // The network went (and its pools with it): only host ports can be left.
            ports::release(self.store(), &held_ports)?;
            return Ok(format!(
                "endpoint {short}: released {} host port(s) of an interrupted connect",
                held_ports.len()
            ));
        };
        let leases = self.leases_of(&net, &owner)?;
        let endpoint = Endpoint {
            id: endpoint_id.to_string(),
            network_id: network_id.to_string(),
            addresses: leases.iter().map(|(_, a)| *a).collect(),
            mac: MacAddr([0; 6]),
            ifname: String::new(),
            ports: held_ports.clone(),
            sandbox: None,
            options: Default::default(),
        };
        let driver = self.driver(&net.network.driver)?;
        let mut errors = Vec::new();
        if !endpoint.ports.is_empty() {
            if let Err(e) = driver.revoke_external_connectivity(&net.network, &endpoint) {
                errors.push(e);
            }
        }
        if let Err(e) = driver.leave(&net.network, &endpoint) {
            errors.push(e);
        }
        weft_drivers::DriverError::collect(errors)?;
        ports::release(self.store(), &held_ports)?;
        let pooled: Vec<_> = leases.iter().map(|(p, a)| (p.clone(), a.addr())).collect();
        self.release_leases(&pooled)?;
        Ok(format!(
            "endpoint {short} on network {}: undid an interrupted connect ({} address(es), {} host port(s) released)",
            net.network.name,
            leases.len(),
            held_ports.len()
        ))
    }

    /// New ports that did not commit: the endpoint is left with none published (the consumer's
    /// call failed, so it does not count on any).
    fn undo_publish(&self, network_id: &str, endpoint_id: &str) -> Result<String, EngineError> {
        let short = weft_drivers::names::short(endpoint_id);
        let key = records::endpoint_key(network_id, endpoint_id);
        let owner = endpoint_owner(network_id, endpoint_id);
        let Some(mut ep) = load::<EndpointRecord>(self.store(), &key)? else {
            let held = ports::owned_by(self.store(), &owner)?;
            ports::release(self.store(), &held)?;
            return Ok(format!("endpoint {short}: gone; released its host ports"));
        };
        let net = load::<NetworkRecord>(self.store(), &records::network_key(network_id))?
            .ok_or_else(|| EngineError::not_found("network", network_id, ""))?;
        let mut held = ports::owned_by(self.store(), &owner)?;
        for m in &ep.endpoint.ports {
            if !held.contains(m) {
                held.push(*m);
            }
        }
        ep.endpoint.ports = held;
        self.unpublish(&net, &mut ep)?;
        self.save_endpoint(&ep)?;
        Ok(format!(
            "endpoint {short}: unpublished the ports of an interrupted publish"
        ))
    }

    /// A disconnect that began: finished.
    fn finish_disconnect(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<String, EngineError> {
        let short = weft_drivers::names::short(endpoint_id);
        let key = records::endpoint_key(network_id, endpoint_id);
        let Some(ep) = load::<EndpointRecord>(self.store(), &key)? else {
            return Ok(format!("endpoint {short}: its disconnect had committed"));
        };
        let net = load::<NetworkRecord>(self.store(), &records::network_key(network_id))?
            .ok_or_else(|| EngineError::not_found("network", network_id, ""))?;
        self.teardown(&net, &ep)?;
        self.store.delete(&key)?;
        Ok(format!(
            "endpoint {short} on network {}: finished an interrupted disconnect",
            net.network.name
        ))
    }

    /// Addresses of the network's pools that `owner` holds, with the subnet's prefix length.
    pub(crate) fn leases_of(
        &self,
        net: &NetworkRecord,
        owner: &str,
    ) -> Result<Vec<(String, IpNet)>, EngineError> {
        let ipam = Ipam::new(self.store());
        let mut out = Vec::new();
        for s in &net.network.subnets {
            if !net.pools.contains(&s.pool_id) {
                continue;
            }
            for (addr, holder) in ipam.allocated(&s.pool_id)? {
                if holder == owner {
                    let addr = IpNet::new(addr, s.subnet.prefix_len())
                        .expect("an address of the pool's subnet");
                    out.push((s.pool_id.clone(), addr));
                }
            }
        }
        Ok(out)
    }
}
