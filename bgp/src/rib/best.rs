//! Best-path selection (RFC 4271 §9.1.2.2 with RFC 4456 §9) and the ECMP set.

use super::path::PathAttrs;
use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr};

/// What selection needs to know about one candidate path.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The path's attributes.
    pub attrs: &'a PathAttrs,
    /// Originated by this speaker.
    pub local: bool,
    /// Learned over iBGP.
    pub ibgp: bool,
    /// The BGP identifier of the peer it came from.
    pub peer_router_id: Ipv4Addr,
    /// The peer's address.
    pub peer_addr: IpAddr,
}

impl Candidate<'_> {
    fn neighbour_as(&self, local_as: u32) -> u32 {
        self.attrs.as_path.first_as().unwrap_or(local_as)
    }

    fn router_id(&self) -> u32 {
        u32::from(self.attrs.originator_id.unwrap_or(self.peer_router_id))
    }
}

/// The outcome: the index of the best candidate and the indices of the paths equal to it up to
/// the router-id step (the ECMP set, best included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Index of the best path.
    pub best: usize,
    /// Indices of the multipath set.
    pub ecmp: Vec<usize>,
}

/// Keeps only the indices whose key equals the best (smallest) key.
fn keep_min<K: Ord>(c: &[Candidate], idx: &mut Vec<usize>, key: impl Fn(&Candidate) -> K) {
    if let Some(min) = idx.iter().map(|&i| key(&c[i])).min() {
        idx.retain(|&i| key(&c[i]) == min);
    }
}

/// Runs the decision process. `local_as` stands in for the neighbour AS of paths without one.
pub fn select(c: &[Candidate], local_as: u32) -> Option<Selection> {
    let mut idx: Vec<usize> = (0..c.len()).collect();
    if idx.is_empty() {
        return None;
    }
    // Routes we originate win outright: the kernel already has them.
    if let Some(i) = idx.iter().copied().find(|&i| c[i].local) {
        return Some(Selection {
            best: i,
            ecmp: vec![i],
        });
    }
    keep_min(c, &mut idx, |p| Reverse(p.attrs.effective_local_pref()));
    keep_min(c, &mut idx, |p| p.attrs.as_path.len_for_selection());
    keep_min(c, &mut idx, |p| p.attrs.origin);
    // MED is only comparable between paths from the same neighbouring AS; a missing MED is 0.
    let survivors = idx.clone();
    idx.retain(|&i| {
        let me = &c[i];
        let my_med = me.attrs.med.unwrap_or(0);
        !survivors.iter().any(|&j| {
            c[j].neighbour_as(local_as) == me.neighbour_as(local_as)
                && c[j].attrs.med.unwrap_or(0) < my_med
        })
    });
    keep_min(c, &mut idx, |p| p.ibgp);
    let ecmp = idx.clone();
    keep_min(c, &mut idx, |p| p.router_id());
    keep_min(c, &mut idx, |p| p.attrs.cluster_list.len());
    keep_min(c, &mut idx, |p| p.peer_addr);
    Some(Selection { best: idx[0], ecmp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{AsPath, Origin};

    fn attrs(as_path: &[u32]) -> PathAttrs {
        PathAttrs {
            as_path: AsPath::sequence(as_path.to_vec()),
            next_hop: "192.0.2.1".parse().unwrap(),
            ..PathAttrs::local(Origin::Igp)
        }
    }

    fn cand(a: &PathAttrs, ibgp: bool, id: u8) -> Candidate<'_> {
        Candidate {
            attrs: a,
            local: false,
            ibgp,
            peer_router_id: Ipv4Addr::new(10, 0, 0, id),
            peer_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, id)),
        }
    }

    fn best(c: &[Candidate]) -> usize {
        select(c, 65000).unwrap().best
    }

    #[test]
    fn highest_local_pref_wins_over_shorter_path() {
        let a = PathAttrs {
            local_pref: Some(200),
            ..attrs(&[1, 2, 3])
        };
        let b = attrs(&[1]);
        assert_eq!(best(&[cand(&b, true, 1), cand(&a, true, 2)]), 1);
    }

    #[test]
    fn shortest_as_path_wins_and_a_set_counts_one() {
        let a = attrs(&[1, 2]);
        let b = attrs(&[3]);
        assert_eq!(best(&[cand(&a, false, 1), cand(&b, false, 2)]), 1);
        let mut set = attrs(&[4]);
        set.as_path.segments.push(crate::codec::AsSegment {
            kind: crate::codec::SegmentKind::Set,
            asns: vec![5, 6, 7],
        });
        // [4 {5 6 7}] has length 2, same as [1 2]: next steps decide (router id 1 < 2).
        assert_eq!(best(&[cand(&set, false, 2), cand(&a, false, 1)]), 1);
    }

    #[test]
    fn lowest_origin_wins() {
        let a = PathAttrs {
            origin: Origin::Incomplete,
            ..attrs(&[1])
        };
        let b = PathAttrs {
            origin: Origin::Egp,
            ..attrs(&[2])
        };
        assert_eq!(best(&[cand(&a, false, 1), cand(&b, false, 2)]), 1);
    }

    #[test]
    fn med_compared_only_within_the_same_neighbour_as() {
        let a = PathAttrs {
            med: Some(50),
            ..attrs(&[1, 9])
        };
        let b = PathAttrs {
            med: Some(10),
            ..attrs(&[1, 8])
        };
        assert_eq!(best(&[cand(&a, false, 1), cand(&b, false, 2)]), 1);
        // Different neighbour AS: MED ignored, router id decides.
        let c = PathAttrs {
            med: Some(10),
            ..attrs(&[2, 8])
        };
        assert_eq!(best(&[cand(&a, false, 1), cand(&c, false, 2)]), 0);
        // A missing MED counts as 0.
        let d = attrs(&[1, 7]);
        assert_eq!(best(&[cand(&a, false, 1), cand(&d, false, 2)]), 1);
    }

    #[test]
    fn ebgp_over_ibgp() {
        let a = attrs(&[1]);
        let b = attrs(&[2]);
        assert_eq!(best(&[cand(&a, true, 1), cand(&b, false, 2)]), 1);
    }

    #[test]
    fn lowest_router_id_then_originator_id() {
        let a = attrs(&[1]);
        let b = attrs(&[2]);
        assert_eq!(best(&[cand(&a, false, 5), cand(&b, false, 3)]), 1);
        // A reflected path is judged by its ORIGINATOR_ID, not the reflector's id.
        let r = PathAttrs {
            originator_id: Some(Ipv4Addr::new(10, 0, 0, 1)),
            ..attrs(&[])
        };
        let s = attrs(&[]);
        assert_eq!(best(&[cand(&s, true, 2), cand(&r, true, 9)]), 1);
    }

    #[test]
    fn shorter_cluster_list_then_lowest_peer_address() {
        let id = Some(Ipv4Addr::new(10, 0, 0, 1));
        let a = PathAttrs {
            originator_id: id,
            cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1); 2],
            ..attrs(&[])
        };
        let b = PathAttrs {
            originator_id: id,
            cluster_list: vec![Ipv4Addr::new(1, 1, 1, 1)],
            ..attrs(&[])
        };
        assert_eq!(best(&[cand(&a, true, 1), cand(&b, true, 2)]), 1);
        let x = attrs(&[1]);
        let mut c1 = cand(&x, false, 1);
        let mut c2 = cand(&x, false, 1);
        c1.peer_addr = "192.0.2.9".parse().unwrap();
        c2.peer_addr = "192.0.2.4".parse().unwrap();
        assert_eq!(best(&[c1, c2]), 1);
    }

    #[test]
    fn ecmp_set_is_equal_up_to_router_id() {
        let a = attrs(&[1]);
        let b = attrs(&[2]);
        let c = attrs(&[3, 4]);
        let s = select(
            &[cand(&a, false, 2), cand(&b, false, 1), cand(&c, false, 3)],
            65000,
        )
        .unwrap();
        assert_eq!(s.best, 1);
        assert_eq!(s.ecmp, vec![0, 1]);
    }

    #[test]
    fn local_route_always_wins() {
        let a = attrs(&[]);
        let l = PathAttrs::local(Origin::Incomplete);
        let mut lc = cand(&l, false, 9);
        lc.local = true;
        assert_eq!(best(&[cand(&a, false, 1), lc]), 1);
    }
}
