//! ARP/NDP neighbour entries and proxy entries (NTF_PROXY).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::link::mac_from;
use super::{Neighbour, Netlink, Result};

/// NUD_PERMANENT as a bit: the kernel reports a combination of NUD_* bits.
const NUD_PERMANENT: u16 = 0x80;

impl Netlink {
    /// `ip neigh replace ADDR lladdr MAC dev DEV nud permanent|reachable` — creates or updates.
    pub fn add_neighbour(&mut self, neighbour: &Neighbour) -> Result<()> {
        let mut message = neighbour_message(neighbour.ifindex, neighbour.address);
        message.header.state = if neighbour.permanent {
            NeighbourState::Permanent
        } else {
            NeighbourState::Reachable
        };
        if let Some(mac) = neighbour.mac {
            message
                .attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        }
        self.socket
            .request(
                RouteNetlinkMessage::NewNeighbour(message),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map(drop)
            .map_err(|f| {
                f.into_error(
                    "add neighbour",
                    describe(neighbour.ifindex, neighbour.address),
                )
            })
    }

    /// `ip neigh del ADDR dev DEV`.
    pub fn del_neighbour(&mut self, neighbour: &Neighbour) -> Result<()> {
        let message = neighbour_message(neighbour.ifindex, neighbour.address);
        self.socket
            .request(RouteNetlinkMessage::DelNeighbour(message), 0)
            .map(drop)
            .map_err(|f| {
                f.into_error(
                    "delete neighbour",
                    describe(neighbour.ifindex, neighbour.address),
                )
            })
    }

    /// IPv4 and IPv6 neighbours, of every link or one: `ip neigh show [dev DEV]`. Proxy entries
    /// are listed by [`Netlink::proxy_neighbours`].
    pub fn neighbours(&mut self, index: Option<u32>) -> Result<Vec<Neighbour>> {
        Ok(self
            .dump_neighbours(false)?
            .iter()
            .filter_map(parse_neighbour)
            .filter(|n| index.is_none_or(|i| n.ifindex == i))
            .collect())
    }

    /// `ip neigh add proxy ADDR dev DEV`: answer ARP/NDP for `address` on that link (with
    /// `proxy_arp`/`proxy_ndp` enabled). Idempotent.
    pub fn add_proxy_neighbour(&mut self, index: u32, address: IpAddr) -> Result<()> {
        let mut message = neighbour_message(index, address);
        message.header.flags = NeighbourFlags::Proxy;
        self.socket
            .request(
                RouteNetlinkMessage::NewNeighbour(message),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map(drop)
            .map_err(|f| f.into_error("add proxy neighbour", describe(index, address)))
    }

    /// `ip neigh del proxy ADDR dev DEV`.
    pub fn del_proxy_neighbour(&mut self, index: u32, address: IpAddr) -> Result<()> {
        let mut message = neighbour_message(index, address);
        message.header.flags = NeighbourFlags::Proxy;
        self.socket
            .request(RouteNetlinkMessage::DelNeighbour(message), 0)
            .map(drop)
            .map_err(|f| f.into_error("delete proxy neighbour", describe(index, address)))
    }

    /// `(ifindex, address)` of every proxy entry, or of one link's: `ip neigh show proxy`.
    pub fn proxy_neighbours(&mut self, index: Option<u32>) -> Result<Vec<(u32, IpAddr)>> {
        Ok(self
            .dump_neighbours(true)?
            .iter()
            .filter(|m| m.header.flags.contains(NeighbourFlags::Proxy))
            .filter_map(|m| Some((m.header.ifindex, destination_of(m)?)))
            .filter(|(i, _)| index.is_none_or(|wanted| *i == wanted))
            .collect())
    }

    /// The kernel lists proxy entries only when the request's flags are exactly NTF_PROXY.
    fn dump_neighbours(&mut self, proxies: bool) -> Result<Vec<NeighbourMessage>> {
        let mut request = NeighbourMessage::default();
        if proxies {
            request.header.flags = NeighbourFlags::Proxy;
        }
        let replies = self
            .socket
            .dump(&RouteNetlinkMessage::GetNeighbour(request))
            .map_err(|f| f.into_error("dump neighbours", "all"))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n)
                    if matches!(n.header.family, AddressFamily::Inet | AddressFamily::Inet6) =>
                {
                    Some(n)
                }
                _ => None,
            })
            .collect())
    }
}

fn neighbour_message(index: u32, address: IpAddr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.ifindex = index;
    message.header.family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(
            address,
        )));
    message
}

fn describe(index: u32, address: IpAddr) -> String {
    format!("{address} on ifindex {index}")
}

fn destination_of(message: &NeighbourMessage) -> Option<IpAddr> {
    message.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some((*ip).into()),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => Some((*ip).into()),
        _ => None,
    })
}

fn parse_neighbour(message: &NeighbourMessage) -> Option<Neighbour> {
    if message.header.flags.contains(NeighbourFlags::Proxy) {
        return None;
    }
    Some(Neighbour {
        ifindex: message.header.ifindex,
        address: destination_of(message)?,
        mac: message.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(bytes) => mac_from(bytes),
            _ => None,
        }),
        permanent: is_permanent(message.header.state),
    })
}

pub(super) fn is_permanent(state: NeighbourState) -> bool {
    u16::from(state) & NUD_PERMANENT != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MacAddr;

    #[test]
    fn parse_permanent_entry() {
        let mut message = neighbour_message(5, "10.0.0.9".parse().unwrap());
        message.header.state = NeighbourState::Permanent;
        message
            .attributes
            .push(NeighbourAttribute::LinkLayerAddress(vec![
                2, 0x42, 10, 0, 0, 9,
            ]));
        assert_eq!(
            parse_neighbour(&message),
            Some(Neighbour {
                ifindex: 5,
                address: "10.0.0.9".parse().unwrap(),
                mac: Some(MacAddr([2, 0x42, 10, 0, 0, 9])),
                permanent: true,
            })
        );
        message.header.flags = NeighbourFlags::Proxy;
        assert_eq!(parse_neighbour(&message), None);
    }
}
