//! The CNI protocol as a runtime meets it, for everything that fails (or answers) before weft
//! touches the kernel: VERSION, every environment, decoding, version and config error, STATUS,
//! and "try again later". The binary runs exactly as a runtime runs it: `CNI_*` variables and
//! the configuration on stdin. These tests need no root.

mod cni_support;
mod support;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use cni_support::{Call, Out};
use serde_json::{json, Value};

/// Runs weft in the test's own namespaces: only for commands that change no kernel state.
fn weft(call: &Call, stdin: &[u8], extra_env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.env_remove("WEFT_STATE_DIR")
        .env("CNI_COMMAND", &call.command)
        .env("CNI_CONTAINERID", &call.container_id)
        .env("CNI_IFNAME", &call.ifname)
        .env(
            "CNI_PATH",
            call.path.clone().unwrap_or("/usr/lib/cni".into()),
        );
    if let Some(ns) = &call.netns {
        cmd.env("CNI_NETNS", ns);
    }
    if let Some(a) = &call.args {
        cmd.env("CNI_ARGS", a);
    }
    for k in &call.unset {
        cmd.env_remove(k);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().expect("wait");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn call(command: &str) -> Call {
    let mut c = Call::new(command, "c1", None);
    c.netns = Some("/nonexistent/netns".into());
    c
}

fn conf(version: &str, state: &std::path::Path, extra: Value) -> Value {
    cni_support::conf(version, "n1", state, extra)
}

fn stdin(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn version_answers_in_the_version_asked_and_lists_all() {
    let all = json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let out = weft(&call("VERSION"), &stdin(&json!({"cniVersion": v})), &[]).ok();
        assert_eq!(out["cniVersion"], v);
        assert_eq!(out["supportedVersions"], all);
    }
    // Nothing readable, or a version weft does not speak: the latest.
    for input in [&b""[..], b"{\"cniVersion\":\"0.2.0\"}", b"garbage"] {
        let out = weft(&call("VERSION"), input, &[]).ok();
        assert_eq!(out["cniVersion"], "1.1.0");
    }
    // VERSION needs no other variable.
    let mut bare = call("VERSION");
    bare.unset = vec!["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH", "CNI_NETNS"];
    weft(&bare, b"{}", &[]).ok();
}

#[test]
fn missing_or_malformed_environment_is_code_4() {
    let dir = tempfile::tempdir().unwrap();
    let c = stdin(&conf("1.0.0", dir.path(), json!({})));
    for (command, var) in [
        ("ADD", "CNI_CONTAINERID"),
        ("ADD", "CNI_NETNS"),
        ("ADD", "CNI_IFNAME"),
        ("ADD", "CNI_PATH"),
        ("DEL", "CNI_CONTAINERID"),
        ("DEL", "CNI_IFNAME"),
        ("CHECK", "CNI_NETNS"),
        ("GC", "CNI_PATH"),
        ("STATUS", "CNI_PATH"),
    ] {
        let mut k = call(command);
        k.unset = vec![var];
        let e = weft(&k, &c, &[]).err(4);
        assert!(
            e["msg"].as_str().unwrap().contains(var),
            "{command} {var}: {e}"
        );
    }
    let e = weft(&call("FROB"), &c, &[]).err(4);
    assert!(e["msg"].as_str().unwrap().contains("FROB"), "{e}");
    let mut unset = call("ADD");
    unset.unset = vec!["CNI_COMMAND"];
    // Without CNI_COMMAND weft is the CLI, not a plugin: clap's usage error, no CNI JSON.
    let out = weft(&unset, &c, &[]);
    assert_ne!(out.code, 0);
    let mut bad_id = call("ADD");
    bad_id.container_id = "-bad id".into();
    weft(&bad_id, &c, &[]).err(4);
    for bad in ["", "has/slash", "way-too-long-name", "a:b"] {
        let e = weft(&call("DEL").ifname(bad), &c, &[]).err(4);
        assert!(e["msg"].as_str().unwrap().contains("CNI_IFNAME"), "{e}");
    }
    // CNI_ARGS: unknown keys need IgnoreUnknown; values must parse.
    let e = weft(&call("ADD").args("FOO=bar"), &c, &[]).err(4);
    assert!(e["msg"].as_str().unwrap().contains("FOO"), "{e}");
    weft(&call("ADD").args("IP=banana"), &c, &[]).err(4);
    weft(&call("ADD").args("broken"), &c, &[]).err(4);
    // With IgnoreUnknown, the run gets as far as the (missing) namespace.
    weft(&call("ADD").args("IgnoreUnknown=1;FOO=bar"), &c, &[]).err(3);
}

#[test]
fn namespaces_that_are_gone_are_code_3_and_non_namespaces_code_4() {
    let dir = tempfile::tempdir().unwrap();
    let c = stdin(&conf("1.0.0", dir.path(), json!({})));
    let e = weft(&call("ADD"), &c, &[]).err(3);
    assert!(
        e["msg"].as_str().unwrap().contains("/nonexistent/netns"),
        "{e}"
    );
    let mut not_ns = call("ADD");
    not_ns.netns = Some("/etc/hostname".into());
    weft(&not_ns, &c, &[]).err(4);
    let mut check = call("CHECK");
    check.netns = Some("/nonexistent/netns".into());
    weft(&check, &c, &[]).err(3);
}

#[test]
fn bad_json_and_wrong_types_are_code_6_and_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for input in [&b""[..], b"{not json", b"[1, 2]", b"\"str\""] {
        weft(&call("ADD"), input, &[]).err(6);
    }
    for (extra, key) in [
        (json!({"mtu": "big"}), "mtu"),
        (json!({"ipMasq": "yes"}), "ipMasq"),
        (json!({"bridge": 5}), "bridge"),
        (json!({"ipam": []}), "ipam"),
        (json!({"ipam": {"ranges": "10.0.0.0/24"}}), "ipam.ranges"),
        (json!({"ipam": {"ranges": [[{"subnet": 10}]]}}), "subnet"),
        (
            json!({"runtimeConfig": {"portMappings": [{"hostPort": "80", "containerPort": 80}]}}),
            "runtimeConfig.portMappings",
        ),
        (
            json!({"runtimeConfig": {"ips": "10.0.0.5"}}),
            "runtimeConfig.ips",
        ),
        (json!({"dns": ["8.8.8.8"]}), "dns"),
        (
            json!({"prevResult": {"ips": [{"address": "banana"}]}}),
            "prevResult",
        ),
        (json!({"prevResult": []}), "prevResult"),
        (
            json!({"cni.dev/valid-attachments": [{"containerID": 5}]}),
            "cni.dev/valid-attachments",
        ),
    ] {
        let e = weft(&call("ADD"), &stdin(&conf("1.0.0", d, extra.clone())), &[]).err(6);
        let msg = e["msg"].as_str().unwrap();
        assert!(msg.contains(key), "{extra}: {msg}");
        assert_eq!(
            e["cniVersion"], "1.0.0",
            "errors answer in the config's version"
        );
    }
}

#[test]
fn unknown_fields_of_any_type_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let c = conf(
        "1.0.0",
        dir.path(),
        json!({"someRuntimeKey": [1, {"x": null}], "capabilities": {"portMappings": true, "bandwidth": 7},
               "runtimeConfig": {"bandwidth": {"ingressRate": 1}, "someOther": "x"}, "args": {"other": 1}}),
    );
    let out = weft(&call("DEL"), &stdin(&c), &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.trim().is_empty(),
        "DEL prints nothing: {}",
        out.stdout
    );
}

#[test]
fn unsupported_reference_features_are_code_2_with_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key, value) in [
        (json!({"vlan": 100}), "vlan", "100"),
        (json!({"vlanTrunk": [{"id": 5}]}), "vlanTrunk", "5"),
        (json!({"promiscMode": true}), "promiscMode", "true"),
        (json!({"macspoofchk": true}), "macspoofchk", "true"),
        (json!({"isGateway": false}), "isGateway", "false"),
        (
            json!({"isDefaultGateway": false}),
            "isDefaultGateway",
            "false",
        ),
        (
            json!({"ipam": {"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.2.0.0/24"}]]}}),
            "ipam.ranges[0]",
            "10.2.0.0/24",
        ),
        (
            json!({"ipam": {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.20"}}),
            "rangeStart",
            "10.1.0.10-10.1.0.20",
        ),
    ] {
        let e = weft(
            &call("ADD"),
            &stdin(&conf("1.0.0", dir.path(), extra.clone())),
            &[],
        )
        .err(2);
        let msg = e["msg"].as_str().unwrap();
        assert!(msg.contains(key) && msg.contains(value), "{extra}: {msg}");
    }
}

#[test]
fn impossible_configs_are_code_7() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut nameless = conf("1.0.0", d, json!({}));
    nameless.as_object_mut().unwrap().remove("name");
    weft(&call("ADD"), &stdin(&nameless), &[]).err(7);
    for extra in [
        json!({"name": "bad name!"}),
        json!({"mtu": 9}),
        json!({"bridge": "this-name-is-too-long"}),
        json!({"ipam": {"subnet": "10.0.0.0/33"}}),
        json!({"ipam": {"subnet": "banana"}}),
        json!({"ipam": {"subnet": "10.0.0.0/24", "gateway": "10.9.0.1"}}),
        json!({"ipam": {"ranges": [[{"subnet": "10.0.0.0/16"}], [{"subnet": "10.0.1.0/24"}]]}}),
        json!({"ipam": {"routes": [{"dst": "nowhere"}]}}),
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}]}}),
        json!({"runtimeConfig": {"mac": "01:00:00:00:00:01"}}),
        json!({"lockTimeout": -1}),
        json!({"type": "bridge"}),
    ] {
        weft(&call("ADD"), &stdin(&conf("1.0.0", d, extra.clone())), &[]).err(7);
    }
    // GC must be told what to keep.
    weft(&call("GC"), &stdin(&conf("1.1.0", d, json!({}))), &[]).err(7);
}

#[test]
fn a_relative_state_dir_is_code_7_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let top = conf("1.0.0", d, json!({"stateDir": "weft-state"}));
    let mut in_ipam = conf("1.0.0", d, json!({"ipam": {"stateDir": "./weft-state"}}));
    in_ipam.as_object_mut().unwrap().remove("stateDir");
    for c in [top, in_ipam] {
        let e = weft(&call("ADD"), &stdin(&c), &[]).err(7);
        let msg = e["msg"].as_str().unwrap();
        assert!(
            msg.contains("stateDir") && msg.contains("weft-state") && msg.contains("absolute"),
            "{c}: {msg}"
        );
        assert!(
            !std::path::Path::new("weft-state").exists(),
            "nothing is created under a relative stateDir"
        );
    }
}

#[test]
fn versions_weft_does_not_speak_and_commands_a_version_lacks_are_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for v in ["0.1.0", "0.2.0", "2.0.0"] {
        let e = weft(&call("ADD"), &stdin(&conf(v, d, json!({}))), &[]).err(1);
        assert!(e["msg"].as_str().unwrap().contains(v), "{e}");
    }
    let mut versionless = conf("1.0.0", d, json!({}));
    versionless.as_object_mut().unwrap().remove("cniVersion");
    weft(&call("ADD"), &stdin(&versionless), &[]).err(1);
    let e = weft(&call("CHECK"), &stdin(&conf("0.3.1", d, json!({}))), &[]).err(1);
    assert_eq!(e["cniVersion"], "0.3.1");
    let valid = json!({"cni.dev/valid-attachments": []});
    weft(&call("GC"), &stdin(&conf("1.0.0", d, valid.clone())), &[]).err(1);
    weft(&call("STATUS"), &stdin(&conf("1.0.0", d, json!({}))), &[]).err(1);
}

#[test]
fn status_is_ready_with_a_usable_store_and_50_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = weft(
        &call("STATUS"),
        &stdin(&conf("1.1.0", &state, json!({}))),
        &[],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.trim().is_empty());
    // The state directory is a regular file: weft cannot serve.
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let e = weft(
        &call("STATUS"),
        &stdin(&conf("1.1.0", &file, json!({}))),
        &[],
    )
    .err(50);
    assert!(e["msg"].as_str().unwrap().contains("file"), "{e}");
    // No nft: no firewall, no published ports.
    let e = weft(
        &call("STATUS"),
        &stdin(&conf("1.1.0", &state, json!({}))),
        &[("PATH", "/nonexistent")],
    )
    .err(50);
    assert!(e["msg"].as_str().unwrap().contains("nft"), "{e}");
}

#[test]
fn a_state_directory_held_by_another_process_is_try_again_later() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let lock = std::fs::File::create(state.join(".lock")).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let c = conf("1.0.0", &state, json!({"lockTimeout": 0.3}));
    let e = weft(&call("DEL"), &stdin(&c), &[]).err(11);
    assert!(e["msg"].as_str().unwrap().contains("try again"), "{e}");
    drop(lock);
    let out = weft(&call("DEL"), &stdin(&c), &[]);
    assert_eq!(out.code, 0, "once released: {}{}", out.stdout, out.stderr);
}

#[test]
fn del_of_what_weft_never_saw_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // No state directory at all, then an empty one; no namespace either.
    for _ in 0..2 {
        let mut k = call("DEL");
        k.unset = vec!["CNI_NETNS"];
        let out = weft(&k, &stdin(&conf("0.4.0", &state, json!({}))), &[]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        std::fs::create_dir_all(&state).unwrap();
    }
}
