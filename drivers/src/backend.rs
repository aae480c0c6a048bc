//! The multi-host backend contract: how a host reaches the other hosts' subnets of a cluster
//! network (`vxlan`, `host-gw`, later `bgp`), plus the kernel-object planning they share.
//!
//! The agent owns the cluster membership (leases in etcd); a backend only turns "this host is
//! [`LocalNode`], these are the [`Peer`]s" into kernel state. A BGP backend fits the same shape:
//! `init` starts announcing the local subnet, and learned routes arrive as peers.
//!
//! Every kernel object a backend programs is one of three kinds — a route (marked with
//! [`ROUTE_PROTOCOL`]), a neighbour entry or a forwarding-database entry on the backend's own
//! device — so one pure planner ([`plan`]) turns "what the kernel has" and "what the peers
//! need" into the operations that make them equal, and one thin applier ([`apply`]) runs them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::DriverError;
use crate::model::MacAddr;
use crate::netlink::{FdbEntry, Neighbour, Netlink, Route};

/// The route protocol number (RTPROT) of every route a backend programs: weft's own
/// ([`crate::netlink::WEFT_PROTOCOL`], `proto 87` in `ip route`). Other drivers use it too, so
/// a backend owns only such routes inside the cluster networks that leave through its own
/// devices (see [`Ownership`]).
pub const ROUTE_PROTOCOL: u8 = crate::netlink::WEFT_PROTOCOL;
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// This host as the backend needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalNode {
    /// Cluster network name (used in device aliases and messages).
    pub cluster: String,
    /// The host's leased subnets (IPv4, and IPv6 when the cluster has it).
    pub subnets: Vec<IpNet>,
    /// The host's underlay address.
    pub public_ip: IpAddr,
    /// Index of the underlay interface.
    pub underlay_index: u32,
    /// MTU of the underlay interface.
    pub underlay_mtu: u32,
    /// The cluster networks (every host's subnet lies inside one of them).
    pub cluster_networks: Vec<IpNet>,
}

/// Another host of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// For messages: hostname or node id.
    pub name: String,
    /// The peer's subnets.
    pub subnets: Vec<IpNet>,
    /// The peer's underlay address.
    pub public_ip: IpAddr,
    /// What the peer's backend published (the vxlan VTEP MAC); `null` when nothing yet.
    pub data: serde_json::Value,
}

impl Peer {
    /// `host2 (10.244.2.0/24 at 192.168.0.2)` for messages.
    pub fn describe(&self) -> String {
        let subnets: Vec<String> = self.subnets.iter().map(ToString::to_string).collect();
        format!(
            "{} ({} at {})",
            self.name,
            subnets.join(","),
            self.public_ip
        )
    }
}

/// What `init` hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInit {
    /// Published in this host's lease for the peers' backends.
    pub data: serde_json::Value,
    /// MTU for the bridge and the container interfaces.
    pub mtu: u32,
}

/// What a full reconcile did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// One line per kernel change.
    pub changes: Vec<String>,
    /// Peers that could not be programmed (e.g. not directly reachable for host-gw); the rest
    /// were.
    pub problems: Vec<DriverError>,
}

/// A way to reach the other hosts' subnets. Every method is idempotent.
pub trait Backend: Send + Sync {
    /// `vxlan`, `host-gw`, …
    fn name(&self) -> &'static str;
    /// Sets up what the backend needs on this host (devices, addresses). Called again after
    /// a lease change; must converge.
    fn init(&self, local: &LocalNode) -> Result<BackendInit, DriverError>;
    /// Programs one peer, replacing what was programmed for it before. Returns the changes.
    fn add_or_update_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError>;
    /// Removes what was programmed for one peer. Returns the changes.
    fn remove_peer(&self, peer: &Peer) -> Result<Vec<String>, DriverError>;
    /// Full reconcile against the kernel: adds what is missing, changes what differs and
    /// removes what this backend owns (routes with [`ROUTE_PROTOCOL`] inside the cluster
    /// networks, entries on its device) that no peer needs.
    fn sync_peers(&self, peers: &[Peer]) -> Result<SyncReport, DriverError>;
    /// Re-creates what someone removed behind the backend's back (its device). A non-empty
    /// answer means the peers must be synced again.
    fn repair(&self) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
    /// What the kernel has for this backend, for `weft cluster status`.
    fn status(&self) -> Result<serde_json::Value, DriverError>;
    /// Removes everything the backend made; keeps going past errors.
    fn teardown(&self) -> Result<(), DriverError>;
}

/// The key a backend files a peer's objects under: its first subnet.
pub fn peer_key(peer: &Peer) -> String {
    peer.subnets
        .first()
        .map(ToString::to_string)
        .unwrap_or_else(|| peer.public_ip.to_string())
}

/// What a backend has programmed for whom, with the three ways to change it. Shared by the
/// backends so "update one peer", "remove one peer" and "reconcile everything" mean the same
/// in each.
#[derive(Debug, Default)]
pub struct Programmed {
    by_peer: BTreeMap<String, Objects>,
}

impl Programmed {
    /// Programs `desired` for the peer filed under `key` (re-asserting every entry, so
    /// something removed behind weft's back comes back) and removes what it had before and no
    /// longer needs.
    pub fn set_peer(
        &mut self,
        nl: &mut Netlink,
        key: &str,
        desired: Objects,
    ) -> Result<Vec<String>, DriverError> {
        let previous = self.by_peer.get(key).cloned().unwrap_or_default();
        let mut ops = plan(&Objects::default(), &desired);
        ops.extend(plan(&previous, &desired).into_iter().filter(is_delete));
        let (done, errors) = apply(nl, &ops);
        self.by_peer.insert(key.to_string(), desired);
        DriverError::collect(errors).map(|()| done)
    }

    /// Removes what was programmed for the peer filed under `key`.
    pub fn remove_peer(&mut self, nl: &mut Netlink, key: &str) -> Result<Vec<String>, DriverError> {
        let Some(previous) = self.by_peer.remove(key) else {
            return Ok(Vec::new());
        };
        // Another peer may use the same entry (a route to the same destination): keep those.
        let keep = self.all();
        let mut stale = previous;
        stale
            .routes
            .retain(|dest, _| !keep.routes.contains_key(dest));
        stale
            .neighbours
            .retain(|k, _| !keep.neighbours.contains_key(k));
        stale.fdb.retain(|k, _| !keep.fdb.contains_key(k));
        let (done, errors) = apply(nl, &plan(&stale, &Objects::default()));
        DriverError::collect(errors).map(|()| done)
    }

    /// Makes the kernel (`actual`, as [`read_owned`] found it) hold exactly what the peers
    /// need. Peers whose objects could not be planned are reported and left out.
    pub fn sync(
        &mut self,
        nl: &mut Netlink,
        actual: &Objects,
        desired: Vec<(String, Result<Objects, DriverError>)>,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        self.by_peer.clear();
        for (key, objects) in desired {
            match objects {
                Ok(objects) => {
                    self.by_peer.insert(key, objects);
                }
                Err(e) => report.problems.push(e),
            }
        }
        let (done, errors) = apply(nl, &plan(actual, &self.all()));
        report.changes = done;
        report.problems.extend(errors);
        report
    }

    /// Everything programmed, for all peers.
    pub fn all(&self) -> Objects {
        let mut all = Objects::default();
        for objects in self.by_peer.values() {
            all.extend(objects.clone());
        }
        all
    }

    /// Forgets everything (after a teardown).
    pub fn clear(&mut self) {
        self.by_peer.clear();
    }
}

/// A route a backend wants: `DEST via GW dev OIF [onlink] proto 87`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteObj {
    /// The peer's subnet.
    pub destination: IpNet,
    /// Next hop: the peer's VTEP address or public address.
    pub gateway: IpAddr,
    /// Output interface.
    pub oif: u32,
    /// The gateway is on the link without a covering subnet.
    pub onlink: bool,
}

/// The kernel objects a backend owns (or wants), keyed the way the kernel keys them, so two
/// sets can be compared entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Objects {
    /// By destination (one route per destination in the main table).
    pub routes: BTreeMap<IpNet, RouteObj>,
    /// `(ifindex, address) → MAC`, permanent.
    pub neighbours: BTreeMap<(u32, IpAddr), MacAddr>,
    /// `(ifindex, MAC) → remote`, permanent.
    pub fdb: BTreeMap<(u32, MacAddr), IpAddr>,
}

impl Objects {
    /// Adds everything of `other` (later entries win).
    pub fn extend(&mut self, other: Objects) {
        self.routes.extend(other.routes);
        self.neighbours.extend(other.neighbours);
        self.fdb.extend(other.fdb);
    }

    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.neighbours.is_empty() && self.fdb.is_empty()
    }
}

/// One kernel change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `ip route replace`.
    ReplaceRoute(RouteObj),
    /// `ip route del … proto 87`.
    DelRoute(RouteObj),
    /// `ip neigh replace ADDR lladdr MAC dev DEV nud permanent`.
    ReplaceNeighbour(u32, IpAddr, MacAddr),
    /// `ip neigh del ADDR dev DEV`.
    DelNeighbour(u32, IpAddr),
    /// `bridge fdb replace MAC dst IP dev DEV self permanent`.
    ReplaceFdb(u32, MacAddr, IpAddr),
    /// `bridge fdb del MAC dst IP dev DEV self`.
    DelFdb(u32, MacAddr, IpAddr),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::ReplaceRoute(r) | Op::DelRoute(r) => write!(
                f,
                "{} route {} via {} dev {}{}",
                if matches!(self, Op::DelRoute(_)) {
                    "delete"
                } else {
                    "set"
                },
                r.destination,
                r.gateway,
                r.oif,
                if r.onlink { " onlink" } else { "" }
            ),
            Op::ReplaceNeighbour(dev, ip, mac) => {
                write!(f, "set neighbour {ip} lladdr {mac} dev {dev}")
            }
            Op::DelNeighbour(dev, ip) => write!(f, "delete neighbour {ip} dev {dev}"),
            Op::ReplaceFdb(dev, mac, dst) => write!(f, "set fdb {mac} dst {dst} dev {dev}"),
            Op::DelFdb(dev, mac, dst) => write!(f, "delete fdb {mac} dst {dst} dev {dev}"),
        }
    }
}

/// The operations that turn `actual` into `desired` (pure). Entries are first added or
/// changed — forwarding entries and neighbours before the routes that use them — then stale
/// routes are removed before the entries they used.
pub fn plan(actual: &Objects, desired: &Objects) -> Vec<Op> {
    let mut ops = Vec::new();
    for (&(dev, mac), &dst) in &desired.fdb {
        if actual.fdb.get(&(dev, mac)) != Some(&dst) {
            ops.push(Op::ReplaceFdb(dev, mac, dst));
        }
    }
    for (&(dev, ip), &mac) in &desired.neighbours {
        if actual.neighbours.get(&(dev, ip)) != Some(&mac) {
            ops.push(Op::ReplaceNeighbour(dev, ip, mac));
        }
    }
    for (dest, route) in &desired.routes {
        if actual.routes.get(dest) != Some(route) {
            ops.push(Op::ReplaceRoute(*route));
        }
    }
    for (dest, route) in &actual.routes {
        if !desired.routes.contains_key(dest) {
            ops.push(Op::DelRoute(*route));
        }
    }
    for &(dev, ip) in actual.neighbours.keys() {
        if !desired.neighbours.contains_key(&(dev, ip)) {
            ops.push(Op::DelNeighbour(dev, ip));
        }
    }
    for (&(dev, mac), &dst) in &actual.fdb {
        if !desired.fdb.contains_key(&(dev, mac)) {
            ops.push(Op::DelFdb(dev, mac, dst));
        }
    }
    ops
}

/// Runs `ops` in order, going on past failures. Removing something already gone is not a
/// failure. Returns the changes made and the failures.
pub fn apply(nl: &mut Netlink, ops: &[Op]) -> (Vec<String>, Vec<DriverError>) {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for op in ops {
        let result = match op {
            Op::ReplaceRoute(r) => nl.replace_route(&kernel_route(r)),
            Op::DelRoute(r) => nl.del_route(&kernel_route(r)),
            Op::ReplaceNeighbour(dev, ip, mac) => nl.add_neighbour(&Neighbour {
                ifindex: *dev,
                address: *ip,
                mac: Some(*mac),
                permanent: true,
            }),
            Op::DelNeighbour(dev, ip) => nl.del_neighbour(&Neighbour {
                ifindex: *dev,
                address: *ip,
                mac: None,
                permanent: true,
            }),
            Op::ReplaceFdb(dev, mac, dst) => nl.add_fdb(&fdb_entry(*dev, *mac, *dst)),
            Op::DelFdb(dev, mac, dst) => nl.del_fdb(&fdb_entry(*dev, *mac, *dst)),
        };
        match result {
            Ok(()) => done.push(op.to_string()),
            Err(e) if is_delete(op) && is_gone(&e) => {}
            Err(e) => errors.push(e),
        }
    }
    (done, errors)
}

/// Which kernel objects a backend owns.
#[derive(Debug, Clone, Copy)]
pub struct Ownership<'a> {
    /// The cluster networks: owned routes lead into them.
    pub networks: &'a [IpNet],
    /// This host's own subnets: routes into them are never a backend's (they are the local
    /// network's).
    pub local_subnets: &'a [IpNet],
    /// Devices owned routes leave through (the backend's device, the underlay).
    pub route_devices: &'a [u32],
    /// The device whose permanent neighbour and FDB entries the backend owns.
    pub entry_device: Option<u32>,
}

/// What the kernel has that a backend owns: main-table routes with [`ROUTE_PROTOCOL`] into the
/// cluster networks (not into a local subnet) through one of the route devices, and permanent
/// neighbour and FDB entries (non-zero MAC) on the entry device.
pub fn read_owned(nl: &mut Netlink, owner: &Ownership<'_>) -> Result<Objects, DriverError> {
    let mut objects = Objects::default();
    for route in nl.routes(None, Some(MAIN_TABLE))? {
        let inside = owner
            .networks
            .iter()
            .any(|n| n.contains(&route.destination))
            && !owner
                .local_subnets
                .iter()
                .any(|s| s.contains(&route.destination));
        let through = route
            .oif
            .is_some_and(|oif| owner.route_devices.contains(&oif));
        if route.protocol != ROUTE_PROTOCOL || !inside || !through {
            continue;
        }
        if let (Some(gateway), Some(oif)) = (route.gateway, route.oif) {
            objects.routes.insert(
                route.destination,
                RouteObj {
                    destination: route.destination,
                    gateway,
                    oif,
                    onlink: route.onlink,
                },
            );
        } else {
            // Not a shape weft makes (e.g. multipath): still ours, so it must go.
            objects.routes.insert(
                route.destination,
                RouteObj {
                    destination: route.destination,
                    gateway: route.destination.addr(),
                    oif: route.oif.unwrap_or(0),
                    onlink: route.onlink,
                },
            );
        }
    }
    if let Some(dev) = owner.entry_device {
        for n in nl.neighbours(Some(dev))? {
            if let (true, Some(mac)) = (n.permanent, n.mac) {
                objects.neighbours.insert((dev, n.address), mac);
            }
        }
        for entry in nl.fdb(dev)? {
            if let (true, Some(dst)) = (entry.permanent, entry.destination) {
                if entry.mac != MacAddr([0; 6]) {
                    objects.fdb.insert((dev, entry.mac), dst);
                }
            }
        }
    }
    Ok(objects)
}

/// Whether `ip` lies in one of the directly connected `prefixes` (same L2 segment).
pub fn is_connected(prefixes: &[IpNet], ip: IpAddr) -> bool {
    prefixes.iter().any(|p| p.contains(&ip))
}

/// The prefixes of the addresses on interface `index`.
pub fn connected_prefixes(nl: &mut Netlink, index: u32) -> Result<Vec<IpNet>, DriverError> {
    Ok(nl
        .addresses(Some(index))?
        .into_iter()
        .map(|(_, a)| a.trunc())
        .collect())
}

fn kernel_route(r: &RouteObj) -> Route {
    let mut route = Route::new(r.destination);
    route.gateway = Some(r.gateway);
    route.oif = Some(r.oif);
    route.onlink = r.onlink;
    route.protocol = ROUTE_PROTOCOL;
    route.table = MAIN_TABLE;
    route
}

fn fdb_entry(ifindex: u32, mac: MacAddr, dst: IpAddr) -> FdbEntry {
    FdbEntry {
        ifindex,
        mac,
        destination: Some(dst),
        permanent: true,
    }
}

fn is_delete(op: &Op) -> bool {
    matches!(op, Op::DelRoute(_) | Op::DelNeighbour(..) | Op::DelFdb(..))
}

fn is_gone(e: &DriverError) -> bool {
    matches!(
        e.errno(),
        Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENODEV)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    const MAC1: MacAddr = MacAddr([0x0a, 0, 0, 0, 0, 1]);
    const MAC2: MacAddr = MacAddr([0x0a, 0, 0, 0, 0, 2]);

    fn peer_objects(subnet: &str, vtep: &str, mac: MacAddr, public: &str) -> Objects {
        let mut o = Objects::default();
        o.routes.insert(
            net(subnet),
            RouteObj {
                destination: net(subnet),
                gateway: ip(vtep),
                oif: 5,
                onlink: true,
            },
        );
        o.neighbours.insert((5, ip(vtep)), mac);
        o.fdb.insert((5, mac), ip(public));
        o
    }

    #[test]
    fn adds_entries_before_routes() {
        let desired = peer_objects("10.244.2.0/24", "10.244.2.0", MAC1, "192.168.0.2");
        let ops = plan(&Objects::default(), &desired);
        assert!(matches!(ops[0], Op::ReplaceFdb(5, MAC1, _)));
        assert!(matches!(ops[1], Op::ReplaceNeighbour(5, _, MAC1)));
        assert!(matches!(ops[2], Op::ReplaceRoute(_)));
        assert_eq!(ops.len(), 3);
        assert!(
            plan(&desired, &desired).is_empty(),
            "in sync: nothing to do"
        );
    }

    #[test]
    fn changed_mac_replaces_neighbour_and_moves_the_fdb_entry() {
        let actual = peer_objects("10.244.2.0/24", "10.244.2.0", MAC1, "192.168.0.2");
        let desired = peer_objects("10.244.2.0/24", "10.244.2.0", MAC2, "192.168.0.2");
        let ops = plan(&actual, &desired);
        assert_eq!(
            ops,
            vec![
                Op::ReplaceFdb(5, MAC2, ip("192.168.0.2")),
                Op::ReplaceNeighbour(5, ip("10.244.2.0"), MAC2),
                Op::DelFdb(5, MAC1, ip("192.168.0.2")),
            ]
        );
    }

    #[test]
    fn changed_public_ip_replaces_only_the_fdb_entry() {
        let actual = peer_objects("10.244.2.0/24", "10.244.2.0", MAC1, "192.168.0.2");
        let desired = peer_objects("10.244.2.0/24", "10.244.2.0", MAC1, "192.168.0.22");
        assert_eq!(
            plan(&actual, &desired),
            vec![Op::ReplaceFdb(5, MAC1, ip("192.168.0.22"))]
        );
    }

    #[test]
    fn stale_objects_go_routes_first() {
        let mut actual = peer_objects("10.244.2.0/24", "10.244.2.0", MAC1, "192.168.0.2");
        actual.extend(peer_objects(
            "10.244.3.0/24",
            "10.244.3.0",
            MAC2,
            "192.168.0.3",
        ));
        let desired = peer_objects("10.244.2.0/24", "10.244.2.0", MAC1, "192.168.0.2");
        let ops = plan(&actual, &desired);
        assert_eq!(ops.len(), 3);
        assert!(matches!(ops[0], Op::DelRoute(r) if r.destination == net("10.244.3.0/24")));
        assert!(matches!(ops[1], Op::DelNeighbour(5, a) if a == ip("10.244.3.0")));
        assert!(matches!(ops[2], Op::DelFdb(5, MAC2, _)));
    }

    #[test]
    fn route_via_another_gateway_is_replaced_not_deleted() {
        let mut actual = Objects::default();
        let old = RouteObj {
            destination: net("10.244.2.0/24"),
            gateway: ip("192.168.0.2"),
            oif: 2,
            onlink: false,
        };
        actual.routes.insert(old.destination, old);
        let mut desired = Objects::default();
        let new = RouteObj {
            gateway: ip("192.168.0.20"),
            ..old
        };
        desired.routes.insert(new.destination, new);
        assert_eq!(plan(&actual, &desired), vec![Op::ReplaceRoute(new)]);
    }

    #[test]
    fn connected_check() {
        let prefixes = [net("192.168.0.0/24")];
        assert!(is_connected(&prefixes, ip("192.168.0.9")));
        assert!(!is_connected(&prefixes, ip("192.168.1.9")));
    }
}
