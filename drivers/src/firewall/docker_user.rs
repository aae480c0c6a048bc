//! Living next to a stock dockerd: it sets iptables' FORWARD policy to DROP (and loads
//! br_netfilter), which drops the traffic of every bridge it does not know, weft's included.
//! Docker's documented way in is the `DOCKER-USER` chain, which FORWARD jumps to first and
//! dockerd never flushes. For each weft network this adds two accept rules there, marked with a
//! comment naming the network, and removes exactly those with the network:
//!
//! - everything entering from the network's bridge (container to container, to the outside);
//! - what goes into the bridge as replies or to a published port (conntrack state
//!   `RELATED,ESTABLISHED,DNAT`), as Docker's own bridges allow;
//! - for a cluster network's bridge, everything into it from the cluster's prefixes: containers
//!   on other hosts open connections to this host's containers (one rule per prefix).
//!
//! Nothing is added when no `DOCKER-USER` chain exists, and nothing is ever flushed. weft's own
//! nft table still decides isolation and internal networks: a packet passes only if both agree.
//! This is the one place weft spawns `iptables`: dockerd's rules are iptables rules.

use std::process::Command;

use ipnet::IpNet;
use tracing::{debug, info, warn};

use crate::error::DriverError;

/// Docker's chain for user rules in the `filter` table.
pub const CHAIN: &str = "DOCKER-USER";

/// The IPv4 and IPv6 front-ends of iptables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `iptables`.
    V4,
    /// `ip6tables`.
    V6,
}

impl Family {
    fn binary(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

/// Runs iptables; a fake stands in for it in unit tests.
pub trait Iptables: Send + Sync {
    /// Runs the family's iptables with `args`: whether it exited 0 (a `-C` that found nothing
    /// does not) and its standard output; `Err` when it cannot run at all.
    fn run(&self, family: Family, args: &[String]) -> Result<(bool, String), DriverError>;
}

/// The machine's iptables (`iptables -w`, so concurrent writers wait for the xtables lock).
pub struct SystemIptables;

impl Iptables for SystemIptables {
    fn run(&self, family: Family, args: &[String]) -> Result<(bool, String), DriverError> {
        let out = Command::new(family.binary())
            .arg("-w")
            .args(args)
            .output()
            .map_err(|e| DriverError::Firewall {
                message: format!(
                    "cannot run {} for Docker's {CHAIN} chain: {e}; install iptables",
                    family.binary()
                ),
            })?;
        debug!(binary = family.binary(), ?args, status = %out.status, "iptables");
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }
}

fn succeeds(ipt: &dyn Iptables, family: Family, args: &[String]) -> Result<bool, DriverError> {
    ipt.run(family, args).map(|(ok, _)| ok)
}

/// Where a network's traffic is recognised: by its bridge, or (routed networks, whose containers
/// each have their own host interface) by its subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Interface(&'a str),
    Subnets(&'a [IpNet]),
}

impl std::fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Interface(i) => write!(f, "bridge {i}"),
            Scope::Subnets(s) => write!(
                f,
                "subnets {}",
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// What the rules of one network are keyed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPorts<'a> {
    /// The network's bridge or subnets.
    pub scope: Scope<'a>,
    /// Short network id, written into the rules' comment.
    pub key: &'a str,
    /// Whether the network has IPv6 subnets (IPv6 rules are only added then).
    pub ipv6: bool,
    /// Cluster-wide prefixes (multi-host) whose traffic into the bridge is accepted.
    pub cluster: &'a [IpNet],
}

/// The comment that marks a network's rules as weft's.
pub fn comment(key: &str) -> String {
    format!("weft:{key}")
}

/// The network's accept rules, as arguments after `-C/-I/-D DOCKER-USER`.
pub fn rules(interface: &str, key: &str) -> [Vec<String>; 2] {
    accept_rules(["-i", interface], ["-o", interface], key)
}

/// Accepts what `sent` matches (the network's own traffic) and what `received` matches when it
/// is a reply or published-port traffic.
fn accept_rules(sent: [&str; 2], received: [&str; 2], key: &str) -> [Vec<String>; 2] {
    let mark = comment(key);
    let tail = ["-m", "comment", "--comment", &mark, "-j", "ACCEPT"];
    let state = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT"];
    let join = |parts: &[&[&str]]| parts.concat().iter().map(|x| x.to_string()).collect();
    [join(&[&sent, &tail]), join(&[&received, &state, &tail])]
}

/// The rule accepting traffic from `prefix` (a cluster's) into the bridge, as arguments after
/// `-C/-I/-D DOCKER-USER`.
pub fn cluster_rule(interface: &str, key: &str, prefix: &IpNet) -> Vec<String> {
    [
        "-s",
        &prefix.to_string(),
        "-o",
        interface,
        "-m",
        "comment",
        "--comment",
        &comment(key),
        "-j",
        "ACCEPT",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

/// The accept rules of a network known by its subnets: from each subnet of the family, and
/// replies or published-port traffic into it.
fn subnet_rules(subnet: &IpNet, key: &str) -> [Vec<String>; 2] {
    let sub = subnet.trunc().to_string();
    accept_rules(["-s", &sub], ["-d", &sub], key)
}

fn of_family(p: &IpNet, family: Family) -> bool {
    p.addr().is_ipv6() == (family == Family::V6)
}

/// Every rule of the network in one family's chain.
fn family_rules(scope: Scope, key: &str, cluster: &[IpNet], family: Family) -> Vec<Vec<String>> {
    let cluster = cluster.iter().filter(|p| of_family(p, family));
    match scope {
        Scope::Interface(interface) => {
            let mut all: Vec<Vec<String>> = rules(interface, key).into();
            all.extend(cluster.map(|p| cluster_rule(interface, key, p)));
            all
        }
        Scope::Subnets(subnets) => {
            let own: Vec<&IpNet> = subnets.iter().filter(|s| of_family(s, family)).collect();
            let mut all: Vec<Vec<String>> = own.iter().flat_map(|s| subnet_rules(s, key)).collect();
            for p in cluster {
                for s in &own {
                    let mut rule = vec![
                        "-s".to_string(),
                        p.to_string(),
                        "-d".into(),
                        s.trunc().to_string(),
                    ];
                    rule.extend(
                        ["-m", "comment", "--comment", &comment(key), "-j", "ACCEPT"]
                            .map(String::from),
                    );
                    all.push(rule);
                }
            }
            all
        }
    }
}

fn with_op(op: &str, rule: &[String]) -> Vec<String> {
    let mut args = vec!["-t".to_string(), "filter".into(), op.into(), CHAIN.into()];
    args.extend(rule.iter().cloned());
    args
}

fn chain_exists(ipt: &dyn Iptables, family: Family) -> Result<bool, DriverError> {
    succeeds(
        ipt,
        family,
        &["-t", "filter", "-S", CHAIN].map(String::from),
    )
}

/// FORWARD's policy is DROP (asked only to explain why weft's traffic may be dropped).
fn forward_drops(ipt: &dyn Iptables, family: Family) -> bool {
    ipt.run(family, &["-t", "filter", "-S", "FORWARD"].map(String::from))
        .is_ok_and(|(ok, out)| ok && out.lines().any(|l| l.trim() == "-P FORWARD DROP"))
}

/// Adds the network's accept rules to each family's `DOCKER-USER` chain that exists. Rules
/// already there are left alone, so repeating it (reconcile) adds nothing twice.
pub fn allow(ipt: &dyn Iptables, net: &NetworkPorts) -> Result<(), DriverError> {
    let families: &[Family] = if net.ipv6 {
        &[Family::V4, Family::V6]
    } else {
        &[Family::V4]
    };
    for &family in families {
        if !chain_exists(ipt, family)? {
            if family == Family::V4 && forward_drops(ipt, family) {
                warn!(network = %net.scope, "iptables FORWARD drops traffic and there is no {CHAIN} chain to accept weft's in; containers may not reach the outside");
            }
            continue;
        }
        for rule in family_rules(net.scope, net.key, net.cluster, family) {
            if succeeds(ipt, family, &with_op("-C", &rule))? {
                continue;
            }
            if !succeeds(ipt, family, &with_op("-I", &rule))? {
                return Err(DriverError::Firewall {
                    message: format!(
                        "{} refused an accept rule for {} in Docker's {CHAIN} chain; check `{} -S {CHAIN}`",
                        family.binary(),
                        net.scope,
                        family.binary()
                    ),
                });
            }
            info!(
                network = %net.scope,
                family = family.binary(),
                "accepted in Docker's {CHAIN} chain"
            );
        }
    }
    Ok(())
}

/// Removes the network's accept rules (every copy) from both families; absent rules and
/// absent chains are not an error.
pub fn revoke(
    ipt: &dyn Iptables,
    scope: Scope,
    key: &str,
    cluster: &[IpNet],
) -> Result<(), DriverError> {
    for family in [Family::V4, Family::V6] {
        for rule in family_rules(scope, key, cluster, family) {
            // Bounded: each round removes one copy, and a failed delete ends it.
            for _ in 0..16 {
                match succeeds(ipt, family, &with_op("-C", &rule)) {
                    Ok(true) => {}
                    Ok(false) => break,
                    // No iptables at all: there cannot be a rule of ours.
                    Err(_) => break,
                }
                if !succeeds(ipt, family, &with_op("-D", &rule))? {
                    return Err(DriverError::Firewall {
                        message: format!(
                            "{} could not delete weft's rule for {scope} from {CHAIN}; remove it with `{} -D {CHAIN} {}`",
                            family.binary(),
                            family.binary(),
                            rule.join(" ")
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// iptables as a list of rules per family, with or without the chain.
    struct FakeIptables {
        chain: [bool; 2],
        rules: Mutex<Vec<(Family, Vec<String>)>>,
        calls: Mutex<Vec<String>>,
    }

    impl FakeIptables {
        fn new(v4: bool, v6: bool) -> Self {
            FakeIptables {
                chain: [v4, v6],
                rules: Mutex::new(Vec::new()),
                calls: Mutex::new(Vec::new()),
            }
        }
        fn rules(&self, family: Family) -> Vec<Vec<String>> {
            let r = self.rules.lock().unwrap();
            r.iter()
                .filter(|(f, _)| *f == family)
                .map(|(_, r)| r.clone())
                .collect()
        }
    }

    impl Iptables for FakeIptables {
        fn run(&self, family: Family, args: &[String]) -> Result<(bool, String), DriverError> {
            self.calls.lock().unwrap().push(args.join(" "));
            Ok((self.apply(family, args), String::new()))
        }
    }

    impl FakeIptables {
        fn apply(&self, family: Family, args: &[String]) -> bool {
            let has_chain = self.chain[family as usize];
            let op = args[2].as_str();
            if op == "-S" {
                return has_chain && args[3] == CHAIN;
            }
            if args[3] != CHAIN || !has_chain {
                return false;
            }
            let rule = args[4..].to_vec();
            let mut rules = self.rules.lock().unwrap();
            let pos = rules.iter().position(|(f, r)| *f == family && *r == rule);
            match op {
                "-C" => pos.is_some(),
                "-I" => {
                    rules.insert(0, (family, rule));
                    true
                }
                "-D" => match pos {
                    Some(i) => {
                        rules.remove(i);
                        true
                    }
                    None => false,
                },
                _ => false,
            }
        }
    }

    fn net(ipv6: bool) -> NetworkPorts<'static> {
        NetworkPorts {
            scope: Scope::Interface("br-0123456789ab"),
            key: "0123456789ab",
            ipv6,
            cluster: &[],
        }
    }

    #[test]
    fn rules_accept_from_the_bridge_and_replies_into_it() {
        let [from, into] = rules("br-x", "k");
        assert_eq!(
            from.join(" "),
            "-i br-x -m comment --comment weft:k -j ACCEPT"
        );
        assert!(into
            .join(" ")
            .starts_with("-o br-x -m conntrack --ctstate RELATED,ESTABLISHED,DNAT"));
    }

    #[test]
    fn allow_adds_once_and_revoke_removes_only_ours() {
        let ipt = FakeIptables::new(true, true);
        ipt.rules
            .lock()
            .unwrap()
            .push((Family::V4, vec!["-j".into(), "RETURN".into()]));
        allow(&ipt, &net(false)).unwrap();
        allow(&ipt, &net(false)).unwrap();
        assert_eq!(ipt.rules(Family::V4).len(), 3, "two rules, added once");
        assert_eq!(
            ipt.rules(Family::V4)[2],
            vec!["-j", "RETURN"],
            "inserted before RETURN"
        );
        assert!(
            ipt.rules(Family::V6).is_empty(),
            "no IPv6 rules for an IPv4 network"
        );
        revoke(
            &ipt,
            Scope::Interface("br-0123456789ab"),
            "0123456789ab",
            &[],
        )
        .unwrap();
        assert_eq!(ipt.rules(Family::V4), vec![vec!["-j", "RETURN"]]);
    }

    #[test]
    fn a_cluster_networks_bridge_accepts_what_comes_from_the_cluster() {
        let ipt = FakeIptables::new(true, true);
        let cluster: Vec<IpNet> = vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:244::/48".parse().unwrap(),
        ];
        let n = NetworkPorts {
            cluster: &cluster,
            ..net(false)
        };
        allow(&ipt, &n).unwrap();
        allow(&ipt, &n).unwrap();
        let v4 = ipt.rules(Family::V4);
        assert_eq!(v4.len(), 3, "{v4:?}");
        assert_eq!(
            v4[0].join(" "),
            "-s 10.244.0.0/16 -o br-0123456789ab -m comment --comment weft:0123456789ab -j ACCEPT"
        );
        assert!(ipt.rules(Family::V6).is_empty(), "an IPv4 network");
        revoke(
            &ipt,
            Scope::Interface("br-0123456789ab"),
            "0123456789ab",
            &cluster,
        )
        .unwrap();
        assert!(ipt.rules(Family::V4).is_empty());
    }

    #[test]
    fn ipv6_networks_get_ip6tables_rules_too() {
        let ipt = FakeIptables::new(true, true);
        allow(&ipt, &net(true)).unwrap();
        assert_eq!(ipt.rules(Family::V6).len(), 2);
        revoke(
            &ipt,
            Scope::Interface("br-0123456789ab"),
            "0123456789ab",
            &[],
        )
        .unwrap();
        assert!(ipt.rules(Family::V6).is_empty());
    }

    #[test]
    fn networks_without_a_bridge_are_matched_by_subnet() {
        let ipt = FakeIptables::new(true, true);
        let subnets: Vec<IpNet> = vec![
            "10.33.0.0/24".parse().unwrap(),
            "fd33::/64".parse().unwrap(),
        ];
        let cluster: Vec<IpNet> = vec!["10.244.0.0/16".parse().unwrap()];
        let n = NetworkPorts {
            scope: Scope::Subnets(&subnets),
            key: "k",
            ipv6: true,
            cluster: &cluster,
        };
        allow(&ipt, &n).unwrap();
        let v4: Vec<String> = ipt.rules(Family::V4).iter().map(|r| r.join(" ")).collect();
        assert!(
            v4.contains(&"-s 10.33.0.0/24 -m comment --comment weft:k -j ACCEPT".to_string()),
            "{v4:?}"
        );
        assert!(
            v4.iter()
                .any(|r| r.starts_with("-d 10.33.0.0/24 -m conntrack")),
            "{v4:?}"
        );
        assert!(
            v4.iter()
                .any(|r| r.starts_with("-s 10.244.0.0/16 -d 10.33.0.0/24")),
            "{v4:?}"
        );
        assert_eq!(
            ipt.rules(Family::V6).len(),
            2,
            "the IPv6 subnet's two rules"
        );
        revoke(&ipt, Scope::Subnets(&subnets), "k", &cluster).unwrap();
        assert!(ipt.rules(Family::V4).is_empty() && ipt.rules(Family::V6).is_empty());
    }

    #[test]
    fn nothing_is_added_without_the_chain() {
        let ipt = FakeIptables::new(false, false);
        allow(&ipt, &net(true)).unwrap();
        assert!(ipt.rules(Family::V4).is_empty());
        let calls = ipt.calls.lock().unwrap().clone();
        assert!(
            calls.iter().all(|c| !c.contains(" -I ")),
            "no insert without the chain: {calls:?}"
        );
        revoke(
            &ipt,
            Scope::Interface("br-0123456789ab"),
            "0123456789ab",
            &[],
        )
        .unwrap();
    }
}
