//! Per-peer import/export policy: prefix lists with ge/le, a default action, and a limit on
//! how many prefixes a peer may send.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What a policy decides for a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    /// Let the route through.
    Accept,
    /// Drop it.
    Reject,
}

/// One prefix-list entry, with Cisco/FRR `ge`/`le` semantics: without either, only the exact
/// prefix matches; `ge` alone means up to the address length; `le` alone means from the
/// entry's own length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixRule {
    /// The covering prefix.
    pub prefix: IpNet,
    /// Shortest matching length.
    #[serde(default)]
    pub ge: Option<u8>,
    /// Longest matching length.
    #[serde(default)]
    pub le: Option<u8>,
    /// Action on match.
    pub action: PolicyAction,
}

impl PrefixRule {
    /// Whether `net` matches this entry.
    pub fn matches(&self, net: &IpNet) -> bool {
        let same_family = matches!(
            (self.prefix, net),
            (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
        );
        if !same_family || !self.prefix.contains(net) {
            return false;
        }
        let len = net.prefix_len();
        let (lo, hi) = match (self.ge, self.le) {
            (None, None) => (self.prefix.prefix_len(), self.prefix.prefix_len()),
            (Some(ge), None) => (ge, net.max_prefix_len()),
            (None, Some(le)) => (self.prefix.prefix_len(), le),
            (Some(ge), Some(le)) => (ge, le),
        };
        (lo..=hi).contains(&len)
    }
}

/// An ordered prefix list; the first matching entry decides, else `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixList {
    /// Entries in order.
    #[serde(default)]
    pub rules: Vec<PrefixRule>,
    /// Action when nothing matches.
    pub default: PolicyAction,
}

impl PrefixList {
    /// A list that accepts everything.
    pub fn accept_all() -> Self {
        PrefixList {
            rules: Vec::new(),
            default: PolicyAction::Accept,
        }
    }

    /// A list that rejects everything.
    pub fn reject_all() -> Self {
        PrefixList {
            rules: Vec::new(),
            default: PolicyAction::Reject,
        }
    }

    /// Decides for one prefix.
    pub fn evaluate(&self, net: &IpNet) -> PolicyAction {
        self.rules
            .iter()
            .find(|r| r.matches(net))
            .map(|r| r.action)
            .unwrap_or(self.default)
    }

    /// Whether the prefix passes.
    pub fn accepts(&self, net: &IpNet) -> bool {
        self.evaluate(net) == PolicyAction::Accept
    }

    /// Checks every entry's ge/le against its prefix.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.rules {
            let (p, max) = (r.prefix.prefix_len(), r.prefix.max_prefix_len());
            let bad = |what: &str, v: u8| {
                Err(format!(
                    "prefix-list entry {}: {what} {v} must lie between {p} and {max}",
                    r.prefix
                ))
            };
            if let Some(ge) = r.ge.filter(|&g| g < p || g > max) {
                return bad("ge", ge);
            }
            if let Some(le) = r.le.filter(|&l| l < p || l > max) {
                return bad("le", le);
            }
            if let (Some(ge), Some(le)) = (r.ge, r.le) {
                if ge > le {
                    return Err(format!("prefix-list entry {}: ge {ge} > le {le}", r.prefix));
                }
            }
        }
        Ok(())
    }
}

impl Default for PrefixList {
    fn default() -> Self {
        Self::accept_all()
    }
}

/// The policy of one peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerPolicy {
    /// Filter on routes learned from the peer.
    #[serde(default)]
    pub import: PrefixList,
    /// Filter on routes sent to the peer.
    #[serde(default)]
    pub export: PrefixList,
    /// Most prefixes the peer may send (counted before the import filter, as received);
    /// exceeding it ends the session with Cease / Maximum Number of Prefixes Reached.
    #[serde(default)]
    pub max_prefixes: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(p: &str, ge: Option<u8>, le: Option<u8>, action: PolicyAction) -> PrefixRule {
        PrefixRule {
            prefix: p.parse().unwrap(),
            ge,
            le,
            action,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn exact_match_without_ge_le() {
        let r = rule("10.244.0.0/16", None, None, PolicyAction::Accept);
        assert!(r.matches(&net("10.244.0.0/16")));
        assert!(!r.matches(&net("10.244.1.0/24")));
        assert!(!r.matches(&net("10.0.0.0/8")));
    }

    #[test]
    fn ge_le_ranges() {
        let r = rule("10.244.0.0/16", Some(24), Some(26), PolicyAction::Accept);
        assert!(r.matches(&net("10.244.3.0/24")));
        assert!(r.matches(&net("10.244.3.64/26")));
        assert!(!r.matches(&net("10.244.3.0/27")));
        assert!(!r.matches(&net("10.244.0.0/23")));
        assert!(!r.matches(&net("10.245.0.0/24")));
        let ge_only = rule("10.244.0.0/16", Some(24), None, PolicyAction::Accept);
        assert!(ge_only.matches(&net("10.244.3.7/32")));
        let le_only = rule("10.244.0.0/16", None, Some(20), PolicyAction::Accept);
        assert!(le_only.matches(&net("10.244.0.0/16")));
        assert!(!le_only.matches(&net("10.244.0.0/21")));
        let v6 = rule("fd00::/8", None, Some(64), PolicyAction::Accept);
        assert!(v6.matches(&net("fd00:1::/64")));
        assert!(
            !v6.matches(&net("10.0.0.0/8")),
            "families never match each other"
        );
    }

    #[test]
    fn first_match_wins_then_default() {
        let list = PrefixList {
            rules: vec![
                rule("10.244.9.0/24", None, None, PolicyAction::Reject),
                rule("10.244.0.0/16", None, Some(24), PolicyAction::Accept),
            ],
            default: PolicyAction::Reject,
        };
        assert!(!list.accepts(&net("10.244.9.0/24")));
        assert!(list.accepts(&net("10.244.8.0/24")));
        assert!(!list.accepts(&net("192.168.0.0/24")));
    }

    #[test]
    fn validate_rejects_impossible_ranges() {
        let list = PrefixList {
            rules: vec![rule("10.0.0.0/16", Some(8), None, PolicyAction::Accept)],
            default: PolicyAction::Accept,
        };
        assert!(list.validate().is_err());
        let list = PrefixList {
            rules: vec![rule(
                "10.0.0.0/16",
                Some(28),
                Some(24),
                PolicyAction::Accept,
            )],
            default: PolicyAction::Accept,
        };
        assert!(list.validate().is_err());
    }
}
