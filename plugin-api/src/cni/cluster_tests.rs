//! Configs that name a cluster network, run through the whole command as a runtime would, up
//! to the point where they are refused (no kernel change is reached: the kernel side is in the
//! root tests of `tests/cni_cluster.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use weft_drivers::driver::JoinInfo;
use weft_drivers::{DriverError, Endpoint, Network, NetworkDriver, Sandbox};
use weft_engine::{
    AddressRequest, Controller, EndpointRequest, EngineError, IpamRequest, NetworkRequest, Origin,
    CLUSTER_LABEL,
};
use weft_ipam::cluster::local::{save_record, LocalRecord};
use weft_ipam::{FileStore, PoolRequest};

use super::attachment::{endpoint_id, owner};
use super::{run, Backend, Invocation};

/// A bridge driver that must never be asked to build anything in the kernel (taking an
/// endpoint down is a no-op, for GC).
struct NoKernel;

impl NetworkDriver for NoKernel {
    fn name(&self) -> &'static str {
        "bridge"
    }
    fn validate_network(&self, _: &Network) -> Result<(), DriverError> {
        Ok(())
    }
    fn create_network(&self, _: &Network) -> Result<(), DriverError> {
        Ok(())
    }
    fn delete_network(&self, _: &Network) -> Result<(), DriverError> {
        panic!("delete_network reached")
    }
    fn validate_endpoint(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }
    fn join(&self, _: &Network, _: &Endpoint, _: &Sandbox) -> Result<JoinInfo, DriverError> {
        panic!("join reached")
    }
    fn leave(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }
    fn program_external_connectivity(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        panic!("publish reached")
    }
    fn revoke_external_connectivity(&self, _: &Network, _: &Endpoint) -> Result<(), DriverError> {
        Ok(())
    }
    fn inspect_network(&self, _: &Network, _: &[Endpoint]) -> Result<Value, DriverError> {
        Ok(Value::Null)
    }
    fn reconcile(&self, _: &Network, _: &[Endpoint]) -> Result<Vec<String>, DriverError> {
        Ok(Vec::new())
    }
}

fn controller(dir: &Path, _lock_timeout: std::time::Duration) -> Result<Controller, EngineError> {
    let mut c = Controller::new(Arc::new(FileStore::open(dir)?));
    c.register(Arc::new(NoKernel));
    Ok(c)
}

/// The local network of cluster `c1` as the agent makes it: dual stack, MTU 1450.
fn join_cluster(dir: &Path) {
    let c = controller(dir, std::time::Duration::from_secs(5)).unwrap();
    let pool = |s: &str| PoolRequest {
        subnet: Some(s.parse().unwrap()),
        v6: s.contains(':'),
        ..PoolRequest::default()
    };
    c.create_network(NetworkRequest {
        name: "c1".into(),
        id: None,
        driver: "bridge".into(),
        internal: false,
        enable_ipv6: true,
        ipam: IpamRequest::Weft {
            v4: vec![pool("10.244.1.0/24")],
            v6: vec![pool("fd00:244:0:1::/64")],
        },
        options: BTreeMap::from([(
            "com.docker.network.driver.mtu".to_string(),
            "1450".to_string(),
        )]),
        labels: BTreeMap::from([(CLUSTER_LABEL.to_string(), "c1".to_string())]),
        origin: Origin::Daemon,
    })
    .unwrap();
}

/// Runs `command` with `conf` (plus cniVersion, type and the state dir): (exit code, output).
fn cni(dir: &Path, command: &str, conf: Value) -> (u8, Value) {
    let mut conf = conf;
    conf["cniVersion"] = json!("1.1.0");
    conf["type"] = json!("weft");
    conf["stateDir"] = json!(dir);
    let vars = BTreeMap::from(
        [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "ctr1"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let inv = Invocation {
        vars,
        stdin: serde_json::to_vec(&conf).unwrap(),
    };
    let controller = controller;
    let reply = run(
        &inv,
        &Backend {
            default_state_dir: dir,
            controller: &controller,
        },
    );
    let out = if reply.stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&reply.stdout).unwrap()
    };
    (reply.exit_code, out)
}

fn networks(dir: &Path) -> Vec<String> {
    controller(dir, std::time::Duration::from_secs(5))
        .unwrap()
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.network.name)
        .collect()
}

#[test]
fn add_before_the_host_joined_says_try_again_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = cni(dir.path(), "ADD", json!({"name": "pods", "cluster": "c1"}));
    assert_eq!(code, 1);
    assert_eq!(out["code"], 11, "{out}");
    let msg = out["msg"].as_str().unwrap();
    assert!(
        msg.contains("has not joined cluster c1") && msg.contains("--cluster c1"),
        "{msg}"
    );
    assert!(networks(dir.path()).is_empty());
}

#[test]
fn a_config_named_after_a_cluster_this_host_was_in_does_not_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    save_record(
        &store,
        &LocalRecord {
            cluster: "c1".into(),
            subnet: "10.244.1.0/24".parse().unwrap(),
            subnet_v6: None,
            mtu: 1450,
            network: "10.244.0.0/16".parse().unwrap(),
            network_v6: None,
            backend: "vxlan".into(),
            public_ip: "192.168.100.1".parse().unwrap(),
            lease_held: false,
            problems: Vec::new(),
        },
    )
    .unwrap();
    let (code, out) = cni(dir.path(), "ADD", json!({"name": "c1"}));
    assert_eq!(code, 1);
    assert_eq!(out["code"], 11, "{out}");
    assert!(out["msg"].as_str().unwrap().contains("not by CNI"), "{out}");
    assert!(networks(dir.path()).is_empty());
}

#[test]
fn a_config_that_contradicts_the_cluster_network_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    join_cluster(dir.path());
    for (conf, why) in [
        (
            json!({"name": "pods", "cluster": "c1",
                "ipam": {"ranges": [[{"subnet": "10.9.0.0/24"}]]}}),
            "10.9.0.0/24",
        ),
        (json!({"name": "pods", "cluster": "c1", "mtu": 1400}), "mtu"),
        (json!({"name": "c1", "ipMasq": false}), "ipMasq"),
    ] {
        let (code, out) = cni(dir.path(), "ADD", conf.clone());
        assert_eq!(code, 1, "{conf}");
        assert_eq!(out["code"], 7, "{conf}: {out}");
        let msg = out["msg"].as_str().unwrap();
        assert!(
            msg.contains(why) && msg.contains("\"c1\""),
            "{why:?} not in {msg}"
        );
    }
    assert_eq!(networks(dir.path()), ["c1"]);
}

#[test]
fn del_and_check_look_in_the_cluster_network() {
    let dir = tempfile::tempdir().unwrap();
    join_cluster(dir.path());
    let (code, out) = cni(dir.path(), "DEL", json!({"name": "pods", "cluster": "c1"}));
    assert_eq!(code, 0, "nothing attached is nothing to delete: {out}");
    let (code, out) = cni(
        dir.path(),
        "CHECK",
        json!({"name": "pods", "cluster": "c1", "prevResult": {
            "cniVersion": "1.1.0", "ips": [{"address": "10.244.1.5/24"}]}}),
    );
    assert_eq!(code, 1);
    assert_eq!(out["code"], 3, "{out}");
    assert!(
        out["msg"].as_str().unwrap().contains("network \"c1\""),
        "{out}"
    );
}

#[test]
fn gc_of_one_config_leaves_the_attachments_of_others_on_the_cluster_network() {
    let dir = tempfile::tempdir().unwrap();
    join_cluster(dir.path());
    let c = controller(dir.path(), std::time::Duration::from_secs(5)).unwrap();
    let net = c.cluster_network("c1").unwrap().network.id;
    // Made through a config named "pods" with `cluster`, and through one named "c1".
    for (cid, config, addr) in [
        ("a", Some("pods"), "10.244.1.5/24"),
        ("b", None, "10.244.1.6/24"),
    ] {
        c.create_endpoint(
            "c1",
            &endpoint_id(&net, cid, "eth0"),
            &EndpointRequest {
                addresses: AddressRequest::Given(vec![addr.parse().unwrap()]),
                mac: None,
                ifname: "eth0".into(),
                options: BTreeMap::new(),
                owner: owner(cid, "eth0", config),
            },
        )
        .unwrap();
    }
    let owners = |dir: &Path| -> Vec<String> {
        let c = controller(dir, std::time::Duration::from_secs(5)).unwrap();
        let mut o: Vec<String> = c
            .endpoints(&net)
            .unwrap()
            .into_iter()
            .map(|e| e.owner)
            .collect();
        o.sort();
        o
    };
    let gc = |conf: Value| {
        let mut conf = conf;
        conf["cni.dev/valid-attachments"] = json!([]);
        let (code, out) = cni(dir.path(), "GC", conf);
        assert_eq!(code, 0, "{out}");
    };
    gc(json!({"name": "pods", "cluster": "c1"}));
    assert_eq!(owners(dir.path()), ["cni:b:eth0"]);
    gc(json!({"name": "c1"}));
    assert!(owners(dir.path()).is_empty());
    assert_eq!(
        networks(dir.path()),
        ["c1"],
        "the cluster network is the daemon's"
    );
}
