//! Default pools, the ULA, address requests and releases through `Ipam`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use weft_ipam::testing::MemStore;
use weft_ipam::{
    AllocMode, FileStore, Ipam, IpamError, PoolRequest, Store, StoreError, StoreLock, GATEWAY_OWNER,
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn default_req(v6: bool) -> PoolRequest {
    PoolRequest {
        v6,
        owner: "net".into(),
        ..Default::default()
    }
}

fn explicit(subnet: &str) -> PoolRequest {
    PoolRequest {
        subnet: Some(net(subnet)),
        v6: subnet.contains(':'),
        owner: "net".into(),
        ..Default::default()
    }
}

#[test]
fn default_v4_pools_skip_pools_and_host_prefixes() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let host = [
        net("0.0.0.0/0"),
        net("127.0.0.0/8"),
        net("172.18.0.5/32"),
        net("172.19.0.0/16"),
    ];
    let a = ipam.request_pool(&default_req(false), &host).unwrap();
    let b = ipam.request_pool(&default_req(false), &host).unwrap();
    ipam.request_pool(&explicit("172.21.128.0/24"), &host)
        .unwrap();
    let c = ipam.request_pool(&default_req(false), &host).unwrap();
    assert_eq!(
        [a.subnet, b.subnet, c.subnet],
        [
            net("172.17.0.0/16"),
            net("172.20.0.0/16"),
            net("172.22.0.0/16")
        ]
    );
    assert_eq!(a.owner, "net");
}

#[test]
fn exhausting_the_v4_defaults_gives_no_default_pool() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    for _ in 0..31 {
        ipam.request_pool(&default_req(false), &[]).unwrap();
    }
    let last = ipam
        .pools()
        .unwrap()
        .into_iter()
        .map(|p| p.subnet)
        .max()
        .unwrap();
    assert_eq!(last, net("192.168.240.0/20"));
    let err = ipam.request_pool(&default_req(false), &[]).unwrap_err();
    assert!(
        matches!(err, IpamError::NoDefaultPool { family: "IPv4" }),
        "{err:?}"
    );
    // Explicit subnets still work.
    ipam.request_pool(&explicit("10.0.0.0/24"), &[]).unwrap();
}

#[test]
fn host_routes_can_block_every_default() {
    let store = MemStore::new();
    let host = [net("172.16.0.0/12"), net("192.168.0.0/16")];
    let err = Ipam::new(&store)
        .request_pool(&default_req(false), &host)
        .unwrap_err();
    assert!(matches!(err, IpamError::NoDefaultPool { .. }), "{err:?}");
    assert!(err.to_string().contains("pass an explicit subnet"));
}

#[test]
fn v6_defaults_are_slash64s_of_the_host_ula_from_subnet_one() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let ula = ipam.ula().unwrap();
    let a = ipam.request_pool(&default_req(true), &[]).unwrap();
    let b = ipam.request_pool(&default_req(true), &[]).unwrap();
    let base = u128::from(ula.network());
    let sub = |id: u128| IpNet::new(IpAddr::from((base | (id << 64)).to_be_bytes()), 64).unwrap();
    assert_eq!((a.subnet, b.subnet), (sub(1), sub(2)));
    // A host route on :3: is skipped.
    let c = ipam.request_pool(&default_req(true), &[sub(3)]).unwrap();
    assert_eq!(c.subnet, sub(4));
    // A route covering all ULAs blocks every default.
    let err = ipam
        .request_pool(&default_req(true), &[net("fc00::/7")])
        .unwrap_err();
    assert!(
        matches!(err, IpamError::NoDefaultPool { family: "IPv6" }),
        "{err:?}"
    );
}

#[test]
fn ula_is_stable_per_store_and_differs_between_stores() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let store = FileStore::open(dir.path()).unwrap();
        let ipam = Ipam::new(&store);
        let ula = ipam.ula().unwrap();
        assert_eq!(ipam.ula().unwrap(), ula);
        assert_eq!(ula.prefix_len(), 48);
        assert_eq!(ula.addr().octets()[0], 0xfd);
        ula
    };
    let reopened = FileStore::open(dir.path()).unwrap();
    assert_eq!(
        Ipam::new(&reopened).ula().unwrap(),
        first,
        "ULA changed on reopen"
    );
    let pool = Ipam::new(&reopened)
        .request_pool(&default_req(true), &[])
        .unwrap();
    assert!(IpNet::V6(first).contains(&pool.subnet));

    let other_dir = tempfile::tempdir().unwrap();
    let other = FileStore::open(other_dir.path()).unwrap();
    assert_ne!(
        Ipam::new(&other).ula().unwrap(),
        first,
        "two stores share a ULA"
    );
}

#[test]
fn corrupt_ula_is_reported_not_replaced() {
    let store = MemStore::new();
    store.put("ipam/ula", b"10.0.0.0/8").unwrap();
    let err = Ipam::new(&store).ula().unwrap_err();
    assert!(
        matches!(err, IpamError::Store(StoreError::Corrupt { .. })),
        "{err:?}"
    );
    assert_eq!(store.get("ipam/ula").unwrap().unwrap(), b"10.0.0.0/8");
}

#[test]
fn gateway_is_reserved_by_name_and_never_handed_out() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let req = PoolRequest {
        gateway: Some(ip("10.5.0.1")),
        ..explicit("10.5.0.0/24")
    };
    let pool = ipam.request_pool(&req, &[]).unwrap();
    let first = ipam.request_address(&pool.id, None, "c1").unwrap();
    assert_eq!(
        first,
        net("10.5.0.2/24"),
        "the gateway was handed out automatically"
    );
    let gw = ipam
        .request_address(&pool.id, Some(ip("10.5.0.1")), GATEWAY_OWNER)
        .unwrap();
    assert_eq!(gw, net("10.5.0.1/24"));
    assert_eq!(
        ipam.allocated(&pool.id).unwrap(),
        vec![
            (ip("10.5.0.1"), GATEWAY_OWNER.to_string()),
            (ip("10.5.0.2"), "c1".to_string())
        ]
    );
}

#[test]
fn specific_addresses_are_checked() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let mut req = explicit("10.6.0.0/24");
    req.ip_range = Some(net("10.6.0.128/25"));
    req.aux.insert("router".into(), ip("10.6.0.200"));
    let pool = ipam.request_pool(&req, &[]).unwrap();
    let id = &pool.id;
    // Outside the range but inside the subnet is fine when asked for by name.
    assert_eq!(
        ipam.request_address(id, Some(ip("10.6.0.5")), "a").unwrap(),
        net("10.6.0.5/24")
    );
    // Same owner again: idempotent.
    assert_eq!(
        ipam.request_address(id, Some(ip("10.6.0.5")), "a").unwrap(),
        net("10.6.0.5/24")
    );
    match ipam.request_address(id, Some(ip("10.6.0.5")), "b") {
        Err(IpamError::AddressInUse { owner, .. }) => assert_eq!(owner, "a"),
        other => panic!("{other:?}"),
    }
    for (bad, needle) in [
        ("10.6.0.0", "network address"),
        ("10.6.0.255", "broadcast"),
        ("10.6.1.5", "outside subnet"),
        ("10.6.0.200", "auxiliary address \"router\""),
        ("fd00::1", "outside subnet"),
    ] {
        match ipam.request_address(id, Some(ip(bad)), "b") {
            Err(e @ IpamError::AddressNotUsable { .. }) => {
                assert!(e.to_string().contains(needle), "{bad}: {e}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Automatic allocation stays inside the range.
    assert_eq!(
        ipam.request_address(id, None, "c").unwrap(),
        net("10.6.0.128/24")
    );
}

#[test]
fn release_is_idempotent_and_first_free_reuses() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let pool = ipam.request_pool(&explicit("10.7.0.0/29"), &[]).unwrap();
    let addrs: Vec<IpNet> = (0..6)
        .map(|i| {
            ipam.request_address(&pool.id, None, &format!("c{i}"))
                .unwrap()
        })
        .collect();
    assert_eq!(addrs.last().unwrap(), &net("10.7.0.6/29"));
    assert!(matches!(
        ipam.request_address(&pool.id, None, "x"),
        Err(IpamError::Exhausted { .. })
    ));
    ipam.release_address(&pool.id, ip("10.7.0.4")).unwrap();
    ipam.release_address(&pool.id, ip("10.7.0.4")).unwrap();
    ipam.release_address(&pool.id, ip("10.7.0.3")).unwrap();
    ipam.release_address("10.99.0.0_24", ip("10.99.0.1"))
        .unwrap();
    assert_eq!(
        ipam.request_address(&pool.id, None, "y").unwrap(),
        net("10.7.0.3/29")
    );
    assert_eq!(
        ipam.request_address(&pool.id, None, "z").unwrap(),
        net("10.7.0.4/29")
    );
}

#[test]
fn serial_mode_does_not_reuse_until_it_wraps() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let req = PoolRequest {
        mode: AllocMode::Serial,
        ..explicit("10.8.0.0/29")
    };
    let pool = ipam.request_pool(&req, &[]).unwrap();
    let a = ipam.request_address(&pool.id, None, "a").unwrap();
    ipam.release_address(&pool.id, a.addr()).unwrap();
    let b = ipam.request_address(&pool.id, None, "b").unwrap();
    assert_eq!((a.addr(), b.addr()), (ip("10.8.0.1"), ip("10.8.0.2")));
    for owner in ["c", "d", "e", "f"] {
        ipam.request_address(&pool.id, None, owner).unwrap();
    }
    // .1 was released and is the only free one: the wrap finds it.
    assert_eq!(
        ipam.request_address(&pool.id, None, "g").unwrap().addr(),
        ip("10.8.0.1")
    );
}

#[test]
fn release_pool_refuses_while_endpoints_remain() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let req = PoolRequest {
        gateway: Some(ip("10.9.0.1")),
        ..explicit("10.9.0.0/24")
    };
    let pool = ipam.request_pool(&req, &[]).unwrap();
    ipam.request_address(&pool.id, Some(ip("10.9.0.1")), GATEWAY_OWNER)
        .unwrap();
    let c = ipam.request_address(&pool.id, None, "c1").unwrap();
    match ipam.release_pool(&pool.id) {
        Err(IpamError::PoolInUse { count, .. }) => assert_eq!(count, 1),
        other => panic!("{other:?}"),
    }
    assert!(ipam.pool(&pool.id).unwrap().is_some());
    ipam.release_address(&pool.id, c.addr()).unwrap();
    ipam.release_pool(&pool.id).unwrap();
    assert!(ipam.pool(&pool.id).unwrap().is_none());
    assert!(
        store.dump().keys().all(|k| !k.contains("10.9.0.0_24")),
        "{:?}",
        store.dump()
    );
    // Again: nothing to do, not an error.
    ipam.release_pool(&pool.id).unwrap();
    // The subnet is free again, with no stale allocations.
    let again = ipam.request_pool(&explicit("10.9.0.0/24"), &[]).unwrap();
    assert!(ipam.allocated(&again.id).unwrap().is_empty());
}

#[test]
fn an_outer_lock_makes_several_calls_one_transaction() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let _outer = store.lock().unwrap();
    let pool = ipam.request_pool(&explicit("10.10.0.0/24"), &[]).unwrap();
    ipam.request_address(&pool.id, None, "a").unwrap();
    assert_eq!(ipam.allocated(&pool.id).unwrap().len(), 1);
}

/// A store that counts the calls the allocator makes.
struct Counting {
    inner: MemStore,
    gets: AtomicUsize,
    lists: AtomicUsize,
}

impl Store for Counting {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix)
    }
    fn children(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.children(prefix)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.put(key, value)
    }
    fn create(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        self.inner.create(key, value)
    }
    fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(key)
    }
    fn lock(&self) -> Result<StoreLock, StoreError> {
        self.inner.lock()
    }
}

#[test]
fn request_address_cost_is_flat_in_the_number_allocated() {
    for mode in [AllocMode::FirstFree, AllocMode::Serial] {
        let store = Counting {
            inner: MemStore::new(),
            gets: AtomicUsize::new(0),
            lists: AtomicUsize::new(0),
        };
        let ipam = Ipam::new(&store);
        let req = PoolRequest {
            mode,
            ..explicit("10.11.0.0/20")
        };
        let pool = ipam.request_pool(&req, &[]).unwrap();
        let lists_before = store.lists.load(Ordering::Relaxed);
        let mut worst = 0;
        for i in 0..3000 {
            if i % 100 == 50 {
                // Churn: release one, so FirstFree has a hole below the hint.
                ipam.release_address(&pool.id, ip("10.11.0.20")).unwrap();
            }
            let before = store.gets.load(Ordering::Relaxed);
            ipam.request_address(&pool.id, None, &format!("c{i}"))
                .unwrap();
            worst = worst.max(store.gets.load(Ordering::Relaxed) - before);
        }
        assert_eq!(
            store.lists.load(Ordering::Relaxed),
            lists_before,
            "{mode:?} listed on the hot path"
        );
        // pool record + hint + one or two candidates.
        assert!(
            worst <= 4,
            "{mode:?}: one request_address made {worst} gets"
        );
    }
}
