use std::collections::BTreeMap;

use super::*;
use crate::driver::NetworkDriver;
use crate::model::{MacAddr, Protocol};

fn net(driver: &str) -> Network {
    Network {
        id: "a".repeat(64),
        name: driver.into(),
        driver: driver.into(),
        internal: false,
        enable_ipv6: false,
        subnets: vec![],
        options: BTreeMap::new(),
    }
}

fn ep() -> Endpoint {
    Endpoint {
        id: "b".repeat(64),
        network_id: "a".repeat(64),
        addresses: vec![],
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        ifname: "eth0".into(),
        ports: vec![],
        sandbox: None,
        options: BTreeMap::new(),
    }
}

#[test]
fn builtin_modes_take_no_addresses_ports_or_subnets() {
    for d in BuiltinDriver::all() {
        let d: &dyn NetworkDriver = &d;
        let mut n = net(d.name());
        let mut e = ep();
        e.addresses.push("10.0.0.2/24".parse().unwrap());
        assert!(d
            .validate_endpoint(&n, &e)
            .unwrap_err()
            .to_string()
            .contains("--ip"));
        let mut e = ep();
        e.ports.push(crate::PortMapping {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port: 80,
            container_port: 80,
        });
        assert!(d
            .validate_endpoint(&n, &e)
            .unwrap_err()
            .to_string()
            .contains("-p"));
        n.subnets.push(crate::SubnetInfo {
            subnet: "10.0.0.0/24".parse().unwrap(),
            gateway: None,
            ip_range: None,
            pool_id: String::new(),
        });
        assert!(d.validate_network(&n).is_err());
        assert!(!d.uses_gateway());
    }
}

#[test]
fn container_mode_needs_an_existing_namespace() {
    let e = ep();
    let err = BuiltinDriver(Mode::Container)
        .validate_endpoint(&net("container"), &e)
        .unwrap_err()
        .to_string();
    assert!(err.contains("container:<path>"), "{err}");
    let mut e = ep();
    e.options
        .insert(container::JOINS.into(), "/nonexistent/ns".into());
    let err = BuiltinDriver(Mode::Container)
        .validate_endpoint(&net("container"), &e)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/ns"), "{err}");
}
