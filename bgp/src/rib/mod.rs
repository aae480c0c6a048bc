//! Routing information bases: Adj-RIB-In per peer, the Loc-RIB with best-path selection and
//! ECMP, Adj-RIB-Out per peer, route reflection and graceful-restart (receiving side).
//!
//! Sans-IO like the session: every call returns a [`RibOutput`] with the kernel route diff and
//! the UPDATEs to send, ready to encode for each peer's session.

pub mod best;
mod export;
pub mod path;

pub use path::{PathAttrs, DEFAULT_LOCAL_PREF};

use crate::codec::{Family, Update};
use crate::policy::PeerPolicy;
use best::{select, Candidate};
use export::{export_attrs, BestRef};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Speaker-wide RIB settings.
#[derive(Debug, Clone)]
pub struct RibConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Route-reflection cluster id; the router id when unset.
    pub cluster_id: Option<Ipv4Addr>,
}

impl RibConfig {
    /// The cluster id in use.
    pub fn cluster_id(&self) -> Ipv4Addr {
        self.cluster_id.unwrap_or(self.router_id)
    }
}

/// A peer as the RIB sees it.
#[derive(Debug, Clone)]
pub struct RibPeer {
    /// Peer address (its identity in the RIB).
    pub addr: IpAddr,
    /// Peer AS; equal to ours means iBGP.
    pub remote_as: u32,
    /// The peer is our route-reflector client.
    pub rr_client: bool,
    /// Rewrite the next hop to ourselves on eBGP-learned routes sent to this iBGP peer.
    pub next_hop_self: bool,
    /// Import/export filters and the prefix limit.
    pub policy: PeerPolicy,
}

/// What an Established session tells the RIB.
#[derive(Debug, Clone)]
pub struct PeerSession {
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Negotiated families.
    pub families: Vec<Family>,
    /// Whether the session carries 4-octet AS numbers.
    pub four_octet: bool,
    /// Our IPv4 next hop toward this peer.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop toward this peer.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Families for which the peer's OPEN says it kept forwarding state (GR F bit); stale
    /// routes of other families are flushed at once.
    pub forwarding_preserved: Vec<Family>,
}

/// Where a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Source {
    /// Originated here.
    Local,
    /// Learned from this peer.
    Peer(IpAddr),
}

/// A change the kernel programmer must apply. Next hops are the ECMP set, sorted; IPv4-mapped
/// IPv6 next hops are given as IPv4 (the kernel routes IPv6 via IPv4 gateways).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RouteChange {
    /// A new route.
    Install {
        /// Destination.
        prefix: IpNet,
        /// Gateways.
        next_hops: Vec<IpAddr>,
    },
    /// The gateways of an installed route changed.
    Replace {
        /// Destination.
        prefix: IpNet,
        /// Gateways.
        next_hops: Vec<IpAddr>,
    },
    /// The route is gone.
    Remove {
        /// Destination.
        prefix: IpNet,
    },
}

impl RouteChange {
    /// The destination.
    pub fn prefix(&self) -> IpNet {
        match self {
            RouteChange::Install { prefix, .. }
            | RouteChange::Replace { prefix, .. }
            | RouteChange::Remove { prefix } => *prefix,
        }
    }
}

/// What one RIB operation produced.
#[derive(Debug, Default, Clone)]
pub struct RibOutput {
    /// Kernel route changes, in order.
    pub routes: Vec<RouteChange>,
    /// UPDATEs to send, per peer, in order (AS4 attributes already prepared for the session).
    pub updates: Vec<(IpAddr, Update)>,
    /// Set when the peer just went over its prefix limit: (family, limit).
    pub max_prefix_exceeded: Option<(Family, u32)>,
}

/// One Loc-RIB entry as reported to users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocRoute {
    /// Destination.
    pub prefix: IpNet,
    /// Where the best path came from.
    pub source: Source,
    /// The best path's attributes.
    pub attrs: PathAttrs,
    /// The ECMP gateways (empty for local routes).
    pub next_hops: Vec<IpAddr>,
    /// The best path is stale (its peer is restarting).
    pub stale: bool,
}

#[derive(Debug, Clone)]
struct InEntry {
    /// None when the import policy or loop detection rejected it.
    attrs: Option<Arc<PathAttrs>>,
    stale: bool,
}

#[derive(Debug)]
pub(crate) struct PeerEntry {
    pub(crate) cfg: RibPeer,
    pub(crate) session: Option<PeerSession>,
    /// Last known BGP identifier (kept while the peer is down, for its stale routes).
    pub(crate) router_id: Ipv4Addr,
    adj_in: HashMap<IpNet, InEntry>,
    adj_out: HashMap<IpNet, Arc<PathAttrs>>,
}

#[derive(Debug, Clone)]
struct BestEntry {
    source: Source,
    attrs: Arc<PathAttrs>,
    /// Shared between prefixes (see [`Rib::intern`]).
    next_hops: Arc<[IpAddr]>,
    stale: bool,
}

/// Per-peer UPDATE contents gathered during one operation.
#[derive(Default)]
struct Pending {
    routes: Vec<RouteChange>,
    announce: BTreeMap<IpAddr, Vec<(IpNet, Arc<PathAttrs>)>>,
    withdraw: BTreeMap<IpAddr, Vec<IpNet>>,
}

/// The RIBs of one speaker.
#[derive(Debug)]
pub struct Rib {
    cfg: RibConfig,
    peers: BTreeMap<IpAddr, PeerEntry>,
    local: BTreeMap<IpNet, Arc<PathAttrs>>,
    /// Unordered for compactness (a route costs a few dozen bytes here); the few callers
    /// that need an order sort.
    best: HashMap<IpNet, BestEntry>,
    /// ECMP sets in use: a cluster has about as many as it has peers, not as routes.
    hop_sets: HashSet<Arc<[IpAddr]>>,
}

impl Rib {
    /// An empty RIB.
    pub fn new(cfg: RibConfig) -> Self {
        Rib {
            cfg,
            peers: BTreeMap::new(),
            local: BTreeMap::new(),
            best: HashMap::new(),
            hop_sets: HashSet::new(),
        }
    }

    /// Registers a peer (down until [`Rib::peer_up`]).
    pub fn add_peer(&mut self, peer: RibPeer) {
        self.peers.insert(
            peer.addr,
            PeerEntry {
                cfg: peer,
                session: None,
                router_id: Ipv4Addr::UNSPECIFIED,
                adj_in: HashMap::new(),
                adj_out: HashMap::new(),
            },
        );
    }

    /// Removes a peer and every route it gave us.
    pub fn remove_peer(&mut self, addr: IpAddr) -> RibOutput {
        let mut out = self.peer_down(addr, &[]);
        self.peers.remove(&addr);
        out.updates.retain(|(p, _)| *p != addr);
        out
    }

    /// Accepted prefixes from a peer (Adj-RIB-In after policy).
    pub fn prefixes_received(&self, addr: IpAddr) -> usize {
        self.peers
            .get(&addr)
            .map(|p| p.adj_in.values().filter(|e| e.attrs.is_some()).count())
            .unwrap_or(0)
    }

    /// Prefixes currently advertised to a peer (Adj-RIB-Out).
    pub fn prefixes_sent(&self, addr: IpAddr) -> usize {
        self.peers.get(&addr).map(|p| p.adj_out.len()).unwrap_or(0)
    }

    /// The Loc-RIB: the best route of every prefix.
    pub fn loc_rib(&self) -> Vec<LocRoute> {
        let mut v: Vec<LocRoute> = self
            .best
            .iter()
            .map(|(prefix, b)| LocRoute {
                prefix: *prefix,
                source: b.source,
                attrs: (*b.attrs).clone(),
                next_hops: b.next_hops.to_vec(),
                stale: b.stale,
            })
            .collect();
        v.sort_by_key(|r| r.prefix);
        v
    }

    /// The shared copy of an ECMP set.
    fn intern(&mut self, hops: Vec<IpAddr>) -> Arc<[IpAddr]> {
        if let Some(h) = self.hop_sets.get(hops.as_slice()) {
            return h.clone();
        }
        // Forget sets no route uses any more before the table grows.
        if self.hop_sets.len() >= 64 {
            self.hop_sets.retain(|h| Arc::strong_count(h) > 1);
        }
        let h: Arc<[IpAddr]> = hops.into();
        self.hop_sets.insert(h.clone());
        h
    }

    /// Originates a prefix from this speaker.
    pub fn announce_local(&mut self, prefix: IpNet, attrs: PathAttrs) -> RibOutput {
        self.local.insert(prefix.trunc(), Arc::new(attrs));
        self.run(|rib, p| rib.recompute(prefix.trunc(), p))
    }

    /// Stops originating a prefix.
    pub fn withdraw_local(&mut self, prefix: IpNet) -> RibOutput {
        self.local.remove(&prefix.trunc());
        self.run(|rib, p| rib.recompute(prefix.trunc(), p))
    }

    /// A session came up: stale routes of families without preserved forwarding go, and the
    /// peer gets our whole table followed by End-of-RIB for each family.
    pub fn peer_up(&mut self, addr: IpAddr, session: PeerSession) -> RibOutput {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return RibOutput::default();
        };
        peer.router_id = session.router_id;
        let families = session.families.clone();
        let preserved = session.forwarding_preserved.clone();
        peer.session = Some(session);
        peer.adj_out.clear();
        let flushed: Vec<IpNet> = peer
            .adj_in
            .iter()
            .filter(|(p, e)| e.stale && !preserved.contains(&Family::of(p)))
            .map(|(p, _)| *p)
            .collect();
        for p in &flushed {
            peer.adj_in.remove(p);
        }
        let mut known: Vec<IpNet> = self.best.keys().copied().collect();
        known.sort();
        let prefixes: Vec<IpNet> = flushed.into_iter().chain(known).collect();
        let mut out = self.run(|rib, pending| {
            for p in prefixes {
                rib.recompute(p, pending);
            }
        });
        for f in families {
            out.updates.push((addr, Update::end_of_rib(f)));
        }
        out
    }

    /// A session went down. Routes of `retain` families are kept as stale (graceful restart);
    /// all others are removed.
    pub fn peer_down(&mut self, addr: IpAddr, retain: &[Family]) -> RibOutput {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return RibOutput::default();
        };
        peer.session = None;
        peer.adj_out.clear();
        let mut gone = Vec::new();
        peer.adj_in.retain(|p, e| {
            let keep = retain.contains(&Family::of(p));
            if keep {
                e.stale = true;
            } else {
                gone.push(*p);
            }
            keep
        });
        let stale: Vec<IpNet> = peer.adj_in.keys().copied().collect();
        self.run(|rib, pending| {
            for p in gone.into_iter().chain(stale) {
                rib.recompute(p, pending);
            }
        })
    }

    /// The peer finished sending a family: its remaining stale routes of that family go.
    pub fn end_of_rib(&mut self, addr: IpAddr, family: Family) -> RibOutput {
        self.flush_stale(addr, |p| Family::of(p) == family)
    }

    /// The restart timer ran out: every remaining stale route of the peer goes.
    pub fn graceful_restart_expired(&mut self, addr: IpAddr) -> RibOutput {
        self.flush_stale(addr, |_| true)
    }

    fn flush_stale(&mut self, addr: IpAddr, which: impl Fn(&IpNet) -> bool) -> RibOutput {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return RibOutput::default();
        };
        let gone: Vec<IpNet> = peer
            .adj_in
            .iter()
            .filter(|(p, e)| e.stale && which(p))
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            peer.adj_in.remove(p);
        }
        self.run(|rib, pending| gone.into_iter().for_each(|p| rib.recompute(p, pending)))
    }

    /// The peer asked for a family again (route refresh): resend its Adj-RIB-Out.
    pub fn route_refresh(&mut self, addr: IpAddr, family: Family) -> RibOutput {
        let Some(peer) = self.peers.get(&addr) else {
            return RibOutput::default();
        };
        let mut pending = Pending::default();
        let entries: Vec<(IpNet, Arc<PathAttrs>)> = peer
            .adj_out
            .iter()
            .filter(|(p, _)| Family::of(p) == family)
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        pending.announce.insert(addr, entries);
        let mut out = RibOutput::default();
        self.flush(pending, &mut out);
        out.updates.push((addr, Update::end_of_rib(family)));
        out
    }

    /// Applies an UPDATE from a peer: withdrawals, then announcements through loop detection
    /// and the import policy; then checks the prefix limit.
    pub fn apply_update(&mut self, addr: IpAddr, update: &Update) -> RibOutput {
        let Some(peer) = self.peers.get(&addr) else {
            return RibOutput::default();
        };
        let Some(session) = peer.session.as_ref() else {
            return RibOutput::default();
        };
        let families = session.families.clone();
        let (v4, mp) = PathAttrs::from_update(update, session.four_octet);
        let mut touched = Vec::new();
        let mut last_family = None;
        let peer = self.peers.get_mut(&addr).expect("checked above");
        for p in update.withdrawals() {
            peer.adj_in.remove(&p);
            touched.push(p);
        }
        let groups = [
            (
                v4,
                update
                    .nlri
                    .iter()
                    .copied()
                    .map(IpNet::V4)
                    .collect::<Vec<_>>(),
            ),
            (
                mp,
                update
                    .mp_reach()
                    .map(|r| r.nlri.clone())
                    .unwrap_or_default(),
            ),
        ];
        for (attrs, prefixes) in groups {
            let Some(attrs) = attrs else { continue };
            let attrs = import_attrs(&self.cfg, &peer.cfg, attrs);
            for p in prefixes {
                if !families.contains(&Family::of(&p)) {
                    continue;
                }
                let accepted = attrs
                    .as_ref()
                    .filter(|_| peer.cfg.policy.import.accepts(&p));
                peer.adj_in.insert(
                    p,
                    InEntry {
                        attrs: accepted.cloned(),
                        stale: false,
                    },
                );
                touched.push(p);
                last_family = Some(Family::of(&p));
            }
        }
        let exceeded = match (peer.cfg.policy.max_prefixes, last_family) {
            (Some(limit), Some(f)) if peer.adj_in.len() > limit as usize => Some((f, limit)),
            _ => None,
        };
        let mut out = self.run(|rib, pending| {
            for p in touched {
                rib.recompute(p, pending);
            }
        });
        out.max_prefix_exceeded = exceeded;
        out
    }

    fn run(&mut self, f: impl FnOnce(&mut Rib, &mut Pending)) -> RibOutput {
        let mut pending = Pending::default();
        f(self, &mut pending);
        let mut out = RibOutput {
            routes: std::mem::take(&mut pending.routes),
            ..RibOutput::default()
        };
        self.flush(pending, &mut out);
        out
    }

    /// Candidate paths for a prefix: our own, then every peer's accepted one.
    fn candidates(&self, prefix: &IpNet) -> Vec<(Source, Arc<PathAttrs>, bool, Ipv4Addr, bool)> {
        let mut v = Vec::new();
        if let Some(a) = self.local.get(prefix) {
            v.push((Source::Local, a.clone(), false, self.cfg.router_id, false));
        }
        for (addr, peer) in &self.peers {
            if let Some(InEntry {
                attrs: Some(a),
                stale,
            }) = peer.adj_in.get(prefix)
            {
                let ibgp = peer.cfg.remote_as == self.cfg.local_as;
                v.push((Source::Peer(*addr), a.clone(), ibgp, peer.router_id, *stale));
            }
        }
        v
    }

    /// Re-runs selection for one prefix; records the kernel diff and the per-peer changes.
    fn recompute(&mut self, prefix: IpNet, pending: &mut Pending) {
        let cands = self.candidates(&prefix);
        let views: Vec<Candidate> = cands
            .iter()
            .map(|(src, a, ibgp, rid, _)| Candidate {
                attrs: a,
                local: *src == Source::Local,
                ibgp: *ibgp,
                peer_router_id: *rid,
                peer_addr: match src {
                    Source::Peer(a) => *a,
                    Source::Local => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                },
            })
            .collect();
        let selected = select(&views, self.cfg.local_as).map(|sel| {
            let (source, attrs, _, _, stale) = cands[sel.best].clone();
            let next_hops: Vec<IpAddr> = if source == Source::Local {
                Vec::new()
            } else {
                let set: BTreeSet<IpAddr> = sel
                    .ecmp
                    .iter()
                    .map(|&i| kernel_next_hop(cands[i].1.next_hop))
                    .filter(|a| !a.is_unspecified())
                    .collect();
                set.into_iter().collect()
            };
            (source, attrs, next_hops, stale)
        });
        let new_best = selected.map(|(source, attrs, next_hops, stale)| BestEntry {
            source,
            attrs,
            next_hops: self.intern(next_hops),
            stale,
        });
        let old_hops: Arc<[IpAddr]> = self
            .best
            .get(&prefix)
            .map(|b| b.next_hops.clone())
            .unwrap_or_else(|| Arc::from([]));
        let new_hops: Arc<[IpAddr]> = new_best
            .as_ref()
            .map(|b| b.next_hops.clone())
            .unwrap_or_else(|| Arc::from([]));
        match &new_best {
            Some(b) => {
                self.best.insert(prefix, b.clone());
            }
            None => {
                self.best.remove(&prefix);
            }
        }
        self.export_prefix(prefix, new_best.as_ref(), pending);
        pending
            .routes
            .extend(kernel_diff(prefix, &old_hops, &new_hops));
    }

    fn export_prefix(&mut self, prefix: IpNet, best: Option<&BestEntry>, pending: &mut Pending) {
        let targets: Vec<IpAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.session.is_some())
            .map(|(a, _)| *a)
            .collect();
        for to in targets {
            let desired = best.and_then(|b| {
                let from = match b.source {
                    Source::Peer(a) => self.peers.get(&a),
                    Source::Local => None,
                };
                let r = BestRef {
                    source: b.source,
                    attrs: &b.attrs,
                };
                export_attrs(&self.cfg, &prefix, &r, from, &self.peers[&to])
            });
            let peer = self.peers.get_mut(&to).expect("target exists");
            match desired {
                Some(d) => {
                    if peer.adj_out.get(&prefix).map(|a| **a == d) != Some(true) {
                        let d = Arc::new(d);
                        peer.adj_out.insert(prefix, d.clone());
                        pending.announce.entry(to).or_default().push((prefix, d));
                    }
                }
                None => {
                    if peer.adj_out.remove(&prefix).is_some() {
                        pending.withdraw.entry(to).or_default().push(prefix);
                    }
                }
            }
        }
    }

    /// Packs pending changes into UPDATEs: withdrawals first, then announcements grouped by
    /// identical attributes.
    fn flush(&self, pending: Pending, out: &mut RibOutput) {
        for (peer, prefixes) in pending.withdraw {
            for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
                let ps: Vec<IpNet> = prefixes
                    .iter()
                    .copied()
                    .filter(|p| Family::of(p) == family)
                    .collect();
                if !ps.is_empty() {
                    for u in path::withdraw_updates(family, ps) {
                        out.updates.push((peer, u));
                    }
                }
            }
        }
        for (peer, entries) in pending.announce {
            let four = self.peers[&peer]
                .session
                .as_ref()
                .is_some_and(|s| s.four_octet);
            let mut groups: Vec<(Family, Arc<PathAttrs>, Vec<IpNet>)> = Vec::new();
            let mut index: HashMap<(Family, Arc<PathAttrs>), usize> = HashMap::new();
            for (p, a) in entries {
                let key = (Family::of(&p), a.clone());
                let i = *index.entry(key).or_insert_with(|| {
                    groups.push((Family::of(&p), a, Vec::new()));
                    groups.len() - 1
                });
                groups[i].2.push(p);
            }
            for (family, attrs, prefixes) in groups {
                for u in path::announce_updates(&attrs, family, prefixes, four) {
                    out.updates.push((peer, u));
                }
            }
        }
    }
}

/// Import checks: AS-path loop, reflection loops (ORIGINATOR_ID, CLUSTER_LIST); eBGP paths lose
/// LOCAL_PREF and reflection attributes. None means "received but rejected".
fn import_attrs(cfg: &RibConfig, peer: &RibPeer, mut a: PathAttrs) -> Option<Arc<PathAttrs>> {
    if a.as_path.contains(cfg.local_as) {
        return None;
    }
    let ibgp = peer.remote_as == cfg.local_as;
    if ibgp {
        if a.originator_id == Some(cfg.router_id) || a.cluster_list.contains(&cfg.cluster_id()) {
            return None;
        }
    } else {
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list.clear();
    }
    Some(Arc::new(a))
}

/// The gateway as the kernel wants it: IPv4-mapped IPv6 becomes IPv4.
fn kernel_next_hop(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

fn kernel_diff(prefix: IpNet, old: &[IpAddr], new: &[IpAddr]) -> Option<RouteChange> {
    match (old.is_empty(), new.is_empty()) {
        (true, true) => None,
        (true, false) => Some(RouteChange::Install {
            prefix,
            next_hops: new.to_vec(),
        }),
        (false, true) => Some(RouteChange::Remove { prefix }),
        (false, false) if old != new => Some(RouteChange::Replace {
            prefix,
            next_hops: new.to_vec(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
