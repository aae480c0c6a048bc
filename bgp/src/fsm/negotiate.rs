//! OPEN checks (RFC 4271 §6.2) and what two OPENs negotiate.

use crate::codec::{
    Capability, CodecContext, Family, GracefulRestartCap, Notification, NotificationError, Open,
    OpenSubcode,
};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::SessionConfig;

/// What an Established session agreed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Negotiated {
    /// The peer's AS (4-octet when it sent the capability).
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Hold time in seconds: the smaller of both proposals; 0 means no keepalives at all.
    pub hold_time: u16,
    /// Both sides support 4-octet AS numbers.
    pub four_octet_as: bool,
    /// Families both sides enabled.
    pub families: Vec<Family>,
    /// Both sides support route refresh.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestartCap>,
}

impl Negotiated {
    /// How messages are encoded on this session.
    pub fn codec(&self) -> CodecContext {
        CodecContext {
            four_octet_as: self.four_octet_as,
        }
    }

    /// Interval between KEEPALIVEs (a third of the hold time), or None when hold time is 0.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time / 3).max(1)))
    }

    /// The hold timer, or None when hold time is 0.
    pub fn hold_duration(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time)))
    }
}

/// Our OPEN for a session.
pub fn local_open(cfg: &SessionConfig) -> Open {
    let mut caps: Vec<Capability> = cfg
        .families
        .iter()
        .map(|f| Capability::MultiProtocol(*f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::FourOctetAs(cfg.local_as));
    if let Some(restart_time) = cfg.graceful_restart {
        // Receiving-side ("helper") support only: no families, so peers do not keep our routes.
        caps.push(Capability::GracefulRestart(GracefulRestartCap {
            flags: 0,
            restart_time: restart_time.min(0x0fff),
            families: Vec::new(),
        }));
    }
    Open::new(cfg.local_as, cfg.hold_time, cfg.local_id, caps)
}

fn open_error(sub: OpenSubcode, data: Vec<u8>) -> Notification {
    Notification::new(NotificationError::Open(sub), data)
}

/// Checks a peer's OPEN against our configuration and negotiates the session parameters.
pub fn check_open(cfg: &SessionConfig, open: &Open) -> Result<Negotiated, Notification> {
    if open.version != 4 {
        return Err(open_error(
            OpenSubcode::UnsupportedVersionNumber,
            4u16.to_be_bytes().to_vec(),
        ));
    }
    if open.asn() != cfg.peer_as {
        return Err(open_error(
            OpenSubcode::BadPeerAs,
            open.my_as.to_be_bytes().to_vec(),
        ));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(open_error(OpenSubcode::UnacceptableHoldTime, Vec::new()));
    }
    let ibgp = cfg.local_as == cfg.peer_as;
    if open.bgp_id.is_unspecified() || (ibgp && open.bgp_id == cfg.local_id) {
        return Err(open_error(
            OpenSubcode::BadBgpIdentifier,
            open.bgp_id.octets().to_vec(),
        ));
    }
    let theirs = open.families();
    let families = cfg
        .families
        .iter()
        .copied()
        .filter(|f| theirs.contains(f))
        .collect();
    Ok(Negotiated {
        peer_as: open.asn(),
        peer_id: open.bgp_id,
        hold_time: cfg.hold_time.min(open.hold_time),
        four_octet_as: open.four_octet_as().is_some(),
        families,
        route_refresh: open.route_refresh(),
        peer_graceful_restart: open.graceful_restart().cloned(),
    })
}
