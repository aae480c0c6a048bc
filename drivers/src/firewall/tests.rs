use std::net::IpAddr;

use super::*;

fn net(internal: bool) -> NetworkRules {
    NetworkRules {
        key: "0123456789ab".into(),
        interface: Some("br-0123456789ab".into()),
        subnets: vec![
            "172.18.0.0/16".parse().unwrap(),
            "fd00:1::/64".parse().unwrap(),
        ],
        masquerade: true,
        internal,
        cluster: vec![],
    }
}

fn target(host_ip: Option<&str>, container: &str) -> PortTarget {
    PortTarget {
        protocol: Protocol::Tcp,
        host_ip: host_ip.map(|h| h.parse().unwrap()),
        host_port: 8080,
        container_ip: container.parse().unwrap(),
        container_port: 80,
    }
}

#[test]
fn network_add_isolates_and_masquerades_a_normal_network() {
    let text = ruleset::network_add(&net(false));
    assert!(text.contains("add element inet weft masq4 { 172.18.0.0/16 }"));
    assert!(text.contains("add element inet weft masq6 { fd00:1::/64 }"));
    assert!(text.contains("oifname @interfaces oifname != \"br-0123456789ab\" drop"));
    assert!(text.contains("forward_in { \"br-0123456789ab\" : jump in-0123456789ab }"));
    assert!(!text.contains("internal network"));
}

#[test]
fn internal_network_is_never_masqueraded_and_drops_both_ways() {
    let text = ruleset::network_add(&net(true));
    assert!(!text.contains("masq4"));
    assert!(text.contains("add rule inet weft in-0123456789ab oifname != \"br-0123456789ab\" drop"));
    assert!(
        text.contains("add rule inet weft out-0123456789ab iifname != \"br-0123456789ab\" drop")
    );
}

#[test]
fn network_remove_is_valid_whether_or_not_objects_exist() {
    let text = ruleset::network_remove(&net(false));
    // Every delete is preceded by an add of the same object in the same transaction.
    for line in text.lines().filter(|l| l.starts_with("delete element")) {
        let set = line.split_whitespace().nth(4).unwrap();
        assert!(
            text.contains(&format!("add element inet weft {set} ")),
            "{line}"
        );
    }
    let add_chain = text.find("add chain inet weft in-0123456789ab").unwrap();
    let del_chain = text.find("delete chain inet weft in-0123456789ab").unwrap();
    assert!(add_chain < del_chain);
}

#[test]
fn ports_go_to_the_map_of_their_family_and_binding() {
    let ops: Vec<ElementOp> = [
        target(None, "172.18.0.2"),
        target(Some("127.0.0.1"), "172.18.0.2"),
        target(None, "fd00:1::2"),
        target(Some("::1"), "fd00:1::2"),
    ]
    .into_iter()
    .map(ElementOp::Add)
    .collect();
    let text = ruleset::elements_script(&ops);
    assert!(text.contains("ports4_any { tcp . 8080 : 172.18.0.2 . 80 }"));
    assert!(text.contains("ports4_ip { 127.0.0.1 . tcp . 8080 : 172.18.0.2 . 80 }"));
    assert!(text.contains("ports6_any { tcp . 8080 : fd00:1::2 . 80 }"));
    assert!(text.contains("ports6_ip { ::1 . tcp . 8080 : fd00:1::2 . 80 }"));
}

#[test]
fn ports_remove_deletes_by_key() {
    let fw = Firewall::with_runner(RecordingNft::default());
    fw.unpublish(&[target(Some("127.0.0.1"), "172.18.0.2")])
        .unwrap();
    let text = fw.runner().scripts.lock().unwrap().concat();
    assert!(text.find("add element").unwrap() < text.find("delete element").unwrap());
    assert!(text.contains("delete element inet weft ports4_ip { 127.0.0.1 . tcp . 8080 }"));
}

#[test]
fn empty_port_lists_run_nothing() {
    let fw = Firewall::with_runner(RecordingNft::default());
    fw.publish(&[]).unwrap();
    fw.unpublish(&[]).unwrap();
    assert!(fw.runner().scripts.lock().unwrap().is_empty());
}

#[test]
fn parses_nft_port_map_listings() {
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"map": {"family": "inet", "name": "ports4_ip", "table": "weft", "elem": [[{"concat": ["127.0.0.1", "udp", 53]}, {"concat": ["172.18.0.2", 53]}], [{"concat": ["::1", "sctp", 9]}, {"concat": ["fd00::2", 9]}]]}}]}"#;
    let got = ruleset::parse_port_map(json).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].protocol, Protocol::Udp);
    assert_eq!(got[0].host_ip, Some("127.0.0.1".parse::<IpAddr>().unwrap()));
    assert_eq!(got[0].container_port, 53);
    assert_eq!(got[1].protocol, Protocol::Sctp);
}

#[test]
fn parses_listing_without_elements() {
    let json = r#"{"nftables": [{"map": {"name": "ports4_any"}}]}"#;
    assert!(ruleset::parse_port_map(json).unwrap().is_empty());
}
