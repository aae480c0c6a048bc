//! Property tests: random request/release sequences over small pools, in both modes, checked
//! step by step against an in-memory model of what the allocator must do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use proptest::prelude::*;
use weft_ipam::testing::MemStore;
use weft_ipam::{AllocMode, FileStore, Ipam, IpamError, PoolRequest, Store};

/// A pool request described by offsets from the subnet's network address.
#[derive(Debug, Clone)]
struct Setup {
    v6: bool,
    /// Random bits the network address is made from.
    seed: u128,
    prefix: u8,
    /// (length added to the prefix, which of the sub-blocks).
    range: Option<(u8, u128)>,
    gateway: Option<u128>,
    aux: Vec<u128>,
    mode: AllocMode,
}

#[derive(Debug, Clone)]
enum Op {
    Auto,
    /// Offset (may fall outside the subnet) and one of a few owners, so retries happen.
    Specific(u128, u8),
    /// The n-th allocated address (mod count), or an arbitrary offset when none.
    Release(usize, u128),
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        any::<bool>(),
        any::<u128>(),
        0u8..=4,
        proptest::option::of((0u8..=3, any::<u128>())),
        proptest::option::of(any::<u128>()),
        proptest::collection::vec(any::<u128>(), 0..3),
        prop_oneof![Just(AllocMode::FirstFree), Just(AllocMode::Serial)],
    )
        .prop_map(|(v6, seed, extra, range, gateway, aux, mode)| {
            let prefix = if v6 { 120 + extra } else { 24 + extra };
            Setup {
                v6,
                seed,
                prefix,
                range,
                gateway,
                aux,
                mode,
            }
        })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => Just(Op::Auto),
        2 => (any::<u128>(), 0u8..3).prop_map(|(o, w)| Op::Specific(o, w)),
        3 => (any::<usize>(), any::<u128>()).prop_map(|(i, o)| Op::Release(i, o)),
    ];
    proptest::collection::vec(op, 1..400)
}

/// What the allocator must do, computed over plain numbers.
struct Model {
    v6: bool,
    network: u128,
    size: u128,
    /// Offsets automatic allocation may use, ascending.
    candidates: Vec<u128>,
    aux: BTreeSet<u128>,
    mode: AllocMode,
    allocated: BTreeMap<u128, String>,
    serial_next: u128,
}

impl Model {
    fn addr(&self, offset: u128) -> IpAddr {
        let n = self.network + offset;
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(n))
        } else {
            IpAddr::V4(Ipv4Addr::from(n as u32))
        }
    }

    fn offset(&self, address: IpAddr) -> u128 {
        let n = match address {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        n - self.network
    }

    /// Network and (IPv4) broadcast are never usable; a /24–/28 or /120–/124 has both.
    fn is_host(&self, offset: u128) -> bool {
        offset > 0 && offset < self.size && (self.v6 || offset < self.size - 1)
    }

    fn expect_auto(&self) -> Option<u128> {
        let free = |o: &&u128| !self.allocated.contains_key(o);
        match self.mode {
            AllocMode::FirstFree => self.candidates.iter().find(free).copied(),
            AllocMode::Serial => self
                .candidates
                .iter()
                .filter(|o| **o >= self.serial_next)
                .find(free)
                .or_else(|| self.candidates.iter().find(free))
                .copied(),
        }
    }
}

/// Builds the request and the model for `s`.
fn build(s: &Setup) -> (PoolRequest, Model) {
    let host_bits = u32::from(if s.v6 { 128 - s.prefix } else { 32 - s.prefix });
    let size = 1u128 << host_bits;
    let network = if s.v6 {
        // Inside fd00::/16, aligned to the prefix.
        (0xfd00u128 << 112) | ((s.seed & ((1 << 112) - 1)) >> host_bits << host_bits)
    } else {
        // Inside 10.0.0.0/8, aligned to the prefix.
        (10u128 << 24) | ((s.seed & 0xff_ffff) >> host_bits << host_bits)
    };
    let mut model = Model {
        v6: s.v6,
        network,
        size,
        candidates: Vec::new(),
        aux: BTreeSet::new(),
        mode: s.mode,
        allocated: BTreeMap::new(),
        serial_next: 0,
    };
    let subnet = IpNet::new(model.addr(0), s.prefix).unwrap();
    let mut req = PoolRequest {
        subnet: Some(subnet),
        v6: s.v6,
        mode: s.mode,
        owner: "prop".into(),
        ..Default::default()
    };
    let (mut lo, mut hi) = (0, size - 1);
    if let Some((extra, which)) = s.range {
        let block = size >> extra;
        lo = (which % (1u128 << extra)) * block;
        hi = lo + block - 1;
        req.ip_range = Some(IpNet::new(model.addr(lo), s.prefix + extra).unwrap());
    }
    for (i, a) in s.aux.iter().enumerate() {
        let offset = a % size;
        model.aux.insert(offset);
        req.aux.insert(format!("aux{i}"), model.addr(offset));
    }
    let gateway = s
        .gateway
        .map(|g| g % size)
        .filter(|g| model.is_host(*g) && !model.aux.contains(g));
    req.gateway = gateway.map(|g| model.addr(g));
    model.candidates = (lo..=hi)
        .filter(|o| model.is_host(*o) && !model.aux.contains(o) && Some(*o) != gateway)
        .collect();
    (req, model)
}

/// Runs `ops` against a fresh pool in `store` and the model, checking every step.
fn check(store: &dyn Store, s: &Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let (req, mut model) = build(s);
    let ipam = Ipam::new(store);
    let pool = ipam
        .request_pool(&req, &[])
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Auto => {
                let owner = format!("auto{step}");
                let got = ipam.request_address(&pool.id, None, &owner);
                match (model.expect_auto(), got) {
                    (Some(offset), Ok(net)) => {
                        prop_assert_eq!(net.addr(), model.addr(offset), "step {}", step);
                        prop_assert_eq!(net.prefix_len(), s.prefix);
                        model.allocated.insert(offset, owner);
                        model.serial_next = offset + 1;
                    }
                    (None, Err(IpamError::Exhausted { .. })) => {}
                    (want, got) => {
                        prop_assert!(false, "step {step}: want {want:?}, got {got:?}")
                    }
                }
            }
            Op::Specific(raw, who) => {
                // Mostly inside the subnet, sometimes just past it.
                let offset = raw % (model.size + 2);
                let owner = format!("named{who}");
                let got = ipam.request_address(&pool.id, Some(model.addr(offset)), &owner);
                let usable = model.is_host(offset) && !model.aux.contains(&offset);
                match (usable, model.allocated.get(&offset), got) {
                    (false, _, Err(IpamError::AddressNotUsable { .. })) => {}
                    (true, None, Ok(net)) => {
                        prop_assert_eq!(net.addr(), model.addr(offset));
                        model.allocated.insert(offset, owner);
                    }
                    (true, Some(holder), Ok(_)) if *holder == owner => {}
                    (true, Some(holder), Err(IpamError::AddressInUse { owner: o, .. })) => {
                        prop_assert_eq!(&o, holder);
                    }
                    (usable, holder, got) => prop_assert!(
                        false,
                        "step {step}: {} usable={usable} holder={holder:?} got {got:?}",
                        model.addr(offset)
                    ),
                }
            }
            Op::Release(i, raw) => {
                let offset = if model.allocated.is_empty() {
                    raw % model.size
                } else {
                    *model
                        .allocated
                        .keys()
                        .nth(i % model.allocated.len())
                        .unwrap()
                };
                ipam.release_address(&pool.id, model.addr(offset))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.allocated.remove(&offset);
            }
        }
        let actual = ipam
            .allocated(&pool.id)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: Vec<(IpAddr, String)> = model
            .allocated
            .iter()
            .map(|(o, w)| (model.addr(*o), w.clone()))
            .collect();
        prop_assert_eq!(&actual, &expected, "step {}", step);
        for (address, _) in &actual {
            let n = model.offset(*address);
            prop_assert!(
                model.is_host(n) && !model.aux.contains(&n),
                "reserved {address} allocated"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn allocator_matches_model(s in setup(), ops in ops()) {
        let store = MemStore::new();
        check(&store, &s, &ops)?;
    }
}

proptest! {
    // Each FileStore step fsyncs: few, short cases, to show the real store behaves the same.
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn allocator_matches_model_on_file_store(s in setup(), ops in proptest::collection::vec(
        prop_oneof![3 => Just(Op::Auto), 1 => (any::<u128>(), 0u8..3).prop_map(|(o, w)| Op::Specific(o, w)),
                    2 => (any::<usize>(), any::<u128>()).prop_map(|(i, o)| Op::Release(i, o))],
        1..60,
    )) {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        check(&store, &s, &ops)?;
    }
}
