//! 4-octet AS numbers across 2-octet speakers (RFC 6793 §4.2): AS_TRANS, AS4_PATH and
//! AS4_AGGREGATOR. The codec keeps attributes as sent; these functions translate between the
//! wire view of a 2-octet session and the true 4-octet view the RIB works with.

use super::attribute::{code, AsPath, AsSegment, AttrValue, Attribute, SegmentKind, AS_TRANS};

/// Inbound: rebuilds the true AS_PATH/AGGREGATOR from what a peer sent. On a 4-octet session the
/// AS4_* attributes must not appear and are dropped; on a 2-octet session they are merged.
pub fn reconcile_inbound(attrs: &mut Vec<Attribute>, four_octet_session: bool) {
    let as4_path = take(attrs, code::AS4_PATH);
    let as4_aggr = take(attrs, code::AS4_AGGREGATOR);
    if four_octet_session {
        return;
    }
    // RFC 6793 §4.2.3: an AGGREGATOR that is not AS_TRANS means AS4_* came from an old speaker
    // that aggregated; both AS4 attributes are then ignored.
    let mut use_as4 = true;
    for a in attrs.iter_mut() {
        if let AttrValue::Aggregator(ag) = &mut a.value {
            if ag.asn != AS_TRANS {
                use_as4 = false;
            } else if let Some(AttrValue::As4Aggregator(real)) = &as4_aggr {
                *ag = *real;
            }
        }
    }
    let (true, Some(AttrValue::As4Path(as4))) = (use_as4, as4_path) else {
        return;
    };
    for a in attrs.iter_mut() {
        if let AttrValue::AsPath(path) = &mut a.value {
            let (n, m) = (path.as4_count(), as4.as4_count());
            if n < m {
                return; // RFC 6793: AS4_PATH longer than AS_PATH is ignored.
            }
            let mut merged = leading(path, n - m);
            merged.segments.extend(as4.segments.iter().cloned());
            *path = merged;
        }
    }
}

/// Outbound: prepares attributes for a peer. On a 2-octet session the encoder writes AS_TRANS
/// for large AS numbers; this adds AS4_PATH/AS4_AGGREGATOR carrying the real ones.
pub fn prepare_outbound(attrs: &mut Vec<Attribute>, four_octet_session: bool) {
    take(attrs, code::AS4_PATH);
    take(attrs, code::AS4_AGGREGATOR);
    if four_octet_session {
        return;
    }
    let mut extra = Vec::new();
    for a in attrs.iter() {
        match &a.value {
            AttrValue::AsPath(p) if p.needs_four_octets() => {
                let without_confed = AsPath {
                    segments: p
                        .segments
                        .iter()
                        .filter(|s| matches!(s.kind, SegmentKind::Set | SegmentKind::Sequence))
                        .cloned()
                        .collect(),
                };
                extra.push(Attribute::new(AttrValue::As4Path(without_confed)));
            }
            AttrValue::Aggregator(ag) if ag.asn > 0xffff => {
                extra.push(Attribute::new(AttrValue::As4Aggregator(*ag)));
            }
            _ => {}
        }
    }
    attrs.extend(extra);
}

fn take(attrs: &mut Vec<Attribute>, c: u8) -> Option<AttrValue> {
    let i = attrs.iter().position(|a| a.code() == c)?;
    Some(attrs.remove(i).value)
}

/// The first `n` AS numbers of a path, counted as RFC 6793 does (a set counts one).
fn leading(path: &AsPath, mut n: usize) -> AsPath {
    let mut out = AsPath::default();
    for s in &path.segments {
        if n == 0 {
            break;
        }
        match s.kind {
            SegmentKind::Sequence | SegmentKind::ConfedSequence => {
                let k = n.min(s.asns.len());
                out.segments.push(AsSegment {
                    kind: s.kind,
                    asns: s.asns[..k].to_vec(),
                });
                n -= k;
            }
            SegmentKind::Set | SegmentKind::ConfedSet => {
                out.segments.push(s.clone());
                n -= 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::attribute::Aggregator;
    use std::net::Ipv4Addr;

    fn path(attrs: &[Attribute]) -> AsPath {
        attrs
            .iter()
            .find_map(|a| match &a.value {
                AttrValue::AsPath(p) => Some(p.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn merges_as4_path_on_two_octet_session() {
        let mut attrs = vec![
            Attribute::new(AttrValue::AsPath(AsPath::sequence(vec![
                65001, AS_TRANS, AS_TRANS,
            ]))),
            Attribute::new(AttrValue::As4Path(AsPath::sequence(vec![
                4200000001, 4200000002,
            ]))),
        ];
        reconcile_inbound(&mut attrs, false);
        assert_eq!(path(&attrs), {
            let mut p = AsPath::sequence(vec![65001]);
            p.segments.push(AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![4200000001, 4200000002],
            });
            p
        });
        assert_eq!(attrs.len(), 1, "AS4_PATH removed after merging");
    }

    #[test]
    fn ignores_longer_as4_path_and_non_trans_aggregator() {
        let mut attrs = vec![
            Attribute::new(AttrValue::AsPath(AsPath::sequence(vec![AS_TRANS]))),
            Attribute::new(AttrValue::As4Path(AsPath::sequence(vec![1, 2]))),
        ];
        reconcile_inbound(&mut attrs, false);
        assert_eq!(path(&attrs), AsPath::sequence(vec![AS_TRANS]));

        let addr = Ipv4Addr::new(192, 0, 2, 1);
        let mut attrs = vec![
            Attribute::new(AttrValue::AsPath(AsPath::sequence(vec![AS_TRANS, 65002]))),
            Attribute::new(AttrValue::Aggregator(Aggregator {
                asn: 65002,
                address: addr,
            })),
            Attribute::new(AttrValue::As4Path(AsPath::sequence(vec![
                4200000001, 65002,
            ]))),
        ];
        reconcile_inbound(&mut attrs, false);
        assert_eq!(path(&attrs), AsPath::sequence(vec![AS_TRANS, 65002]));
    }

    #[test]
    fn outbound_adds_as4_path_only_for_two_octet_sessions() {
        let base = vec![
            Attribute::new(AttrValue::AsPath(AsPath::sequence(vec![4200000001, 65001]))),
            Attribute::new(AttrValue::Aggregator(Aggregator {
                asn: 4200000001,
                address: Ipv4Addr::new(10, 0, 0, 1),
            })),
        ];
        let mut two = base.clone();
        prepare_outbound(&mut two, false);
        assert!(two.iter().any(|a| a.code() == code::AS4_PATH));
        assert!(two.iter().any(|a| a.code() == code::AS4_AGGREGATOR));
        let mut four = base.clone();
        prepare_outbound(&mut four, true);
        assert_eq!(four, base);
        // Round trip through a 2-octet wire restores the real path.
        reconcile_inbound(&mut two, false);
        assert_eq!(path(&two), AsPath::sequence(vec![4200000001, 65001]));
    }
}
