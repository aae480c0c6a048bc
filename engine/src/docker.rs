//! Docker's endpoint steps with as few durable writes as its protocol allows.
//!
//! Every store write costs fsyncs, and `docker run` pays for each one. Docker's call order makes
//! some of them redundant:
//!
//! - CreateEndpoint is followed by Join before the container can use the endpoint, and Docker
//!   never joins an endpoint it did not create in the same start. [`Controller::check_endpoint`]
//!   validates it without a write; [`Controller::create_and_join`] records it once, joined.
//!   (A weft restart between the two makes that Join fail; Docker rolls the start back.)
//! - Leave is followed by DeleteEndpoint, which removes the record. [`Controller::leave_kernel`]
//!   takes the links down and leaves the record to that removal.
//! - Endpoints come and go one at a time, so the store would create and prune the network's
//!   endpoint directory for every container. [`Controller::pin_endpoints`] keeps it while the
//!   network exists (a key in a subdirectory, which endpoint listings skip).

use tracing::info;
use weft_drivers::driver::JoinInfo;
use weft_drivers::Sandbox;

use crate::endpoints::{AddressRequest, EndpointRequest};
use crate::error::EngineError;
use crate::intents::Intent;
use crate::records::{self, load, save, EndpointRecord, NetworkRecord};
use crate::{ids, Controller};

/// `endpoints/<network id>/pin/docker`: keeps the network's endpoint directory in place.
fn pin_key(network_id: &str) -> String {
    format!("{}/pin/docker", records::endpoints_prefix(network_id))
}

impl Controller {
    /// Checks a Docker endpoint (network, id, addresses, MAC) as `create_endpoint` would, without
    /// recording it. Addresses must be `AddressRequest::Given`: Docker's IPAM chose them.
    pub fn check_endpoint(
        &self,
        network: &str,
        endpoint_id: &str,
        req: &EndpointRequest,
    ) -> Result<(), EngineError> {
        let net = self.network(network)?;
        self.docker_endpoint(&net, endpoint_id, req).map(drop)
    }

    fn docker_endpoint(
        &self,
        net: &NetworkRecord,
        endpoint_id: &str,
        req: &EndpointRequest,
    ) -> Result<EndpointRecord, EngineError> {
        if !ids::is_id(endpoint_id) {
            return Err(EngineError::Invalid(format!(
                "endpoint id {endpoint_id:?} is not 64 lowercase hex characters"
            )));
        }
        let AddressRequest::Given(addresses) = &req.addresses else {
            return Err(EngineError::Invalid(
                "a Docker endpoint carries the addresses Docker's IPAM gave it".into(),
            ));
        };
        self.unjoined_endpoint(net, endpoint_id, addresses.clone(), req, &[])
    }

    /// Records a checked endpoint and builds its links in one step, with one write. An
    /// endpoint already recorded (by `create_endpoint`, or an earlier attempt) is joined as
    /// `join` would. On failure nothing of it is left in the kernel or the store.
    pub fn create_and_join(
        &self,
        network: &str,
        endpoint_id: &str,
        req: &EndpointRequest,
        sandbox: Sandbox,
    ) -> Result<JoinInfo, EngineError> {
        let _lock = self.change()?;
        let net = self.network(network)?;
        let key = records::endpoint_key(&net.network.id, endpoint_id);
        let (mut ep, intent) = match load::<EndpointRecord>(self.store(), &key)? {
            Some(existing) => (existing, None),
            None => {
                let ep = self.docker_endpoint(&net, endpoint_id, req)?;
                let intent = self.record_intent(Intent::Connect {
                    network_id: net.network.id.clone(),
                    endpoint_id: endpoint_id.to_string(),
                    netns: None,
                })?;
                (ep, Some(intent))
            }
        };
        let driver = self.driver(&net.network.driver)?;
        let result = driver
            .join(&net.network, &ep.endpoint, &sandbox)
            .map_err(EngineError::from)
            .and_then(|info| {
                ep.endpoint.sandbox = Some(sandbox);
                ep.join = Some(info.clone());
                save(self.store(), &key, &ep).inspect_err(|_| {
                    let _ = driver.leave(&net.network, &ep.endpoint);
                })?;
                Ok(info)
            });
        if let Some(intent) = intent {
            // Joined and recorded, or failed with the links undone by the driver: the
            // addresses are Docker's IPAM's, so nothing else was claimed.
            self.forget_intent(&intent)?;
        }
        result
    }

    /// Takes the endpoint's links down without rewriting its record: Docker's DeleteEndpoint
    /// follows and removes it. The record keeps saying joined until then, which nothing acts on
    /// (reconciliation never re-creates links Docker moved). It writes nothing, so it takes no
    /// store lock: other endpoints' calls need not wait for the kernel.
    pub fn leave_kernel(&self, network: &str, endpoint_id: &str) -> Result<(), EngineError> {
        let (net, ep) = self.endpoint(network, endpoint_id)?;
        self.driver(&net.network.driver)?
            .leave(&net.network, &ep.endpoint)?;
        Ok(())
    }

    /// Keeps the network's endpoint directory while the network exists (see the module docs).
    pub fn pin_endpoints(&self, network: &str) -> Result<(), EngineError> {
        let net = self.network(network)?;
        self.store.put(&pin_key(&net.network.id), b"")?;
        Ok(())
    }

    /// Drops the pin of a removed network; absent is fine.
    pub fn unpin_endpoints(&self, network_id: &str) -> Result<(), EngineError> {
        if ids::is_id(network_id) && self.store.delete(&pin_key(network_id))? {
            info!(network = %&network_id[..12], "endpoint directory released");
        }
        Ok(())
    }
}
