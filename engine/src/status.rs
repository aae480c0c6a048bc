//! `weft status`: every network with what its driver finds wrong in the kernel, the operations
//! still pending in the intent log, and the records that cannot be read.

use serde_json::{json, Value};

use crate::error::EngineError;
use crate::records::{self, NetworkRecord};
use crate::Controller;

impl Controller {
    /// One entry per network: name, driver, endpoint count, and the problems its driver sees
    /// between the records and the kernel (empty when they agree).
    pub fn status(&self) -> Result<Vec<Value>, EngineError> {
        let _lock = self.store.lock()?;
        let mut out = Vec::new();
        for rec in self.networks()? {
            let eps = self.endpoints(&rec.network.id)?;
            let endpoints: Vec<_> = eps.iter().map(|e| e.endpoint.clone()).collect();
            let problems = match self
                .driver(&rec.network.driver)
                .and_then(|d| Ok(d.inspect_network(&rec.network, &endpoints)?))
            {
                Ok(kernel) => kernel["problems"].as_array().cloned().unwrap_or_default(),
                Err(e) => vec![json!(format!("cannot inspect: {e}"))],
            };
            out.push(json!({
                "network": rec.network.name,
                "id": rec.network.id,
                "driver": rec.network.driver,
                "origin": rec.origin,
                "endpoints": eps.len(),
                "problems": problems,
            }));
        }
        Ok(out)
    }

    /// Operations that did not finish (their process died, and settling them failed so far):
    /// what each was doing, by which process, since when.
    pub fn pending(&self) -> Result<Vec<Value>, EngineError> {
        let _lock = self.store.lock()?;
        Ok(self
            .intents()?
            .into_iter()
            .map(|(key, record)| match record {
                Ok(r) => json!({
                    "key": key,
                    "operation": r.intent.describe(),
                    "pid": r.pid,
                    "started": r.started,
                }),
                Err(e) => json!({"key": key, "error": e.to_string()}),
            })
            .collect())
    }

    /// Every record that cannot be decoded (networks, endpoints, intents): its key and why.
    /// Operations skip them; each file can be restored from a backup, or removed once what it
    /// described is gone.
    pub fn corrupt_records(&self) -> Result<Vec<(String, String)>, EngineError> {
        let mut out = Vec::new();
        let mut check = |listing: Vec<(String, Vec<u8>)>, decode: fn(&[u8]) -> Option<String>| {
            for (key, bytes) in listing {
                if let Some(reason) = decode(&bytes) {
                    out.push((key, reason));
                }
            }
        };
        fn network(bytes: &[u8]) -> Option<String> {
            serde_json::from_slice::<NetworkRecord>(bytes)
                .err()
                .map(|e| e.to_string())
        }
        fn endpoint(bytes: &[u8]) -> Option<String> {
            serde_json::from_slice::<crate::EndpointRecord>(bytes)
                .err()
                .map(|e| e.to_string())
        }
        fn intent(bytes: &[u8]) -> Option<String> {
            serde_json::from_slice::<crate::intents::IntentRecord>(bytes)
                .err()
                .map(|e| e.to_string())
        }
        check(self.store.list("networks")?, network);
        for network_id in self.store.children("endpoints")? {
            check(
                self.store.list(&records::endpoints_prefix(&network_id))?,
                endpoint,
            );
        }
        check(self.store.list(records::INTENTS)?, intent);
        Ok(out)
    }
}
