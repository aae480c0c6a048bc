//! Routes: add, replace, delete, dump — unicast, blackhole and unreachable, any table,
//! multipath.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHop,
    RouteNextHopFlags, RouteProtocol, RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{IpFamily, Netlink, NextHop, Result, Route, RouteKind};
use crate::error::DriverError;

/// RT_SCOPE_NOWHERE: in a delete request, "any scope".
const SCOPE_ANY: u8 = 255;

/// What a request is for: deletes match loosely (any scope, any type unless blackhole or
/// unreachable).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// `ip route add|replace`: everything set is sent.
    Install,
    /// `ip route del`: the next hops that are set narrow the match.
    Delete,
    /// `ip route del DEST [table T] [proto P] [metric M]`: whatever the next hops are (a
    /// batch removes a route it knows by its destination).
    DeleteByPrefix,
}

impl Purpose {
    fn deletes(self) -> bool {
        self != Purpose::Install
    }
}

impl Netlink {
    /// `ip route add DEST [via GW] [dev DEV] [onlink] [table T] [proto P] [scope S] [metric M]
    /// [src IP]`, `ip route add blackhole DEST`, or with `nexthop via … weight …` for multipath.
    /// Fails with EEXIST when the route is already there.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        self.install_route(route, NLM_F_CREATE | NLM_F_EXCL, "add route")
    }

    /// `ip route replace …`: creates the route or replaces the one with the same destination,
    /// table and metric.
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        self.install_route(route, NLM_F_CREATE | NLM_F_REPLACE, "replace route")
    }

    /// `ip route del DEST [via GW] [dev DEV] [table T] [proto P] [metric M]`. Fields that are
    /// set narrow the match; the protocol always does, so weft only removes routes it made.
    pub fn del_route(&mut self, route: &Route) -> Result<()> {
        let message = route_message(route, Purpose::Delete)?;
        self.socket
            .request(RouteNetlinkMessage::DelRoute(message), 0)
            .map(drop)
            .map_err(|f| f.into_error("delete route", describe(route)))
    }

    /// Unicast and blackhole routes, optionally of one family and one table:
    /// `ip [-4|-6] route show table T|all`. Cached (cloned) routes are left out.
    pub fn routes(&mut self, family: Option<IpFamily>, table: Option<u32>) -> Result<Vec<Route>> {
        Ok(self
            .raw_routes(family)?
            .into_iter()
            .filter_map(|(kind, route)| match kind {
                RouteType::Unicast | RouteType::BlackHole => Some(route),
                _ => None,
            })
            .filter(|route| table.is_none_or(|t| route.table == t))
            .collect())
    }

    /// `ip route get DEST`: the interface the kernel would send a packet to `destination`
    /// out of (policy rules and all tables considered, as for a real packet), or `None`
    /// when it has no route there (ENETUNREACH, EHOSTUNREACH).
    pub fn route_get_oif(&mut self, destination: IpAddr) -> Result<Option<u32>> {
        let mut request = RouteMessage::default();
        let (family, len) = match destination {
            IpAddr::V4(_) => (AddressFamily::Inet, 32),
            IpAddr::V6(_) => (AddressFamily::Inet6, 128),
        };
        request.header.address_family = family;
        request.header.destination_prefix_length = len;
        request
            .attributes
            .push(RouteAttribute::Destination(destination.into()));
        let replies = match self
            .socket
            .request(RouteNetlinkMessage::GetRoute(request), 0)
        {
            Ok(replies) => replies,
            Err(f) => {
                let e = f.into_error("look up route", destination.to_string());
                return match e.errno() {
                    Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => Ok(None),
                    _ => Err(e),
                };
            }
        };
        // The answer is a cloned (cache) route, which `parse_route` leaves out: read its
        // output interface directly.
        Ok(replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Unreachable routes of one table, `ip route show type unreachable table T`. Kept apart
    /// from [`Netlink::routes`], whose callers treat every route that is not a blackhole as
    /// one that forwards.
    pub fn unreachable_routes(&mut self, table: u32) -> Result<Vec<Route>> {
        Ok(self
            .raw_routes(None)?
            .into_iter()
            .filter(|(kind, route)| *kind == RouteType::Unreachable && route.table == table)
            .map(|(_, route)| route)
            .collect())
    }

    /// Every route of every type, with its kernel type (local, broadcast, … included).
    pub(super) fn raw_routes(
        &mut self,
        family: Option<IpFamily>,
    ) -> Result<Vec<(RouteType, Route)>> {
        let mut request = RouteMessage::default();
        request.header.address_family = match family {
            Some(f) => address_family(f),
            None => AddressFamily::Unspec,
        };
        let replies = self
            .socket
            .dump(&RouteNetlinkMessage::GetRoute(request))
            .map_err(|f| f.into_error("dump routes", "all"))?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse_route(r),
                _ => None,
            })
            .filter(|(_, route)| family.is_none_or(|f| route.family() == f))
            .collect())
    }

    fn install_route(&mut self, route: &Route, flags: u16, op: &'static str) -> Result<()> {
        let message = route_message(route, Purpose::Install)?;
        self.socket
            .request(RouteNetlinkMessage::NewRoute(message), flags)
            .map(drop)
            .map_err(|f| f.into_error(op, describe(route)))
    }
}

/// `10.1.0.0/24 via 10.0.0.1 dev 3 table 100` for messages.
pub(super) fn describe(route: &Route) -> String {
    let mut text = match route.kind {
        RouteKind::Blackhole => format!("blackhole {}", route.destination),
        RouteKind::Unreachable => format!("unreachable {}", route.destination),
        RouteKind::Unicast => route.destination.to_string(),
    };
    if let Some(gateway) = route.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if let Some(oif) = route.oif {
        text.push_str(&format!(" dev ifindex {oif}"));
    }
    for hop in &route.multipath {
        text.push_str(" nexthop");
        if let Some(gateway) = hop.gateway {
            text.push_str(&format!(" via {gateway}"));
        }
        if let Some(oif) = hop.oif {
            text.push_str(&format!(" dev ifindex {oif}"));
        }
    }
    if route.table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        text.push_str(&format!(" table {}", route.table));
    }
    text
}

fn address_family(family: IpFamily) -> AddressFamily {
    match family {
        IpFamily::V4 => AddressFamily::Inet,
        IpFamily::V6 => AddressFamily::Inet6,
    }
}

/// Checks what the kernel would refuse with a less helpful message.
fn validate(route: &Route) -> Result<()> {
    let invalid = |reason: String| {
        Err(DriverError::Invalid(format!(
            "route {}: {reason}",
            describe(route)
        )))
    };
    if route.destination != route.destination.trunc() {
        return invalid(format!(
            "the destination has host bits set: use {}",
            route.destination.trunc()
        ));
    }
    if route.table == 0 {
        return invalid("table 0 is not a routing table: use 254 for main".into());
    }
    // A gateway of the other family is fine (sent as RTA_VIA); a preferred source is not.
    if let Some(source) = route.source.filter(|s| IpFamily::of(*s) != route.family()) {
        return invalid(format!(
            "source {source} is not of the destination's address family"
        ));
    }
    if route.kind != RouteKind::Unicast && (route.gateway.is_some() || !route.multipath.is_empty())
    {
        return invalid(format!(
            "a{} route has no gateway",
            match route.kind {
                RouteKind::Unreachable => "n unreachable",
                _ => " blackhole",
            }
        ));
    }
    Ok(())
}

/// The request for `route`, checked first. A gateway of the other family than the destination
/// (an IPv6 route via an IPv4-mapped next hop's IPv4 address) is sent as RTA_VIA.
pub(super) fn route_message(route: &Route, purpose: Purpose) -> Result<RouteMessage> {
    validate(route)?;
    let family = route.family();
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = address_family(family);
    header.destination_prefix_length = route.destination.prefix_len();
    // Tables above 255 only fit in RTA_TABLE; the header then says RT_TABLE_UNSPEC.
    header.table = u8::try_from(route.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    header.protocol = RouteProtocol::from(route.protocol);
    header.kind = match (route.kind, purpose.deletes()) {
        (RouteKind::Blackhole, _) => RouteType::BlackHole,
        (RouteKind::Unreachable, _) => RouteType::Unreachable,
        (RouteKind::Unicast, false) => RouteType::Unicast,
        (RouteKind::Unicast, true) => RouteType::Unspec,
    };
    header.scope = RouteScope::from(if purpose.deletes() {
        SCOPE_ANY
    } else {
        route.scope
    });
    if route.onlink {
        header.flags |= RouteFlags::Onlink;
    }
    let attributes = &mut message.attributes;
    if route.destination.prefix_len() > 0 {
        attributes.push(RouteAttribute::Destination(route.destination.addr().into()));
    }
    attributes.push(RouteAttribute::Table(route.table));
    if let Some(metric) = route.metric {
        attributes.push(RouteAttribute::Priority(metric));
    }
    if purpose == Purpose::DeleteByPrefix {
        return Ok(message);
    }
    if route.multipath.is_empty() {
        if let Some(gateway) = route.gateway {
            attributes.push(gateway_attribute(family, gateway));
        }
        if let Some(oif) = route.oif {
            attributes.push(RouteAttribute::Oif(oif));
        }
    } else {
        attributes.push(RouteAttribute::MultiPath(
            route
                .multipath
                .iter()
                .map(|hop| next_hop_message(family, hop))
                .collect(),
        ));
    }
    if let Some(source) = route.source {
        attributes.push(RouteAttribute::PrefSource(source.into()));
    }
    Ok(message)
}

/// RTA_GATEWAY, or RTA_VIA for a gateway of the other family.
fn gateway_attribute(family: IpFamily, gateway: IpAddr) -> RouteAttribute {
    if IpFamily::of(gateway) == family {
        return RouteAttribute::Gateway(gateway.into());
    }
    RouteAttribute::Via(match gateway {
        IpAddr::V4(v4) => RouteVia::Inet(v4),
        IpAddr::V6(v6) => RouteVia::Inet6(v6),
    })
}

fn next_hop_message(family: IpFamily, hop: &NextHop) -> RouteNextHop {
    let mut message = RouteNextHop::default();
    // rtnh_hops holds weight - 1.
    message.hops = hop.weight.max(1) - 1;
    message.interface_index = hop.oif.unwrap_or(0);
    if hop.onlink {
        message.flags |= RouteNextHopFlags::Onlink;
    }
    if let Some(gateway) = hop.gateway {
        message.attributes.push(gateway_attribute(family, gateway));
    }
    message
}

/// The route and its kernel type; `None` for families other than IPv4/IPv6 and for cached
/// (cloned) entries.
pub(super) fn parse_route(message: &RouteMessage) -> Option<(RouteType, Route)> {
    let header = &message.header;
    if header.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let unspecified: IpAddr = match header.address_family {
        AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let mut destination = unspecified;
    let mut route = Route::new(IpNet::new(unspecified, 0).ok()?);
    route.table = u32::from(header.table);
    route.protocol = u8::from(header.protocol);
    route.scope = u8::from(header.scope);
    route.kind = match header.kind {
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Unreachable => RouteKind::Unreachable,
        _ => RouteKind::Unicast,
    };
    route.onlink = header.flags.contains(RouteFlags::Onlink);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(address) => destination = ip_of(address)?,
            RouteAttribute::Gateway(address) => route.gateway = ip_of(address),
            RouteAttribute::Via(via) => route.gateway = via_ip(via),
            RouteAttribute::Oif(oif) => route.oif = Some(*oif),
            RouteAttribute::Table(table) => route.table = *table,
            RouteAttribute::Priority(metric) => route.metric = Some(*metric),
            RouteAttribute::PrefSource(address) => route.source = ip_of(address),
            RouteAttribute::MultiPath(hops) => {
                route.multipath = hops.iter().map(parse_next_hop).collect()
            }
            _ => {}
        }
    }
    route.destination = IpNet::new(destination, header.destination_prefix_length).ok()?;
    Some((header.kind, route))
}

fn parse_next_hop(hop: &RouteNextHop) -> NextHop {
    NextHop {
        gateway: hop.attributes.iter().find_map(|a| match a {
            RouteAttribute::Gateway(address) => ip_of(address),
            RouteAttribute::Via(via) => via_ip(via),
            _ => None,
        }),
        oif: (hop.interface_index != 0).then_some(hop.interface_index),
        onlink: hop.flags.contains(RouteNextHopFlags::Onlink),
        weight: hop.hops.saturating_add(1),
    }
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some((*ip).into()),
        RouteAddress::Inet6(ip) => Some((*ip).into()),
        _ => None,
    }
}

fn via_ip(via: &RouteVia) -> Option<IpAddr> {
    match via {
        RouteVia::Inet(ip) => Some((*ip).into()),
        RouteVia::Inet6(ip) => Some((*ip).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip_through_the_message_format() {
        let mut route = Route::new(net("10.20.0.0/16"));
        route.table = 1000;
        route.protocol = 77;
        route.metric = Some(50);
        route.multipath = vec![
            NextHop::via("192.0.2.1".parse().unwrap(), Some(3)),
            NextHop {
                weight: 3,
                onlink: true,
                ..NextHop::via("192.0.2.2".parse().unwrap(), Some(4))
            },
        ];
        let message = route_message(&route, Purpose::Install).unwrap();
        assert_eq!(message.header.table, RouteHeader::RT_TABLE_UNSPEC);
        let (kind, parsed) = parse_route(&message).unwrap();
        assert_eq!(kind, RouteType::Unicast);
        assert_eq!(parsed, route);
    }

    #[test]
    fn blackhole_v6_round_trip() {
        let mut route = Route::new(net("fd00:1::/48"));
        route.kind = RouteKind::Blackhole;
        route.table = 100;
        let (kind, parsed) =
            parse_route(&route_message(&route, Purpose::Install).unwrap()).unwrap();
        assert_eq!(kind, RouteType::BlackHole);
        assert_eq!(parsed, route);
    }

    #[test]
    fn unreachable_round_trip_and_delete_by_type() {
        let mut route = Route::new(net("10.244.3.0/24"));
        route.kind = RouteKind::Unreachable;
        route.protocol = 87;
        let (kind, parsed) =
            parse_route(&route_message(&route, Purpose::Install).unwrap()).unwrap();
        assert_eq!(kind, RouteType::Unreachable);
        assert_eq!(parsed, route);
        // A delete names the type, so it never removes a unicast route to the same place.
        let message = route_message(&route, Purpose::Delete).unwrap();
        assert_eq!(message.header.kind, RouteType::Unreachable);
        route.gateway = Some("192.0.2.1".parse().unwrap());
        let e = route_message(&route, Purpose::Install)
            .unwrap_err()
            .to_string();
        assert!(e.contains("an unreachable route has no gateway"), "{e}");
    }

    #[test]
    fn delete_matches_any_scope_and_type() {
        let route = Route::new(net("10.0.0.0/8"));
        let message = route_message(&route, Purpose::Delete).unwrap();
        assert_eq!(u8::from(message.header.scope), SCOPE_ANY);
        assert_eq!(message.header.kind, RouteType::Unspec);
    }

    #[test]
    fn bad_routes_are_refused_before_the_kernel() {
        assert!(
            route_message(&Route::new(net("10.0.0.1/8")), Purpose::Install)
                .unwrap_err()
                .to_string()
                .contains("use 10.0.0.0/8")
        );
        let mut mixed = Route::new(net("10.0.0.0/8"));
        mixed.source = Some("fd00::1".parse().unwrap());
        assert!(route_message(&mixed, Purpose::Install)
            .unwrap_err()
            .to_string()
            .contains("source fd00::1"));
        let mut no_table = Route::new(net("10.0.0.0/8"));
        no_table.table = 0;
        assert!(route_message(&no_table, Purpose::Install).is_err());
    }

    #[test]
    fn cross_family_gateway_becomes_via_and_parses_back() {
        let mut route = Route::new(net("fd10::/64"));
        route.gateway = Some("192.168.0.2".parse().unwrap());
        route.oif = Some(3);
        let message = route_message(&route, Purpose::Install).unwrap();
        assert!(message
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Via(RouteVia::Inet(_)))));
        assert_eq!(parse_route(&message).unwrap().1, route);
    }

    #[test]
    fn delete_by_prefix_carries_no_next_hop() {
        let mut route = Route::new(net("10.9.0.0/24"));
        route.gateway = Some("10.0.0.1".parse().unwrap());
        route.oif = Some(3);
        route.protocol = 87;
        route.metric = Some(10);
        let loose = route_message(&route, Purpose::DeleteByPrefix).unwrap();
        assert_eq!(u8::from(loose.header.protocol), 87);
        assert!(loose
            .attributes
            .iter()
            .all(|a| !matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_))));
        assert!(loose.attributes.contains(&RouteAttribute::Priority(10)));
        let narrow = route_message(&route, Purpose::Delete).unwrap();
        assert!(narrow
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Gateway(_))));
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let mut route = Route::new(net("0.0.0.0/0"));
        route.gateway = Some("10.0.0.1".parse().unwrap());
        let message = route_message(&route, Purpose::Install).unwrap();
        assert!(!message
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        assert_eq!(parse_route(&message).unwrap().1, route);
    }
}
