//! Choosing the next address of a pool (pure logic).
//!
//! The store keeps one [`Hint`] per pool. Its `next` is where a scan starts: in `FirstFree`
//! mode every address below it is taken except the released ones it lists as holes (lowered to
//! the lowest hole when there are too many to list), so dense allocation checks one or two
//! addresses instead of scanning from the start, and refilling a released address costs one
//! check too. In `Serial` mode `next` is one past the last address handed out. Both modes scan
//! from `next` to the end and wrap once, so a stale or missing hint costs time, never
//! correctness.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::addr::{from_num, to_num};
use crate::pool::Pool;

/// How a pool picks the next address when the caller does not ask for a specific one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllocMode {
    /// The lowest free address (Docker's default IPAM behaviour).
    #[default]
    FirstFree,
    /// Round robin from the last address handed out (CNI host-local behaviour): a released address
    /// is not reused until the range wraps.
    Serial,
}

/// The first and last address of `subnet` that may be given to anyone: not the network address
/// (for IPv6 the subnet-router anycast address), not the IPv4 broadcast address. An IPv4 /31 has
/// two usable addresses (RFC 3021) and a /32 (or IPv6 /128) one.
pub fn host_bounds(subnet: &IpNet) -> (IpAddr, IpAddr) {
    let v6 = subnet.addr().is_ipv6();
    let network = to_num(subnet.network());
    let broadcast = to_num(subnet.broadcast());
    let (first, last) = match (v6, subnet.prefix_len()) {
        (false, 31) | (false, 32) | (true, 128) => (network, broadcast),
        (false, _) => (network + 1, broadcast - 1),
        (true, _) => (network + 1, broadcast),
    };
    (from_num(first, v6), from_num(last, v6))
}

/// The first and last address automatic allocation may hand out: the host addresses of the
/// subnet, narrowed to `ip_range` when set. `None` when they do not intersect.
pub fn allocation_bounds(subnet: &IpNet, ip_range: Option<&IpNet>) -> Option<(IpAddr, IpAddr)> {
    let (first, last) = host_bounds(subnet);
    let (mut first, mut last) = (to_num(first), to_num(last));
    if let Some(range) = ip_range {
        if range.addr().is_ipv6() != subnet.addr().is_ipv6() {
            return None;
        }
        first = first.max(to_num(range.network()));
        last = last.min(to_num(range.broadcast()));
    }
    let v6 = subnet.addr().is_ipv6();
    (first <= last).then(|| (from_num(first, v6), from_num(last, v6)))
}

/// Why `addr` can never be allocated in `pool` (even when asked for by name), or `None` when it
/// can. The gateway and addresses outside `ip_range` may be asked for by name.
pub fn unusable_reason(pool: &Pool, addr: IpAddr) -> Option<String> {
    let subnet = &pool.subnet;
    if !subnet.contains(&addr) {
        return Some(format!("it is outside subnet {subnet}"));
    }
    let (first, last) = host_bounds(subnet);
    if to_num(addr) < to_num(first) {
        return Some(if addr.is_ipv6() {
            "it is the subnet-router anycast address (all host bits zero)".to_string()
        } else {
            "it is the network address".to_string()
        });
    }
    if to_num(addr) > to_num(last) {
        return Some("it is the broadcast address".to_string());
    }
    if let Some((name, _)) = pool.aux.iter().find(|(_, a)| **a == addr) {
        return Some(format!("it is reserved as auxiliary address {name:?}"));
    }
    None
}

/// Most released addresses a `Hint` remembers; past that it forgets them and moves `next` down
/// to the lowest, so the stored hint stays small (a few KiB at most).
pub const MAX_HOLES: usize = 128;

/// Where allocation in a pool should look first; stored per pool (see the module docs). Only a
/// hint: any value, even a wrong one, gives correct allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// The next address to scan from. `FirstFree`: every address below it that is not in
    /// `holes` is taken. `Serial`: one past the last address handed out. May lie past the end of
    /// the range, which reads as its start. `None`: start at the beginning.
    #[serde(default)]
    pub next: Option<IpAddr>,
    /// `FirstFree` only: addresses below `next` released since, tried before scanning, so
    /// filling a hole does not rescan the taken addresses around it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub holes: BTreeSet<IpAddr>,
}

impl Hint {
    /// Updates the hint after `addr`, found by [`next_free`] with this hint, was handed out. (An
    /// address asked for by name needs no update: a hole it fills is skipped when next tried.)
    pub fn after_alloc(&mut self, pool: &Pool, addr: IpAddr) {
        let Some((first, _)) = allocation_bounds(&pool.subnet, pool.ip_range.as_ref()) else {
            return;
        };
        let after = successor(addr).unwrap_or(first);
        match pool.mode {
            AllocMode::Serial => {
                self.next = Some(after);
                self.holes.clear();
            }
            AllocMode::FirstFree => {
                let from_hole = self.holes.contains(&addr);
                // next_free tried the holes in order: those below `addr` were found taken.
                self.holes.retain(|h| *h > addr);
                // Found by the scan, everything below `addr` is taken: past `next` that advances
                // it, and after a wrap (only possible with a stale hint) it repairs it.
                if !from_hole {
                    self.next = Some(after);
                }
            }
        }
    }

    /// Updates the hint after `addr` was released; returns whether it changed. `Serial` does not
    /// reuse an address until it wraps, so only `FirstFree` records the hole.
    pub fn after_release(&mut self, pool: &Pool, addr: IpAddr) -> bool {
        if pool.mode != AllocMode::FirstFree {
            return false;
        }
        let Some((first, last)) = allocation_bounds(&pool.subnet, pool.ip_range.as_ref()) else {
            return false;
        };
        let n = to_num(addr);
        if addr.is_ipv6() != pool.subnet.addr().is_ipv6() || n < to_num(first) || n > to_num(last) {
            return false;
        }
        let below_next = match self.next {
            // No hint: the scan starts at the first address anyway.
            None => false,
            Some(next) => next.is_ipv6() != addr.is_ipv6() || n < to_num(next),
        };
        if !below_next || !self.holes.insert(addr) {
            return false;
        }
        if self.holes.len() > MAX_HOLES {
            self.next = self.holes.first().copied();
            self.holes.clear();
        }
        true
    }
}

/// The address after `addr`, if there is one in its family.
fn successor(addr: IpAddr) -> Option<IpAddr> {
    let max = if addr.is_ipv6() {
        u128::MAX
    } else {
        u128::from(u32::MAX)
    };
    let n = to_num(addr);
    (n < max).then(|| from_num(n + 1, addr.is_ipv6()))
}

/// The next address to hand out: in `FirstFree` mode the lowest free hole of `hint`, then (both
/// modes) a scan from `hint.next` to the end of the allocation range, wrapping once. Skips the
/// gateway and aux addresses without asking `is_allocated`, which is asked about each other
/// candidate in order. `Ok(None)` means every address of the range is taken.
pub fn next_free<E>(
    pool: &Pool,
    hint: &Hint,
    mut is_allocated: impl FnMut(IpAddr) -> Result<bool, E>,
) -> Result<Option<IpAddr>, E> {
    let Some((first, last)) = allocation_bounds(&pool.subnet, pool.ip_range.as_ref()) else {
        return Ok(None);
    };
    let v6 = pool.subnet.addr().is_ipv6();
    let (first, last) = (to_num(first), to_num(last));
    let usable = |a: &IpAddr| a.is_ipv6() == v6 && (first..=last).contains(&to_num(*a));
    let reserved: HashSet<u128> = pool
        .aux
        .values()
        .chain(pool.gateway.iter())
        .map(|a| to_num(*a))
        .collect();
    if pool.mode == AllocMode::FirstFree {
        for hole in hint.holes.iter().filter(|h| usable(h)) {
            if !reserved.contains(&to_num(*hole)) && !is_allocated(*hole)? {
                return Ok(Some(*hole));
            }
        }
    }
    let start = hint.next.filter(usable).map(to_num).unwrap_or(first);
    for n in (start..=last).chain(first..start) {
        if reserved.contains(&n) {
            continue;
        }
        let candidate = from_num(n, v6);
        if !is_allocated(candidate)? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::convert::Infallible;

    fn pool(subnet: &str) -> Pool {
        let subnet: IpNet = subnet.parse().unwrap();
        Pool {
            id: Pool::id_for(&subnet),
            subnet,
            ip_range: None,
            gateway: None,
            aux: BTreeMap::new(),
            mode: AllocMode::FirstFree,
            owner: String::new(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every address `next_free` hands out, allocating each, until it says the pool is full.
    fn drain(pool: &Pool) -> Vec<IpAddr> {
        let mut taken = BTreeSet::new();
        let mut hint = Hint::default();
        let mut out = Vec::new();
        while let Some(a) =
            next_free(pool, &hint, |a| Ok::<_, Infallible>(taken.contains(&a))).unwrap()
        {
            taken.insert(a);
            out.push(a);
            hint.after_alloc(pool, a);
        }
        out
    }

    #[test]
    fn v4_skips_network_and_broadcast() {
        let got = drain(&pool("10.0.0.0/29"));
        let want: Vec<IpAddr> = (1..=6).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn v4_slash31_uses_both_addresses() {
        assert_eq!(
            drain(&pool("10.0.0.0/31")),
            vec![ip("10.0.0.0"), ip("10.0.0.1")]
        );
    }

    #[test]
    fn v4_slash32_has_one_address() {
        assert_eq!(drain(&pool("10.0.0.7/32")), vec![ip("10.0.0.7")]);
    }

    #[test]
    fn v6_skips_anycast_but_not_the_last_address() {
        let got = drain(&pool("fd00::/126"));
        assert_eq!(got, vec![ip("fd00::1"), ip("fd00::2"), ip("fd00::3")]);
    }

    #[test]
    fn v6_slash64_ends_at_the_all_ones_address() {
        let (first, last) = host_bounds(&"fd00:0:0:1::/64".parse().unwrap());
        assert_eq!(first, ip("fd00:0:0:1::1"));
        assert_eq!(last, ip("fd00:0:0:1:ffff:ffff:ffff:ffff"));
    }

    #[test]
    fn range_aux_and_gateway_are_respected() {
        let mut p = pool("10.0.0.0/24");
        p.ip_range = Some("10.0.0.8/30".parse().unwrap());
        p.gateway = Some(ip("10.0.0.9"));
        p.aux.insert("printer".into(), ip("10.0.0.10"));
        assert_eq!(drain(&p), vec![ip("10.0.0.8"), ip("10.0.0.11")]);
    }

    #[test]
    fn range_at_subnet_edge_still_excludes_broadcast() {
        let mut p = pool("10.0.0.0/24");
        p.ip_range = Some("10.0.0.252/30".parse().unwrap());
        assert_eq!(
            drain(&p),
            vec![ip("10.0.0.252"), ip("10.0.0.253"), ip("10.0.0.254")]
        );
    }

    /// Allocates with `next_free` and `after_alloc`, like `Ipam` does.
    fn take(pool: &Pool, hint: &mut Hint, taken: &mut BTreeSet<IpAddr>) -> Option<IpAddr> {
        let a = next_free(pool, hint, |a| Ok::<_, Infallible>(taken.contains(&a))).unwrap()?;
        taken.insert(a);
        hint.after_alloc(pool, a);
        Some(a)
    }

    fn release(pool: &Pool, hint: &mut Hint, taken: &mut BTreeSet<IpAddr>, a: IpAddr) {
        hint.after_release(pool, a);
        taken.remove(&a);
    }

    #[test]
    fn first_free_reuses_the_lowest_released_address() {
        let p = pool("10.0.0.0/29");
        let mut hint = Hint::default();
        let mut taken = BTreeSet::new();
        while take(&p, &mut hint, &mut taken).is_some() {}
        release(&p, &mut hint, &mut taken, ip("10.0.0.5"));
        release(&p, &mut hint, &mut taken, ip("10.0.0.2"));
        assert_eq!(take(&p, &mut hint, &mut taken), Some(ip("10.0.0.2")));
        assert_eq!(take(&p, &mut hint, &mut taken), Some(ip("10.0.0.5")));
        assert_eq!(take(&p, &mut hint, &mut taken), None);
    }

    #[test]
    fn too_many_holes_collapse_to_the_lowest() {
        let p = pool("10.0.0.0/16");
        let mut hint = Hint::default();
        let mut taken = BTreeSet::new();
        for _ in 0..1000 {
            take(&p, &mut hint, &mut taken);
        }
        let released: Vec<IpAddr> = taken
            .iter()
            .copied()
            .step_by(5)
            .take(MAX_HOLES + 1)
            .collect();
        for a in released.iter().rev() {
            release(&p, &mut hint, &mut taken, *a);
        }
        assert!(hint.holes.is_empty());
        assert_eq!(hint.next, Some(released[0]));
        for want in &released {
            assert_eq!(take(&p, &mut hint, &mut taken), Some(*want));
        }
    }

    #[test]
    fn serial_continues_after_the_last_and_wraps() {
        let mut p = pool("10.0.0.0/29");
        p.mode = AllocMode::Serial;
        let taken: BTreeSet<IpAddr> = [ip("10.0.0.3"), ip("10.0.0.6")].into();
        let is_taken = |a| Ok::<_, Infallible>(taken.contains(&a));
        // Last handed out: .4 → next is .5, even though .1 is free.
        let mut hint = Hint::default();
        hint.after_alloc(&p, ip("10.0.0.4"));
        assert_eq!(
            next_free(&p, &hint, is_taken).unwrap(),
            Some(ip("10.0.0.5"))
        );
        // Last handed out: .5 → .6 taken, wrap to .1.
        hint.after_alloc(&p, ip("10.0.0.5"));
        assert_eq!(
            next_free(&p, &hint, is_taken).unwrap(),
            Some(ip("10.0.0.1"))
        );
        assert!(!hint.after_release(&p, ip("10.0.0.1")));
    }

    #[test]
    fn a_wrong_hint_costs_time_not_correctness() {
        let p = pool("10.0.0.0/29");
        let only_free = ip("10.0.0.2");
        let hints = [
            Hint::default(),
            Hint {
                next: Some(ip("10.0.0.6")),
                holes: BTreeSet::new(),
            },
            Hint {
                next: Some(ip("192.0.2.1")),
                holes: [ip("10.0.0.5"), ip("::1")].into(),
            },
            Hint {
                next: Some(ip("::1")),
                holes: BTreeSet::new(),
            },
        ];
        for hint in hints {
            let got = next_free(&p, &hint, |a| Ok::<_, Infallible>(a != only_free)).unwrap();
            assert_eq!(got, Some(only_free), "hint {hint:?}");
        }
    }

    #[test]
    fn dense_first_free_checks_one_address_per_allocation_even_with_churn() {
        let p = pool("10.0.0.0/20");
        let mut taken = BTreeSet::new();
        let mut hint = Hint::default();
        for i in 0..3000u32 {
            if i % 10 == 0 && i > 100 {
                let victim = from_num(to_num(ip("10.0.0.1")) + u128::from(i % 97), false);
                release(&p, &mut hint, &mut taken, victim);
            }
            let mut asked = 0;
            let a = next_free(&p, &hint, |a| {
                asked += 1;
                Ok::<_, Infallible>(taken.contains(&a))
            })
            .unwrap()
            .unwrap();
            assert_eq!(asked, 1, "allocation {i}");
            taken.insert(a);
            hint.after_alloc(&p, a);
        }
    }

    #[test]
    fn a_stale_hint_is_repaired_by_the_next_allocation() {
        let p = pool("10.0.0.0/24");
        let mut taken: BTreeSet<IpAddr> = (1..=100).map(|i| ip(&format!("10.0.0.{i}"))).collect();
        taken.remove(&ip("10.0.0.50"));
        taken.insert(ip("10.0.0.254"));
        // Claims everything below .254 is taken, which is wrong for .50 and .101 up.
        let mut hint = Hint {
            next: Some(ip("10.0.0.254")),
            holes: BTreeSet::new(),
        };
        assert_eq!(take(&p, &mut hint, &mut taken), Some(ip("10.0.0.50")));
        assert_eq!(hint.next, Some(ip("10.0.0.51")));
        assert_eq!(take(&p, &mut hint, &mut taken), Some(ip("10.0.0.101")));
    }

    #[test]
    fn hint_serializes_compactly() {
        let hint = Hint {
            next: Some(ip("10.0.0.5")),
            holes: BTreeSet::new(),
        };
        assert_eq!(
            serde_json::to_string(&hint).unwrap(),
            r#"{"next":"10.0.0.5"}"#
        );
        let back: Hint =
            serde_json::from_str(r#"{"next":"10.0.0.5","holes":["10.0.0.2"]}"#).unwrap();
        assert_eq!(back.holes.len(), 1);
    }

    #[test]
    fn unusable_reasons() {
        let mut p = pool("10.0.0.0/24");
        p.aux.insert("nas".into(), ip("10.0.0.7"));
        p.ip_range = Some("10.0.0.128/25".parse().unwrap());
        p.gateway = Some(ip("10.0.0.1"));
        assert!(unusable_reason(&p, ip("10.0.0.0"))
            .unwrap()
            .contains("network address"));
        assert!(unusable_reason(&p, ip("10.0.0.255"))
            .unwrap()
            .contains("broadcast"));
        assert!(unusable_reason(&p, ip("10.0.1.1"))
            .unwrap()
            .contains("outside subnet"));
        assert!(unusable_reason(&p, ip("10.0.0.7"))
            .unwrap()
            .contains("\"nas\""));
        // Outside the range and the gateway may be asked for by name.
        assert_eq!(unusable_reason(&p, ip("10.0.0.1")), None);
        assert_eq!(unusable_reason(&p, ip("10.0.0.5")), None);
        let v6 = pool("fd00::/64");
        assert!(unusable_reason(&v6, ip("fd00::"))
            .unwrap()
            .contains("anycast"));
        assert_eq!(unusable_reason(&v6, ip("fd00::ffff:ffff:ffff:ffff")), None);
        let p31 = pool("10.0.0.0/31");
        assert_eq!(unusable_reason(&p31, ip("10.0.0.0")), None);
        assert_eq!(unusable_reason(&p31, ip("10.0.0.1")), None);
    }
}
