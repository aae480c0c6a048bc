//! Speaker and peer configuration.

use crate::codec::Family;
use crate::policy::PeerPolicy;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The BGP port.
pub const BGP_PORT: u16 = 179;

/// The whole speaker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeakerConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Where to accept connections (address and port); None accepts none (active peers only).
    pub listen: Option<SocketAddr>,
    /// Route-reflector cluster id (defaults to the router id).
    #[serde(default)]
    pub cluster_id: Option<Ipv4Addr>,
    /// Seconds between outgoing connection attempts.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: Duration,
    /// Pause before a failed session restarts.
    #[serde(default = "default_idle_hold")]
    pub idle_hold: Duration,
    /// Advertise graceful-restart (receiving side) with this restart time in seconds.
    #[serde(default = "default_gr")]
    pub graceful_restart: Option<u16>,
    /// The peers.
    pub peers: Vec<PeerConfig>,
}

fn default_connect_retry() -> Duration {
    Duration::from_secs(30)
}

fn default_idle_hold() -> Duration {
    Duration::from_secs(5)
}

fn default_gr() -> Option<u16> {
    Some(120)
}

fn default_port() -> u16 {
    BGP_PORT
}

fn default_hold() -> u16 {
    90
}

fn default_families() -> Vec<Family> {
    vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's AS (ours for iBGP).
    pub remote_as: u32,
    /// The peer's port for outgoing connections.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Only accept connections; never connect.
    #[serde(default)]
    pub passive: bool,
    /// The peer is our route-reflector client.
    #[serde(default)]
    pub rr_client: bool,
    /// Rewrite next hops of eBGP-learned routes to ourselves toward this iBGP peer.
    #[serde(default)]
    pub next_hop_self: bool,
    /// Proposed hold time (0, or at least 3).
    #[serde(default = "default_hold")]
    pub hold_time: u16,
    /// Source address for outgoing connections.
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Our IPv4 next hop toward this peer (default: the session's local address if IPv4).
    #[serde(default)]
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop toward this peer (default: the session's local address if IPv6, else
    /// its IPv4-mapped form).
    #[serde(default)]
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Families to offer.
    #[serde(default = "default_families")]
    pub families: Vec<Family>,
    /// Filters and the prefix limit.
    #[serde(default)]
    pub policy: PeerPolicy,
}

impl PeerConfig {
    /// A peer with defaults: port 179, active, hold 90, IPv4 and IPv6 unicast, accept all.
    pub fn new(address: IpAddr, remote_as: u32) -> Self {
        PeerConfig {
            address,
            remote_as,
            port: BGP_PORT,
            passive: false,
            rr_client: false,
            next_hop_self: false,
            hold_time: 90,
            local_address: None,
            next_hop_v4: None,
            next_hop_v6: None,
            families: default_families(),
            policy: PeerPolicy::default(),
        }
    }
}

impl PeerConfig {
    /// Checks one peer's settings; `listening` says whether the speaker accepts connections.
    pub fn validate(&self, listening: bool) -> Result<(), String> {
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(format!(
                "peer {}: hold time {} is not allowed, use 0 or at least 3",
                self.address, self.hold_time
            ));
        }
        if self.remote_as == 0 {
            return Err(format!("peer {}: AS 0 is reserved", self.address));
        }
        if self.families.is_empty() {
            return Err(format!("peer {}: no address family enabled", self.address));
        }
        if self.passive && !listening {
            return Err(format!(
                "peer {} is passive but the speaker does not listen; set `listen`",
                self.address
            ));
        }
        self.policy
            .import
            .validate()
            .and(self.policy.export.validate())
            .map_err(|e| format!("peer {}: {e}", self.address))
    }
}

impl SpeakerConfig {
    /// A speaker with no peers, listening on `listen`.
    pub fn new(local_as: u32, router_id: Ipv4Addr, listen: Option<SocketAddr>) -> Self {
        SpeakerConfig {
            local_as,
            router_id,
            listen,
            cluster_id: None,
            connect_retry: default_connect_retry(),
            idle_hold: default_idle_hold(),
            graceful_restart: default_gr(),
            peers: Vec::new(),
        }
    }

    /// Checks the configuration as a whole before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.local_as == 0 {
            return Err("local AS 0 is reserved".into());
        }
        if self.router_id.is_unspecified() {
            return Err("router id 0.0.0.0 is not allowed".into());
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.peers {
            if !seen.insert(p.address) {
                return Err(format!("peer {} is configured twice", p.address));
            }
            p.validate(self.listen.is_some())?;
        }
        Ok(())
    }
}
