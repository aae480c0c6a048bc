//! Typed, synchronous rtnetlink over `netlink-packet-route` and `netlink-sys`.
//!
//! A `Netlink` handle is bound to the network namespace it was opened in (the socket keeps that
//! namespace for its whole life), so one process can drive the host and many sandboxes at once
//! without switching namespaces per call. Dumps interrupted by `NLM_F_DUMP_INTR` are retried.
//! Each method's doc names the `ip` / `bridge` command it equals.
//!
//! The handle is synchronous on purpose: the CLI and the CNI plugin are one-shot processes, and a
//! container attach costs a handful of round trips of a few microseconds each.

mod address;
pub mod batch;
mod errors;
mod fdb;
mod host;
mod link;
mod neighbour;
mod route;
mod socket;
mod tunnel;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::DriverError;
use crate::model::MacAddr;
use crate::netns::Netns;

type Result<T> = std::result::Result<T, DriverError>;

/// The route protocol number (RTPROT_*) of every route weft programs, so weft can find, replace
/// and remove exactly its own routes (`ip route show proto 87`).
pub const WEFT_PROTOCOL: u8 = 87;

/// One link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    /// Interface index (`ifindex`), unique within its namespace.
    pub index: u32,
    /// Interface name (IFLA_IFNAME).
    pub name: String,
    /// `bridge`, `veth`, `vxlan`, … (IFLA_INFO_KIND); empty for physical/loopback.
    pub kind: String,
    /// IFLA_MTU.
    pub mtu: u32,
    /// Hardware address (IFLA_ADDRESS) when it is an Ethernet-style 6-byte address.
    pub mac: Option<MacAddr>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Index of the bridge this link is a port of.
    pub master: Option<u32>,
    /// IFLA_IFALIAS: weft marks what it owns with `weft:<object id>`.
    pub alias: Option<String>,
}

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethEnd {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// MTU; the kernel default (1500) when `None`.
    pub mtu: Option<u32>,
    /// MAC address; random when `None`.
    pub mac: Option<MacAddr>,
    /// IFLA_IFALIAS to set after creation.
    pub alias: Option<String>,
}

impl VethEnd {
    /// An end with only a name; kernel defaults for the rest.
    pub fn new(name: impl Into<String>) -> Self {
        VethEnd {
            name: name.into(),
            mtu: None,
            mac: None,
            alias: None,
        }
    }
}

/// A VXLAN device to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port (4789 is the IANA port, 8472 the Linux/flannel default).
    pub port: u16,
    /// Underlay source address of this host's VTEP.
    pub local: Option<IpAddr>,
    /// Underlay device.
    pub dev_index: Option<u32>,
    /// MTU; the kernel derives one from the underlay when `None`.
    pub mtu: Option<u32>,
    /// MAC address; random when `None`.
    pub mac: Option<MacAddr>,
    /// Address learning off for flannel-style static entries.
    pub learning: bool,
}

/// Whether an IPv4 or an IPv6 object is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum IpFamily {
    /// AF_INET.
    V4,
    /// AF_INET6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }
}

/// The route types weft programs (RTN_*). Other types (local, broadcast, unreachable, …) are
/// not returned by [`Netlink::routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum RouteKind {
    /// RTN_UNICAST: forward via a gateway or a device.
    #[default]
    Unicast,
    /// RTN_BLACKHOLE: drop silently.
    Blackhole,
    /// RTN_UNREACHABLE: drop and tell the sender (ICMP host unreachable; a local sender's
    /// `connect`/`sendto` fails at once with EHOSTUNREACH), `ip route add unreachable DEST`.
    Unreachable,
}

/// One next hop of a multipath (ECMP) route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NextHop {
    /// Gateway address (`via`).
    pub gateway: Option<IpAddr>,
    /// Output interface (`dev`).
    pub oif: Option<u32>,
    /// RTNH_F_ONLINK: the gateway is on the link even without a covering subnet.
    pub onlink: bool,
    /// Relative weight, 1 to 255 (`weight`); 0 counts as 1.
    pub weight: u8,
}

impl NextHop {
    /// A next hop via `gateway` on `oif` with weight 1.
    pub fn via(gateway: IpAddr, oif: Option<u32>) -> Self {
        NextHop {
            gateway: Some(gateway),
            oif,
            onlink: false,
            weight: 1,
        }
    }
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// Destination prefix; host bits must be zero.
    pub destination: IpNet,
    /// Gateway (`via`).
    pub gateway: Option<IpAddr>,
    /// Output interface (`dev`).
    pub oif: Option<u32>,
    /// Main table is 254.
    pub table: u32,
    /// RTPROT_*; weft uses its own number for routes it programs.
    pub protocol: u8,
    /// RT_SCOPE_*: 0 universe, 253 link.
    pub scope: u8,
    /// Route type.
    pub kind: RouteKind,
    /// RTNH_F_ONLINK (`onlink`).
    pub onlink: bool,
    /// Priority (`metric`); the kernel's default (0 for IPv4, 1024 for IPv6) when `None`.
    pub metric: Option<u32>,
    /// Preferred source address (`src`).
    pub source: Option<IpAddr>,
    /// ECMP next hops; when non-empty, `gateway`/`oif` are unused.
    pub multipath: Vec<NextHop>,
}

impl Route {
    /// A main-table unicast route with boot protocol and universe scope; adjust fields as needed.
    pub fn new(destination: IpNet) -> Self {
        Route {
            destination,
            gateway: None,
            oif: None,
            table: 254,
            protocol: 3,
            scope: 0,
            kind: RouteKind::Unicast,
            onlink: false,
            metric: None,
            source: None,
            multipath: Vec::new(),
        }
    }

    /// The route's address family.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.destination.addr())
    }
}

/// One IPv4 ARP / IPv6 NDP neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Neighbour {
    /// Interface the neighbour is on.
    pub ifindex: u32,
    /// Neighbour's IP address.
    pub address: IpAddr,
    /// Link-layer address (`lladdr`); `None` while unresolved.
    pub mac: Option<MacAddr>,
    /// NUD_PERMANENT (never expires) rather than a dynamic entry.
    pub permanent: bool,
}

/// One forwarding-database entry of a device itself (NTF_SELF), e.g. a VXLAN remote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FdbEntry {
    /// Device (a VXLAN interface).
    pub ifindex: u32,
    /// Destination MAC; all zeros is the default entry used for unknown/broadcast traffic.
    pub mac: MacAddr,
    /// VXLAN remote (`dst`).
    pub destination: Option<IpAddr>,
    /// NUD_PERMANENT rather than a dynamic entry.
    pub permanent: bool,
}

/// Bridge-port settings as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BridgePort {
    /// Index of the bridge.
    pub bridge: u32,
    /// IFLA_BRPORT_MODE: frames may be sent back out of the port they came in on.
    pub hairpin: bool,
    /// IFLA_BRPORT_ISOLATED: no forwarding to other isolated ports.
    pub isolated: bool,
}

/// A NETLINK_ROUTE socket bound to one network namespace, plus its request sequence counter.
pub struct Netlink {
    socket: socket::Channel,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<Netlink> {
        let socket = socket::Channel::open().map_err(|e| DriverError::Netlink {
            op: "open socket",
            object: "NETLINK_ROUTE".into(),
            message: format!("{e}"),
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        Ok(Netlink { socket })
    }

    /// Opens a socket inside `ns`. The socket stays bound to that namespace while the calling
    /// thread stays where it is (the socket is made on a short-lived helper thread).
    pub fn open_in(ns: &Netns) -> Result<Netlink> {
        ns.run(Netlink::open)?
    }
}
