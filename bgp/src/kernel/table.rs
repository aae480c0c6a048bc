//! What the kernel should hold, and the route operations that get it there (pure).
//!
//! The table keeps the Loc-RIB's answer per prefix — its ECMP set of BGP next hops — and
//! turns a run of [`RouteChange`]s into the fewest kernel operations: a prefix that changed
//! ten times in one batch costs one operation, and one that appeared and vanished again in
//! the same batch costs none. Hop sets are shared between prefixes (a cluster has as many
//! distinct sets as it has peers, not as routes), which keeps a route at a few dozen bytes.

use super::resolve::{unmapped, Resolver};
use crate::rib::RouteChange;
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use weft_drivers::backend::{MAIN_TABLE, ROUTE_PROTOCOL};
use weft_drivers::netlink::batch::RouteOp;
use weft_drivers::netlink::{NextHop, Route, RouteKind};

/// An ECMP set of next hops, sorted, shared between the prefixes that use it.
pub type Hops = Arc<[IpAddr]>;

/// Which kernel routes are the programmer's: `proto 87` unicast routes in the main table
/// inside a managed prefix and outside every excluded one (the host's own subnets, whose
/// routes belong to the local network's driver).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// Destinations the programmer may install (cluster networks, accepted external
    /// prefixes).
    pub managed: Vec<IpNet>,
    /// Destinations it never touches.
    pub excluded: Vec<IpNet>,
}

impl Scope {
    /// Whether a route to `prefix` may be the programmer's.
    pub fn covers(&self, prefix: &IpNet) -> bool {
        self.managed.iter().any(|m| m.contains(prefix))
            && !self.excluded.iter().any(|e| e.contains(prefix))
    }

    /// Whether the kernel route `route` is the programmer's.
    pub fn owns(&self, route: &Route) -> bool {
        route.protocol == ROUTE_PROTOCOL
            && route.table == MAIN_TABLE
            && route.kind == RouteKind::Unicast
            && self.covers(&route.destination)
    }
}

/// One route as the programmer holds it, for `weft bgp routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgrammedRoute {
    /// Destination.
    pub prefix: IpNet,
    /// The BGP next hops (ECMP set).
    pub next_hops: Vec<IpAddr>,
    /// Why the kernel does not have it, if it does not.
    pub error: Option<String>,
}

/// The desired kernel state and its bookkeeping.
#[derive(Debug, Default)]
pub struct RouteTable {
    scope: Scope,
    desired: HashMap<IpNet, Hops>,
    hop_sets: HashSet<Hops>,
    failed: HashMap<IpNet, String>,
    ignored: u64,
}

impl RouteTable {
    /// An empty table owning `scope`.
    pub fn new(scope: Scope) -> Self {
        RouteTable {
            scope,
            ..RouteTable::default()
        }
    }

    /// The scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Prefixes the RIB wants in the kernel.
    pub fn len(&self) -> usize {
        self.desired.len()
    }

    /// Whether the RIB wants nothing.
    pub fn is_empty(&self) -> bool {
        self.desired.is_empty()
    }

    /// Routes the kernel refused (with the reason).
    pub fn failed(&self) -> &HashMap<IpNet, String> {
        &self.failed
    }

    /// Changes dropped because their prefix is outside the scope.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Applies `changes` in order and returns the kernel operations that make the kernel
    /// follow, one per touched prefix. Prefixes whose route cannot be built are recorded as
    /// failed (and removed from the kernel if they were there).
    pub fn apply(
        &mut self,
        changes: impl IntoIterator<Item = RouteChange>,
        resolver: &Resolver,
    ) -> Vec<RouteOp> {
        // Prefix → whether the kernel had it before this batch.
        let mut touched: HashMap<IpNet, bool> = HashMap::new();
        for change in changes {
            let prefix = change.prefix();
            if !self.scope.covers(&prefix) {
                self.ignored += 1;
                tracing::warn!(%prefix, "not programming a route outside the managed prefixes");
                continue;
            }
            let was = self.in_kernel(&prefix);
            touched.entry(prefix).or_insert(was);
            match change {
                RouteChange::Install { next_hops, .. } | RouteChange::Replace { next_hops, .. } => {
                    let hops = self.intern(next_hops);
                    self.desired.insert(prefix, hops);
                }
                RouteChange::Remove { .. } => {
                    self.desired.remove(&prefix);
                }
            }
        }
        let mut ops = Vec::with_capacity(touched.len());
        for (prefix, was) in touched {
            self.failed.remove(&prefix);
            match self.desired.get(&prefix).cloned() {
                Some(hops) => match self.build(&prefix, &hops, resolver) {
                    Ok(route) => ops.push(RouteOp::Replace(route)),
                    Err(why) => {
                        self.failed.insert(prefix, why);
                        if was {
                            ops.push(RouteOp::Delete(delete_route(prefix)));
                        }
                    }
                },
                None if was => ops.push(RouteOp::Delete(delete_route(prefix))),
                None => {}
            }
        }
        self.prune_hop_sets();
        ops
    }

    /// The operations that re-program every prefix using one of `next_hops` (their path
    /// changed, e.g. a peer moved into a tunnel).
    pub fn reresolve(
        &mut self,
        next_hops: &std::collections::BTreeSet<IpAddr>,
        resolver: &Resolver,
    ) -> Vec<RouteOp> {
        let affected: Vec<(IpNet, Hops)> = self
            .desired
            .iter()
            .filter(|(_, hops)| {
                hops.iter()
                    .any(|h| next_hops.contains(h) || next_hops.contains(&unmapped(*h)))
            })
            .map(|(p, h)| (*p, h.clone()))
            .collect();
        self.program_all(affected, resolver)
    }

    /// The operations that make the kernel's owned routes (`actual`, any routes: those the
    /// scope does not own are skipped) equal to the table: missing or different routes are
    /// replaced; with `remove_unknown`, owned routes the table lacks are deleted.
    pub fn reconcile(
        &mut self,
        actual: &[Route],
        resolver: &Resolver,
        remove_unknown: bool,
    ) -> Vec<RouteOp> {
        let kernel: HashMap<IpNet, &Route> = actual
            .iter()
            .filter(|r| self.scope.owns(r))
            .map(|r| (r.destination, r))
            .collect();
        let mut ops = Vec::new();
        let wanted: Vec<(IpNet, Hops)> =
            self.desired.iter().map(|(p, h)| (*p, h.clone())).collect();
        for (prefix, hops) in wanted {
            match self.build(&prefix, &hops, resolver) {
                Ok(route) => {
                    self.failed.remove(&prefix);
                    if !kernel.get(&prefix).is_some_and(|k| same_hops(k, &route)) {
                        ops.push(RouteOp::Replace(route));
                    }
                }
                Err(why) => {
                    self.failed.insert(prefix, why);
                    if kernel.contains_key(&prefix) {
                        ops.push(RouteOp::Delete(delete_route(prefix)));
                    }
                }
            }
        }
        if remove_unknown {
            for prefix in kernel.keys() {
                if !self.desired.contains_key(prefix) {
                    ops.push(RouteOp::Delete(delete_route(*prefix)));
                }
            }
        }
        ops
    }

    /// Records the kernel's refusals of `ops` (index into `ops`, reason).
    pub fn record_failures(&mut self, ops: &[RouteOp], failures: Vec<(usize, String)>) {
        for (index, why) in failures {
            let op = &ops[index];
            let prefix = op.route().destination;
            if matches!(op, RouteOp::Replace(_)) && self.desired.contains_key(&prefix) {
                self.failed.insert(prefix, why);
            }
        }
    }

    /// Every route, sorted by prefix.
    pub fn routes(&self) -> Vec<ProgrammedRoute> {
        let sorted: BTreeMap<&IpNet, &Hops> = self.desired.iter().collect();
        sorted
            .into_iter()
            .map(|(prefix, hops)| ProgrammedRoute {
                prefix: *prefix,
                next_hops: hops.to_vec(),
                error: self.failed.get(prefix).cloned(),
            })
            .collect()
    }

    /// The kernel route for `prefix` via `hops`: one gateway, or a multipath route. Next
    /// hops that cannot be resolved are left out; none left is an error.
    pub fn build(
        &self,
        prefix: &IpNet,
        hops: &[IpAddr],
        resolver: &Resolver,
    ) -> Result<Route, String> {
        let mut resolved: Vec<NextHop> = Vec::with_capacity(hops.len());
        let mut errors = Vec::new();
        for hop in hops {
            match resolver.resolve(prefix, *hop) {
                Ok(h) => resolved.push(h),
                Err(e) => errors.push(e),
            }
        }
        let mut route = Route::new(*prefix);
        route.protocol = ROUTE_PROTOCOL;
        route.table = MAIN_TABLE;
        match resolved.len() {
            0 => {
                return Err(if errors.is_empty() {
                    format!("{prefix} has no next hop")
                } else {
                    errors.join("; ")
                })
            }
            1 => {
                let h = resolved.remove(0);
                route.gateway = h.gateway;
                route.oif = h.oif;
                route.onlink = h.onlink;
            }
            _ => route.multipath = resolved,
        }
        Ok(route)
    }

    fn program_all(&mut self, routes: Vec<(IpNet, Hops)>, resolver: &Resolver) -> Vec<RouteOp> {
        let mut ops = Vec::with_capacity(routes.len());
        for (prefix, hops) in routes {
            let was = self.in_kernel(&prefix);
            match self.build(&prefix, &hops, resolver) {
                Ok(route) => {
                    self.failed.remove(&prefix);
                    ops.push(RouteOp::Replace(route));
                }
                Err(why) => {
                    self.failed.insert(prefix, why);
                    if was {
                        ops.push(RouteOp::Delete(delete_route(prefix)));
                    }
                }
            }
        }
        ops
    }

    /// Whether the kernel may hold a route for `prefix`. A failed replace can leave the
    /// previous route in place, so failed prefixes count too (deleting a missing route costs
    /// one ESRCH).
    fn in_kernel(&self, prefix: &IpNet) -> bool {
        self.desired.contains_key(prefix)
    }

    fn intern(&mut self, hops: Vec<IpAddr>) -> Hops {
        if let Some(h) = self.hop_sets.get(hops.as_slice()) {
            return h.clone();
        }
        let h: Hops = hops.into();
        self.hop_sets.insert(h.clone());
        h
    }

    /// Forgets hop sets no prefix uses any more (only the interner holds them).
    fn prune_hop_sets(&mut self) {
        if self.hop_sets.len() > 64 {
            self.hop_sets.retain(|h| Arc::strong_count(h) > 1);
        }
    }
}

/// `ip route del PREFIX proto 87` in the main table.
pub fn delete_route(prefix: IpNet) -> Route {
    let mut r = Route::new(prefix);
    r.protocol = ROUTE_PROTOCOL;
    r.table = MAIN_TABLE;
    r
}

/// Whether the kernel's route goes where `want` says: same gateways with the same onlink
/// flags, and the same devices where `want` names one (the kernel fills in the rest).
pub fn same_hops(kernel: &Route, want: &Route) -> bool {
    let mut have = hops_of(kernel);
    let mut need = hops_of(want);
    if have.len() != need.len() {
        return false;
    }
    have.sort_by_key(|h| h.0);
    need.sort_by_key(|h| h.0);
    have.iter()
        .zip(&need)
        .all(|(h, n)| h.0 == n.0 && h.2 == n.2 && (n.1.is_none() || h.1 == n.1))
}

fn hops_of(r: &Route) -> Vec<(Option<IpAddr>, Option<u32>, bool)> {
    if r.multipath.is_empty() {
        vec![(r.gateway, r.oif, r.onlink)]
    } else {
        r.multipath
            .iter()
            .map(|h| (h.gateway, h.oif, h.onlink))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::resolve::Path;
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn scope() -> Scope {
        Scope {
            managed: vec![net("10.244.0.0/16"), net("fd00:244::/48")],
            excluded: vec![net("10.244.1.0/24")],
        }
    }
    fn install(p: &str, hops: &[&str]) -> RouteChange {
        RouteChange::Install {
            prefix: net(p),
            next_hops: hops.iter().map(|h| ip(h)).collect(),
        }
    }
    fn remove(p: &str) -> RouteChange {
        RouteChange::Remove { prefix: net(p) }
    }

    #[test]
    fn one_operation_per_prefix_and_none_for_a_passing_flap() {
        let mut t = RouteTable::new(scope());
        let r = Resolver::new();
        let ops = t.apply(
            vec![
                install("10.244.2.0/24", &["192.168.0.2"]),
                RouteChange::Replace {
                    prefix: net("10.244.2.0/24"),
                    next_hops: vec![ip("192.168.0.2"), ip("192.168.0.3")],
                },
                install("10.244.3.0/24", &["192.168.0.3"]),
                remove("10.244.3.0/24"),
            ],
            &r,
        );
        assert_eq!(ops.len(), 1, "{ops:?}");
        let RouteOp::Replace(route) = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(route.multipath.len(), 2);
        assert_eq!(route.protocol, ROUTE_PROTOCOL);
        // Flapping 1000 times and ending withdrawn: one delete.
        let flaps: Vec<RouteChange> = (0..1000)
            .flat_map(|_| {
                [
                    remove("10.244.2.0/24"),
                    install("10.244.2.0/24", &["192.168.0.2"]),
                ]
            })
            .chain([remove("10.244.2.0/24")])
            .collect();
        let ops = t.apply(flaps, &r);
        assert!(matches!(&ops[..], [RouteOp::Delete(d)] if d.destination == net("10.244.2.0/24")));
        assert!(t.is_empty());
    }

    #[test]
    fn changes_outside_the_scope_are_ignored() {
        let mut t = RouteTable::new(scope());
        let ops = t.apply(
            vec![
                install("10.1.0.0/16", &["192.168.0.2"]),
                install("10.244.1.0/24", &["192.168.0.2"]),
            ],
            &Resolver::new(),
        );
        assert!(ops.is_empty());
        assert_eq!(t.ignored(), 2);
    }

    #[test]
    fn unresolvable_routes_are_failed_not_sent() {
        let mut t = RouteTable::new(scope());
        let ops = t.apply(
            vec![install("fd00:244:0:2::/64", &["192.168.0.2"])],
            &Resolver::new(),
        );
        assert!(ops.is_empty());
        assert!(t.failed()[&net("fd00:244:0:2::/64")].contains("IPv6 via an IPv4"));
        // With vxlan toward that peer it resolves: re-resolving programs it.
        let mut r = Resolver::new();
        r.set(ip("192.168.0.2"), Path::Vxlan { device: 9 });
        let ops = t.reresolve(&[ip("192.168.0.2")].into_iter().collect(), &r);
        assert_eq!(ops.len(), 1);
        assert!(t.failed().is_empty());
    }

    #[test]
    fn reconcile_replaces_wrong_adds_missing_and_removes_unknown_owned_routes() {
        let mut t = RouteTable::new(scope());
        let r = Resolver::new();
        t.apply(
            vec![
                install("10.244.2.0/24", &["192.168.0.2"]),
                install("10.244.3.0/24", &["192.168.0.3"]),
                install("10.244.4.0/24", &["192.168.0.4"]),
            ],
            &r,
        );
        let kernel_route = |p: &str, gw: &str, proto: u8| {
            let mut k = Route::new(net(p));
            k.gateway = Some(ip(gw));
            k.oif = Some(2);
            k.protocol = proto;
            k
        };
        let actual = vec![
            kernel_route("10.244.2.0/24", "192.168.0.2", 87), // right (oif filled in)
            kernel_route("10.244.3.0/24", "192.168.0.9", 87), // wrong gateway
            kernel_route("10.244.9.0/24", "192.168.0.9", 87), // unknown: ours, stale
            kernel_route("10.244.8.0/24", "192.168.0.9", 4),  // someone else's protocol
            kernel_route("10.244.1.0/24", "192.168.0.9", 87), // local subnet: not ours
            kernel_route("10.9.0.0/24", "192.168.0.9", 87),   // outside the scope
        ];
        let ops = t.reconcile(&actual, &r, false);
        let mut replaced: Vec<String> = ops
            .iter()
            .map(|o| o.route().destination.to_string())
            .collect();
        replaced.sort();
        assert_eq!(replaced, vec!["10.244.3.0/24", "10.244.4.0/24"]);
        assert!(ops.iter().all(|o| matches!(o, RouteOp::Replace(_))));
        let ops = t.reconcile(&actual, &r, true);
        let deleted: Vec<String> = ops
            .iter()
            .filter(|o| matches!(o, RouteOp::Delete(_)))
            .map(|o| o.route().destination.to_string())
            .collect();
        assert_eq!(deleted, vec!["10.244.9.0/24"]);
    }

    #[test]
    fn hop_sets_are_shared() {
        let mut t = RouteTable::new(scope());
        let changes: Vec<RouteChange> = (0..200)
            .map(|i| install(&format!("10.244.{i}.0/24"), &["192.168.0.2", "192.168.0.3"]))
            .collect();
        t.apply(changes, &Resolver::new());
        let a = &t.desired[&net("10.244.7.0/24")];
        let b = &t.desired[&net("10.244.99.0/24")];
        assert!(Arc::ptr_eq(a, b));
    }

    #[test]
    fn kernel_failures_are_recorded_and_cleared_by_the_next_change() {
        let mut t = RouteTable::new(scope());
        let r = Resolver::new();
        let ops = t.apply(vec![install("10.244.2.0/24", &["10.99.0.1"])], &r);
        t.record_failures(&ops, vec![(0, "Network is unreachable".into())]);
        assert_eq!(
            t.routes()[0].error.as_deref(),
            Some("Network is unreachable")
        );
        // The failed replace may have left an older route: withdrawing deletes it anyway.
        let ops = t.apply(vec![remove("10.244.2.0/24")], &r);
        assert!(matches!(&ops[..], [RouteOp::Delete(_)]));
        assert!(t.failed().is_empty());
    }
}
