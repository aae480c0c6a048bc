//! Interface addresses.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, Result};

impl Netlink {
    /// `ip addr add ADDR/LEN dev DEV` (IPv4 with `brd +`; IPv6 with `nodad`, so the address is
    /// usable at once instead of after duplicate address detection).
    pub fn add_address(&mut self, index: u32, address: IpNet) -> Result<()> {
        self.socket
            .request(
                RouteNetlinkMessage::NewAddress(address_message(index, address, true)),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map(drop)
            .map_err(|f| f.into_error("add address", format!("{address} on ifindex {index}")))
    }

    /// `ip addr del ADDR/LEN dev DEV`.
    pub fn del_address(&mut self, index: u32, address: IpNet) -> Result<()> {
        self.socket
            .request(
                RouteNetlinkMessage::DelAddress(address_message(index, address, false)),
                0,
            )
            .map(drop)
            .map_err(|f| f.into_error("delete address", format!("{address} on ifindex {index}")))
    }

    /// `(ifindex, address/prefix)` of every address, or of one link's: `ip addr show [dev DEV]`.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<(u32, IpNet)>> {
        let request = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        let replies = self
            .socket
            .dump(&request)
            .map_err(|f| f.into_error("dump addresses", "all"))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => parse_address(a),
                _ => None,
            })
            .filter(|(i, _)| index.is_none_or(|wanted| *i == wanted))
            .collect())
    }
}

fn address_message(index: u32, address: IpNet, adding: bool) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = address.prefix_len();
    let ip = address.addr();
    message.attributes.push(AddressAttribute::Local(ip));
    message.attributes.push(AddressAttribute::Address(ip));
    match address {
        IpNet::V4(net) => {
            message.header.family = AddressFamily::Inet;
            if let Some(broadcast) = broadcast_of(net).filter(|_| adding) {
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(broadcast));
            }
        }
        IpNet::V6(_) => {
            message.header.family = AddressFamily::Inet6;
            message.header.flags = AddressHeaderFlags::Nodad;
            message
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    message
}

/// The subnet's broadcast address; /31 and /32 have none (RFC 3021).
fn broadcast_of(net: Ipv4Net) -> Option<Ipv4Addr> {
    (net.prefix_len() < 31).then(|| net.broadcast())
}

/// The address as configured: IFA_LOCAL when present (IFA_ADDRESS is the peer on
/// point-to-point links), with the prefix length of the header.
fn parse_address(message: &AddressMessage) -> Option<(u32, IpNet)> {
    let find = |local: bool| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    let ip: IpAddr = find(true).or_else(|| find(false))?;
    let net = IpNet::new(ip, message.header.prefix_len).ok()?;
    Some((message.header.index, net))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_gets_broadcast_v6_gets_nodad() {
        let v4 = address_message(3, "10.1.2.3/24".parse().unwrap(), true);
        assert!(v4
            .attributes
            .contains(&AddressAttribute::Broadcast("10.1.2.255".parse().unwrap())));
        let p2p = address_message(3, "10.1.2.3/31".parse().unwrap(), true);
        assert!(!p2p
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
        let v6 = address_message(3, "fd00::1/64".parse().unwrap(), true);
        assert!(v6
            .attributes
            .contains(&AddressAttribute::Flags(AddressFlags::Nodad)));
        assert_eq!(v6.header.family, AddressFamily::Inet6);
    }

    #[test]
    fn parsing_prefers_local_and_keeps_host_bits() {
        let mut message = AddressMessage::default();
        message.header.index = 4;
        message.header.prefix_len = 32;
        message.attributes = vec![
            AddressAttribute::Address("10.0.0.2".parse().unwrap()),
            AddressAttribute::Local("10.0.0.1".parse().unwrap()),
        ];
        assert_eq!(
            parse_address(&message),
            Some((4, "10.0.0.1/32".parse().unwrap()))
        );
    }
}
