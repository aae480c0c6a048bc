//! The controller (libnetwork's word): networks, endpoints and sandboxes as records;
//! orchestrates IPAM, the store and the registered drivers. The one API that the Docker
//! handlers, the CNI commands and the CLI all call.
//!
//! Every public operation holds the store lock from its first read to its last write, so the
//! CLI, the daemon and concurrent CNI invocations see each other's changes whole. Kernel work
//! happens through the drivers while the lock is held; a failure undoes what the operation did
//! (kernel and store) before the error is returned, and a crash is settled by the next
//! operation through the intent log (see `intents` and `recovery`).

mod aliases;
mod builtin;
mod cni;
mod docker;
mod endpoints;
mod error;
pub mod ids;
pub mod intents;
mod networks;
pub mod ports;
mod reconcile;
pub mod records;
mod recovery;
mod status;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_drivers::firewall::Firewall;
use weft_drivers::NetworkDriver;
use weft_ipam::Store;

pub use aliases::{AliasRecord, CLUSTER_LABEL};
pub use cni::GcReport;
pub use endpoints::{AddressRequest, ConnectRequest, EndpointRequest};
pub use error::{EngineError, ErrorClass};
pub use networks::{IpamRequest, NetworkRequest, DEFAULT_NETWORK};
pub use ports::PortSpec;
pub use records::{EndpointRecord, NetworkRecord, Origin};

pub struct Controller {
    store: Arc<dyn Store>,
    drivers: BTreeMap<&'static str, Arc<dyn NetworkDriver>>,
    /// Set when weft's nft table should go away with the last network (None in unit tests).
    firewall: Option<Firewall>,
    /// Ports published as 0 are picked from this range.
    ephemeral_ports: (u16, u16),
}

impl Controller {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Controller {
            store,
            drivers: BTreeMap::new(),
            firewall: None,
            ephemeral_ports: ports::ephemeral_range(),
        }
    }

    pub fn register(&mut self, driver: Arc<dyn NetworkDriver>) {
        self.drivers.insert(driver.name(), driver);
    }

    /// Lets the controller remove weft's whole nft table once no network is left.
    pub fn set_firewall(&mut self, firewall: Firewall) {
        self.firewall = Some(firewall);
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn driver_names(&self) -> Vec<&'static str> {
        self.drivers.keys().copied().collect()
    }

    fn driver(&self, name: &str) -> Result<&dyn NetworkDriver, EngineError> {
        self.drivers.get(name).map(|d| d.as_ref()).ok_or_else(|| {
            EngineError::Invalid(format!(
                "unknown network driver {name:?}; available: {}",
                self.driver_names().join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests;
