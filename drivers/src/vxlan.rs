//! What every VXLAN user among the backends shares: the VTEP MAC a host publishes in its lease
//! and reads from its peers', how a host's VTEP MAC is derived, and the encapsulation overhead.

use std::net::IpAddr;

use crate::backend::Peer;
use crate::error::DriverError;
use crate::model::MacAddr;

/// The key of the VTEP MAC in a host's published backend data.
pub const VTEP_MAC: &str = "vtep_mac";

/// The VTEP MAC a peer published.
pub fn peer_vtep_mac(peer: &Peer) -> Result<MacAddr, DriverError> {
    let text = peer
        .data
        .get(VTEP_MAC)
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            DriverError::Invalid(format!(
                "peer {} has not published its VTEP MAC yet (no {VTEP_MAC} in its lease); it is programmed once it does",
                peer.describe()
            ))
        })?;
    text.parse()
        .map_err(|e: String| DriverError::Invalid(format!("peer {}: {e}", peer.describe())))
}

/// This host's VTEP MAC: locally administered, derived from the VNI and the public address, so
/// a re-created device keeps its MAC and the peers' entries stay right. `kind` (an even first
/// octet) keeps the devices of different backends apart.
pub fn local_vtep_mac(kind: u8, vni: u32, public_ip: IpAddr) -> MacAddr {
    let tail = match public_ip {
        IpAddr::V4(ip) => ip.octets(),
        IpAddr::V6(ip) => {
            let o = ip.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    MacAddr([kind, vni as u8, tail[0], tail[1], tail[2], tail[3]])
}

/// Bytes VXLAN adds to each packet over an underlay of `public_ip`'s family.
pub fn overhead(public_ip: IpAddr) -> u32 {
    if public_ip.is_ipv4() {
        50
    } else {
        70
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtep_macs_are_local_unicast_and_stable() {
        let m = local_vtep_mac(0x0a, 1, "192.168.0.1".parse().unwrap());
        assert_eq!(m.to_string(), "0a:01:c0:a8:00:01");
        assert_eq!(m.0[0] & 1, 0, "unicast");
        assert_eq!(m, local_vtep_mac(0x0a, 1, "192.168.0.1".parse().unwrap()));
        assert_eq!(overhead("::1".parse().unwrap()), 70);
    }
}
