//! The built-in networks `none`, `host` and `container` (for `container:<netns>`). They are not
//! stored: they exist whenever their driver is registered, with fixed ids, so a fresh state
//! directory stays empty until something is attached.

use std::collections::BTreeMap;

use weft_drivers::Network;

use crate::records::{NetworkRecord, Origin};
use crate::{ids, Controller, EngineError};

/// (network name, driver name, listed by `network ls`) — Docker lists `none` and `host`.
const BUILTIN: [(&str, &str, bool); 3] = [
    ("none", "null", true),
    ("host", "host", true),
    ("container", "container", false),
];

impl Controller {
    fn builtin_record(&self, name: &str, driver: &str) -> Option<NetworkRecord> {
        self.drivers.contains_key(driver).then(|| NetworkRecord {
            network: Network {
                id: ids::derived_id(&["builtin", name]),
                name: name.to_string(),
                driver: driver.to_string(),
                internal: false,
                enable_ipv6: false,
                subnets: Vec::new(),
                options: BTreeMap::new(),
            },
            origin: Origin::Daemon,
            pools: Vec::new(),
            labels: BTreeMap::new(),
            created: 0,
            docker_ids: Vec::new(),
        })
    }

    /// The built-in network of this name or id, if it is one.
    pub(crate) fn builtin(&self, name_or_id: &str) -> Option<NetworkRecord> {
        BUILTIN.iter().find_map(|(name, driver, _)| {
            let rec = self.builtin_record(name, driver)?;
            (name_or_id == *name || name_or_id == rec.network.id).then_some(rec)
        })
    }

    /// The built-in networks `network ls` shows.
    pub(crate) fn listed_builtins(&self) -> Vec<NetworkRecord> {
        BUILTIN
            .iter()
            .filter(|(_, _, listed)| *listed)
            .filter_map(|(name, driver, _)| self.builtin_record(name, driver))
            .collect()
    }

    pub(crate) fn refuse_builtin(&self, name_or_id: &str, what: &str) -> Result<(), EngineError> {
        match self.builtin(name_or_id) {
            Some(rec) => Err(EngineError::Invalid(format!(
                "{} is a built-in network; it cannot be {what}",
                rec.network.name
            ))),
            None => Ok(()),
        }
    }
}
