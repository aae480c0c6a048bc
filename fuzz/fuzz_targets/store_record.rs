//! Fuzz target: records as read back from the state directory (anyone who could write there
//! could hand weft any bytes): the engine's network, endpoint and alias records and the ipam's
//! pools and allocation hints, and the owner strings of address and port reservations. A record that decodes must encode and decode to itself, as
//! `records::save` and `load` do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::IpAddr;
use weft_engine::{AliasRecord, EndpointRecord, NetworkRecord};

use weft_ipam::alloc::{self, Hint};
use weft_ipam::Pool;

fn round_trip<T: DeserializeOwned + Serialize>(data: &[u8]) {
    if let Ok(record) = serde_json::from_slice::<T>(data) {
        let bytes = serde_json::to_vec_pretty(&record).expect("records serialize");
        let again: T = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("a decoded record re-encodes to something unreadable: {e}"));
        assert_eq!(
            serde_json::to_vec_pretty(&again).unwrap(),
            bytes,
            "a record changes on its way through the store"
        );
    }
}

/// Allocation and release in a (hostile) stored pool, with hints pointing at its own addresses.
fn allocate(pool: &Pool) {
    let _ = alloc::host_bounds(&pool.subnet);
    let _ = alloc::allocation_bounds(&pool.subnet, pool.ip_range.as_ref());
    let own: Vec<IpAddr> = pool
        .aux
        .values()
        .copied()
        .chain(pool.gateway)
        .chain(pool.ip_range.map(|r| r.addr()))
        .chain([pool.subnet.addr()])
        .collect();
    let mut hints = vec![Hint::default()];
    for a in &own {
        hints.push(Hint {
            next: Some(*a),
            holes: own.iter().copied().collect(),
        });
    }
    for mut hint in hints {
        // The first few candidates are taken, then one is free: bounded work in any pool.
        let mut asked = 0;
        let found = alloc::next_free::<()>(pool, &hint, |_| {
            asked += 1;
            Ok(asked < 4)
        });
        if let Ok(Some(addr)) = found {
            assert!(
                pool.subnet.contains(&addr),
                "{addr} handed out outside {pool:?}"
            );
            hint.after_alloc(pool, addr);
            hint.after_release(pool, addr);
        }
        for a in &own {
            let _ = alloc::unusable_reason(pool, *a);
            hint.after_release(pool, *a);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(owner) = std::str::from_utf8(data) {
        let _ = weft_engine::records::parse_endpoint_owner(owner);
    }
    round_trip::<NetworkRecord>(data);
    round_trip::<EndpointRecord>(data);
    round_trip::<AliasRecord>(data);
    round_trip::<Hint>(data);
    if let Ok(pool) = serde_json::from_slice::<Pool>(data) {
        round_trip::<Pool>(data);
        // What allocation asks a stored pool first.
        let _ = Pool::subnet_from_id(&pool.id);
        allocate(&pool);
    }
});
