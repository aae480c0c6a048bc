//! The controller's bookkeeping and rollback, with an in-memory store and a driver that records
//! calls and fails where told (no kernel, no root).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use weft_drivers::driver::JoinInfo;
use weft_drivers::{DriverError, Endpoint, Network, NetworkDriver, Protocol, Sandbox};
use weft_ipam::testing::MemStore;
use weft_ipam::PoolRequest;

use super::*;

#[derive(Default)]
struct FakeDriver {
    calls: Mutex<Vec<String>>,
    fail: Mutex<Option<&'static str>>,
}

impl FakeDriver {
    fn step(&self, name: &'static str) -> Result<(), DriverError> {
        self.calls.lock().unwrap().push(name.to_string());
        if *self.fail.lock().unwrap() == Some(name) {
            return Err(DriverError::Invalid(format!("injected failure in {name}")));
        }
        Ok(())
    }
}

impl NetworkDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn validate_network(&self, _: &Network) -> Result<(), DriverError> {
        self.step("validate_network")
    }
    fn create_network(&self, _: &Network) -> Result<(), DriverError> {
        self.step("create_network")
    }
    fn delete_network(&self, _: &Network) -> Result<(), DriverError> {
        self.step("delete_network")
    }
    fn validate_endpoint(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        self.step("validate_endpoint")
    }
    fn join(&self, _: &Network, _: &Endpoint, _: &Sandbox) -> Result<JoinInfo, DriverError> {
        self.step("join")?;
        Ok(JoinInfo {
            src_name: None,
            gateway_v4: None,
            gateway_v6: None,
            static_routes: vec![],
            host_ifname: "vethfake".into(),
        })
    }
    fn leave(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        self.step("leave")
    }
    fn program_external_connectivity(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        self.step("program_external")
    }
    fn revoke_external_connectivity(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        self.step("revoke_external")
    }
    fn inspect_network(
        &self,
        _: &Network,
        _: &[Endpoint],
    ) -> Result<serde_json::Value, DriverError> {
        Ok(serde_json::json!({"problems": []}))
    }
    fn reconcile(&self, _: &Network, _: &[Endpoint]) -> Result<Vec<String>, DriverError> {
        Ok(vec![])
    }
}

fn controller() -> (Controller, Arc<MemStore>, Arc<FakeDriver>) {
    let store = Arc::new(MemStore::new());
    let driver = Arc::new(FakeDriver::default());
    let mut c = Controller::new(store.clone());
    c.register(driver.clone());
    (c, store, driver)
}

fn net_request(name: &str, subnet: &str) -> NetworkRequest {
    NetworkRequest {
        name: name.into(),
        id: None,
        driver: "fake".into(),
        internal: false,
        enable_ipv6: false,
        ipam: IpamRequest::Weft {
            v4: vec![PoolRequest {
                subnet: Some(subnet.parse().unwrap()),
                ..PoolRequest::default()
            }],
            v6: vec![],
        },
        options: BTreeMap::new(),
        labels: BTreeMap::new(),
        origin: Origin::Cli,
    }
}

fn connect_request(ifname: &str, ports: &[&str]) -> ConnectRequest {
    ConnectRequest {
        netns: PathBuf::from("/proc/self/ns/net"),
        endpoint: EndpointRequest {
            addresses: AddressRequest::Allocate { static_ips: vec![] },
            mac: None,
            ifname: ifname.into(),
            options: BTreeMap::new(),
            owner: "test".into(),
        },
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        endpoint_id: None,
    }
}

/// Every key in the store except allocation hints.
fn keys(store: &MemStore) -> Vec<String> {
    store
        .dump()
        .into_keys()
        .filter(|k| !k.starts_with("ipam/cursor/") && k != "ports-cursor")
        .collect()
}

#[test]
fn a_failed_driver_create_releases_the_name_and_the_pool() {
    let (c, store, driver) = controller();
    *driver.fail.lock().unwrap() = Some("create_network");
    let e = c
        .create_network(net_request("n1", "10.1.0.0/24"))
        .unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(keys(&store).is_empty(), "left behind: {:?}", keys(&store));
    *driver.fail.lock().unwrap() = None;
    c.create_network(net_request("n1", "10.1.0.0/24"))
        .expect("the same request works afterwards");
}

#[test]
fn a_failed_step_of_connect_leaves_only_the_network() {
    for step in ["validate_endpoint", "join", "program_external"] {
        let (c, store, driver) = controller();
        c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
        let before = keys(&store);
        *driver.fail.lock().unwrap() = Some(step);
        let e = c
            .connect("n1", &connect_request("eth0", &["8080:80", "0:53/udp"]))
            .unwrap_err();
        assert!(e.to_string().contains("injected"), "{step}: {e}");
        assert_eq!(keys(&store), before, "{step} left store changes");
        let calls = driver.calls.lock().unwrap().clone();
        if step == "program_external" {
            assert!(
                calls.ends_with(&["revoke_external".to_string(), "leave".to_string()]),
                "{step}: kernel not undone: {calls:?}"
            );
        }
    }
}

#[test]
fn connect_records_once_and_disconnect_releases_everything() {
    let (c, store, _) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let before = keys(&store);
    let ep = c
        .connect(
            "n1",
            &connect_request("eth0", &["8080:80", "9000-9001:90-91"]),
        )
        .unwrap();
    assert_eq!(ep.endpoint.addresses, vec!["10.1.0.2/24".parse().unwrap()]);
    assert_eq!(ep.endpoint.ports.len(), 3);
    assert!(ep.published && ep.join.is_some());
    let e = c.connect("n1", &connect_request("eth0", &[])).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Conflict, "{e}");
    let e = c
        .connect("n1", &connect_request("eth1", &["8080:80"]))
        .unwrap_err();
    assert!(e.to_string().contains("already published"), "{e}");
    c.disconnect("n1", &ep.endpoint.id).unwrap();
    assert_eq!(keys(&store), before);
}

#[test]
fn port_conflicts_follow_host_addresses() {
    let (c, _, _) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    c.connect("n1", &connect_request("eth0", &["127.0.0.1:8080:80"]))
        .unwrap();
    // Another host address is free; all addresses clash with the specific one.
    c.connect("n1", &connect_request("eth1", &["127.0.0.2:8080:80"]))
        .unwrap();
    assert!(c
        .connect("n1", &connect_request("eth2", &["8080:80"]))
        .is_err());
    // Another protocol is free.
    c.connect("n1", &connect_request("eth3", &["8080:80/udp"]))
        .unwrap();
}

#[test]
fn ephemeral_ports_advance_and_skip_taken_ones() {
    let (mut c, _, _) = controller();
    c.ephemeral_ports = (40000, 40002);
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let a = c
        .connect("n1", &connect_request("eth0", &["40001:80"]))
        .unwrap();
    let b = c.connect("n1", &connect_request("eth1", &["80"])).unwrap();
    let d = c.connect("n1", &connect_request("eth2", &["80"])).unwrap();
    assert_eq!(a.endpoint.ports[0].host_port, 40001);
    assert_eq!(b.endpoint.ports[0].host_port, 40000);
    assert_eq!(d.endpoint.ports[0].host_port, 40002);
    let e = c
        .connect("n1", &connect_request("eth3", &["80"]))
        .unwrap_err();
    assert!(e.to_string().contains("no free host port"), "{e}");
}

#[test]
fn networks_with_endpoints_cannot_be_removed() {
    let (c, _, _) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let ep = c.connect("n1", &connect_request("eth0", &[])).unwrap();
    assert_eq!(
        c.delete_network("n1").unwrap_err().class(),
        ErrorClass::Conflict
    );
    c.disconnect("n1", &ep.endpoint.id).unwrap();
    c.delete_network("n1").unwrap();
    assert_eq!(c.network("n1").unwrap_err().class(), ErrorClass::NotFound);
}

#[test]
fn docker_style_steps_are_idempotent() {
    let (c, _, driver) = controller();
    let mut req = net_request("d1", "10.2.0.0/24");
    req.id = Some("d".repeat(64));
    let a = c.create_network(req.clone()).unwrap();
    let b = c.create_network(req).unwrap();
    assert_eq!(a, b, "CreateNetwork retried returns the same network");
    let ep_id = "e".repeat(64);
    let given = EndpointRequest {
        addresses: AddressRequest::Given(vec!["10.2.0.7/24".parse().unwrap()]),
        mac: None,
        ifname: "eth0".into(),
        options: BTreeMap::new(),
        owner: "docker".into(),
    };
    let e1 = c.create_endpoint("d1", &ep_id, &given).unwrap();
    let e2 = c.create_endpoint("d1", &ep_id, &given).unwrap();
    assert_eq!(e1, e2);
    c.join("d1", &ep_id, Sandbox::Delegated).unwrap();
    let specs = vec![PortSpec::single(Protocol::Tcp, None, 0, 80)];
    let p1 = c.program_external("d1", &ep_id, &specs).unwrap();
    let p2 = c.program_external("d1", &ep_id, &specs).unwrap();
    assert_eq!(p1.endpoint.ports.len(), 1);
    assert_eq!(
        p2.endpoint.ports.len(),
        1,
        "reprogramming replaces, not adds"
    );
    // A failed join is followed by DeleteEndpoint without Leave: everything still goes.
    c.delete_endpoint("d1", &ep_id).unwrap();
    assert!(driver
        .calls
        .lock()
        .unwrap()
        .ends_with(&["revoke_external".to_string(), "leave".to_string()]));
    assert!(c.delete_endpoint("d1", &ep_id).is_err(), "unknown endpoint");
}
