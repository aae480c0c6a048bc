//! Every handler driven with requests captured from a real dockerd (`testdata/`), against a
//! controller over an in-memory store and a driver that records calls instead of touching the
//! kernel.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use weft_drivers::driver::JoinInfo;
use weft_drivers::{DriverError, Endpoint, Network, NetworkDriver, Sandbox};
use weft_engine::{Controller, Origin};
use weft_ipam::testing::MemStore;
use weft_ipam::Store;

use super::api::{DockerApi, Method};
use super::network::network_name;

/// Kernel calls the handlers caused, as `"join <endpoint id prefix>"` etc.
#[derive(Default)]
struct FakeBridge {
    calls: Mutex<Vec<String>>,
}

impl FakeBridge {
    fn record(&self, what: &str, id: &str) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{what} {}", &id[..12]));
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl NetworkDriver for FakeBridge {
    fn name(&self) -> &'static str {
        "bridge"
    }
    fn validate_network(&self, net: &Network) -> Result<(), DriverError> {
        match net.options.get("com.docker.network.driver.mtu") {
            Some(m) if m.parse::<u32>().is_err() => Err(DriverError::InvalidOption {
                key: "com.docker.network.driver.mtu".into(),
                value: m.clone(),
                reason: "not a number".into(),
            }),
            _ => Ok(()),
        }
    }
    fn create_network(&self, net: &Network) -> Result<(), DriverError> {
        self.record("create_network", &net.id);
        Ok(())
    }
    fn delete_network(&self, net: &Network) -> Result<(), DriverError> {
        self.record("delete_network", &net.id);
        Ok(())
    }
    fn validate_endpoint(&self, net: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        match ep
            .addresses
            .iter()
            .find(|a| !net.subnets.iter().any(|s| s.subnet.contains(&a.addr())))
        {
            Some(a) => Err(DriverError::Invalid(format!("address {a} is in no subnet"))),
            None => Ok(()),
        }
    }
    fn join(&self, net: &Network, ep: &Endpoint, sb: &Sandbox) -> Result<JoinInfo, DriverError> {
        assert_eq!(sb, &Sandbox::Delegated, "Docker moves the interface itself");
        self.record("join", &ep.id);
        let gw = |v6: bool| {
            if net.internal {
                return None;
            }
            net.subnets
                .iter()
                .filter(|s| s.subnet.addr().is_ipv6() == v6)
                .find_map(|s| s.gateway.map(|g| g.addr()))
        };
        Ok(JoinInfo {
            src_name: Some(format!("vc{}", &ep.id[..12])),
            gateway_v4: gw(false),
            gateway_v6: gw(true),
            static_routes: Vec::new(),
            host_ifname: format!("veth{}", &ep.id[..11]),
            addresses: ep.addresses.clone(),
        })
    }
    fn leave(&self, _: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        self.record("leave", &ep.id);
        Ok(())
    }
    fn program_external_connectivity(&self, _: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        self.record("publish", &ep.id);
        Ok(())
    }
    fn revoke_external_connectivity(&self, _: &Network, ep: &Endpoint) -> Result<(), DriverError> {
        self.record("unpublish", &ep.id);
        Ok(())
    }
    fn inspect_network(&self, _: &Network, _: &[Endpoint]) -> Result<Value, DriverError> {
        Ok(Value::Null)
    }
    fn reconcile(&self, _: &Network, _: &[Endpoint]) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}

struct Harness {
    api: DockerApi,
    store: Arc<MemStore>,
    driver: Arc<FakeBridge>,
}

impl Harness {
    fn new() -> Self {
        Self::with_faults("")
    }

    fn with_faults(faults: &str) -> Self {
        let store = Arc::new(MemStore::new());
        let driver = Arc::new(FakeBridge::default());
        let mut c = Controller::new(store.clone());
        c.register(driver.clone());
        let api = DockerApi::new(Arc::new(c))
            .with_host_prefixes(Box::new(|| Ok(vec!["172.17.0.0/16".parse().unwrap()])))
            .with_faults(faults)
            .unwrap();
        Harness { api, store, driver }
    }

    fn call(&self, method: &str, body: &Value) -> (u16, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let r = self.api.handle(&format!("/{method}"), &bytes);
        (r.status, r.body)
    }

    fn ok(&self, method: &str, body: &Value) -> Value {
        let (status, reply) = self.call(method, body);
        assert_eq!(status, 200, "{method} {body}: {reply}");
        reply
    }

    /// Expects a failure; returns its `Err` text.
    fn err(&self, method: &str, body: &Value) -> (u16, String) {
        let (status, reply) = self.call(method, body);
        assert_ne!(status, 200, "{method} {body} succeeded: {reply}");
        let text = reply["Err"].as_str().unwrap_or_default().to_string();
        assert!(!text.is_empty(), "{method}: no Err text in {reply}");
        (status, text)
    }

    fn controller(&self) -> &Controller {
        &self.api.controller
    }

    fn keys(&self) -> Vec<String> {
        self.store.dump().into_keys().collect()
    }

    /// Endpoint records (not the directory pin of a Docker network).
    fn endpoint_keys(&self) -> Vec<String> {
        self.keys()
            .into_iter()
            .filter(|k| k.starts_with("endpoints/") && !k.contains("/pin/"))
            .collect()
    }
}

/// The body of a captured request (`testdata/<Method>.request.json`).
fn captured(method: &str) -> Value {
    let path = format!(
        "{}/src/docker/testdata/{method}.request.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str::<Value>(&text).unwrap()["body"].clone()
}

/// Captured requests of a whole dockerd session, in order: (path, body, status, response).
fn session(file: &str) -> Vec<(String, Value, u16, Value)> {
    let path = format!("{}/src/docker/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('/')
                    .to_string(),
                v["body"].clone(),
                v["status"].as_u64().unwrap() as u16,
                v["response"].clone(),
            )
        })
        .collect()
}

const NET: &str = "fd4a1967538a8199d6ce1b496214d07a65c5af5cd6f48412264b5156660a5a28";
const EP: &str = "867074209bf9d2b851277a3a3c9d2fac1a39670ac47e35eab4c40354d29edc87";

/// The captured network and endpoint, created, joined and published.
fn joined(h: &Harness) -> Value {
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &captured("NetworkDriver.CreateEndpoint"),
    );
    let join = h.ok("NetworkDriver.Join", &captured("NetworkDriver.Join"));
    h.ok(
        "NetworkDriver.ProgramExternalConnectivity",
        &captured("NetworkDriver.ProgramExternalConnectivity"),
    );
    join
}

fn endpoint_body() -> Value {
    json!({ "NetworkID": NET, "EndpointID": EP })
}

#[test]
fn activate_and_capabilities() {
    let h = Harness::new();
    assert_eq!(
        h.ok("Plugin.Activate", &captured("Plugin.Activate")),
        json!({"Implements": ["NetworkDriver", "IpamDriver"]})
    );
    assert_eq!(
        h.ok(
            "NetworkDriver.GetCapabilities",
            &captured("NetworkDriver.GetCapabilities")
        ),
        json!({"Scope": "local", "ConnectivityScope": "local"})
    );
    assert_eq!(
        h.ok(
            "IpamDriver.GetCapabilities",
            &captured("IpamDriver.GetCapabilities")
        ),
        json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
    );
    let spaces = h.ok(
        "IpamDriver.GetDefaultAddressSpaces",
        &captured("IpamDriver.GetDefaultAddressSpaces"),
    );
    assert!(spaces["LocalDefaultAddressSpace"].is_string());
    assert!(spaces["GlobalDefaultAddressSpace"].is_string());
}

#[test]
fn create_network_records_a_docker_network() {
    let h = Harness::new();
    assert_eq!(
        h.ok(
            "NetworkDriver.CreateNetwork",
            &captured("NetworkDriver.CreateNetwork")
        ),
        json!({})
    );
    let rec = h.controller().network(NET).unwrap();
    assert_eq!(rec.origin, Origin::Docker);
    assert_eq!(rec.network.name, network_name(NET));
    assert_eq!(rec.network.driver, "bridge");
    assert!(rec.pools.is_empty(), "Docker's IPAM owns the pool");
    assert_eq!(rec.network.subnets.len(), 1);
    assert_eq!(rec.network.subnets[0].subnet.to_string(), "10.123.1.0/24");
    assert_eq!(
        rec.network.subnets[0].gateway.unwrap().to_string(),
        "10.123.1.1/24"
    );
    assert_eq!(h.driver.calls(), vec!["create_network fd4a1967538a"]);
    // Docker may repeat it: same network, no second bridge.
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    assert_eq!(h.driver.calls().len(), 1);
}

#[test]
fn create_network_passes_options_internal_and_ipv6() {
    let h = Harness::new();
    let id = "84600f5f6562f139f23900af410a7c507546cff58ed81318417b7f699b4e43c4";
    h.ok(
        "NetworkDriver.CreateNetwork",
        &json!({
            "NetworkID": id,
            "Options": {
                "com.docker.network.enable_ipv6": true,
                "com.docker.network.internal": true,
                "com.docker.network.generic": {
                    "com.docker.network.driver.mtu": "1400",
                    "com.docker.network.bridge.name": "weftbr0"
                }
            },
            "IPv4Data": [{"AddressSpace": "LocalDefault", "Gateway": "10.88.0.1/24", "Pool": "10.88.0.0/24",
                "AuxAddresses": {"host1": "10.88.0.10/24"}}],
            "IPv6Data": [{"AddressSpace": "LocalDefault", "Gateway": "fd00:88::1/64", "Pool": "fd00:88::/64"}]
        }),
    );
    let rec = h.controller().network(id).unwrap();
    assert!(rec.network.internal && rec.network.enable_ipv6);
    assert_eq!(rec.network.options["com.docker.network.driver.mtu"], "1400");
    assert_eq!(
        rec.network.options["com.docker.network.bridge.name"],
        "weftbr0"
    );
    let subnets: Vec<String> = rec
        .network
        .subnets
        .iter()
        .map(|s| s.subnet.to_string())
        .collect();
    assert_eq!(subnets, ["10.88.0.0/24", "fd00:88::/64"]);
}

#[test]
fn endpoint_lifecycle_as_docker_drives_it() {
    let h = Harness::new();
    let join = joined(&h);
    assert_eq!(
        join,
        json!({
            "InterfaceName": {"SrcName": "vc867074209bf9", "DstPrefix": "eth"},
            "Gateway": "10.123.1.1",
            "DisableGatewayService": false
        })
    );
    let (_, ep) = h.controller().endpoint(NET, EP).unwrap();
    assert_eq!(ep.endpoint.addresses[0].to_string(), "10.123.1.2/24");
    assert_eq!(ep.endpoint.mac.to_string(), "02:42:0a:00:00:99");
    assert_eq!(ep.endpoint.ports.len(), 1);
    assert_eq!(ep.endpoint.ports[0].host_port, 8082);
    assert!(ep.published);

    let info = h.ok(
        "NetworkDriver.EndpointOperInfo",
        &captured("NetworkDriver.EndpointOperInfo"),
    );
    assert_eq!(
        info,
        json!({"Value": {"com.docker.network.portmap": [{
            "Proto": 6, "IP": "10.123.1.2", "Port": 80, "HostIP": "127.0.0.1",
            "HostPort": 8082, "HostPortEnd": 8082
        }]}})
    );

    h.ok("NetworkDriver.RevokeExternalConnectivity", &endpoint_body());
    let (_, ep) = h.controller().endpoint(NET, EP).unwrap();
    assert!(ep.endpoint.ports.is_empty() && !ep.published);
    h.ok("NetworkDriver.Leave", &endpoint_body());
    h.ok("NetworkDriver.DeleteEndpoint", &endpoint_body());
    assert!(h.controller().endpoint(NET, EP).is_err());
    h.ok(
        "NetworkDriver.DeleteNetwork",
        &captured("NetworkDriver.DeleteNetwork"),
    );
    assert!(h.controller().network(NET).is_err());
    assert!(h.keys().is_empty(), "left in the store: {:?}", h.keys());
    let calls = h.driver.calls();
    for step in ["join", "publish", "unpublish", "leave", "delete_network"] {
        assert!(
            calls.iter().any(|c| c.starts_with(step)),
            "{step} missing: {calls:?}"
        );
    }
}

#[test]
fn ports_with_host_port_zero_are_picked_and_reported() {
    let h = Harness::new();
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &captured("NetworkDriver.CreateEndpoint"),
    );
    h.ok("NetworkDriver.Join", &captured("NetworkDriver.Join"));
    h.ok(
        "NetworkDriver.ProgramExternalConnectivity",
        &json!({"NetworkID": NET, "EndpointID": EP, "Options": {
        "com.docker.network.portmap": [
            {"Proto": 17, "IP": "", "Port": 53, "HostIP": "", "HostPort": 0, "HostPortEnd": 0}
        ]}}),
    );
    let info = h.ok("NetworkDriver.EndpointOperInfo", &endpoint_body());
    let b = &info["Value"]["com.docker.network.portmap"][0];
    assert_eq!(b["Proto"], 17);
    assert_eq!(b["Port"], 53);
    let port = b["HostPort"].as_u64().unwrap();
    assert!(port > 0, "{info}");
    assert_eq!(b["HostPortEnd"].as_u64().unwrap(), port);
}

#[test]
fn a_whole_captured_session_replays() {
    let h = Harness::new();
    for (method, body, status, response) in session("net-requests.jsonl") {
        let (got, reply) = h.call(&method, &body);
        if status != 200 {
            // The capture's plugin failed these on purpose; weft need not.
            continue;
        }
        assert_eq!(got, 200, "{method} {body}: {reply}");
        if method == "NetworkDriver.Join" {
            assert_eq!(reply["InterfaceName"]["DstPrefix"], "eth");
            assert_eq!(reply["Gateway"], response["Gateway"], "{body}");
            assert!(reply["InterfaceName"]["SrcName"].is_string());
        }
        if method == "NetworkDriver.EndpointOperInfo" {
            assert!(reply["Value"].is_object(), "{reply}");
        }
    }
}

#[test]
fn a_captured_ipam_session_replays_with_weft_pool_ids() {
    let h = Harness::new();
    // Captured pool ids are another IPAM's: map them to weft's as RequestPool hands them out.
    // So are its addresses in the default pool.
    let mut ids = std::collections::BTreeMap::<String, String>::new();
    let mut addrs = std::collections::BTreeMap::<String, String>::new();
    let bare = |v: &Value| v.as_str().unwrap().split('/').next().unwrap().to_string();
    for (method, mut body, status, response) in session("ipam-requests.jsonl") {
        assert_eq!(status, 200);
        if let Some(pid) = body.get("PoolID").and_then(Value::as_str) {
            let ours = ids
                .get(pid)
                .unwrap_or_else(|| panic!("pool {pid} never requested"));
            if method == "IpamDriver.ReleaseAddress" {
                let theirs = format!("{pid}|{}", bare(&body["Address"]));
                body["Address"] = json!(addrs[&theirs]);
            }
            body["PoolID"] = json!(ours);
        }
        let reply = h.ok(&method, &body);
        match method.as_str() {
            "IpamDriver.RequestPool" => {
                let pool = reply["Pool"].as_str().unwrap().to_string();
                assert_eq!(reply["PoolID"].as_str().unwrap(), pool.replace('/', "_"));
                if body["Pool"] != "" {
                    assert_eq!(reply["Pool"], response["Pool"]);
                }
                ids.insert(
                    response["PoolID"].as_str().unwrap().to_string(),
                    reply["PoolID"].as_str().unwrap().to_string(),
                );
            }
            "IpamDriver.RequestAddress" => {
                let asked = body["Address"].as_str().unwrap();
                let got = reply["Address"].as_str().unwrap();
                if !asked.is_empty() {
                    assert_eq!(got.split('/').next().unwrap(), asked);
                }
                assert!(got.contains('/'), "{got} has a prefix length");
                let theirs_pool = ids
                    .iter()
                    .find(|(_, ours)| *ours == body["PoolID"].as_str().unwrap())
                    .map(|(theirs, _)| theirs.clone())
                    .unwrap();
                addrs.insert(
                    format!("{theirs_pool}|{}", bare(&response["Address"])),
                    bare(&reply["Address"]),
                );
            }
            _ => {}
        }
    }
    assert!(
        !h.keys().iter().any(|k| k.starts_with("ipam/pools/")),
        "every pool was released: {:?}",
        h.keys()
    );
}

#[test]
fn ipam_pools_gateways_addresses_and_release() {
    let h = Harness::new();
    let pool = h.ok(
        "IpamDriver.RequestPool",
        &json!({"AddressSpace": "local", "Pool": "10.99.5.0/24", "SubPool": "10.99.5.128/25", "Options": {}, "V6": false}),
    );
    assert_eq!(pool["PoolID"], "10.99.5.0_24");
    assert_eq!(pool["Pool"], "10.99.5.0/24");
    let gw = h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.99.5.0_24", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}}),
    );
    assert_eq!(
        gw["Address"], "10.99.5.1/24",
        "the gateway is the subnet's first address"
    );
    let a = h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.99.5.0_24", "Address": "", "Options": null}),
    );
    assert_eq!(
        a["Address"], "10.99.5.128/24",
        "containers get addresses from the SubPool"
    );
    let fixed = h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.99.5.0_24", "Address": "10.99.5.10"}),
    );
    assert_eq!(fixed["Address"], "10.99.5.10/24");
    let (status, e) = h.err(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.99.5.0_24", "Address": "10.99.5.10"}),
    );
    assert_eq!(status, 409);
    assert!(e.contains("10.99.5.10") && e.contains("in use"), "{e}");
    for addr in ["10.99.5.128", "10.99.5.1"] {
        h.ok(
            "IpamDriver.ReleaseAddress",
            &json!({"PoolID": "10.99.5.0_24", "Address": addr}),
        );
    }
    // Releasing twice is harmless (Docker rolls back with repeated calls).
    h.ok(
        "IpamDriver.ReleaseAddress",
        &json!({"PoolID": "10.99.5.0_24", "Address": "10.99.5.1"}),
    );
    // 10.99.5.10 was never released, as when an answer never reached Docker: the pool's
    // release takes it back instead of answering 409 forever.
    h.ok("IpamDriver.ReleasePool", &json!({"PoolID": "10.99.5.0_24"}));
    assert!(
        h.keys()
            .iter()
            .all(|k| !k.starts_with("ipam/addrs/10.99.5.0_24")),
        "{:?}",
        h.keys()
    );
    h.ok("IpamDriver.ReleasePool", &json!({"PoolID": "10.99.5.0_24"}));
    assert!(
        h.keys().iter().all(|k| !k.starts_with("ipam/pools")),
        "{:?}",
        h.keys()
    );
}

#[test]
fn ipam_default_pools_avoid_host_routes_and_v6_gets_a_ula() {
    let h = Harness::new();
    let v4 = h.ok(
        "IpamDriver.RequestPool",
        &captured("IpamDriver.RequestPool"),
    );
    let subnet: ipnet::IpNet = v4["Pool"].as_str().unwrap().parse().unwrap();
    assert!(
        !subnet.contains(&"172.17.0.1".parse::<std::net::IpAddr>().unwrap()),
        "{subnet} overlaps a host route"
    );
    let v6 = h.ok(
        "IpamDriver.RequestPool",
        &json!({"AddressSpace": "local", "Pool": "", "SubPool": "", "V6": true}),
    );
    assert!(v6["Pool"].as_str().unwrap().starts_with("fd"), "{v6}");
}

#[test]
fn exhausted_and_overlapping_pools_are_refused() {
    let h = Harness::new();
    h.ok("IpamDriver.RequestPool", &json!({"Pool": "10.7.0.0/30"}));
    // Asked again while no network uses it (weft died before its answer reached Docker): the
    // same pool, not a subnet lost for good.
    let again = h.ok("IpamDriver.RequestPool", &json!({"Pool": "10.7.0.0/30"}));
    assert_eq!(again["PoolID"], "10.7.0.0_30");
    h.ok(
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": "7".repeat(64), "Options": {},
            "IPv4Data": [{"AddressSpace": "local", "Gateway": "10.7.0.1/30", "Pool": "10.7.0.0/30"}]}),
    );
    let (status, e) = h.err("IpamDriver.RequestPool", &json!({"Pool": "10.7.0.0/30"}));
    assert_eq!(status, 409);
    assert!(e.contains("overlaps"), "{e}");
    h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.7.0.0_30", "Address": ""}),
    );
    h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.7.0.0_30", "Address": ""}),
    );
    let (status, e) = h.err(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.7.0.0_30", "Address": ""}),
    );
    assert_eq!(status, 409);
    assert!(e.contains("exhausted"), "{e}");
    let (_, e) = h.err(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.8.0.0_24", "Address": ""}),
    );
    assert!(e.contains("10.8.0.0_24") && e.contains("not found"), "{e}");
    let (status, e) = h.err(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "testipam/10.8.0.0/24", "Address": ""}),
    );
    assert_eq!(status, 400);
    assert!(e.contains("malformed"), "{e}");
}

#[test]
fn malformed_requests_answer_400_and_change_nothing() {
    let h = Harness::new();
    for (method, body) in [
        ("NetworkDriver.CreateNetwork", "{not json"),
        ("NetworkDriver.CreateNetwork", ""),
        ("NetworkDriver.CreateNetwork", r#"{"IPv4Data": []}"#),
        ("NetworkDriver.CreateNetwork", r#"{"NetworkID": 5}"#),
        ("NetworkDriver.CreateEndpoint", r#"{"NetworkID": "x"}"#),
        ("NetworkDriver.Join", "[]"),
        ("IpamDriver.RequestAddress", r#"{"Address": ""}"#),
        (
            "IpamDriver.ReleaseAddress",
            r#"{"PoolID": "10.0.0.0_24", "Address": "banana"}"#,
        ),
    ] {
        let r = h.api.handle(&format!("/{method}"), body.as_bytes());
        assert_eq!(r.status, 400, "{method} {body}: {:?}", r.body);
        let e = r.body["Err"].as_str().unwrap();
        assert!(e.contains(method), "{e}");
    }
    for (method, body, why) in [
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": NET, "IPv4Data": [{"Pool": "10.1.0.0/33", "Gateway": "10.1.0.1/24"}]}),
            "CIDR",
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": NET, "IPv4Data": [{"Pool": "10.1.0.0/24", "Gateway": "10.2.0.1/24"}]}),
            "outside",
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": NET, "IPv4Data": []}),
            "no subnet",
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": "short", "IPv4Data": [{"Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"}]}),
            "64 lowercase hex",
        ),
        (
            "NetworkDriver.CreateNetwork",
            json!({"NetworkID": NET, "Options": {"com.docker.network.generic": {"com.docker.network.driver.mtu": "big"}},
                "IPv4Data": [{"Pool": "10.1.0.0/24", "Gateway": "10.1.0.1/24"}]}),
            "mtu",
        ),
    ] {
        let (status, e) = h.err(method, &body);
        assert_eq!(status, 400, "{e}");
        assert!(e.contains(why), "{why:?} not in {e}");
    }
    assert!(h.keys().is_empty(), "{:?}", h.keys());
    assert!(h.driver.calls().is_empty(), "{:?}", h.driver.calls());
}

#[test]
fn unknown_ids_and_out_of_order_calls_are_refused_clearly() {
    let h = Harness::new();
    let (_, e) = h.err(
        "NetworkDriver.CreateEndpoint",
        &captured("NetworkDriver.CreateEndpoint"),
    );
    assert!(e.contains("network") && e.contains("not found"), "{e}");
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    let (status, e) = h.err("NetworkDriver.Join", &captured("NetworkDriver.Join"));
    assert_eq!(status, 400);
    assert!(
        e.contains("endpoint") && e.contains(EP) && e.contains("not found"),
        "{e}"
    );
    let (_, e) = h.err("NetworkDriver.EndpointOperInfo", &endpoint_body());
    assert!(e.contains("not found"), "{e}");
    let (_, e) = h.err(
        "NetworkDriver.ProgramExternalConnectivity",
        &captured("NetworkDriver.ProgramExternalConnectivity"),
    );
    assert!(e.contains("not found"), "{e}");
    // Teardown of an endpoint that is not there has nothing to do (Docker repeats it).
    for m in [
        "NetworkDriver.RevokeExternalConnectivity",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
    ] {
        h.ok(m, &endpoint_body());
    }
    let other =
        json!({"NetworkID": "ac79bac328e7286c11be4c2729cab6c9a9bbb1defeeb71827b76a4cddf387f77"});
    let (_, e) = h.err("NetworkDriver.DeleteNetwork", &other);
    assert!(e.contains("not found"), "{e}");
    assert_eq!(h.driver.calls(), vec!["create_network fd4a1967538a"]);
}

#[test]
fn a_network_with_endpoints_is_not_removed() {
    let h = Harness::new();
    joined(&h);
    let (status, e) = h.err(
        "NetworkDriver.DeleteNetwork",
        &captured("NetworkDriver.DeleteNetwork"),
    );
    assert_eq!(status, 409);
    assert!(e.contains("endpoint"), "{e}");
    assert!(h.controller().network(NET).is_ok());
}

#[test]
fn duplicate_calls_are_harmless() {
    let h = Harness::new();
    joined(&h);
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &captured("NetworkDriver.CreateEndpoint"),
    );
    h.ok("NetworkDriver.Join", &captured("NetworkDriver.Join"));
    h.ok(
        "NetworkDriver.ProgramExternalConnectivity",
        &captured("NetworkDriver.ProgramExternalConnectivity"),
    );
    let (_, ep) = h.controller().endpoint(NET, EP).unwrap();
    assert_eq!(
        ep.endpoint.ports.len(),
        1,
        "republishing replaced, not added"
    );
    for m in ["NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"] {
        h.ok(m, &endpoint_body());
        h.ok(m, &endpoint_body());
    }
    h.ok(
        "NetworkDriver.DeleteNetwork",
        &captured("NetworkDriver.DeleteNetwork"),
    );
    assert!(h.keys().is_empty(), "{:?}", h.keys());
}

#[test]
fn a_published_port_taken_by_another_endpoint_is_refused() {
    let h = Harness::new();
    joined(&h);
    let other = "8db7af7df28f8cd9ff02da9ecf6984d96f9b4b8c57353bffaf04e2de31bed2aa";
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": NET, "EndpointID": other, "Interface": {"Address": "10.123.1.3/24"}}),
    );
    let mut body = captured("NetworkDriver.ProgramExternalConnectivity");
    body["EndpointID"] = json!(other);
    let (status, e) = h.err("NetworkDriver.ProgramExternalConnectivity", &body);
    assert_eq!(status, 409);
    assert!(e.contains("8082") && e.contains("already published"), "{e}");
}

#[test]
fn injected_join_failure_leaves_no_link() {
    let h = Harness::with_faults("NetworkDriver.Join");
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &captured("NetworkDriver.CreateEndpoint"),
    );
    let (status, e) = h.err("NetworkDriver.Join", &captured("NetworkDriver.Join"));
    assert_eq!(status, 500);
    assert_eq!(e, "injected failure for /NetworkDriver.Join");
    assert_eq!(
        h.driver.calls(),
        vec![
            "create_network fd4a1967538a",
            "join 867074209bf9",
            "leave 867074209bf9"
        ]
    );
    let (_, ep) = h.controller().endpoint(NET, EP).unwrap();
    assert!(ep.join.is_none() && ep.endpoint.sandbox.is_none());
    // Docker follows with DeleteEndpoint.
    h.ok("NetworkDriver.DeleteEndpoint", &endpoint_body());
    assert!(h.endpoint_keys().is_empty(), "{:?}", h.keys());
}

#[test]
fn create_endpoint_writes_nothing_and_join_records_it_once() {
    let h = Harness::new();
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    let before = h.store.dump();
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &captured("NetworkDriver.CreateEndpoint"),
    );
    assert_eq!(
        h.store.dump(),
        before,
        "CreateEndpoint is checked, not recorded"
    );
    let info = h.ok("NetworkDriver.EndpointOperInfo", &endpoint_body());
    assert_eq!(info, json!({"Value": {}}));
    h.ok("NetworkDriver.Join", &captured("NetworkDriver.Join"));
    assert_eq!(h.endpoint_keys(), vec![format!("endpoints/{NET}/{EP}")]);
    let (_, ep) = h.controller().endpoint(NET, EP).unwrap();
    assert_eq!(ep.endpoint.mac.to_string(), "02:42:0a:00:00:99");
    assert!(ep.join.is_some());
    // Created and never joined (Docker rolled back): nothing to remove but the memory of it.
    let other = "8db7af7df28f8cd9ff02da9ecf6984d96f9b4b8c57353bffaf04e2de31bed2aa";
    let body = json!({"NetworkID": NET, "EndpointID": other});
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": NET, "EndpointID": other, "Interface": {"Address": "10.123.1.3/24"}}),
    );
    for m in ["NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint"] {
        h.ok(m, &body);
    }
    let (_, e) = h.err(
        "NetworkDriver.Join",
        &json!({"NetworkID": NET, "EndpointID": other}),
    );
    assert!(e.contains("not found"), "{e}");
    // A bad address is refused at CreateEndpoint already.
    let (_, e) = h.err(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": NET, "EndpointID": other, "Interface": {"Address": "10.9.9.9/24"}}),
    );
    assert!(e.contains("10.9.9.9"), "{e}");
}

#[test]
fn injected_create_network_failure_leaves_nothing() {
    let h = Harness::with_faults("NetworkDriver.CreateNetwork");
    let (_, e) = h.err(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    assert!(e.contains("injected"), "{e}");
    assert!(h.keys().is_empty(), "{:?}", h.keys());
    assert_eq!(
        h.driver.calls(),
        vec!["create_network fd4a1967538a", "delete_network fd4a1967538a"]
    );
    assert!(
        DockerApi::new(Arc::new(Controller::new(Arc::new(MemStore::new()))))
            .with_faults("NetworkDriver.Nope")
            .is_err()
    );
}

#[test]
fn discovery_and_swarm_calls_are_answered() {
    let h = Harness::new();
    h.ok(
        "NetworkDriver.DiscoverNew",
        &json!({"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.1"}}),
    );
    h.ok(
        "NetworkDriver.DiscoverDelete",
        &json!({"DiscoveryType": 1, "DiscoveryData": null}),
    );
    assert_eq!(
        h.ok(
            "NetworkDriver.AllocateNetwork",
            &json!({"NetworkID": NET, "Options": {}})
        ),
        json!({"Options": {}})
    );
    h.ok("NetworkDriver.FreeNetwork", &json!({"NetworkID": NET}));
}

#[test]
fn unknown_paths_answer_404() {
    let h = Harness::new();
    for path in [
        "/NetworkDriver.Nope",
        "/",
        "/Plugin.Activate/x",
        "/VolumeDriver.Create",
    ] {
        let r = h.api.handle(path, b"{}");
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body["Err"]
            .as_str()
            .unwrap()
            .contains("unknown plugin method"));
    }
    assert_eq!(Method::ALL.len(), 21);
    for m in Method::ALL {
        assert_eq!(Method::from_path(&format!("/{}", m.name())), Some(m));
    }
}

#[test]
fn the_store_is_shared_with_the_cli_view() {
    let h = Harness::new();
    h.ok(
        "NetworkDriver.CreateNetwork",
        &captured("NetworkDriver.CreateNetwork"),
    );
    let names: Vec<String> = h
        .controller()
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.network.name)
        .collect();
    assert_eq!(names, vec![network_name(NET)]);
    assert!(h.store.get(&format!("networks/{NET}")).unwrap().is_some());
}

// ---- Docker networks that are this host's part of a cluster network ----

/// The local network of cluster `c1` (10.244.0.0/16) as `weft daemon --cluster c1` makes it,
/// with the record it writes for local consumers; returns the network's id.
fn join_cluster(h: &Harness) -> String {
    weft_ipam::cluster::local::save_record(
        h.store.as_ref(),
        &weft_ipam::cluster::local::LocalRecord {
            cluster: "c1".into(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            subnet_v6: None,
            mtu: 1450,
            network: "10.244.0.0/16".parse().unwrap(),
            network_v6: None,
            backend: "vxlan".into(),
            public_ip: "192.168.100.1".parse().unwrap(),
            lease_held: true,
            problems: Vec::new(),
        },
    )
    .unwrap();
    let rec = h
        .controller()
        .create_network(weft_engine::NetworkRequest {
            name: "c1".into(),
            id: None,
            driver: "bridge".into(),
            internal: false,
            enable_ipv6: false,
            ipam: weft_engine::IpamRequest::Weft {
                v4: vec![weft_ipam::PoolRequest {
                    subnet: Some("10.244.1.0/24".parse().unwrap()),
                    owner: "cluster c1".into(),
                    ..Default::default()
                }],
                v6: vec![],
            },
            options: [("com.docker.network.driver.mtu", "1450")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            labels: [(weft_engine::CLUSTER_LABEL.to_string(), "c1".to_string())]
                .into_iter()
                .collect(),
            origin: Origin::Daemon,
        })
        .unwrap();
    rec.network.id
}

/// `--ipam-opt weft.cluster=CLUSTER --subnet 10.244.0.0/16`.
fn cluster_pool_request(cluster: &str) -> Value {
    json!({"AddressSpace": "local", "Pool": "10.244.0.0/16", "SubPool": "",
        "Options": {"weft.cluster": cluster}, "V6": false})
}

fn cluster_create(space: &str, pool: &str, gateway: &str, generic: Value) -> Value {
    json!({
        "NetworkID": NET,
        "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": generic},
        "IPv4Data": [{"AddressSpace": space, "Pool": pool, "Gateway": gateway}],
        "IPv6Data": []
    })
}

fn gateway_request(address: &str) -> Value {
    json!({"PoolID": "10.244.1.0_24", "Address": address,
        "Options": {"RequestAddressType": "com.docker.network.gateway"}})
}

/// What the weft IPAM holds, without allocation cursors.
fn ipam_keys(h: &Harness) -> Vec<String> {
    h.keys()
        .into_iter()
        .filter(|k| k.starts_with("ipam/") && !k.starts_with("ipam/cursor/"))
        .collect()
}

#[test]
fn the_cluster_pool_and_gateway_are_lent_to_docker_never_released() {
    let h = Harness::new();
    join_cluster(&h);
    let before = ipam_keys(&h);
    let pool = h.ok("IpamDriver.RequestPool", &cluster_pool_request("c1"));
    assert_eq!(pool["PoolID"], "10.244.1.0_24");
    assert_eq!(pool["Pool"], "10.244.1.0/24");
    let mut own = cluster_pool_request("c1");
    own["Pool"] = json!("10.244.1.0/24");
    assert_eq!(
        h.ok("IpamDriver.RequestPool", &own),
        pool,
        "this host's subnet will do too"
    );
    let gw = h.ok("IpamDriver.RequestAddress", &gateway_request(""));
    assert_eq!(gw["Address"], "10.244.1.1/24");
    h.ok("IpamDriver.RequestAddress", &gateway_request("10.244.1.1"));
    assert_eq!(ipam_keys(&h), before, "no pool or address was made");

    let a = h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.244.1.0_24", "Address": "", "Options": {}}),
    );
    assert_eq!(a["Address"], "10.244.1.2/24");
    // Docker's rollback and `docker network rm` release the gateway and the pool: no-ops.
    h.ok(
        "IpamDriver.ReleaseAddress",
        &json!({"PoolID": "10.244.1.0_24", "Address": "10.244.1.1"}),
    );
    h.ok(
        "IpamDriver.ReleasePool",
        &json!({"PoolID": "10.244.1.0_24"}),
    );
    let kept = h.keys();
    assert!(kept.contains(&"ipam/pools/10.244.1.0_24".to_string()));
    assert!(kept.contains(&"ipam/addrs/10.244.1.0_24/10.244.1.1".to_string()));
    // A container's address is Docker's to give back.
    h.ok(
        "IpamDriver.ReleaseAddress",
        &json!({"PoolID": "10.244.1.0_24", "Address": "10.244.1.2"}),
    );
    assert_eq!(ipam_keys(&h), before);
}

#[test]
fn cluster_pool_requests_that_cannot_be_met_say_what_to_drop() {
    let h = Harness::new();
    let (status, e) = h.err("IpamDriver.RequestPool", &cluster_pool_request("c1"));
    assert_eq!(status, 400);
    assert!(
        e.contains("has not joined cluster c1") && e.contains("--cluster c1"),
        "{e}"
    );
    join_cluster(&h);
    let before = h.keys();
    for (change, why) in [
        (json!({"V6": true}), "drop --ipv6"),
        // dockerd would check it against the host's routes and ask again forever.
        (json!({"Pool": ""}), "needs --subnet 10.244.0.0/16"),
        (
            json!({"Pool": "10.244.9.0/24"}),
            "give --subnet 10.244.0.0/16",
        ),
        (json!({"SubPool": "10.244.1.128/25"}), "drop --ip-range"),
    ] {
        let mut body = cluster_pool_request("c1");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, e) = h.err("IpamDriver.RequestPool", &body);
        assert_eq!(status, 400, "{e}");
        assert!(e.contains(why), "{why:?} not in {e}");
    }
    let (_, e) = h.err("IpamDriver.RequestAddress", &gateway_request("10.244.1.9"));
    assert!(
        e.contains("10.244.1.1") && e.contains("drop --gateway"),
        "{e}"
    );
    assert_eq!(h.keys(), before);
}

#[test]
fn a_cluster_docker_network_is_an_alias_that_lands_endpoints_on_the_cluster_bridge() {
    let h = Harness::new();
    let cluster_id = join_cluster(&h);
    h.ok("IpamDriver.RequestPool", &cluster_pool_request("c1"));
    h.ok("IpamDriver.RequestAddress", &gateway_request(""));
    h.ok(
        "NetworkDriver.CreateNetwork",
        &cluster_create(
            "local",
            "10.244.1.0/24",
            "10.244.1.1/24",
            json!({"weft.cluster": "c1", "com.docker.network.driver.mtu": "1450"}),
        ),
    );
    assert_eq!(h.controller().network(NET).unwrap().network.id, cluster_id);
    assert_eq!(
        h.controller().networks().unwrap().len(),
        1,
        "no second network"
    );
    assert_eq!(
        h.driver.calls(),
        vec![
            format!("create_network {}", &cluster_id[..12]),
            format!("create_network {}", &cluster_id[..12]),
        ],
        "the cluster network's kernel state was re-applied, nothing new was built"
    );
    // Docker's endpoint calls, with Docker's network id.
    let addr = h.ok(
        "IpamDriver.RequestAddress",
        &json!({"PoolID": "10.244.1.0_24", "Address": ""}),
    );
    assert_eq!(addr["Address"], "10.244.1.2/24");
    h.ok(
        "NetworkDriver.CreateEndpoint",
        &json!({"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.244.1.2/24"}}),
    );
    let join = h.ok(
        "NetworkDriver.Join",
        &json!({"NetworkID": NET, "EndpointID": EP, "SandboxKey": "/var/run/docker/netns/x"}),
    );
    assert_eq!(join["Gateway"], "10.244.1.1");
    assert_eq!(
        h.endpoint_keys(),
        vec![format!("endpoints/{cluster_id}/{EP}")],
        "the endpoint is recorded under the cluster network"
    );
    h.ok("NetworkDriver.Leave", &endpoint_body());
    h.ok("NetworkDriver.DeleteEndpoint", &endpoint_body());
    assert!(h.endpoint_keys().is_empty());
    h.ok("NetworkDriver.DeleteNetwork", &json!({"NetworkID": NET}));
    h.ok(
        "IpamDriver.ReleaseAddress",
        &json!({"PoolID": "10.244.1.0_24", "Address": "10.244.1.1"}),
    );
    h.ok(
        "IpamDriver.ReleasePool",
        &json!({"PoolID": "10.244.1.0_24"}),
    );
    // Only the alias went.
    assert!(h.controller().network(NET).is_err());
    let c1 = h.controller().network("c1").unwrap();
    assert_eq!(c1.network.id, cluster_id);
    assert!(!h
        .driver
        .calls()
        .iter()
        .any(|c| c.starts_with("delete_network")));
    assert!(!h.keys().iter().any(|k| k.starts_with("network-aliases/")));
    assert!(h
        .keys()
        .contains(&"ipam/addrs/10.244.1.0_24/10.244.1.1".to_string()));
}

#[test]
fn a_cluster_docker_network_that_contradicts_the_cluster_is_refused_clearly() {
    let h = Harness::new();
    let (_, e) = h.err(
        "NetworkDriver.CreateNetwork",
        &cluster_create(
            "local",
            "10.244.1.0/24",
            "10.244.1.1/24",
            json!({"weft.cluster": "c1"}),
        ),
    );
    assert!(e.contains("has not joined cluster c1"), "{e}");
    join_cluster(&h);
    let before = h.keys();
    let cluster = json!({"weft.cluster": "c1"});
    for (body, why) in [
        (
            cluster_create(
                "LocalDefault",
                "172.18.0.0/16",
                "172.18.0.1/16",
                cluster.clone(),
            ),
            "--ipam-driver weft --ipam-opt weft.cluster=c1 --subnet 10.244.0.0/16",
        ),
        (
            cluster_create("local", "10.99.0.0/24", "10.99.0.1/24", cluster.clone()),
            "10.244.1.0/24",
        ),
        (
            cluster_create("local", "10.244.1.0/24", "10.244.1.7/24", cluster.clone()),
            "gateway 10.244.1.7",
        ),
        (
            cluster_create(
                "local",
                "10.244.1.0/24",
                "10.244.1.1/24",
                json!({"weft.cluster": "c1", "com.docker.network.driver.mtu": "1400"}),
            ),
            "drop -o com.docker.network.driver.mtu",
        ),
        (
            {
                let mut b =
                    cluster_create("local", "10.244.1.0/24", "10.244.1.1/24", cluster.clone());
                b["Options"]["com.docker.network.internal"] = json!(true);
                b
            },
            "drop --internal",
        ),
    ] {
        let (status, e) = h.err("NetworkDriver.CreateNetwork", &body);
        assert_eq!(status, 400, "{e}");
        assert!(e.contains(why), "{why:?} not in {e}");
    }
    assert_eq!(h.keys(), before, "nothing was recorded");
    assert!(h.controller().network(NET).is_err());
}

#[test]
fn an_injected_failure_of_a_cluster_create_network_leaves_no_alias() {
    let h = Harness::with_faults("NetworkDriver.CreateNetwork");
    join_cluster(&h);
    let (_, e) = h.err(
        "NetworkDriver.CreateNetwork",
        &cluster_create(
            "local",
            "10.244.1.0/24",
            "10.244.1.1/24",
            json!({"weft.cluster": "c1"}),
        ),
    );
    assert!(e.contains("injected"), "{e}");
    assert!(h.controller().network(NET).is_err());
    assert!(h.controller().network("c1").is_ok());
    assert!(!h.keys().iter().any(|k| k.starts_with("network-aliases/")));
}

#[test]
fn a_network_on_a_whole_address_family_is_refused_like_the_cli_refuses_it() {
    let h = Harness::new();
    let (status, e) = h.err(
        "NetworkDriver.CreateNetwork",
        &json!({"NetworkID": "6".repeat(64), "Options": {},
            "IPv4Data": [{"AddressSpace": "local", "Gateway": "0.0.0.1/0", "Pool": "0.0.0.0/0"}]}),
    );
    assert_eq!(status, 400, "{e}");
    assert!(e.contains("0.0.0.0/0"), "{e}");
    assert!(h
        .controller()
        .networks()
        .unwrap()
        .iter()
        .all(|n| n.origin != weft_engine::Origin::Docker));
}
