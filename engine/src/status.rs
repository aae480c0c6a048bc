//! `weft status`: every network with what its driver finds wrong in the kernel.

use serde_json::{json, Value};

use crate::error::EngineError;
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
}
