//! Every bad pool request is refused with the right error, and nothing is written.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use weft_ipam::testing::MemStore;
use weft_ipam::{Ipam, IpamError, PoolRequest};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(subnet: &str) -> PoolRequest {
    PoolRequest {
        subnet: Some(net(subnet)),
        owner: "net1".into(),
        ..Default::default()
    }
}

fn v6(subnet: &str) -> PoolRequest {
    PoolRequest {
        v6: true,
        ..v4(subnet)
    }
}

/// Runs `req` on an empty store, asserts it fails, and that the store stayed empty.
fn refuse(req: PoolRequest) -> IpamError {
    let store = MemStore::new();
    let err = Ipam::new(&store)
        .request_pool(&req, &[])
        .expect_err("request should be refused");
    assert!(
        store.dump().is_empty(),
        "a refused request wrote {:?}",
        store.dump()
    );
    err
}

#[test]
fn subnet_with_host_bits_gets_a_hint() {
    let err = refuse(v4("172.18.0.5/16"));
    assert!(matches!(err, IpamError::InvalidSubnet { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("172.18.0.5/16") && msg.contains("did you mean 172.18.0.0/16"),
        "{msg}"
    );

    let msg = refuse(v6("fd00::1/64")).to_string();
    assert!(msg.contains("did you mean fd00::/64"), "{msg}");
}

#[test]
fn family_must_match_the_request() {
    let mut req = v4("fd00::/64");
    let err = refuse(req.clone());
    assert!(
        err.to_string().contains("IPv6 subnet but an IPv4 pool"),
        "{err}"
    );
    req = v6("10.0.0.0/24");
    let err = refuse(req);
    assert!(
        err.to_string().contains("IPv4 subnet but an IPv6 pool"),
        "{err}"
    );
}

#[test]
fn prefix_lengths_are_bounded() {
    for (req, needle) in [
        (v4("10.0.0.0/7"), "use /8 or longer"),
        (v4("0.0.0.0/0"), "use /8 or longer"),
        (v6("fd00::/127"), "use /126 or shorter"),
        (v6("fd00::/128"), "use /126 or shorter"),
        (v6("fd00::/8"), "use /16 or longer"),
    ] {
        let subnet = req.subnet.unwrap();
        let err = refuse(req);
        assert!(
            matches!(err, IpamError::InvalidSubnet { .. }),
            "{subnet}: {err:?}"
        );
        assert!(err.to_string().contains(needle), "{subnet}: {err}");
    }
}

#[test]
fn small_prefixes_that_work_are_accepted() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    for req in [
        v4("10.0.0.0/31"),
        v4("10.0.0.8/32"),
        v4("10.0.1.0/30"),
        v6("fd00::/126"),
    ] {
        ipam.request_pool(&req, &[]).unwrap();
    }
    let p31 = ipam.pool("10.0.0.0_31").unwrap().unwrap();
    let a = ipam.request_address(&p31.id, None, "a").unwrap();
    let b = ipam.request_address(&p31.id, None, "b").unwrap();
    assert_eq!(
        (a, b),
        (net("10.0.0.0/31"), net("10.0.0.1/31")),
        "RFC 3021: both usable"
    );
    assert!(matches!(
        ipam.request_address(&p31.id, None, "c"),
        Err(IpamError::Exhausted { .. })
    ));
    let a = ipam.request_address("10.0.0.8_32", None, "a").unwrap();
    assert_eq!(a, net("10.0.0.8/32"));
    let a = ipam.request_address("10.0.1.0_30", None, "a").unwrap();
    let b = ipam.request_address("10.0.1.0_30", None, "b").unwrap();
    assert_eq!((a, b), (net("10.0.1.1/30"), net("10.0.1.2/30")));
}

#[test]
fn range_must_be_a_network_inside_the_subnet_with_room() {
    let with_range = |range: &str| PoolRequest {
        ip_range: Some(net(range)),
        ..v4("10.0.0.0/24")
    };
    let err = refuse(with_range("10.0.1.0/25"));
    assert!(matches!(err, IpamError::RangeOutside { .. }), "{err:?}");
    let err = refuse(with_range("10.0.0.0/23"));
    assert!(matches!(err, IpamError::RangeOutside { .. }), "{err:?}");
    let err = refuse(with_range("fd00::/120"));
    assert!(matches!(err, IpamError::RangeOutside { .. }), "{err:?}");
    let err = refuse(with_range("10.0.0.130/25"));
    assert!(matches!(err, IpamError::InvalidRange { .. }), "{err:?}");
    assert!(
        err.to_string().contains("did you mean 10.0.0.128/25"),
        "{err}"
    );
    let err = refuse(with_range("10.0.0.255/32"));
    assert!(matches!(err, IpamError::InvalidRange { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing to allocate"), "{err}");
}

#[test]
fn gateway_must_be_a_host_address_of_the_subnet() {
    let with_gw = |gw: &str| PoolRequest {
        gateway: Some(ip(gw)),
        ..v4("10.0.0.0/24")
    };
    let err = refuse(with_gw("10.0.1.1"));
    assert!(matches!(err, IpamError::GatewayOutside { .. }), "{err:?}");
    let err = refuse(with_gw("10.0.0.0"));
    assert!(matches!(err, IpamError::InvalidGateway { .. }), "{err:?}");
    assert!(err.to_string().contains("network address"), "{err}");
    let err = refuse(with_gw("10.0.0.255"));
    assert!(err.to_string().contains("broadcast address"), "{err}");
    let err = refuse(PoolRequest {
        gateway: Some(ip("fd00::")),
        ..v6("fd00::/64")
    });
    assert!(err.to_string().contains("anycast"), "{err}");
    let err = refuse(PoolRequest {
        aux: BTreeMap::from([("nas".to_string(), ip("10.0.0.1"))]),
        ..with_gw("10.0.0.1")
    });
    assert!(
        err.to_string().contains("auxiliary address \"nas\""),
        "{err}"
    );
}

#[test]
fn aux_addresses_must_be_inside_the_subnet() {
    let err = refuse(PoolRequest {
        aux: BTreeMap::from([
            ("ok".to_string(), ip("10.0.0.9")),
            ("far".to_string(), ip("10.9.0.1")),
        ]),
        ..v4("10.0.0.0/24")
    });
    match err {
        IpamError::AuxOutside { name, address, .. } => {
            assert_eq!((name.as_str(), address), ("far", ip("10.9.0.1")))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn range_gateway_or_aux_without_a_subnet() {
    let cases = [
        PoolRequest {
            ip_range: Some(net("10.0.0.0/25")),
            ..Default::default()
        },
        PoolRequest {
            gateway: Some(ip("10.0.0.1")),
            ..Default::default()
        },
        PoolRequest {
            aux: BTreeMap::from([("x".to_string(), ip("10.0.0.2"))]),
            ..Default::default()
        },
    ];
    for req in cases {
        let err = refuse(req);
        assert!(matches!(err, IpamError::NeedsSubnet { .. }), "{err:?}");
    }
}

#[test]
fn overlap_names_the_other_pool_and_its_owner() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    ipam.request_pool(&v4("10.1.0.0/16"), &[]).unwrap();
    let before = store.dump();
    for subnet in ["10.1.2.0/24", "10.0.0.0/8", "10.1.0.0/16"] {
        let req = PoolRequest {
            owner: "net2".into(),
            ..v4(subnet)
        };
        let err = ipam.request_pool(&req, &[]).unwrap_err();
        match &err {
            IpamError::Overlap { other, .. } => assert_eq!(*other, net("10.1.0.0/16")),
            other => panic!("{subnet}: {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("10.1.0.0/16") && msg.contains("net1"), "{msg}");
    }
    assert_eq!(store.dump(), before, "a refused request changed the store");
}

#[test]
fn explicit_subnet_may_overlap_a_host_route() {
    let store = MemStore::new();
    let host = [net("10.1.0.0/16"), net("10.1.0.7/32")];
    let pool = Ipam::new(&store)
        .request_pool(&v4("10.1.0.0/24"), &host)
        .unwrap();
    assert_eq!(pool.subnet, net("10.1.0.0/24"));
}

#[test]
fn a_repeated_request_returns_the_same_pool() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    let first = ipam.request_pool(&v4("10.2.0.0/24"), &[]).unwrap();
    assert_eq!(ipam.request_pool(&v4("10.2.0.0/24"), &[]).unwrap(), first);
    // Same subnet, different owner: that is an overlap, not a retry.
    let other = PoolRequest {
        owner: "net9".into(),
        ..v4("10.2.0.0/24")
    };
    assert!(matches!(
        ipam.request_pool(&other, &[]),
        Err(IpamError::Overlap { .. })
    ));
}

#[test]
fn malformed_pool_ids_are_refused() {
    let store = MemStore::new();
    let ipam = Ipam::new(&store);
    for id in ["../x", "10.0.0.0/24", "", "pool"] {
        assert!(
            matches!(ipam.pool(id), Err(IpamError::InvalidPoolId { .. })),
            "{id}"
        );
        assert!(
            matches!(
                ipam.request_address(id, None, "a"),
                Err(IpamError::InvalidPoolId { .. })
            ),
            "{id}"
        );
    }
    assert!(matches!(
        ipam.request_address("10.0.0.0_24", None, "a"),
        Err(IpamError::UnknownPool { .. })
    ));
}
