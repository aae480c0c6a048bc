//! The `bgp` backend: weft's own speaker as a [`Backend`] of a cluster network.
//!
//! - `init` makes the tunnel device the encapsulation needs (an IPIP tunnel fails here,
//!   before anything else is made, on a kernel without ipip), starts the route programmer and
//!   the speaker, announces the host's subnets and installs a blackhole route for each (proto
//!   87, at a low priority so the local network's own route wins) so that unused addresses
//!   never leak toward a default route — unless the configuration leaves that to the local
//!   network (`blackhole` off: the routed driver keeps its own). It returns the container MTU
//!   and what the other hosts need: the VTEP MAC for VXLAN, and whether this host is a route
//!   reflector.
//! - The cluster's hosts, as the agent reports them, become neighbours ([`topology`]): all of
//!   them in a full mesh, only the route reflectors otherwise (a reflector takes every host
//!   as its client); external peers come from the configuration. Each host's address also
//!   decides the path of the routes whose next hop it is ([`encap`]).
//! - Learned routes go to the kernel through [`crate::kernel`].
//!
//! # Calling from async code
//!
//! The methods are synchronous. They never enter the caller's runtime: the speaker runs on
//! a runtime of its own ([`runtime`]) and the kernel is written by a thread of its own, so a
//! call only waits for a channel answer or a netlink request (milliseconds). An async
//! caller should still make the calls through `tokio::task::spawn_blocking`, like any
//! blocking I/O. Everything the backend starts lives in the network namespace of the thread
//! that calls `init`.

pub mod config;
pub mod device;
pub mod encap;
pub mod runtime;
pub mod topology;

pub use config::{BgpBackendConfig, Encapsulation, ExternalPeer, Tunnel};

use crate::error::Error;
use crate::fsm::State as SessionState;
use crate::kernel::{
    ProgrammedRoute, ProgrammerConfig, ProgrammerStatus, Resolver, RouteProgrammer, Scope,
};
use crate::rib::LocRoute;
use crate::speaker::SpeakerConfig;
use device::DeviceSpec;
use encap::Local;
use ipnet::IpNet;
use runtime::SpeakerHost;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use weft_drivers::backend::{
    connected_prefixes, peer_key, read_owned, Backend, BackendInit, LocalNode, Ownership, Peer,
    Programmed, SyncReport, MAIN_TABLE, ROUTE_PROTOCOL,
};
use weft_drivers::netlink::{Netlink, Route, RouteKind};
use weft_drivers::{DriverError, MacAddr};

/// Priority of the blackhole route for the host's own subnets: far behind the local
/// network's route to the same subnet (a bridge's connected route, metric 0), so it only
/// catches what nothing else routes.
pub const BLACKHOLE_METRIC: u32 = 1_000_000;

/// One neighbour as `weft bgp status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NeighbourStatus {
    /// Its address.
    pub address: IpAddr,
    /// Its AS.
    pub remote_as: u32,
    /// `mesh`, `route-reflector`, `rr-client` or `external`.
    pub role: &'static str,
    /// Session state.
    pub state: SessionState,
    /// Seconds since the session came up.
    pub uptime_secs: Option<u64>,
    /// Prefixes accepted from it.
    pub prefixes_received: usize,
    /// Prefixes advertised to it.
    pub prefixes_sent: usize,
    /// Why the session last went down.
    pub last_error: Option<String>,
    /// How often the session went down.
    pub flaps: u32,
}

/// The routes, as `weft bgp routes` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct RoutesView {
    /// The Loc-RIB (own and learned best paths).
    pub rib: Vec<LocRoute>,
    /// What the programmer keeps in the kernel, with the kernel's refusals.
    pub kernel: Vec<ProgrammedRoute>,
}

/// See the module docs.
pub struct BgpBackend {
    config: BgpBackendConfig,
    state: Mutex<Option<State>>,
}

struct State {
    node: LocalNode,
    router_id: Ipv4Addr,
    netlink: Netlink,
    devices: Vec<DeviceSpec>,
    local: Local,
    vtep: Option<MacAddr>,
    mtu: u32,
    host: SpeakerHost,
    programmer: RouteProgrammer,
    /// The cluster's other hosts, by [`peer_key`].
    hosts: BTreeMap<String, Peer>,
    resolver: Resolver,
    /// The VXLAN neighbour and FDB entries per host.
    entries: Programmed,
    /// Whether this backend owns the blackhole routes of the host's subnets.
    blackhole: bool,
}

impl BgpBackend {
    /// A backend that does nothing until `init`.
    pub fn new(config: BgpBackendConfig) -> Self {
        BgpBackend {
            config,
            state: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BgpBackendConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every neighbour with its session state and prefix counts.
    pub fn neighbours(&self) -> Result<Vec<NeighbourStatus>, DriverError> {
        let guard = self.state();
        let state = guard.as_ref().ok_or_else(not_initialized)?;
        state.neighbours(&self.config)
    }

    /// The Loc-RIB and the kernel routes.
    pub fn routes(&self) -> Result<RoutesView, DriverError> {
        let guard = self.state();
        let state = guard.as_ref().ok_or_else(not_initialized)?;
        let rib = state
            .host
            .call(|s| async move { s.loc_rib().await })
            .and_then(|r| r)
            .map_err(driver_error)?;
        let kernel = state.programmer.routes().map_err(driver_error)?;
        Ok(RoutesView { rib, kernel })
    }

    /// The route programmer's counters.
    pub fn kernel_status(&self) -> Result<ProgrammerStatus, DriverError> {
        let guard = self.state();
        let state = guard.as_ref().ok_or_else(not_initialized)?;
        state.programmer.status().map_err(driver_error)
    }

    /// Waits until the route changes the speaker produced so far are in the kernel (for
    /// tests and benchmarks; the speaker's own queue is not covered).
    pub fn flush(&self) -> Result<(), DriverError> {
        let guard = self.state();
        let state = guard.as_ref().ok_or_else(not_initialized)?;
        state.programmer.flush().map_err(driver_error)
    }

    /// What the other hosts learn about this one from its lease.
    fn published(&self, state: &State) -> serde_json::Value {
        encap::published(state.vtep, self.config.route_reflector_cluster_id.is_some())
    }

    fn start(&self, node: &LocalNode, hosts: BTreeMap<String, Peer>) -> Result<State, DriverError> {
        let cfg = &self.config;
        let router_id = topology::router_id(cfg, node).map_err(DriverError::Invalid)?;
        let mut netlink = Netlink::open()?;
        let vtep = cfg
            .uses_vxlan()
            .then(|| encap::local_mac(cfg.vxlan_vni, node.public_ip));
        let devices = device_specs(cfg, node, vtep)?;
        let mut undo = Undo::default();
        let mut local = Local {
            connected: connected_prefixes(&mut netlink, node.underlay_index)?,
            ..Local::default()
        };
        for spec in &devices {
            let (index, changes) = match device::ensure(&mut netlink, spec) {
                Ok(made) => made,
                Err(e) => return Err(undo.run(&mut netlink, e)),
            };
            undo.devices.push(spec.name());
            log_changes(&node.cluster, &changes);
            match spec {
                DeviceSpec::Vxlan { .. } => local.vxlan = Some(index),
                DeviceSpec::Ipip { .. } => local.ipip = Some(index),
            }
        }
        let resolver = encap::resolver(cfg, &local, hosts.values());
        let programmer = match RouteProgrammer::start(
            ProgrammerConfig {
                scope: scope(cfg, node),
                startup_grace: Duration::from_secs(cfg.startup_grace.into()),
            },
            resolver.clone(),
        ) {
            Ok(p) => p,
            Err(e) => return Err(undo.run(&mut netlink, driver_error(e))),
        };
        let hosts_list: Vec<Peer> = hosts.values().cloned().collect();
        let speaker_cfg = SpeakerConfig {
            local_as: cfg.asn,
            router_id,
            listen: Some(SocketAddr::new(node.public_ip, cfg.port)),
            cluster_id: cfg.route_reflector_cluster_id,
            connect_retry: Duration::from_secs(cfg.connect_retry.into()),
            idle_hold: Duration::from_secs(cfg.connect_retry.clamp(1, 5).into()),
            graceful_restart: (cfg.graceful_restart > 0).then_some(cfg.graceful_restart),
            peers: topology::neighbours(cfg, node, &hosts_list)
                .into_values()
                .collect(),
        };
        let host = match SpeakerHost::start(speaker_cfg, programmer.sender()) {
            Ok(h) => h,
            Err(e) => {
                let _ = programmer.stop(false);
                return Err(undo.run(&mut netlink, driver_error(e)));
            }
        };
        let mut state = State {
            node: node.clone(),
            router_id,
            netlink,
            devices,
            local,
            vtep,
            mtu: cfg.container_mtu(node.underlay_mtu, node.public_ip.is_ipv6()),
            host,
            programmer,
            hosts,
            resolver,
            entries: Programmed::default(),
            blackhole: cfg.blackhole,
        };
        if let Err(e) = state.originate() {
            let errors = state.stop();
            for err in errors {
                tracing::warn!(error = %err, "rollback of a failed bgp init");
            }
            return Err(e);
        }
        Ok(state)
    }
}

impl State {
    /// Announces the host's subnets and installs their blackhole routes — or, when the local
    /// network owns those, removes any this backend made in an earlier run.
    fn originate(&mut self) -> Result<(), DriverError> {
        for subnet in &self.node.subnets {
            self.host
                .speaker()
                .announce(subnet.trunc())
                .map_err(driver_error)?;
            if self.blackhole {
                self.netlink.replace_route(&blackhole(*subnet))?;
            } else {
                match self.netlink.del_route(&blackhole(*subnet)) {
                    Err(e) if !is_gone(&e) => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Brings neighbours and paths in line with the known hosts. Returns the changes.
    fn converge(&mut self, cfg: &BgpBackendConfig) -> Result<Vec<String>, DriverError> {
        let mut changes = Vec::new();
        let hosts: Vec<Peer> = self.hosts.values().cloned().collect();
        let wanted = topology::neighbours(cfg, &self.node, &hosts);
        let speaker = self.host.speaker();
        for (addr, have) in speaker.peers() {
            if !wanted.contains_key(&addr) {
                speaker.remove_peer(addr).map_err(driver_error)?;
                changes.push(format!(
                    "removed BGP neighbour {addr} (AS {})",
                    have.remote_as
                ));
            }
        }
        let have = speaker.peers();
        for (addr, want) in wanted {
            if have.get(&addr) != Some(&want) {
                let role = if want.rr_client {
                    ", route-reflector client"
                } else {
                    ""
                };
                changes.push(format!(
                    "set BGP neighbour {addr} (AS {}{role})",
                    want.remote_as
                ));
                speaker.set_peer(want).map_err(driver_error)?;
            }
        }
        let resolver = encap::resolver(cfg, &self.local, &hosts);
        if resolver != self.resolver {
            self.programmer
                .set_resolver(resolver.clone())
                .map_err(driver_error)?;
            self.resolver = resolver;
            changes.push("updated the paths of BGP next hops".into());
        }
        Ok(changes)
    }

    fn neighbours(&self, cfg: &BgpBackendConfig) -> Result<Vec<NeighbourStatus>, DriverError> {
        let configured = self.host.speaker().peers();
        let hosts: Vec<Peer> = self.hosts.values().cloned().collect();
        let reflectors = topology::reflectors(cfg, &hosts);
        let statuses = self
            .host
            .call(|s| async move { s.status().await })
            .and_then(|r| r)
            .map_err(driver_error)?;
        Ok(statuses
            .into_iter()
            .map(|s| {
                let role = match configured.get(&s.address) {
                    _ if cfg.external_peers.iter().any(|p| p.address == s.address) => "external",
                    Some(p) if p.rr_client => "rr-client",
                    _ if reflectors.contains(&s.address) => "route-reflector",
                    _ => "mesh",
                };
                NeighbourStatus {
                    address: s.address,
                    remote_as: s.remote_as,
                    role,
                    state: s.state,
                    uptime_secs: s.uptime().map(|d| d.as_secs()),
                    prefixes_received: s.prefixes_received,
                    prefixes_sent: s.prefixes_sent,
                    last_error: s.last_error.clone(),
                    flaps: s.flaps,
                }
            })
            .collect())
    }

    /// Stops the speaker (Cease to every neighbour) and the programmer, removing its routes,
    /// then removes blackholes and devices. Keeps going past failures and returns them all.
    fn stop(self) -> Vec<DriverError> {
        let State {
            node,
            mut netlink,
            devices,
            host,
            programmer,
            blackhole: owns_blackholes,
            ..
        } = self;
        let mut errors = Vec::new();
        host.shutdown();
        if let Err(e) = programmer.stop(true) {
            errors.push(driver_error(e));
        }
        let holes = if owns_blackholes {
            &node.subnets[..]
        } else {
            &[]
        };
        for subnet in holes {
            match netlink.del_route(&blackhole(*subnet)) {
                Err(e) if !is_gone(&e) => errors.push(e),
                _ => {}
            }
        }
        // The entries go with the device.
        for spec in devices.iter().rev() {
            if let Err(e) = device::remove(&mut netlink, spec.name()) {
                errors.push(e);
            }
        }
        errors
    }

    /// Makes the VXLAN device's neighbour and FDB entries exactly what the hosts need.
    fn program_entries(&mut self, cfg: &BgpBackendConfig) -> Result<SyncReport, DriverError> {
        let ownership = Ownership {
            networks: &[],
            local_subnets: &[],
            route_devices: &[],
            entry_device: self.local.vxlan,
        };
        let actual = read_owned(&mut self.netlink, &ownership)?;
        let desired = self
            .hosts
            .iter()
            .map(|(k, h)| (k.clone(), encap::vxlan_objects(cfg, &self.local, h)))
            .collect();
        Ok(self.entries.sync(&mut self.netlink, &actual, desired))
    }
}

impl Backend for BgpBackend {
    fn name(&self) -> &'static str {
        "bgp"
    }

    fn init(&self, node: &LocalNode) -> Result<BackendInit, DriverError> {
        self.config
            .validate()
            .map_err(|e| DriverError::Invalid(format!("bgp backend: {e}")))?;
        validate_node(node)?;
        let mut guard = self.state();
        if let Some(s) = guard.as_ref() {
            if s.node == *node {
                return Ok(BackendInit {
                    data: self.published(s),
                    mtu: s.mtu,
                });
            }
        }
        // Another lease or address: start over, keeping the hosts we know.
        let hosts = match guard.take() {
            Some(old) => {
                let hosts = old.hosts.clone();
                for e in old.stop() {
                    tracing::warn!(error = %e, "cleaning up the previous bgp setup");
                }
                hosts
            }
            None => BTreeMap::new(),
        };
        let mut state = self.start(node, hosts)?;
        if !state.hosts.is_empty() {
            for problem in state.program_entries(&self.config)?.problems {
                tracing::warn!(error = %problem, "bgp: a host's VXLAN entries are not set");
            }
        }
        let answer = BackendInit {
            data: self.published(&state),
            mtu: state.mtu,
        };
        tracing::info!(
            cluster = %node.cluster,
            router_id = %state.router_id,
            asn = self.config.asn,
            mtu = state.mtu,
            "bgp backend started"
        );
        *guard = Some(state);
        Ok(answer)
    }

    fn add_or_update_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        if peer.public_ip == state.node.public_ip {
            return Ok(Vec::new());
        }
        let key = peer_key(peer);
        state.hosts.insert(key.clone(), peer.clone());
        let mut changes = state.converge(&self.config)?;
        // A host that has not published its VTEP MAC yet is still a neighbour; its VXLAN
        // entries follow once it has (the error says so).
        let objects = encap::vxlan_objects(&self.config, &state.local, peer);
        let desired = objects.as_ref().cloned().unwrap_or_default();
        changes.extend(state.entries.set_peer(&mut state.netlink, &key, desired)?);
        objects?;
        Ok(changes)
    }

    fn remove_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let key = peer_key(peer);
        if state.hosts.remove(&key).is_none() {
            return Ok(Vec::new());
        }
        let mut changes = state.converge(&self.config)?;
        changes.extend(state.entries.remove_peer(&mut state.netlink, &key)?);
        Ok(changes)
    }

    fn sync_peers(&self, peers: &[Peer]) -> Result<SyncReport, DriverError> {
        let mut guard = self.state();
        let state = guard.as_mut().ok_or_else(not_initialized)?;
        let public = state.node.public_ip;
        state.hosts = peers
            .iter()
            .filter(|p| p.public_ip != public)
            .map(|p| (peer_key(p), p.clone()))
            .collect();
        let mut changes = state.converge(&self.config)?;
        let mut report = state.program_entries(&self.config)?;
        let summary = state.programmer.sync().map_err(driver_error)?;
        if summary.replaced + summary.removed > 0 {
            changes.push(format!(
                "routes: {} replaced, {} removed",
                summary.replaced, summary.removed
            ));
        }
        changes.append(&mut report.changes);
        report.changes = changes;
        Ok(report)
    }

    fn repair(&self) -> Result<Vec<String>, DriverError> {
        let mut guard = self.state();
        let Some(state) = guard.as_mut() else {
            return Ok(Vec::new());
        };
        let mut changes = Vec::new();
        for spec in state.devices.clone() {
            let index = match spec {
                DeviceSpec::Vxlan { .. } => state.local.vxlan,
                DeviceSpec::Ipip { .. } => state.local.ipip,
            };
            if device::find(&mut state.netlink, &spec)?.is_some_and(|i| Some(i) == index) {
                continue;
            }
            let (new, mut made) = device::ensure(&mut state.netlink, &spec)?;
            changes.push(format!(
                "{} was missing or replaced: re-created",
                spec.name()
            ));
            changes.append(&mut made);
            match spec {
                DeviceSpec::Vxlan { .. } => state.local.vxlan = Some(new),
                DeviceSpec::Ipip { .. } => state.local.ipip = Some(new),
            }
            // Its entries went with the old device; the next sync adds them again.
            state.entries.clear();
        }
        let present = state.netlink.routes(None, Some(MAIN_TABLE))?;
        let owned = if state.blackhole {
            state.node.subnets.clone()
        } else {
            Vec::new()
        };
        for subnet in owned {
            let hole = blackhole(subnet);
            let there = present.iter().any(|r| {
                r.kind == RouteKind::Blackhole
                    && r.destination == hole.destination
                    && r.metric == hole.metric
            });
            if !there {
                state.netlink.replace_route(&hole)?;
                changes.push(format!("re-added blackhole route {}", hole.destination));
            }
        }
        if !changes.is_empty() {
            changes.extend(state.converge(&self.config)?);
        }
        Ok(changes)
    }

    fn status(&self) -> Result<serde_json::Value, DriverError> {
        let guard = self.state();
        let Some(state) = guard.as_ref() else {
            return Ok(json!({"backend": "bgp", "initialized": false}));
        };
        let neighbours = state.neighbours(&self.config)?;
        let routes = state.programmer.status().map_err(driver_error)?;
        let devices: Vec<serde_json::Value> = state
            .devices
            .iter()
            .map(|d| {
                let index = match d {
                    DeviceSpec::Vxlan { .. } => state.local.vxlan,
                    DeviceSpec::Ipip { .. } => state.local.ipip,
                };
                json!({"name": d.name(), "index": index, "alias": d.alias()})
            })
            .collect();
        Ok(json!({
            "backend": "bgp",
            "as": self.config.asn,
            "router_id": state.router_id,
            "encapsulation": self.config.encapsulation,
            "mesh": self.config.mesh,
            "route_reflector_cluster_id": self.config.route_reflector_cluster_id,
            "route_reflectors": topology::reflectors(
                &self.config,
                &state.hosts.values().cloned().collect::<Vec<_>>(),
            ),
            "blackhole": state.blackhole,
            "announced": state.node.subnets,
            "mtu": state.mtu,
            "vtep_mac": state.vtep.map(|m| m.to_string()),
            "devices": devices,
            "neighbours": neighbours,
            "routes": routes,
        }))
    }

    fn teardown(&self) -> Result<(), DriverError> {
        let Some(state) = self.state().take() else {
            return Ok(());
        };
        DriverError::collect(state.stop())
    }
}

/// The devices the configuration needs, checked against the node.
fn device_specs(
    cfg: &BgpBackendConfig,
    node: &LocalNode,
    vtep: Option<MacAddr>,
) -> Result<Vec<DeviceSpec>, DriverError> {
    let mut specs = Vec::new();
    if cfg.uses_ipip() {
        let IpAddr::V4(local) = node.public_ip else {
            return Err(DriverError::Invalid(format!(
                "encapsulation ipip needs an IPv4 underlay but this host's address is {}; use \
                 vxlan",
                node.public_ip
            )));
        };
        specs.push(DeviceSpec::Ipip {
            cluster: node.cluster.clone(),
            local,
            underlay: node.underlay_index,
            mtu: node.underlay_mtu.saturating_sub(20),
        });
    }
    if let Some(mac) = vtep {
        let overhead = if node.public_ip.is_ipv4() { 50 } else { 70 };
        specs.push(DeviceSpec::Vxlan {
            cluster: node.cluster.clone(),
            vni: cfg.vxlan_vni,
            port: cfg.vxlan_port,
            local: node.public_ip,
            underlay: node.underlay_index,
            mtu: node.underlay_mtu.saturating_sub(overhead),
            mac,
        });
    }
    Ok(specs)
}

/// The programmer owns routes into the cluster networks (and what external peers may send)
/// but never into this host's own subnets.
fn scope(cfg: &BgpBackendConfig, node: &LocalNode) -> Scope {
    Scope {
        managed: node
            .cluster_networks
            .iter()
            .chain(&cfg.accept_from_external)
            .map(IpNet::trunc)
            .collect(),
        excluded: node.subnets.iter().map(IpNet::trunc).collect(),
    }
}

fn validate_node(node: &LocalNode) -> Result<(), DriverError> {
    if node.public_ip.is_unspecified() {
        return Err(DriverError::Invalid(format!(
            "bgp backend: cluster {} gives this host no public address",
            node.cluster
        )));
    }
    for s in &node.subnets {
        if !node.cluster_networks.iter().any(|n| n.contains(s)) {
            return Err(DriverError::Invalid(format!(
                "bgp backend: subnet {s} lies outside the cluster networks of {}",
                node.cluster
            )));
        }
    }
    Ok(())
}

/// `ip route replace blackhole SUBNET proto 87 metric BLACKHOLE_METRIC`.
fn blackhole(subnet: IpNet) -> Route {
    let mut r = Route::new(subnet.trunc());
    r.kind = RouteKind::Blackhole;
    r.protocol = ROUTE_PROTOCOL;
    r.table = MAIN_TABLE;
    r.metric = Some(BLACKHOLE_METRIC);
    r
}

/// What `start` made so far, undone when a later step fails.
#[derive(Default)]
struct Undo {
    devices: Vec<&'static str>,
}

impl Undo {
    fn run(self, nl: &mut Netlink, cause: DriverError) -> DriverError {
        for name in self.devices.iter().rev() {
            if let Err(e) = device::remove(nl, name) {
                tracing::warn!(error = %e, device = name, "rollback of a failed bgp init");
            }
        }
        cause
    }
}

fn log_changes(cluster: &str, changes: &[String]) {
    for c in changes {
        tracing::info!(%cluster, "{c}");
    }
}

fn not_initialized() -> DriverError {
    DriverError::Invalid("the bgp backend is not initialized: init must run first".into())
}

fn driver_error(e: Error) -> DriverError {
    match e {
        Error::Kernel { source, .. } => source,
        other => DriverError::Invalid(format!("bgp: {other}")),
    }
}

fn is_gone(e: &DriverError) -> bool {
    matches!(e.errno(), Some(libc::ENOENT) | Some(libc::ESRCH))
}
