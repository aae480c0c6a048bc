//! host-gw backend: a route to each peer host's subnet via that peer's public address, for
//! hosts that share one L2 segment. No device, no encapsulation: the container MTU is the
//! underlay's.

pub mod plan;

use std::sync::{Mutex, MutexGuard};

use serde_json::json;
use weft_drivers::backend::{
    apply, connected_prefixes, peer_key, plan as plan_ops, read_owned, Backend, BackendInit,
    LocalNode, Objects, Ownership, Peer, Programmed, SyncReport,
};
use weft_drivers::netlink::Netlink;
use weft_drivers::DriverError;

use plan::{peer_objects, Local};

/// See the crate docs.
#[derive(Default)]
pub struct HostGwBackend {
    state: Mutex<Option<State>>,
}

struct State {
    node: LocalNode,
    local: Local,
    programmed: Programmed,
}

impl State {
    fn ownership(&self) -> Ownership<'_> {
        Ownership {
            networks: &self.node.cluster_networks,
            local_subnets: &self.node.subnets,
            route_devices: std::slice::from_ref(&self.local.underlay),
            entry_device: None,
        }
    }
}

impl HostGwBackend {
    /// A backend that does nothing until `init`.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn not_initialized() -> DriverError {
    DriverError::Invalid("the host-gw backend is not initialized: init must run first".into())
}

impl Backend for HostGwBackend {
    fn name(&self) -> &'static str {
        "host-gw"
    }

    fn init(&self, node: &LocalNode) -> Result<BackendInit, DriverError> {
        let mut nl = Netlink::open()?;
        let underlay = nl.link_by_index(node.underlay_index)?.ok_or_else(|| {
            DriverError::Invalid(format!(
                "underlay interface {} does not exist",
                node.underlay_index
            ))
        })?;
        let local = Local {
            underlay: node.underlay_index,
            underlay_name: underlay.name,
            connected: connected_prefixes(&mut nl, node.underlay_index)?,
        };
        let mut state = self.state();
        let programmed = state.take().map(|s| s.programmed).unwrap_or_default();
        *state = Some(State {
            node: node.clone(),
            local,
            programmed,
        });
        Ok(BackendInit {
            data: serde_json::Value::Null,
            mtu: node.underlay_mtu,
        })
    }

    fn add_or_update_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let mut nl = Netlink::open()?;
        match peer_objects(&state.local, peer) {
            Ok(desired) => state.programmed.set_peer(&mut nl, &peer_key(peer), desired),
            Err(e) => {
                // Whatever it had (it moved off the segment) must not stay.
                state.programmed.remove_peer(&mut nl, &peer_key(peer))?;
                Err(e)
            }
        }
    }

    fn remove_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let mut nl = Netlink::open()?;
        state.programmed.remove_peer(&mut nl, &peer_key(peer))
    }

    fn sync_peers(&self, peers: &[Peer]) -> Result<SyncReport, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let mut nl = Netlink::open()?;
        let actual = read_owned(&mut nl, &state.ownership())?;
        let desired = peers
            .iter()
            .map(|p| (peer_key(p), peer_objects(&state.local, p)))
            .collect();
        Ok(state.programmed.sync(&mut nl, &actual, desired))
    }

    fn status(&self) -> Result<serde_json::Value, DriverError> {
        let guard = self.state();
        let Some(state) = guard.as_ref() else {
            return Ok(json!({"backend": "host-gw", "initialized": false}));
        };
        let mut nl = Netlink::open()?;
        let owned = read_owned(&mut nl, &state.ownership())?;
        let lines = |o: &Objects| -> Vec<String> {
            o.routes
                .values()
                .map(|r| format!("{} via {} dev {}", r.destination, r.gateway, r.oif))
                .collect()
        };
        Ok(json!({
            "backend": "host-gw",
            "underlay": state.local.underlay_name,
            "kernel": {"routes": lines(&owned)},
            "expected": {"routes": lines(&state.programmed.all())},
        }))
    }

    fn teardown(&self) -> Result<(), DriverError> {
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Ok(());
        };
        let mut nl = Netlink::open()?;
        let owned = read_owned(&mut nl, &state.ownership())?;
        let (_, errors) = apply(&mut nl, &plan_ops(&owned, &Objects::default()));
        state.programmed.clear();
        DriverError::collect(errors)
    }
}
