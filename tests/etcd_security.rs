//! weft against an etcd that wants TLS (server certificate from a CA made here, client
//! certificates required) and one with authentication on: the daemon joins and the CLI
//! works with `--etcd-cafile/--etcd-certfile/--etcd-keyfile` and
//! `--etcd-username/--etcd-password` (or WEFT_ETCD_PASSWORD); without them each says what
//! to pass; the password never reaches the log.

mod cluster_world;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use cluster_world::{can_run, eventually, weft_bin, ClusterWorld, CLUSTER, ETCD_IP};

const JOIN: Duration = Duration::from_secs(20);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A CA, etcd's server certificate (for ETCD_IP) and a client certificate, with openssl.
fn make_certs(dir: &Path) {
    let script = format!(
        r#"set -e; cd {dir}
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 1 -subj /CN=weft-test-ca 2>/dev/null
openssl req $ec -keyout server.key -out server.csr -subj /CN=etcd 2>/dev/null
printf 'subjectAltName=IP:{ETCD_IP}\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile server.ext -out server.pem 2>/dev/null
openssl req $ec -keyout client.key -out client.csr -subj /CN=weft 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out client.pem 2>/dev/null
"#,
        dir = dir.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(out.status.success(), "openssl: {}", stderr(&out));
}

#[test]
fn tls_with_client_certificates() {
    if !can_run("etcd tls") || !weft_testkit::can_run("etcd tls", &["openssl"]) {
        return;
    }
    let mut w = ClusterWorld::new(1);
    let dir = w.dir().to_path_buf();
    make_certs(&dir);
    let file = |name: &str| dir.join(name).display().to_string();
    w.etcd_scheme = "https";
    w.etcd_flags = [
        "--cert-file",
        &file("server.pem"),
        "--key-file",
        &file("server.key"),
        "--trusted-ca-file",
        &file("ca.pem"),
        "--client-cert-auth",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    w.etcdctl_flags = vec![
        format!("--cacert={}", file("ca.pem")),
        format!("--cert={}", file("client.pem")),
        format!("--key={}", file("client.key")),
    ];
    w.start_etcd();
    let endpoint = w.endpoint();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let tls = [
        "--etcd-cafile",
        ca.as_str(),
        "--etcd-certfile",
        cert.as_str(),
        "--etcd-keyfile",
        key.as_str(),
    ];

    // An https endpoint without a CA: refused before trying, saying what to pass.
    let out = w.hosts[0].weft(&["cluster", "status", CLUSTER, "--etcd-endpoints", &endpoint]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--etcd-cafile"), "{err}");
    // The CA but no client certificate: etcd's --client-cert-auth turns it away.
    let out = w.hosts[0].weft(&[
        "cluster",
        "status",
        CLUSTER,
        "--etcd-endpoints",
        &endpoint,
        "--etcd-cafile",
        &ca,
    ]);
    assert!(
        !out.status.success(),
        "no client certificate: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&endpoint), "{}", stderr(&out));

    w.init_cluster("vxlan", &tls);
    w.start_daemon(0, 10, &tls);
    let subnet = w.hosts[0].wait_joined(JOIN);
    let mut args = vec!["cluster", "status", CLUSTER, "--etcd-endpoints", &endpoint];
    args.extend_from_slice(&tls);
    let status: serde_json::Value = serde_json::from_str(&w.hosts[0].weft_ok(&args)).unwrap();
    assert_eq!(status["leases"][0]["subnet"], subnet.as_str(), "{status}");
    // And etcd really holds it (read with etcdctl over TLS).
    let keys = w.etcdctl(&["get", "/weft/", "--prefix", "--keys-only"]);
    assert!(
        String::from_utf8_lossy(&keys.stdout).contains(&subnet.replace('/', "-")),
        "{}",
        stderr(&keys)
    );
}

#[test]
fn authentication_with_a_user_and_password() {
    if !can_run("etcd auth") {
        return;
    }
    let password = "pw-7f3a9c-never-logged";
    let mut w = ClusterWorld::new(1);
    w.start_etcd();
    for args in [
        &[
            "user",
            "add",
            "root",
            &format!("--new-user-password={password}"),
        ][..],
        &["auth", "enable"][..],
    ] {
        let out = w.etcdctl(args);
        assert!(out.status.success(), "etcdctl {args:?}: {}", stderr(&out));
    }
    w.etcdctl_flags = vec![format!("--user=root:{password}")];
    let endpoint = w.endpoint();

    // No user: etcd refuses, and the message says which flags to pass.
    let out = w.hosts[0].weft(&[
        "cluster",
        "init",
        CLUSTER,
        "--network",
        "10.244.0.0/16",
        "--etcd-endpoints",
        &endpoint,
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refused") && err.contains("--etcd-username"),
        "{err}"
    );
    // A wrong password: refused, naming the user.
    let out = w.hosts[0].weft(&[
        "cluster",
        "status",
        CLUSTER,
        "--etcd-endpoints",
        &endpoint,
        "--etcd-username",
        "root",
        "--etcd-password",
        "wrong",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("as user root") && err.contains("--etcd-password"),
        "{err}"
    );

    w.init_cluster(
        "vxlan",
        &["--etcd-username", "root", "--etcd-password", password],
    );
    // The password from the environment, as the help recommends.
    let out = w.hosts[0]
        .ns
        .cmd(weft_bin())
        .arg("--state-dir")
        .arg(&w.hosts[0].state)
        .args(["cluster", "status", CLUSTER, "--etcd-endpoints", &endpoint])
        .args(["--etcd-username", "root"])
        .env("WEFT_ETCD_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // A daemon with a wrong password stops (bad configuration), one with the right one joins.
    w.start_daemon(
        0,
        10,
        &["--etcd-username", "root", "--etcd-password", "wrong"],
    );
    let mut status = None;
    eventually(Duration::from_secs(10), || {
        status = w.hosts[0].exit_status();
        status.is_some()
    });
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(2),
        "{}",
        w.hosts[0].log()
    );
    w.start_daemon(
        0,
        10,
        &["--etcd-username", "root", "--etcd-password", password],
    );
    w.hosts[0].wait_joined(JOIN);
    let log = w.hosts[0].log();
    assert!(
        !log.contains(password),
        "the password is in the log:\n{log}"
    );
    let help = w.hosts[0].weft(&["daemon", "--help"]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains(password));
}
