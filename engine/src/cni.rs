//! Garbage collection of one network's endpoints (CNI's GC): endpoints the consumer no longer
//! knows are taken down, then whatever nothing owns any more — leaked interfaces and published
//! ports of the network, addresses and host ports of vanished endpoints — is removed too.

use tracing::warn;
use weft_ipam::Ipam;

use crate::error::EngineError;
use crate::records::{self, parse_endpoint_owner};
use crate::{Controller, EndpointRecord};

/// What a garbage collection did, and every failure it kept going past.
#[derive(Debug, Default)]
pub struct GcReport {
    /// One line per change.
    pub done: Vec<String>,
    pub errors: Vec<EngineError>,
    /// Endpoints the network still has.
    pub remaining: usize,
}

impl Controller {
    /// Takes down every endpoint of `network` that `keep` rejects, then removes the network's
    /// leaked kernel objects and the reservations of endpoints that are gone. Keeps going past
    /// failures and reports them all; fails outright only if the network cannot be read.
    pub fn collect_garbage(
        &self,
        network: &str,
        keep: &dyn Fn(&EndpointRecord) -> bool,
    ) -> Result<GcReport, EngineError> {
        let _lock = self.store.lock()?;
        let net = self.network(network)?;
        let id = net.network.id.clone();
        let mut report = GcReport::default();
        for ep in self.endpoints(&id)? {
            if keep(&ep) {
                continue;
            }
            match self.delete_endpoint(&id, &ep.endpoint.id) {
                Ok(()) => report.done.push(format!(
                    "removed endpoint {} of {}",
                    &ep.endpoint.id[..12],
                    ep.owner
                )),
                Err(e) => report.errors.push(e),
            }
        }
        let remaining: Vec<_> = self
            .endpoints(&id)?
            .into_iter()
            .map(|e| e.endpoint)
            .collect();
        report.remaining = remaining.len();
        match self
            .driver(&net.network.driver)
            .and_then(|d| Ok(d.reconcile(&net.network, &remaining)?))
        {
            Ok(lines) => report.done.extend(lines),
            Err(e) => report.errors.push(e),
        }
        if let Err(e) = self.release_vanished(&id, &net.pools, &mut report.done) {
            report.errors.push(e);
        }
        for e in &report.errors {
            warn!(network = %net.network.name, error = %e, "garbage collection");
        }
        Ok(report)
    }

    /// Whether `owner` names an endpoint of `network_id` whose record is gone.
    fn vanished_on(&self, network_id: &str, owner: &str) -> Result<bool, EngineError> {
        match parse_endpoint_owner(owner) {
            Some((net, ep)) if net == network_id => {
                Ok(self.store.get(&records::endpoint_key(net, ep))?.is_none())
            }
            _ => Ok(false),
        }
    }

    /// Addresses in the network's pools and host ports held by endpoints of it that are gone.
    fn release_vanished(
        &self,
        network_id: &str,
        pools: &[String],
        done: &mut Vec<String>,
    ) -> Result<(), EngineError> {
        let ipam = Ipam::new(self.store());
        for pool in pools {
            for (addr, owner) in ipam.allocated(pool)? {
                if self.vanished_on(network_id, &owner)? {
                    ipam.release_address(pool, addr)?;
                    done.push(format!("released address {addr} of vanished {owner}"));
                }
            }
        }
        for proto in self.store.children("ports")? {
            for port in self.store.children(&format!("ports/{proto}"))? {
                for (key, owner) in self.store.list(&format!("ports/{proto}/{port}"))? {
                    let owner = String::from_utf8_lossy(&owner).into_owned();
                    if self.vanished_on(network_id, &owner)? {
                        self.store.delete(&key)?;
                        done.push(format!(
                            "released host port {port}/{proto} of vanished {owner}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
