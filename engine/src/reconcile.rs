//! Start-up reconciliation: the kernel and the store's reservations brought back in line with
//! the records.

use tracing::warn;
use weft_drivers::Network;
use weft_ipam::Ipam;

use crate::error::EngineError;
use crate::records::{self, parse_endpoint_owner};
use crate::Controller;

impl Controller {
    /// Re-creates what the records say must exist and removes what nothing owns: kernel objects
    /// of unknown networks and endpoints, addresses and host ports whose endpoint is gone.
    /// Keeps going past failures; returns one line per change, or every error.
    pub fn reconcile(&self) -> Result<Vec<String>, EngineError> {
        let (_lock, settled) = self.change_settling()?;
        let mut done = settled;
        let mut errors: Vec<EngineError> = Vec::new();
        let nets = self.networks()?;
        let known: Vec<Network> = nets.iter().map(|n| n.network.clone()).collect();
        let corrupt = self.corrupt_records()?;
        if corrupt.iter().any(|(key, _)| key.starts_with("networks/")) {
            // A network whose record cannot be read still has its bridge and its containers:
            // taking them for orphans would cut those containers off.
            warn!(
                corrupt = corrupt.len(),
                "not removing orphaned kernel objects while a network record is corrupt; `weft status` lists it"
            );
        } else {
            // Every known network, of any driver: drivers share the alias scheme, so one that
            // only knew its own networks would take another driver's links for orphans.
            for driver in self.drivers.values() {
                match driver.remove_orphans(&known) {
                    Ok(lines) => done.extend(lines),
                    Err(e) => errors.push(e.into()),
                }
            }
        }
        for net in &nets {
            let eps: Vec<_> = self
                .endpoints(&net.network.id)?
                .into_iter()
                .map(|e| e.endpoint)
                .collect();
            match self
                .driver(&net.network.driver)
                .and_then(|d| Ok(d.reconcile(&net.network, &eps)?))
            {
                Ok(lines) => done.extend(
                    lines
                        .into_iter()
                        .map(|l| format!("network {}: {l}", net.network.name)),
                ),
                Err(e) => errors.push(e),
            }
        }
        done.extend(self.release_orphan_addresses()?);
        done.extend(self.release_orphan_ports()?);
        if corrupt.is_empty() {
            done.extend(self.release_orphan_pools(&nets)?);
        }
        if errors.is_empty() {
            Ok(done)
        } else {
            for e in &errors {
                warn!(error = %e, "reconcile");
            }
            Err(EngineError::System(format!(
                "reconciliation left {} problem(s): {}",
                errors.len(),
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
    }

    /// Whether the endpoint `owner` names still counts: its record exists, or an operation on
    /// it is still pending (its intent could not be settled yet, so it may hold kernel state).
    fn endpoint_exists(&self, owner: &str) -> Result<bool, EngineError> {
        match parse_endpoint_owner(owner) {
            Some((net, ep)) => Ok(self.store.get(&records::endpoint_key(net, ep))?.is_some()
                || self
                    .store
                    .get(&records::endpoint_intent_key(net, ep))?
                    .is_some()),
            // Gateways and other owners are not endpoints.
            None => Ok(true),
        }
    }

    fn release_orphan_addresses(&self) -> Result<Vec<String>, EngineError> {
        let ipam = Ipam::new(self.store());
        let mut done = Vec::new();
        for pool in ipam.pools()? {
            for (addr, owner) in ipam.allocated(&pool.id)? {
                if !self.endpoint_exists(&owner)? {
                    ipam.release_address(&pool.id, addr)?;
                    done.push(format!("released address {addr} of vanished {owner}"));
                }
            }
        }
        Ok(done)
    }

    fn release_orphan_ports(&self) -> Result<Vec<String>, EngineError> {
        let mut done = Vec::new();
        for proto in self.store.children("ports")? {
            for port in self.store.children(&format!("ports/{proto}"))? {
                for (key, owner) in self.store.list(&format!("ports/{proto}/{port}"))? {
                    let owner = String::from_utf8_lossy(&owner).into_owned();
                    if !self.endpoint_exists(&owner)? {
                        self.store.delete(&key)?;
                        done.push(format!(
                            "released host port {port}/{proto} of vanished {owner}"
                        ));
                    }
                }
            }
        }
        Ok(done)
    }

    /// Pools weft made for a network (owner `network NAME (ID)`) that no network record lists:
    /// left when a record was lost. Not while an intent is pending (it may be that create's).
    fn release_orphan_pools(
        &self,
        nets: &[crate::NetworkRecord],
    ) -> Result<Vec<String>, EngineError> {
        if !self.intents()?.is_empty() {
            return Ok(Vec::new());
        }
        let ipam = Ipam::new(self.store());
        let mut done = Vec::new();
        for pool in ipam.pools()? {
            if records::is_network_pool_owner(&pool.owner)
                && !nets.iter().any(|n| n.pools.contains(&pool.id))
            {
                ipam.release_pool(&pool.id)?;
                done.push(format!(
                    "released pool {} of vanished {}",
                    pool.subnet, pool.owner
                ));
            }
        }
        Ok(done)
    }
}
