//! The `bgp` backend peering with a BIRD "top-of-rack" router (root, BIRD 2): routes both
//! ways, hold-timer expiry (BIRD stopped with SIGSTOP) removes BIRD's routes from the kernel,
//! graceful restart keeps them for the restart time, and a flood beyond max-prefix cuts the
//! session.

mod support;

use nix::sys::signal::Signal;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::{Host, World};
use support::daemons::Bird;
use support::wait_until;
use weft_bgp::backend::{BgpBackendConfig, ExternalPeer};
use weft_bgp::fsm::State;
use weft_bgp::BgpBackend;
use weft_drivers::backend::Backend;

const TOR: &str = "192.168.0.254";
const T: Duration = Duration::from_secs(30);

/// BIRD at 192.168.0.254, AS 65000, peering with host 1; `statics` are its routes.
fn bird_conf(statics: &[String], extra_bgp: &str) -> String {
    let routes: String = statics
        .iter()
        .map(|p| format!("route {p} blackhole; "))
        .collect();
    format!(
        r#"router id {TOR};
protocol device {{ scan time 1; }}
protocol static s4 {{ ipv4; {routes} }}
protocol bgp host1 {{
  local {TOR} as 65000;
  neighbor 192.168.0.1 as 64512;
  connect delay time 1; connect retry time 1; error wait time 1, 2;
  {extra_bgp}
  ipv4 {{ import all; export all; }};
}}
"#
    )
}

fn tor_config(hold: u16, max_prefixes: Option<u32>) -> BgpBackendConfig {
    BgpBackendConfig {
        connect_retry: 1,
        startup_grace: 1,
        hold_time: hold,
        external_peers: vec![ExternalPeer {
            address: TOR.parse().unwrap(),
            asn: 65000,
            port: 179,
            passive: false,
            max_prefixes,
        }],
        accept_from_external: vec!["10.50.0.0/16".parse().unwrap()],
        ..Default::default()
    }
}

fn neighbour_state(b: &BgpBackend) -> (State, Option<String>) {
    let tor: IpAddr = TOR.parse().unwrap();
    let n = b
        .neighbours()
        .unwrap()
        .into_iter()
        .find(|n| n.address == tor)
        .expect("the ToR is a neighbour");
    (n.state, n.last_error)
}

struct Lab {
    _world: World,
    host: Host,
    bird: Bird,
    backend: Arc<BgpBackend>,
    _dir: tempfile::TempDir,
}

fn lab(statics: &[String], extra_bgp: &str, cfg: BgpBackendConfig) -> Lab {
    let (mut world, hosts) = World::new(1);
    let tor_ns = world.attach("r254", 254);
    let dir = tempfile::tempdir().unwrap();
    let bird = Bird::start(&tor_ns, dir.path(), &bird_conf(statics, extra_bgp));
    let host = hosts[0].clone();
    let (backend, _) = host.start(cfg);
    Lab {
        _world: world,
        host,
        bird,
        backend,
        _dir: dir,
    }
}

#[test]
fn top_of_rack_routes_both_ways_then_hold_timer_expiry_removes_them() {
    skip_unless!("bird", "birdc");
    let statics = vec![
        "10.50.0.0/16".to_string(),
        "10.244.200.0/24".to_string(),
        "10.60.0.0/16".to_string(),
    ];
    let mut l = lab(&statics, "", tor_config(3, None));
    l.host.wait_routes("BIRD's routes", |r| {
        r.contains("10.50.0.0/16 via 192.168.0.254 dev eth0")
            && r.contains("10.244.200.0/24 via 192.168.0.254 dev eth0")
    });
    // 10.60.0.0/16 is neither a cluster network nor accepted from external peers.
    assert!(!l.host.bgp_routes().contains("10.60.0.0/16"));
    wait_until("BIRD learns host 1's subnet", T, || {
        l.bird
            .birdc("show route 10.244.1.0/24")
            .contains("10.244.1.0/24")
    });
    let (state, _) = neighbour_state(&l.backend);
    assert_eq!(state, State::Established);
    let roles: Vec<&str> = l
        .backend
        .neighbours()
        .unwrap()
        .iter()
        .map(|n| n.role)
        .collect();
    assert_eq!(roles, vec!["external"]);

    // BIRD freezes: no keepalives; weft's 3 s hold timer runs out and its routes go.
    l.bird.proc.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    l.host
        .wait_routes("BIRD's routes removed after the hold time", |r| {
            !r.contains("192.168.0.254")
        });
    assert!(
        stopped.elapsed() >= Duration::from_secs(2),
        "routes went before the hold time ran out"
    );
    let (state, error) = neighbour_state(&l.backend);
    assert_ne!(state, State::Established);
    assert!(
        error.unwrap_or_default().contains("HoldTimer"),
        "hold timer expiry is reported"
    );
    l.bird.proc.signal(Signal::SIGCONT);
    l.bird.proc.stop();
    l.backend.teardown().unwrap();
}

#[test]
fn graceful_restart_keeps_routes_for_the_restart_time() {
    skip_unless!("bird", "birdc");
    let statics = vec!["10.50.0.0/16".to_string()];
    let mut l = lab(
        &statics,
        "graceful restart on; graceful restart time 4;",
        tor_config(90, None),
    );
    l.host.wait_routes("BIRD's route", |r| {
        r.contains("10.50.0.0/16 via 192.168.0.254")
    });
    wait_until("session up", T, || {
        neighbour_state(&l.backend).0 == State::Established
    });
    // BIRD dies without a NOTIFICATION: the transport closes, BIRD is "restarting".
    l.bird.proc.signal(Signal::SIGKILL);
    let killed = Instant::now();
    wait_until("weft sees the session go", T, || {
        neighbour_state(&l.backend).0 != State::Established
    });
    assert!(
        l.host
            .bgp_routes()
            .contains("10.50.0.0/16 via 192.168.0.254"),
        "the restarting peer's route stays in the kernel"
    );
    l.host
        .wait_routes("the stale route goes when the restart time runs out", |r| {
            !r.contains("10.50.0.0/16")
        });
    assert!(
        killed.elapsed() >= Duration::from_secs(3),
        "the stale route went after {:?}, before the 4 s restart time",
        killed.elapsed()
    );
    // BIRD comes back: the route returns.
    l.bird.proc.stop();
    l.bird.restart();
    l.host.wait_routes("BIRD's route after its restart", |r| {
        r.contains("10.50.0.0/16 via 192.168.0.254")
    });
    l.bird.proc.stop();
    l.backend.teardown().unwrap();
}

#[test]
fn a_peer_over_its_prefix_limit_is_cut_and_its_routes_go() {
    skip_unless!("bird", "birdc");
    let statics: Vec<String> = (0..20).map(|i| format!("10.50.{i}.0/24")).collect();
    let mut l = lab(&statics, "", tor_config(90, Some(10)));
    wait_until("the session is cut for too many prefixes", T, || {
        neighbour_state(&l.backend)
            .1
            .is_some_and(|e| e.contains("MaximumPrefixesReached"))
    });
    l.host
        .wait_routes("none of BIRD's routes in the kernel", |r| {
            !r.contains("192.168.0.254")
        });
    let st = l.backend.kernel_status().unwrap();
    assert_eq!(st.routes, 0, "{st:?}");
    l.bird.proc.stop();
    l.backend.teardown().unwrap();
}
