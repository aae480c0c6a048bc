//! VXLAN backend (flannel-style L3 VXLAN): one VXLAN device per cluster network (`weft.<vni>`,
//! learning off, source = the public address, on the underlay device), the host's VTEP MAC
//! published in its lease, and per peer a permanent neighbour entry, an FDB entry and an
//! onlink route (see [`plan`]). Optional direct routing for peers on the same L2 segment.

pub mod device;
pub mod plan;

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;
use serde_json::json;
use weft_drivers::backend::{
    apply, connected_prefixes, peer_key, plan as plan_ops, read_owned, Backend, BackendInit,
    LocalNode, Objects, Ownership, Peer, Programmed, SyncReport,
};
use weft_drivers::netlink::Netlink;
use weft_drivers::DriverError;

use device::DeviceSpec;
use plan::{local_mac, mtu, peer_objects, Local, VTEP_MAC};

/// The backend's settings (from the cluster config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanConfig {
    /// VXLAN network id.
    pub vni: u32,
    /// UDP port.
    pub port: u16,
    /// Plain routes for peers on the same L2 segment.
    pub direct_routing: bool,
}

/// See the crate docs.
pub struct VxlanBackend {
    config: VxlanConfig,
    state: Mutex<Option<State>>,
}

struct State {
    node: LocalNode,
    spec: DeviceSpec,
    local: Local,
    /// The VXLAN device and the underlay: owned routes leave through them.
    devices: [u32; 2],
    programmed: Programmed,
}

impl State {
    fn ownership(&self) -> Ownership<'_> {
        Ownership {
            networks: &self.node.cluster_networks,
            local_subnets: &self.node.subnets,
            route_devices: &self.devices,
            entry_device: Some(self.local.device),
        }
    }
}

impl VxlanBackend {
    /// A backend that does nothing until `init`.
    pub fn new(config: VxlanConfig) -> Self {
        VxlanBackend {
            config,
            state: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spec(&self, node: &LocalNode) -> DeviceSpec {
        DeviceSpec {
            name: device::device_name(self.config.vni),
            cluster: node.cluster.clone(),
            vni: self.config.vni,
            port: self.config.port,
            local: node.public_ip,
            underlay: node.underlay_index,
            mtu: mtu(node.underlay_mtu, node.public_ip),
            mac: local_mac(self.config.vni, node.public_ip),
            addresses: node.subnets.iter().map(|s| vtep_address(*s)).collect(),
        }
    }
}

/// The VTEP address of a subnet: its network address as a host route (10.244.1.0/32).
fn vtep_address(subnet: IpNet) -> IpNet {
    let len = if subnet.addr().is_ipv4() { 32 } else { 128 };
    IpNet::new(subnet.network(), len).expect("host prefix")
}

fn not_initialized() -> DriverError {
    DriverError::Invalid("the vxlan backend is not initialized: init must run first".into())
}

impl Backend for VxlanBackend {
    fn name(&self) -> &'static str {
        "vxlan"
    }

    fn init(&self, node: &LocalNode) -> Result<BackendInit, DriverError> {
        let spec = self.spec(node);
        let mut nl = Netlink::open()?;
        let (index, changes) = device::ensure(&mut nl, &spec)?;
        for change in &changes {
            tracing::info!(cluster = %node.cluster, "{change}");
        }
        let local = Local {
            device: index,
            underlay: node.underlay_index,
            public_ip: node.public_ip,
            connected: connected_prefixes(&mut nl, node.underlay_index)?,
            direct_routing: self.config.direct_routing,
        };
        let mut state = self.state();
        let programmed = state.take().map(|s| s.programmed).unwrap_or_default();
        *state = Some(State {
            node: node.clone(),
            spec: spec.clone(),
            devices: [index, node.underlay_index],
            local,
            programmed,
        });
        Ok(BackendInit {
            data: json!({ VTEP_MAC: spec.mac.to_string() }),
            mtu: spec.mtu,
        })
    }

    fn add_or_update_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let desired = peer_objects(&state.local, peer)?;
        let mut nl = Netlink::open()?;
        state.programmed.set_peer(&mut nl, &peer_key(peer), desired)
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

    fn repair(&self) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        let mut nl = Netlink::open()?;
        if device::find(&mut nl, &state.spec)? == Some(state.local.device) {
            return Ok(Vec::new());
        }
        let (index, mut changes) = device::ensure(&mut nl, &state.spec)?;
        changes.insert(
            0,
            format!("{} was missing or replaced: re-created", state.spec.name),
        );
        state.local.device = index;
        state.devices[0] = index;
        // The old device took its entries with it; the next sync re-adds them.
        state.programmed.clear();
        Ok(changes)
    }

    fn status(&self) -> Result<serde_json::Value, DriverError> {
        let guard = self.state();
        let Some(state) = guard.as_ref() else {
            return Ok(json!({"backend": "vxlan", "initialized": false}));
        };
        let mut nl = Netlink::open()?;
        let link = nl.link_by_name(&state.spec.name)?;
        let owned = read_owned(&mut nl, &state.ownership())?;
        Ok(json!({
            "backend": "vxlan",
            "device": link,
            "vni": state.spec.vni,
            "port": state.spec.port,
            "vtep_mac": state.spec.mac,
            "direct_routing": state.local.direct_routing,
            "kernel": objects_json(&owned),
            "expected": objects_json(&state.programmed.all()),
        }))
    }

    fn teardown(&self) -> Result<(), DriverError> {
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Ok(());
        };
        let mut errors = Vec::new();
        match Netlink::open() {
            Ok(mut nl) => {
                match read_owned(&mut nl, &state.ownership()) {
                    Ok(owned) => {
                        let (_, failed) = apply(&mut nl, &plan_ops(&owned, &Objects::default()));
                        errors.extend(failed);
                    }
                    Err(e) => errors.push(e),
                }
                match nl.del_link_by_name(&state.spec.name) {
                    Ok(_) => {}
                    Err(e) => errors.push(e),
                }
            }
            Err(e) => errors.push(e),
        }
        state.programmed.clear();
        DriverError::collect(errors)
    }
}

/// Objects as lists of `ip`-like lines, for status output.
pub fn objects_json(objects: &Objects) -> serde_json::Value {
    let routes: Vec<String> = objects
        .routes
        .values()
        .map(|r| {
            format!(
                "{} via {} dev {}{}",
                r.destination,
                r.gateway,
                r.oif,
                if r.onlink { " onlink" } else { "" }
            )
        })
        .collect();
    let neighbours: Vec<String> = objects
        .neighbours
        .iter()
        .map(|((dev, ip), mac)| format!("{ip} lladdr {mac} dev {dev}"))
        .collect();
    let fdb: Vec<String> = objects
        .fdb
        .iter()
        .map(|((dev, mac), dst): (&(u32, _), &IpAddr)| format!("{mac} dst {dst} dev {dev}"))
        .collect();
    json!({"routes": routes, "neighbours": neighbours, "fdb": fdb})
}
