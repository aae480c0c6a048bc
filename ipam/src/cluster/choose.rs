//! Which subnet a host claims (pure).
//!
//! In order: the subnet reserved for its public address; its previous subnet (from local state)
//! if nobody else holds it; a live lease that already carries its public address and node id
//! (a restart within the TTL); the first subnet that is neither leased nor reserved.
//!
//! Only subnets within the config's `subnet_min ..= subnet_max` (flannel's SubnetMin and
//! SubnetMax) are chosen, also as previous or own live subnet; a reservation is the operator's
//! explicit choice and is honoured wherever it lies.
//!
//! A live lease with the same public address but another node id is a second daemon for the
//! same host address: refused, never shared.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::Ipv4Net;

use super::carve;
use super::config::ClusterConfig;
use super::error::ClusterError;
use super::lease::{Lease, Reservation};

/// Everything the choice depends on.
#[derive(Debug, Clone)]
pub struct ChoiceInput<'a> {
    /// The cluster's config.
    pub config: &'a ClusterConfig,
    /// Valid leases.
    pub leases: &'a [Lease],
    /// Subnets whose lease key exists but holds a malformed value: not free either.
    pub occupied: &'a BTreeSet<Ipv4Net>,
    /// Valid reservations.
    pub reservations: &'a [Reservation],
    /// This host's public address.
    pub public_ip: IpAddr,
    /// This host's node id.
    pub node_id: &'a str,
    /// The subnet this host had before (local state), if any.
    pub previous: Option<Ipv4Net>,
}

/// The claim to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key is absent: create it (transaction on `create_revision == 0`).
    Create(Ipv4Net),
    /// The key holds this host's own live lease: take it over with the new etcd lease
    /// (transaction on `mod_revision == revision`).
    TakeOver {
        /// The subnet.
        subnet: Ipv4Net,
        /// The lease's mod_revision as read.
        mod_revision: i64,
    },
}

impl Claim {
    /// The subnet claimed.
    pub fn subnet(&self) -> Ipv4Net {
        match self {
            Claim::Create(s) | Claim::TakeOver { subnet: s, .. } => *s,
        }
    }
}

/// Picks the subnet to claim (see the module docs).
pub fn choose_subnet(input: &ChoiceInput<'_>) -> Result<Claim, ClusterError> {
    let leases: BTreeMap<Ipv4Net, &Lease> = input.leases.iter().map(|l| (l.subnet, l)).collect();
    if let Some(other) = input
        .leases
        .iter()
        .find(|l| l.value.public_ip == input.public_ip && l.value.node_id != input.node_id)
    {
        return Err(ClusterError::DuplicatePublicIp {
            public_ip: input.public_ip,
            subnet: other.subnet,
            other_node: other.value.node_id.clone(),
        });
    }
    let ours = |lease: &Lease| lease.value.node_id == input.node_id;
    // The claim for `subnet` when this host may have it, or None when someone else holds it.
    let claim_for = |subnet: Ipv4Net| -> Option<Claim> {
        match leases.get(&subnet) {
            None if input.occupied.contains(&subnet) => None,
            None => Some(Claim::Create(subnet)),
            Some(lease) if ours(lease) => Some(Claim::TakeOver {
                subnet,
                mod_revision: lease.mod_revision,
            }),
            Some(_) => None,
        }
    };
    let reserved: BTreeMap<Ipv4Net, IpAddr> = input
        .reservations
        .iter()
        .filter_map(|r| Some((r.subnet?, r.public_ip)))
        .collect();

    if let Some((&subnet, _)) = reserved.iter().find(|(_, ip)| **ip == input.public_ip) {
        return claim_for(subnet).ok_or_else(|| ClusterError::InvalidReservation {
            subnet: subnet.to_string(),
            reason: format!(
                "it is reserved for {} but leased by {}; wait for that lease to expire or remove it",
                input.public_ip,
                leases
                    .get(&subnet)
                    .map(|l| format!("{} (node {})", l.value.public_ip, l.value.node_id))
                    .unwrap_or_else(|| "a malformed lease".into())
            ),
        });
    }
    let config = input.config;
    let usable = |subnet: Ipv4Net| {
        carve::is_host_subnet(config.network, config.subnet_len, subnet)
            && config.in_range(subnet)
            && !reserved.contains_key(&subnet)
    };
    if let Some(claim) = input.previous.filter(|s| usable(*s)).and_then(claim_for) {
        return Ok(claim);
    }
    if let Some(lease) = input
        .leases
        .iter()
        .find(|l| l.value.public_ip == input.public_ip && ours(l) && usable(l.subnet))
    {
        return Ok(Claim::TakeOver {
            subnet: lease.subnet,
            mod_revision: lease.mod_revision,
        });
    }
    carve::subnets(config.network, config.subnet_len)
        .find(|s| usable(*s) && !leases.contains_key(s) && !input.occupied.contains(s))
        .map(Claim::Create)
        .ok_or(ClusterError::Exhausted {
            network: config.network,
            total: carve::subnets(config.network, config.subnet_len)
                .filter(|s| config.in_range(*s))
                .count() as u64,
            len: config.subnet_len,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::config::BackendConfig;
    use crate::cluster::lease::LeaseValue;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn lease(subnet: &str, ip: &str, node: &str, rev: i64) -> Lease {
        Lease {
            subnet: net(subnet),
            value: LeaseValue {
                public_ip: ip.parse().unwrap(),
                node_id: node.into(),
                hostname: String::new(),
                subnet_v6: None,
                backend_data: serde_json::Value::Null,
            },
            mod_revision: rev,
        }
    }

    fn reservation(subnet: &str, ip: &str) -> Reservation {
        Reservation {
            subnet: Some(net(subnet)),
            public_ip: ip.parse().unwrap(),
        }
    }

    struct Case {
        config: ClusterConfig,
        leases: Vec<Lease>,
        occupied: BTreeSet<Ipv4Net>,
        reservations: Vec<Reservation>,
        previous: Option<Ipv4Net>,
    }

    impl Case {
        fn new(network: &str) -> Case {
            Case {
                config: ClusterConfig::new(net(network), BackendConfig::new("vxlan")),
                leases: vec![],
                occupied: BTreeSet::new(),
                reservations: vec![],
                previous: None,
            }
        }
        fn choose(&self, ip: &str, node: &str) -> Result<Claim, ClusterError> {
            choose_subnet(&ChoiceInput {
                config: &self.config,
                leases: &self.leases,
                occupied: &self.occupied,
                reservations: &self.reservations,
                public_ip: ip.parse().unwrap(),
                node_id: node,
                previous: self.previous,
            })
        }
    }

    #[test]
    fn first_free_skips_leased_reserved_and_malformed() {
        let mut c = Case::new("10.244.0.0/16");
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.1.0/24"))
        );
        c.leases.push(lease("10.244.1.0/24", "192.168.0.2", "b", 5));
        c.reservations
            .push(reservation("10.244.2.0/24", "192.168.0.9"));
        c.occupied.insert(net("10.244.3.0/24"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.4.0/24"))
        );
    }

    #[test]
    fn reservation_comes_first() {
        let mut c = Case::new("10.244.0.0/16");
        c.reservations
            .push(reservation("10.244.9.0/24", "192.168.0.1"));
        c.previous = Some(net("10.244.1.0/24"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.9.0/24"))
        );
        // Held by someone else: wait rather than take another subnet.
        c.leases.push(lease("10.244.9.0/24", "192.168.0.5", "x", 3));
        let e = c.choose("192.168.0.1", "a").unwrap_err().to_string();
        assert!(e.contains("reserved for 192.168.0.1"), "{e}");
    }

    #[test]
    fn previous_subnet_back_when_free_never_when_held() {
        let mut c = Case::new("10.244.0.0/16");
        c.previous = Some(net("10.244.7.0/24"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.7.0/24"))
        );
        c.leases.push(lease("10.244.7.0/24", "192.168.0.2", "b", 4));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.1.0/24"))
        );
        // Previous subnet reserved for another host meanwhile.
        c.leases.clear();
        c.reservations
            .push(reservation("10.244.7.0/24", "192.168.0.3"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.1.0/24"))
        );
        // Outside the (changed) cluster network.
        c.previous = Some(net("10.99.7.0/24"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.1.0/24"))
        );
    }

    #[test]
    fn restart_takes_over_its_own_live_lease() {
        let mut c = Case::new("10.244.0.0/16");
        c.leases
            .push(lease("10.244.5.0/24", "192.168.0.1", "a", 11));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::TakeOver {
                subnet: net("10.244.5.0/24"),
                mod_revision: 11
            }
        );
        c.previous = Some(net("10.244.5.0/24"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::TakeOver {
                subnet: net("10.244.5.0/24"),
                mod_revision: 11
            }
        );
    }

    #[test]
    fn second_daemon_with_the_same_public_ip_is_refused() {
        let mut c = Case::new("10.244.0.0/16");
        c.leases
            .push(lease("10.244.5.0/24", "192.168.0.1", "first", 11));
        let e = c.choose("192.168.0.1", "second").unwrap_err();
        assert!(matches!(e, ClusterError::DuplicatePublicIp { .. }), "{e}");
        assert!(e.to_string().contains("node first"), "{e}");
    }

    #[test]
    fn exhausted_network_is_an_error() {
        let mut c = Case::new("10.244.0.0/23");
        c.leases.push(lease("10.244.1.0/24", "192.168.0.2", "b", 1));
        let e = c.choose("192.168.0.1", "a").unwrap_err();
        assert!(matches!(e, ClusterError::Exhausted { total: 1, .. }), "{e}");
    }

    #[test]
    fn only_subnets_between_min_and_max_are_chosen() {
        let mut c = Case::new("10.244.0.0/16");
        c.config.subnet_min = Some("10.244.10.0".parse().unwrap());
        c.config.subnet_max = Some("10.244.11.0".parse().unwrap());
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.10.0/24"))
        );
        // A previous subnet below the range is not taken back; nor is an own live lease.
        c.previous = Some(net("10.244.1.0/24"));
        c.leases.push(lease("10.244.2.0/24", "192.168.0.1", "a", 3));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.10.0/24"))
        );
        c.leases.clear();
        c.leases
            .push(lease("10.244.10.0/24", "192.168.0.2", "b", 1));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.11.0/24"))
        );
        c.leases
            .push(lease("10.244.11.0/24", "192.168.0.3", "c", 2));
        let e = c.choose("192.168.0.1", "a").unwrap_err();
        assert!(matches!(e, ClusterError::Exhausted { total: 2, .. }), "{e}");
        // A reservation outside the range is still honoured.
        c.reservations
            .push(reservation("10.244.50.0/24", "192.168.0.1"));
        assert_eq!(
            c.choose("192.168.0.1", "a").unwrap(),
            Claim::Create(net("10.244.50.0/24"))
        );
    }
}
