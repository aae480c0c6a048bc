//! Adj-RIB-Out rules: who may receive a route (iBGP split horizon, RFC 4456 reflection) and
//! how its attributes change on the way out (AS prepend, next hop, reflection attributes).

use super::path::PathAttrs;
use super::{PeerEntry, RibConfig, Source};
use crate::codec::Family;
use ipnet::IpNet;
use std::net::IpAddr;

/// The best route for a prefix and where it came from.
pub(super) struct BestRef<'a> {
    pub source: Source,
    pub attrs: &'a PathAttrs,
}

/// The attributes to send `to` for `prefix`, or None if it must not be sent.
pub(super) fn export_attrs(
    cfg: &RibConfig,
    prefix: &IpNet,
    best: &BestRef,
    from: Option<&PeerEntry>,
    to: &PeerEntry,
) -> Option<PathAttrs> {
    let session = to.session.as_ref()?;
    let family = Family::of(prefix);
    if !session.families.contains(&family) || !to.cfg.policy.export.accepts(prefix) {
        return None;
    }
    if let Source::Peer(addr) = best.source {
        if addr == to.cfg.addr {
            return None; // never back to where it came from
        }
    }
    let to_ibgp = to.cfg.remote_as == cfg.local_as;
    let from_ibgp = from.is_some_and(|f| f.cfg.remote_as == cfg.local_as);
    let reflected = from_ibgp && to_ibgp;
    if reflected && !from.is_some_and(|f| f.cfg.rr_client) && !to.cfg.rr_client {
        return None; // RFC 4456 §6: non-client routes go to clients only
    }
    let self_hop = match prefix {
        IpNet::V4(_) => session.next_hop_v4.map(IpAddr::V4),
        IpNet::V6(_) => session.next_hop_v6.map(IpAddr::V6),
    };
    let mut out = best.attrs.clone();
    out.unknown = best.attrs.unknown_for_propagation();
    if to_ibgp {
        out.local_pref = Some(best.attrs.effective_local_pref());
        let keep_hop = match best.source {
            Source::Local => false,
            Source::Peer(_) => reflected || !to.cfg.next_hop_self,
        };
        if !keep_hop {
            out.next_hop = self_hop?;
            out.link_local = None;
        }
        if reflected {
            let from = from.expect("reflected implies a source peer");
            out.originator_id = Some(best.attrs.originator_id.unwrap_or(from.router_id));
            out.cluster_list.insert(0, cfg.cluster_id());
        }
    } else {
        out.as_path.prepend(cfg.local_as);
        out.next_hop = self_hop?;
        out.link_local = None;
        out.local_pref = None;
        if best.source != Source::Local {
            out.med = None; // a MED is not passed on to a third AS
        }
        out.originator_id = None;
        out.cluster_list.clear();
    }
    Some(out)
}
