//! host-gw backend: a route to each peer host's subnet via that peer's public address, for
//! hosts that share one L2 segment. No device, no encapsulation: the container MTU is the
//! underlay's. A peer off the segment gets unreachable routes for its subnets instead (see
//! [`plan`]).

pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;
use serde_json::json;
use weft_drivers::backend::{
    apply, connected_prefixes, peer_key, plan as plan_ops, read_owned, Backend, BackendInit,
    LocalNode, Objects, Ownership, Peer, Programmed, SyncReport, MAIN_TABLE, ROUTE_PROTOCOL,
};
use weft_drivers::netlink::{Netlink, Route, RouteKind};
use weft_drivers::DriverError;

use plan::{peer_objects, unreachable_diff, unreachable_subnets, Local};

/// See the crate docs.
#[derive(Default)]
pub struct HostGwBackend {
    state: Mutex<Option<State>>,
}

struct State {
    node: LocalNode,
    local: Local,
    programmed: Programmed,
    /// The unreachable routes installed for off-segment peers, by peer key.
    unreachable: BTreeMap<String, BTreeSet<IpNet>>,
}

impl State {
    /// Every unreachable route some peer needs.
    fn unreachable_wanted(&self) -> BTreeSet<IpNet> {
        self.unreachable.values().flatten().copied().collect()
    }

    /// Files `desired` as the unreachable routes of the peer under `key` and makes the kernel
    /// match: every desired one (re-)asserted, the peer's former ones that no other peer needs
    /// removed.
    fn set_unreachable(
        &mut self,
        nl: &mut Netlink,
        key: &str,
        desired: BTreeSet<IpNet>,
    ) -> (Vec<String>, Vec<DriverError>) {
        let previous = self.unreachable.remove(key).unwrap_or_default();
        let others = self.unreachable_wanted();
        let stale: Vec<IpNet> = previous
            .difference(&desired)
            .filter(|s| !others.contains(s))
            .copied()
            .collect();
        let add: Vec<IpNet> = desired.iter().copied().collect();
        if !desired.is_empty() {
            self.unreachable.insert(key.to_string(), desired);
        }
        apply_unreachable(nl, &add, &stale)
    }

    /// The unreachable routes the kernel has that are this backend's: main table, proto 87,
    /// into a cluster network, not into one of this host's subnets.
    fn read_unreachable(&self, nl: &mut Netlink) -> Result<BTreeSet<IpNet>, DriverError> {
        Ok(nl
            .unreachable_routes(MAIN_TABLE)?
            .into_iter()
            .filter(|r| r.protocol == ROUTE_PROTOCOL)
            .map(|r| r.destination)
            .filter(|d| {
                self.node.cluster_networks.iter().any(|n| n.contains(d))
                    && !self.node.subnets.iter().any(|s| s.contains(d))
            })
            .collect())
    }

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
        let (programmed, unreachable) = state
            .take()
            .map(|s| (s.programmed, s.unreachable))
            .unwrap_or_default();
        *state = Some(State {
            node: node.clone(),
            local,
            programmed,
            unreachable,
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
        let key = peer_key(peer);
        match peer_objects(&state.local, peer) {
            Ok(desired) => {
                // `ip route replace` turns an unreachable route into the route via the peer
                // in one step; the unreachable ones it had are then gone or stale.
                let mut done = state.programmed.set_peer(&mut nl, &key, desired)?;
                let (removed, errors) = state.set_unreachable(&mut nl, &key, BTreeSet::new());
                done.extend(removed);
                DriverError::collect(errors).map(|()| done)
            }
            Err(e) => {
                // Whatever it had (it moved off the segment) must not stay, and its subnets
                // must fail fast rather than follow the default route.
                state.programmed.remove_peer(&mut nl, &key)?;
                let desired = unreachable_subnets(&state.local, peer);
                let (_, mut errors) = state.set_unreachable(&mut nl, &key, desired);
                if errors.is_empty() {
                    return Err(e);
                }
                errors.insert(0, e);
                Err(DriverError::Many(errors))
            }
        }
    }

    fn remove_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let mut nl = Netlink::open()?;
        let key = peer_key(peer);
        let mut done = state.programmed.remove_peer(&mut nl, &key)?;
        let (removed, errors) = state.set_unreachable(&mut nl, &key, BTreeSet::new());
        done.extend(removed);
        DriverError::collect(errors).map(|()| done)
    }

    fn sync_peers(&self, peers: &[Peer]) -> Result<SyncReport, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let mut nl = Netlink::open()?;
        let actual = read_owned(&mut nl, &state.ownership())?;
        let actual_unreachable = state.read_unreachable(&mut nl)?;
        let desired = peers
            .iter()
            .map(|p| (peer_key(p), peer_objects(&state.local, p)))
            .collect();
        // Routes via peers first: for a peer back on the segment the replace takes over its
        // unreachable route in one step, and the removal below then finds it gone.
        let mut report = state.programmed.sync(&mut nl, &actual, desired);
        state.unreachable = peers
            .iter()
            .map(|p| (peer_key(p), unreachable_subnets(&state.local, p)))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let (add, remove) = unreachable_diff(&actual_unreachable, &state.unreachable_wanted());
        let (done, errors) = apply_unreachable(&mut nl, &add, &remove);
        report.changes.extend(done);
        report.problems.extend(errors);
        Ok(report)
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
        let unreachable = |s: BTreeSet<IpNet>| -> Vec<String> {
            s.iter().map(|d| format!("unreachable {d}")).collect()
        };
        Ok(json!({
            "backend": "host-gw",
            "underlay": state.local.underlay_name,
            "kernel": {
                "routes": lines(&owned),
                "unreachable": unreachable(state.read_unreachable(&mut nl)?),
            },
            "expected": {
                "routes": lines(&state.programmed.all()),
                "unreachable": unreachable(state.unreachable_wanted()),
            },
        }))
    }

    fn teardown(&self) -> Result<(), DriverError> {
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Ok(());
        };
        let mut nl = Netlink::open()?;
        let owned = read_owned(&mut nl, &state.ownership())?;
        let (_, mut errors) = apply(&mut nl, &plan_ops(&owned, &Objects::default()));
        state.programmed.clear();
        let stale: Vec<IpNet> = state.read_unreachable(&mut nl)?.into_iter().collect();
        errors.extend(apply_unreachable(&mut nl, &[], &stale).1);
        state.unreachable.clear();
        DriverError::collect(errors)
    }
}

/// `ip route replace unreachable DEST proto 87` for `add`, `ip route del unreachable DEST proto
/// 87` for `remove` (one already gone is fine); what was done and what failed. Every item is
/// tried.
fn apply_unreachable(
    nl: &mut Netlink,
    add: &[IpNet],
    remove: &[IpNet],
) -> (Vec<String>, Vec<DriverError>) {
    let route = |destination: IpNet| {
        let mut r = Route::new(destination);
        r.kind = RouteKind::Unreachable;
        r.protocol = ROUTE_PROTOCOL;
        r.table = MAIN_TABLE;
        r
    };
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for &d in remove {
        match nl.del_route(&route(d)) {
            Ok(()) => done.push(format!("del unreachable {d}")),
            Err(e) if e.errno() == Some(ESRCH) => {}
            Err(e) => errors.push(e),
        }
    }
    for &d in add {
        match nl.replace_route(&route(d)) {
            Ok(()) => done.push(format!("replace unreachable {d}")),
            Err(e) => errors.push(e),
        }
    }
    (done, errors)
}

/// ESRCH: what the kernel answers a delete of a route it does not have (here: one an
/// `ip route replace` via the peer already took over).
const ESRCH: i32 = 3;
