//! Forwarding-database entries of a device itself (AF_BRIDGE neighbours with NTF_SELF): how a
//! VXLAN device learns which remote VTEP a MAC lives behind.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::link::mac_from;
use super::neighbour::is_permanent;
use super::{FdbEntry, Netlink, Result};
use crate::model::MacAddr;

/// The all-zeros MAC: a VXLAN device's default destinations (flooding), of which there may be
/// several, one per remote.
const ZERO_MAC: MacAddr = MacAddr([0; 6]);

impl Netlink {
    /// For the all-zeros MAC `bridge fdb append 00:00:00:00:00:00 dst IP dev DEV self permanent`
    /// (one more flood destination); otherwise `bridge fdb replace MAC [dst IP] dev DEV self
    /// permanent` (dynamic instead of permanent when `permanent` is false). Idempotent.
    pub fn add_fdb(&mut self, entry: &FdbEntry) -> Result<()> {
        let mut message = fdb_message(entry);
        message.header.state = if entry.permanent {
            NeighbourState::Permanent
        } else {
            NeighbourState::Reachable
        };
        let mode = if entry.mac == ZERO_MAC {
            NLM_F_APPEND
        } else {
            NLM_F_REPLACE
        };
        match self.socket.request(
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | mode,
        ) {
            Ok(_) => Ok(()),
            // Appending a destination that is already there.
            Err(f) if f.errno == libc::EEXIST && mode == NLM_F_APPEND => Ok(()),
            Err(f) => Err(f.into_error("add fdb entry", describe(entry))),
        }
    }

    /// `bridge fdb del MAC [dst IP] dev DEV self`; with a destination only that remote is
    /// removed from an all-zeros entry.
    pub fn del_fdb(&mut self, entry: &FdbEntry) -> Result<()> {
        self.socket
            .request(RouteNetlinkMessage::DelNeighbour(fdb_message(entry)), 0)
            .map(drop)
            .map_err(|f| f.into_error("delete fdb entry", describe(entry)))
    }

    /// The device's own (NTF_SELF) entries: `bridge fdb show dev DEV self`.
    pub fn fdb(&mut self, index: u32) -> Result<Vec<FdbEntry>> {
        let mut request = NeighbourMessage::default();
        request.header.family = AddressFamily::Bridge;
        let replies = self
            .socket
            .dump(&RouteNetlinkMessage::GetNeighbour(request))
            .map_err(|f| f.into_error("dump fdb", format!("ifindex {index}")))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => parse_fdb(n),
                _ => None,
            })
            .filter(|entry| entry.ifindex == index)
            .collect())
    }
}

fn fdb_message(entry: &FdbEntry) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = entry.ifindex;
    message.header.flags = NeighbourFlags::Own;
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(entry.mac.0.to_vec()));
    if let Some(destination) = entry.destination {
        message
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(
                destination,
            )));
    }
    message
}

fn describe(entry: &FdbEntry) -> String {
    match entry.destination {
        Some(dst) => format!("{} dst {dst} on ifindex {}", entry.mac, entry.ifindex),
        None => format!("{} on ifindex {}", entry.mac, entry.ifindex),
    }
}

/// AF_BRIDGE neighbours carry their destination as raw bytes: 4 for IPv4, 16 for IPv6.
fn parse_fdb(message: &NeighbourMessage) -> Option<FdbEntry> {
    if !message.header.flags.contains(NeighbourFlags::Own) {
        return None;
    }
    let mut mac = None;
    let mut destination = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = mac_from(bytes),
            NeighbourAttribute::Destination(address) => destination = ip_of(address),
            _ => {}
        }
    }
    Some(FdbEntry {
        ifindex: message.header.ifindex,
        mac: mac?,
        destination,
        permanent: is_permanent(message.header.state),
    })
}

fn ip_of(address: &NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(ip) => Some((*ip).into()),
        NeighbourAddress::Inet6(ip) => Some((*ip).into()),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes.as_slice()).ok()?)),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes.as_slice()).ok()?)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bridge_destination_is_parsed() {
        let entry = FdbEntry {
            ifindex: 9,
            mac: ZERO_MAC,
            destination: Some("192.0.2.7".parse().unwrap()),
            permanent: true,
        };
        let mut message = fdb_message(&entry);
        message.header.state = NeighbourState::Permanent;
        // What the kernel sends back for AF_BRIDGE: the address as plain bytes.
        message.attributes[1] =
            NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 0, 2, 7]));
        assert_eq!(parse_fdb(&message), Some(entry));
    }
}
