//! What address space the host already uses, so IPAM can skip default pools that overlap it.

use ipnet::IpNet;
use netlink_packet_route::route::RouteType;

use super::{Netlink, Result};

/// RT_TABLE_LOCAL: the kernel's own local and broadcast routes.
const TABLE_LOCAL: u32 = 255;

impl Netlink {
    /// Every route destination (all tables, except the local table and default routes) and
    /// the network of every address, sorted and without duplicates — what `ip route show table
    /// all` and `ip addr` together cover.
    pub fn host_prefixes(&mut self) -> Result<Vec<IpNet>> {
        let routes = self.raw_routes(None)?;
        let addresses = self.addresses(None)?;
        let mut prefixes: Vec<IpNet> = routes
            .into_iter()
            .filter(|(kind, route)| {
                route.table != TABLE_LOCAL
                    && route.destination.prefix_len() > 0
                    && !matches!(
                        kind,
                        RouteType::Local
                            | RouteType::Broadcast
                            | RouteType::Multicast
                            | RouteType::Anycast
                    )
            })
            .map(|(_, route)| route.destination)
            .chain(addresses.into_iter().map(|(_, address)| address.trunc()))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        Ok(prefixes)
    }
}
