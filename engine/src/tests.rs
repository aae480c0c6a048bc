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
    /// A step that panics: the operation dies there, as a process killed at that point would
    /// (its lock is released, its intent stays).
    crash: Mutex<Option<&'static str>>,
}

impl FakeDriver {
    fn step(&self, name: &'static str) -> Result<(), DriverError> {
        self.calls.lock().unwrap().push(name.to_string());
        if *self.fail.lock().unwrap() == Some(name) {
            return Err(DriverError::Invalid(format!("injected failure in {name}")));
        }
        if *self.crash.lock().unwrap() == Some(name) {
            *self.crash.lock().unwrap() = None;
            panic!("injected crash in {name}");
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
            addresses: vec![],
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

// ---- Cluster networks and the Docker networks that alias them ----

const ALIAS: &str = "a11a5a11a5a11a5a11a5a11a5a11a5a11a5a11a5a11a5a11a5a11a5a11a5a11a";

/// The local network of cluster `c1` as the agent makes it.
fn cluster_request() -> NetworkRequest {
    let mut req = net_request("c1", "10.244.1.0/24");
    req.origin = Origin::Daemon;
    req.labels
        .insert(CLUSTER_LABEL.to_string(), "c1".to_string());
    req
}

/// What Docker's IPAM data says about a subnet.
fn given(subnet: &str, gateway: &str) -> weft_drivers::SubnetInfo {
    weft_drivers::SubnetInfo {
        subnet: subnet.parse().unwrap(),
        gateway: Some(gateway.parse().unwrap()),
        ip_range: None,
        pool_id: String::new(),
    }
}

fn docker_endpoint(address: &str) -> EndpointRequest {
    EndpointRequest {
        addresses: AddressRequest::Given(vec![address.parse().unwrap()]),
        mac: None,
        ifname: "eth0".into(),
        options: BTreeMap::new(),
        owner: "docker".into(),
    }
}

#[test]
fn a_cluster_network_is_found_only_when_joined_and_labelled() {
    let (c, _, _) = controller();
    let e = c.cluster_network("c1").unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
    assert!(e.to_string().contains("--cluster c1"), "{e}");
    c.create_network(net_request("c1", "10.9.0.0/24")).unwrap();
    let e = c.cluster_network("c1").unwrap_err();
    assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
    assert!(e.to_string().contains("weft.cluster=c1"), "{e}");
    c.delete_network("c1").unwrap();
    let net = c.create_network(cluster_request()).unwrap();
    assert_eq!(c.cluster_network("c1").unwrap().network.id, net.network.id);
    assert_eq!(net.cluster(), Some("c1"));
    let pool = &net.pools[0];
    assert_eq!(
        c.cluster_network_of_pool(pool).unwrap().unwrap().network.id,
        net.network.id
    );
    c.create_network(net_request("plain", "10.8.0.0/24"))
        .unwrap();
    assert!(c.cluster_network_of_pool("10.8.0.0_24").unwrap().is_none());
}

#[test]
fn an_alias_lands_every_endpoint_on_the_cluster_network() {
    let (c, store, driver) = controller();
    let net = c.create_network(cluster_request()).unwrap();
    let cluster_id = net.network.id.clone();
    let creates_before = driver.calls.lock().unwrap().len();
    let aliased = c
        .create_alias(ALIAS, "c1", &[given("10.244.1.0/24", "10.244.1.1/24")])
        .unwrap();
    assert_eq!(aliased.network.id, cluster_id);
    assert_eq!(
        driver.calls.lock().unwrap()[creates_before..],
        ["create_network".to_string()],
        "the cluster network's kernel state is re-applied"
    );
    assert_eq!(c.network(ALIAS).unwrap().network.id, cluster_id);
    // Repeating is harmless.
    c.create_alias(ALIAS, "c1", &[given("10.244.1.0/24", "10.244.1.1/24")])
        .unwrap();

    let ep = "e".repeat(64);
    c.create_endpoint(ALIAS, &ep, &docker_endpoint("10.244.1.7/24"))
        .unwrap();
    c.join(ALIAS, &ep, Sandbox::Delegated).unwrap();
    assert!(store
        .get(&records::endpoint_key(&cluster_id, &ep))
        .unwrap()
        .is_some());
    assert_eq!(c.endpoints(&cluster_id).unwrap().len(), 1);
    assert_eq!(
        c.endpoint("c1", &ep).unwrap().1.endpoint.network_id,
        cluster_id
    );

    let listed = c.networks().unwrap();
    let shown = listed.iter().find(|n| n.network.id == cluster_id).unwrap();
    assert_eq!(shown.docker_ids, vec![ALIAS.to_string()]);
    assert_eq!(
        c.inspect_network("c1").unwrap()["network"]["docker_ids"],
        serde_json::json!([ALIAS])
    );
    assert!(
        store
            .get(&records::network_key(&cluster_id))
            .unwrap()
            .is_some_and(|b| !String::from_utf8_lossy(&b).contains("docker_ids")),
        "docker_ids is derived, not stored"
    );

    // Removing the alias leaves the cluster network and its endpoint alone.
    c.delete_network(ALIAS).unwrap();
    assert!(!driver
        .calls
        .lock()
        .unwrap()
        .contains(&"delete_network".to_string()));
    assert_eq!(c.network(ALIAS).unwrap_err().class(), ErrorClass::NotFound);
    assert_eq!(c.endpoints(&cluster_id).unwrap().len(), 1);
    assert!(c
        .networks()
        .unwrap()
        .iter()
        .all(|n| n.docker_ids.is_empty()));
}

#[test]
fn an_alias_with_another_subnet_or_gateway_is_refused_and_nothing_is_kept() {
    let (c, store, _) = controller();
    c.create_network(cluster_request()).unwrap();
    let before = keys(&store);
    for (subnets, why) in [
        (
            vec![given("172.18.0.0/16", "172.18.0.1/16")],
            "10.244.1.0/24",
        ),
        (
            vec![given("10.244.1.0/24", "10.244.1.9/24")],
            "gateway 10.244.1.9",
        ),
        (vec![], "no subnet"),
    ] {
        let e = c.create_alias(ALIAS, "c1", &subnets).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Invalid, "{e}");
        let m = e.to_string();
        assert!(m.contains(why), "{why:?} not in {m}");
        assert_eq!(keys(&store), before);
    }
    let e = c
        .create_alias(ALIAS, "c2", &[given("10.244.1.0/24", "10.244.1.1/24")])
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound, "not joined: {e}");
    let e = c
        .create_alias("short", "c1", &[given("10.244.1.0/24", "10.244.1.1/24")])
        .unwrap_err();
    assert!(e.to_string().contains("64 lowercase hex"), "{e}");
    // The id of a real network cannot become an alias.
    let mut req = net_request("d1", "10.3.0.0/24");
    req.id = Some(ALIAS.to_string());
    c.create_network(req).unwrap();
    let e = c
        .create_alias(ALIAS, "c1", &[given("10.244.1.0/24", "10.244.1.1/24")])
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Conflict, "{e}");
}

#[test]
fn an_alias_follows_a_remade_cluster_network_and_says_when_it_is_gone() {
    let (c, _, _) = controller();
    c.create_network(cluster_request()).unwrap();
    c.create_alias(ALIAS, "c1", &[given("10.244.1.0/24", "10.244.1.1/24")])
        .unwrap();
    // The agent re-makes the network (new id, same name) when its MTU changes.
    c.delete_network("c1").unwrap();
    let remade = c.create_network(cluster_request()).unwrap();
    assert_eq!(c.network(ALIAS).unwrap().network.id, remade.network.id);
    let listed = c.networks().unwrap();
    let shown = listed.iter().find(|n| n.network.name == "c1").unwrap();
    assert_eq!(shown.docker_ids, vec![ALIAS.to_string()]);
    c.delete_network("c1").unwrap();
    let e = c.network(ALIAS).unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotFound);
    assert!(e.to_string().contains("alias of cluster network c1"), "{e}");
    // Docker can still remove it.
    c.delete_network(ALIAS).unwrap();
    assert!(c.aliases().unwrap().is_empty());
}

/// Runs `op`, which dies in the driver step `at`.
fn crashes_at<T>(driver: &FakeDriver, at: &'static str, op: impl FnOnce() -> T) {
    *driver.crash.lock().unwrap() = Some(at);
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(op)).is_err();
    assert!(died, "the operation did not reach {at}");
}

#[test]
fn a_connect_killed_at_any_step_can_be_retried_and_leaves_nothing() {
    for step in ["validate_endpoint", "join", "program_external"] {
        let (c, store, driver) = controller();
        c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
        let before = keys(&store);
        let req = connect_request("eth0", &["8080:80", "0:53/udp"]);
        crashes_at(&driver, step, || c.connect("n1", &req));
        assert_eq!(c.pending().unwrap().len(), 1, "{step}: the intent stays");
        // The retry settles the dead attempt first: its own host port is no conflict.
        let ep = c
            .connect("n1", &req)
            .unwrap_or_else(|e| panic!("{step}: retry: {e}"));
        assert_eq!(ep.endpoint.addresses, vec!["10.1.0.2/24".parse().unwrap()]);
        c.disconnect("n1", &ep.endpoint.id).unwrap();
        assert_eq!(keys(&store), before, "{step}: left store changes");
        assert!(c.pending().unwrap().is_empty());
    }
}

#[test]
fn a_killed_connect_is_undone_by_any_later_command() {
    let (c, store, driver) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let before = keys(&store);
    let req = connect_request("eth0", &["8080:80"]);
    crashes_at(&driver, "program_external", || c.connect("n1", &req));
    driver.calls.lock().unwrap().clear();
    // An unrelated network's creation settles it: the kernel is undone, then the claims.
    c.create_network(net_request("n2", "10.2.0.0/24")).unwrap();
    let calls = driver.calls.lock().unwrap().clone();
    assert_eq!(calls[..2], ["revoke_external", "leave"], "{calls:?}");
    c.delete_network("n2").unwrap();
    assert_eq!(keys(&store), before);
    // And the host port is free for another endpoint.
    c.connect("n1", &connect_request("eth1", &["8080:80"]))
        .unwrap();
}

#[test]
fn a_network_create_killed_midway_frees_its_name_and_subnet() {
    let (c, store, driver) = controller();
    crashes_at(&driver, "create_network", || {
        c.create_network(net_request("n1", "10.1.0.0/24"))
    });
    assert!(store.dump().contains_key("network-names/n1"));
    let rec = c
        .create_network(net_request("n1", "10.1.0.0/24"))
        .expect("name and subnet are free again");
    c.delete_network(&rec.network.id).unwrap();
    assert!(keys(&store).is_empty(), "left behind: {:?}", keys(&store));
    assert!(driver
        .calls
        .lock()
        .unwrap()
        .contains(&"delete_network".to_string()));
}

#[test]
fn a_killed_disconnect_is_finished_not_left_a_zombie() {
    let (c, store, driver) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let before = keys(&store);
    let ep = c
        .connect("n1", &connect_request("eth0", &["8080:80"]))
        .unwrap();
    crashes_at(&driver, "leave", || c.disconnect("n1", &ep.endpoint.id));
    // Reconciliation (the daemon's start, `weft status --repair`) finishes it instead of
    // republishing the half-removed endpoint's ports.
    let done = c.reconcile().unwrap();
    assert!(
        done.iter()
            .any(|l| l.contains("finished an interrupted disconnect")),
        "{done:?}"
    );
    assert!(c.endpoints(&ep.endpoint.network_id).unwrap().is_empty());
    assert_eq!(keys(&store), before);
}

#[test]
fn a_killed_network_removal_is_finished() {
    let (c, store, driver) = controller();
    let rec = c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    crashes_at(&driver, "delete_network", || c.delete_network("n1"));
    c.create_network(net_request("n2", "10.2.0.0/24")).unwrap();
    assert!(c.network(&rec.network.id).is_err(), "n1 is gone");
    c.delete_network("n2").unwrap();
    assert!(keys(&store).is_empty(), "left behind: {:?}", keys(&store));
}

#[test]
fn a_killed_publish_leaves_the_endpoint_with_no_ports() {
    let (c, store, driver) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let id = "e".repeat(64);
    let req = connect_request("eth0", &[]).endpoint;
    c.create_endpoint("n1", &id, &req).unwrap();
    let specs: Vec<crate::PortSpec> = vec!["8080:80".parse().unwrap()];
    crashes_at(&driver, "program_external", || {
        c.program_external("n1", &id, &specs)
    });
    assert!(store.dump().keys().any(|k| k.starts_with("ports/")));
    // Docker retries with the same fixed host port: its own reservation is no conflict.
    let ep = c.program_external("n1", &id, &specs).unwrap();
    assert_eq!(ep.endpoint.ports.len(), 1);
    c.delete_endpoint("n1", &id).unwrap();
    assert!(!store.dump().keys().any(|k| k.starts_with("ports/")));
}

#[test]
fn a_corrupt_record_is_skipped_and_listed() {
    let (c, store, _) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    store
        .put(&format!("networks/{}", "b".repeat(64)), b"{trunc")
        .unwrap();
    let names: Vec<_> = c
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.network.name)
        .collect();
    assert!(names.contains(&"n1".to_string()), "{names:?}");
    c.create_network(net_request("n2", "10.2.0.0/24"))
        .expect("other networks still work");
    let corrupt = c.corrupt_records().unwrap();
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert!(corrupt[0].0.ends_with(&"b".repeat(64)));
}

#[test]
fn an_intent_whose_operation_had_committed_is_only_forgotten() {
    // What a power loss can bring back: the intent of a connect whose record was committed
    // (forgetting an intent skips the flush).
    let (c, store, driver) = controller();
    c.create_network(net_request("n1", "10.1.0.0/24")).unwrap();
    let ep = c
        .connect("n1", &connect_request("eth0", &["8080:80"]))
        .unwrap();
    c.record_intent(crate::intents::Intent::Connect {
        network_id: ep.endpoint.network_id.clone(),
        endpoint_id: ep.endpoint.id.clone(),
        netns: None,
    })
    .unwrap();
    driver.calls.lock().unwrap().clear();
    c.create_network(net_request("n2", "10.2.0.0/24")).unwrap();
    assert!(c.pending().unwrap().is_empty());
    let calls = driver.calls.lock().unwrap().clone();
    assert!(!calls.contains(&"leave".to_string()), "{calls:?}");
    assert!(
        c.endpoint("n1", &ep.endpoint.id).is_ok(),
        "the endpoint stays"
    );
    assert!(store.dump().keys().any(|k| k.starts_with("ports/tcp/8080")));
}
