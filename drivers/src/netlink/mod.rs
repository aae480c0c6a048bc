//! Typed, synchronous rtnetlink over `netlink-packet-route` and `netlink-sys`.
//!
//! A `Netlink` handle is bound to the network namespace it was opened in (the socket keeps that
//! namespace for its whole life), so one process can drive the host and many sandboxes at once
//! without switching namespaces per call. Dumps interrupted by `NLM_F_DUMP_INTR` are retried.
//! Each method's doc names the `ip` / `bridge` command it equals.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::MacAddr;

/// One link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `bridge`, `veth`, `vxlan`, … (IFLA_INFO_KIND); empty for physical/loopback.
    pub kind: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub up: bool,
    /// Index of the bridge this link is a port of.
    pub master: Option<u32>,
    /// IFLA_IFALIAS: weft marks what it owns with `weft:<object id>`.
    pub alias: Option<String>,
}

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethEnd {
    pub name: String,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    /// Underlay source address of this host's VTEP.
    pub local: Option<IpAddr>,
    /// Underlay device.
    pub dev_index: Option<u32>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Address learning off for flannel-style static entries.
    pub learning: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum RouteKind {
    #[default]
    Unicast,
    Blackhole,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NextHop {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub onlink: bool,
    pub weight: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// Main table is 254.
    pub table: u32,
    /// RTPROT_*; weft uses its own number for routes it programs.
    pub protocol: u8,
    /// RT_SCOPE_*: 0 universe, 253 link.
    pub scope: u8,
    pub kind: RouteKind,
    pub onlink: bool,
    pub metric: Option<u32>,
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
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Neighbour {
    pub ifindex: u32,
    pub address: IpAddr,
    pub mac: Option<MacAddr>,
    pub permanent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FdbEntry {
    pub ifindex: u32,
    pub mac: MacAddr,
    /// VXLAN remote (`dst`).
    pub destination: Option<IpAddr>,
    pub permanent: bool,
}
