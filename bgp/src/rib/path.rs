//! Path attributes as the RIB holds them, and their translation to and from UPDATEs.

use crate::codec::as4;
use crate::codec::attribute::flags;
use crate::codec::prefix::encoded_len;
use crate::codec::{
    Aggregator, AsPath, AttrValue, Attribute, CodecContext, Family, Message, MpNextHop, MpReach,
    MpUnreach, Origin, Update, MAX_MESSAGE_LEN,
};
use ipnet::IpNet;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The attributes of one path, with the true (4-octet) AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PathAttrs {
    /// ORIGIN.
    pub origin: Origin,
    /// AS_PATH.
    pub as_path: AsPath,
    /// Where to forward; unspecified for locally originated routes until exported.
    pub next_hop: IpAddr,
    /// IPv6 link-local next hop, when the peer sent one.
    pub link_local: Option<Ipv6Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<u32>,
    /// ORIGINATOR_ID (route reflection).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (route reflection).
    pub cluster_list: Vec<Ipv4Addr>,
    /// Attributes this implementation does not interpret, passed on as they came.
    #[serde(skip)]
    pub unknown: Vec<Attribute>,
}

/// LOCAL_PREF assumed when a path has none.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

impl PathAttrs {
    /// Attributes of a route this speaker originates.
    pub fn local(origin: Origin) -> Self {
        PathAttrs {
            origin,
            as_path: AsPath::default(),
            next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            link_local: None,
            med: None,
            local_pref: None,
            atomic_aggregate: false,
            aggregator: None,
            communities: Vec::new(),
            originator_id: None,
            cluster_list: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// LOCAL_PREF, or the default.
    pub fn effective_local_pref(&self) -> u32 {
        self.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }

    /// Builds the attributes an UPDATE gives its IPv4 NLRI and its MP_REACH_NLRI prefixes.
    /// `four_octet` is the session's AS width; AS4_* are folded in here.
    pub fn from_update(
        update: &Update,
        four_octet: bool,
    ) -> (Option<PathAttrs>, Option<PathAttrs>) {
        let mut attrs = update.attributes.clone();
        as4::reconcile_inbound(&mut attrs, four_octet);
        let mut base = PathAttrs::local(Origin::Incomplete);
        let mut v4_next_hop = None;
        let mut mp_next_hop = None;
        for a in attrs {
            match a.value {
                AttrValue::Origin(o) => base.origin = o,
                AttrValue::AsPath(p) => base.as_path = p,
                AttrValue::NextHop(n) => v4_next_hop = Some(n),
                AttrValue::Med(m) => base.med = Some(m),
                AttrValue::LocalPref(l) => base.local_pref = Some(l),
                AttrValue::AtomicAggregate => base.atomic_aggregate = true,
                AttrValue::Aggregator(ag) => base.aggregator = Some(ag),
                AttrValue::Communities(c) => base.communities = c,
                AttrValue::OriginatorId(o) => base.originator_id = Some(o),
                AttrValue::ClusterList(c) => base.cluster_list = c,
                AttrValue::MpReach(r) => mp_next_hop = Some(r.next_hop),
                AttrValue::MpUnreach(_) => {}
                AttrValue::As4Path(_) | AttrValue::As4Aggregator(_) => {}
                AttrValue::Unknown { .. } => base.unknown.push(a),
            }
        }
        let v4 = (!update.nlri.is_empty())
            .then_some(v4_next_hop)
            .flatten()
            .map(|nh| PathAttrs {
                next_hop: IpAddr::V4(nh),
                ..base.clone()
            });
        let mp = mp_next_hop.map(|nh| {
            let (next_hop, link_local) = match nh {
                MpNextHop::V4(a) => (IpAddr::V4(a), None),
                MpNextHop::V6 { global, link_local } => (IpAddr::V6(global), link_local),
            };
            PathAttrs {
                next_hop,
                link_local,
                ..base
            }
        });
        (v4, mp)
    }

    /// The wire attributes for these prefixes of `family` (NEXT_HOP or MP_REACH_NLRI added).
    pub fn to_attributes(
        &self,
        family: Family,
        nlri: Vec<IpNet>,
        four_octet: bool,
    ) -> (Vec<Attribute>, Vec<IpNet>) {
        let mut v = vec![
            Attribute::new(AttrValue::Origin(self.origin)),
            Attribute::new(AttrValue::AsPath(self.as_path.clone())),
        ];
        let mut v4_nlri = Vec::new();
        let mut mp = None;
        match (family == Family::IPV4_UNICAST, self.next_hop) {
            (true, IpAddr::V4(nh)) => {
                v.push(Attribute::new(AttrValue::NextHop(nh)));
                v4_nlri = nlri;
            }
            (_, nh) => {
                let next_hop = match nh {
                    IpAddr::V4(a) => MpNextHop::V6 {
                        global: a.to_ipv6_mapped(),
                        link_local: self.link_local,
                    },
                    IpAddr::V6(global) => MpNextHop::V6 {
                        global,
                        link_local: self.link_local,
                    },
                };
                mp = Some(MpReach {
                    family,
                    next_hop,
                    nlri,
                });
            }
        }
        if let Some(m) = self.med {
            v.push(Attribute::new(AttrValue::Med(m)));
        }
        if let Some(l) = self.local_pref {
            v.push(Attribute::new(AttrValue::LocalPref(l)));
        }
        if self.atomic_aggregate {
            v.push(Attribute::new(AttrValue::AtomicAggregate));
        }
        if let Some(ag) = self.aggregator {
            v.push(Attribute::new(AttrValue::Aggregator(ag)));
        }
        if !self.communities.is_empty() {
            v.push(Attribute::new(AttrValue::Communities(
                self.communities.clone(),
            )));
        }
        if let Some(o) = self.originator_id {
            v.push(Attribute::new(AttrValue::OriginatorId(o)));
        }
        if !self.cluster_list.is_empty() {
            v.push(Attribute::new(AttrValue::ClusterList(
                self.cluster_list.clone(),
            )));
        }
        if let Some(mp) = mp {
            v.push(Attribute::new(AttrValue::MpReach(mp)));
        }
        v.extend(self.unknown.iter().cloned());
        as4::prepare_outbound(&mut v, four_octet);
        (v, v4_nlri)
    }

    /// The attributes to pass to the next speaker: unknown optional transitive attributes are
    /// kept with the Partial bit set; unknown non-transitive ones are dropped (RFC 4271 §5).
    pub fn unknown_for_propagation(&self) -> Vec<Attribute> {
        self.unknown
            .iter()
            .filter(|a| a.flags & flags::TRANSITIVE != 0)
            .map(|a| Attribute {
                flags: a.flags | flags::PARTIAL,
                value: a.value.clone(),
            })
            .collect()
    }
}

/// Room for NLRI in one UPDATE: the limit less header, length fields and attributes.
fn nlri_room(attrs: &[Attribute], ctx: &CodecContext) -> usize {
    let mut enc = Vec::new();
    attrs.iter().for_each(|a| a.encode(ctx, &mut enc));
    // Header 19, two length fields 4; MP_REACH may need the extended length (1 more).
    MAX_MESSAGE_LEN.saturating_sub(19 + 4 + enc.len() + 1)
}

/// Splits prefixes into chunks whose NLRI encodings fit `room` octets.
fn chunk_prefixes(prefixes: Vec<IpNet>, room: usize) -> Vec<Vec<IpNet>> {
    let mut chunks = Vec::new();
    let mut cur = Vec::new();
    let mut used = 0;
    for p in prefixes {
        let l = encoded_len(&p);
        if used + l > room && !cur.is_empty() {
            chunks.push(std::mem::take(&mut cur));
            used = 0;
        }
        used += l;
        cur.push(p);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// UPDATEs that announce `prefixes` (one family) with `attrs`, each within 4096 octets.
pub fn announce_updates(
    attrs: &PathAttrs,
    family: Family,
    prefixes: Vec<IpNet>,
    four_octet: bool,
) -> Vec<Update> {
    let ctx = CodecContext {
        four_octet_as: four_octet,
    };
    let (empty_attrs, _) = attrs.to_attributes(family, Vec::new(), four_octet);
    let room = nlri_room(&empty_attrs, &ctx);
    chunk_prefixes(prefixes, room)
        .into_iter()
        .map(|chunk| {
            let (attributes, nlri) = attrs.to_attributes(family, chunk, four_octet);
            let nlri = nlri
                .into_iter()
                .filter_map(|n| match n {
                    IpNet::V4(n) => Some(n),
                    IpNet::V6(_) => None,
                })
                .collect();
            Update {
                withdrawn: Vec::new(),
                attributes,
                nlri,
            }
        })
        .collect()
}

/// UPDATEs that withdraw `prefixes` (one family), each within 4096 octets.
pub fn withdraw_updates(family: Family, prefixes: Vec<IpNet>) -> Vec<Update> {
    let room = MAX_MESSAGE_LEN - 19 - 4 - 8;
    chunk_prefixes(prefixes, room)
        .into_iter()
        .map(|chunk| {
            if family == Family::IPV4_UNICAST {
                Update {
                    withdrawn: chunk
                        .into_iter()
                        .filter_map(|n| match n {
                            IpNet::V4(n) => Some(n),
                            IpNet::V6(_) => None,
                        })
                        .collect(),
                    ..Update::default()
                }
            } else {
                Update {
                    attributes: vec![Attribute::new(AttrValue::MpUnreach(MpUnreach {
                        family,
                        withdrawn: chunk,
                    }))],
                    ..Update::default()
                }
            }
        })
        .collect()
}

/// Whether an update encodes within the size limit (used by tests and debug checks).
pub fn fits(update: &Update, four_octet: bool) -> bool {
    Message::Update(update.clone())
        .encode(&CodecContext {
            four_octet_as: four_octet,
        })
        .is_ok()
}
