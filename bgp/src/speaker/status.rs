//! What the speaker reports about its peers.

use crate::fsm::{Negotiated, State};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// One peer's state as `weft status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// Peer address.
    pub address: IpAddr,
    /// Configured peer AS.
    pub remote_as: u32,
    /// Session state.
    pub state: State,
    /// When the session came up (None unless Established).
    pub established_since: Option<SystemTime>,
    /// What the session negotiated.
    pub negotiated: Option<Negotiated>,
    /// Accepted prefixes from the peer.
    pub prefixes_received: usize,
    /// Prefixes advertised to the peer.
    pub prefixes_sent: usize,
    /// The last error or reason the session went down.
    pub last_error: Option<String>,
    /// How often an Established session ended.
    pub flaps: u32,
}

impl PeerStatus {
    pub(crate) fn new(address: IpAddr, remote_as: u32) -> Self {
        PeerStatus {
            address,
            remote_as,
            state: State::Idle,
            established_since: None,
            negotiated: None,
            prefixes_received: 0,
            prefixes_sent: 0,
            last_error: None,
            flaps: 0,
        }
    }

    /// Time since the session came up.
    pub fn uptime(&self) -> Option<Duration> {
        self.established_since
            .and_then(|t| SystemTime::now().duration_since(t).ok())
    }
}

/// Shared status table, written by peer tasks and read by the API.
pub(crate) type StatusMap = Arc<Mutex<BTreeMap<IpAddr, PeerStatus>>>;
