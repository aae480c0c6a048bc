//! The firewall's transactions against the real nft, inside a private network namespace.

use std::net::IpAddr;

use weft_drivers::firewall::{Firewall, NetworkRules, PortTarget};
use weft_drivers::Protocol;

/// Runs `f` on a thread of its own inside a fresh network namespace (children it spawns, like
/// nft, inherit that namespace). The namespace disappears with the thread.
fn in_fresh_netns<F: FnOnce() + Send>(f: F) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: firewall tests need root (they run nft in a private network namespace)");
        return;
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            f();
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    });
}

fn rules(key: &str, iface: &str, subnet: &str, internal: bool) -> NetworkRules {
    NetworkRules {
        key: key.into(),
        interface: Some(iface.into()),
        subnets: vec![subnet.parse().unwrap(), "fd00:1::/64".parse().unwrap()],
        masquerade: true,
        internal,
        cluster: vec!["10.244.0.0/16".parse().unwrap()],
    }
}

fn port(host_ip: Option<&str>, host_port: u16, container: &str) -> PortTarget {
    PortTarget {
        protocol: Protocol::Tcp,
        host_ip: host_ip.map(|h| h.parse::<IpAddr>().unwrap()),
        host_port,
        container_ip: container.parse().unwrap(),
        container_port: 80,
    }
}

#[test]
fn networks_apply_and_remove_idempotently() {
    in_fresh_netns(|| {
        let fw = Firewall::system();
        let a = rules("aaaaaaaaaaaa", "br-a", "172.18.0.0/16", false);
        let b = rules("bbbbbbbbbbbb", "br-b", "172.19.0.0/16", true);
        fw.apply_network(&a).unwrap();
        fw.apply_network(&a).unwrap();
        fw.apply_network(&b).unwrap();
        let snap = fw.snapshot().unwrap().to_string();
        assert!(snap.contains("in-aaaaaaaaaaaa") && snap.contains("in-bbbbbbbbbbbb"));
        fw.remove_network(&a).unwrap();
        fw.remove_network(&a).unwrap();
        let snap = fw.snapshot().unwrap().to_string();
        assert!(
            !snap.contains("in-aaaaaaaaaaaa"),
            "chain of removed network left: {snap}"
        );
        assert!(
            !snap.contains("172.18.0.0"),
            "subnet of removed network left: {snap}"
        );
        assert!(
            snap.contains("in-bbbbbbbbbbbb"),
            "other network's chain removed"
        );
        fw.remove_all().unwrap();
        fw.remove_all().unwrap();
        assert_eq!(fw.snapshot().unwrap(), serde_json::Value::Null);
    });
}

#[test]
fn ports_publish_list_and_unpublish() {
    in_fresh_netns(|| {
        let fw = Firewall::system();
        fw.apply_network(&rules("aaaaaaaaaaaa", "br-a", "172.18.0.0/16", false))
            .unwrap();
        let ports = vec![
            port(None, 8080, "172.18.0.2"),
            port(Some("127.0.0.1"), 8081, "172.18.0.2"),
            port(None, 8080, "fd00:1::2"),
            port(Some("::1"), 8082, "fd00:1::2"),
        ];
        fw.publish(&ports).unwrap();
        let mut want = ports.clone();
        want.sort();
        assert_eq!(fw.published().unwrap(), want);
        // The same host port to another container is refused by the kernel, and nothing of the
        // failed transaction stays.
        let clash = [
            port(Some("10.0.0.1"), 9999, "172.18.0.3"),
            port(None, 8080, "172.18.0.3"),
        ];
        assert!(fw.publish(&clash).is_err());
        assert_eq!(fw.published().unwrap(), want);
        fw.unpublish(&ports[..2]).unwrap();
        fw.unpublish(&ports[..2]).unwrap();
        let v6_only: Vec<_> = want
            .into_iter()
            .filter(|p| p.container_ip.is_ipv6())
            .collect();
        assert_eq!(fw.published().unwrap(), v6_only);
    });
}

#[test]
fn listing_without_a_table_is_empty() {
    in_fresh_netns(|| {
        let fw = Firewall::system();
        assert!(fw.published().unwrap().is_empty());
        assert_eq!(fw.snapshot().unwrap(), serde_json::Value::Null);
    });
}

#[test]
fn networks_without_an_interface_are_dispatched_by_address() {
    in_fresh_netns(|| {
        let fw = Firewall::system();
        let mut routed = rules("cccccccccccc", "unused", "10.33.0.0/24", false);
        routed.interface = None;
        let mut internal = rules("dddddddddddd", "unused", "10.34.0.0/24", true);
        internal.interface = None;
        internal.subnets.truncate(1);
        for _ in 0..2 {
            fw.apply_network(&routed).unwrap();
            fw.apply_network(&internal).unwrap();
        }
        let snap = fw.snapshot().unwrap().to_string();
        assert!(snap.contains("in-cccccccccccc") && snap.contains("out-dddddddddddd"));
        assert!(
            snap.contains("10.33.0.0"),
            "address dispatch missing: {snap}"
        );
        fw.remove_network(&routed).unwrap();
        fw.remove_network(&routed).unwrap();
        let snap = fw.snapshot().unwrap().to_string();
        assert!(
            !snap.contains("cccccccccccc") && !snap.contains("10.33.0.0"),
            "left over: {snap}"
        );
        assert!(snap.contains("in-dddddddddddd"));
        fw.remove_network(&internal).unwrap();
        let snap = fw.snapshot().unwrap().to_string();
        assert!(
            !snap.contains("dddddddddddd") && !snap.contains("10.34.0.0"),
            "left over: {snap}"
        );
    });
}

/// `count` ports from `first` on, all to `container`.
fn range(first: u16, count: u16, container: &str) -> Vec<PortTarget> {
    (0..count)
        .map(|i| port(None, first + i, container))
        .collect()
}

#[test]
fn ten_thousand_ports_publish_and_unpublish_idempotently() {
    in_fresh_netns(|| {
        let fw = Firewall::system();
        fw.apply_network(&rules("aaaaaaaaaaaa", "br-a", "172.18.0.0/16", false))
            .unwrap();
        // IPv4 and IPv6 of a dual-stack endpoint: 20,000 elements in two maps.
        let mut ports = range(20_000, 10_000, "172.18.0.2");
        ports.extend(range(20_000, 10_000, "fd00:1::2"));
        let t = std::time::Instant::now();
        fw.publish(&ports).unwrap();
        eprintln!("publish 20,000 elements: {:?}", t.elapsed());
        assert_eq!(fw.published().unwrap().len(), 20_000);
        // Publishing again changes nothing and is not an error.
        fw.publish(&ports).unwrap();
        assert_eq!(fw.published().unwrap().len(), 20_000);

        // One taken host port in the middle of 10,000: refused whole, and the error names it.
        let mut clash = range(40_000, 10_000, "172.18.0.3");
        clash[5_000] = port(None, 25_000, "172.18.0.3");
        let e = fw.publish(&clash).unwrap_err().to_string();
        assert!(e.contains("*:25000/tcp -> 172.18.0.3:80"), "{e}");
        assert!(e.contains("choose another host port"), "{e}");
        assert_eq!(fw.published().unwrap().len(), 20_000, "nothing of it stays");

        // Half of them gone already (a teardown that crashed half-way): the retry finishes.
        let t = std::time::Instant::now();
        fw.unpublish(&ports[..5_000]).unwrap();
        fw.unpublish(&ports).unwrap();
        eprintln!("unpublish 20,000 elements, 5,000 absent: {:?}", t.elapsed());
        assert!(fw.published().unwrap().is_empty());
        let t = std::time::Instant::now();
        fw.unpublish(&ports).unwrap();
        eprintln!("unpublish 20,000 absent elements: {:?}", t.elapsed());
    });
}

#[test]
fn a_hundred_thousand_ports_on_one_host() {
    in_fresh_netns(|| {
        let fw = Firewall::system();
        fw.apply_network(&rules("aaaaaaaaaaaa", "br-a", "172.18.0.0/16", false))
            .unwrap();
        // Ten endpoints of 10,000 ports each: TCP and UDP, 65,535 ports per protocol.
        let endpoints: Vec<Vec<PortTarget>> = (0..10u16)
            .map(|i| {
                let mut ports = range(10_000 * (1 + i / 2), 10_000, &format!("172.18.0.{}", 2 + i));
                if i % 2 == 1 {
                    for p in &mut ports {
                        p.protocol = Protocol::Udp;
                    }
                }
                ports
            })
            .collect();
        let t = std::time::Instant::now();
        for ports in &endpoints {
            fw.publish(ports).unwrap();
        }
        eprintln!("publish 10 x 10,000 ports: {:?}", t.elapsed());
        assert_eq!(fw.published().unwrap().len(), 100_000);
        let t = std::time::Instant::now();
        for ports in &endpoints {
            fw.unpublish(ports).unwrap();
        }
        eprintln!("unpublish 10 x 10,000 ports: {:?}", t.elapsed());
        assert!(fw.published().unwrap().is_empty());
    });
}
