//! Links: list, look up, create (bridge, veth, vxlan), configure, delete.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth,
    InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkProtoInfoBridge,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::errors::Failure;
use super::{BridgePort, Link, Netlink, Result, VethEnd, VxlanSpec};
use crate::error::DriverError;
use crate::model::MacAddr;
use crate::netns::Netns;

/// `IFNAMSIZ - 1`.
const MAX_NAME_LEN: usize = 15;
/// `IFALIASZ - 1`.
const MAX_ALIAS_LEN: usize = 255;
const MAX_VNI: u32 = (1 << 24) - 1;
/// Bridge-port attributes inside IFLA_PROTINFO (`<linux/if_link.h>`).
const IFLA_BRPORT_MODE: u16 = 4;
const IFLA_BRPORT_ISOLATED: u16 = 33;

impl Netlink {
    /// Every link of the namespace: `ip link show`.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let replies = self
            .socket
            .dump(&request)
            .map_err(|f| f.into_error("dump links", "all"))?;
        Ok(replies
            .iter()
            .filter_map(as_link)
            .filter_map(parse_link)
            .collect())
    }

    /// The link called `name`, if any: `ip link show dev NAME`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        self.get_link(message, name)
    }

    /// The link with interface index `index`, if any: `ip link show` filtered by index.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        self.get_link(link_message(index), &format!("ifindex {index}"))
    }

    /// Creates a bridge with STP off and forward delay 0 and returns its index:
    /// `ip link add NAME [mtu M] [address MAC] type bridge stp_state 0 forward_delay 0` (then
    /// `ip link set NAME alias ALIAS`). Nothing is left behind on failure.
    pub fn add_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        alias: Option<&str>,
    ) -> Result<u32> {
        validate_name(name)?;
        alias.map(validate_alias).transpose()?;
        let mut message = LinkMessage::default();
        message.attributes = base_attributes(name, mtu, mac);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::StpState(BridgeStpState::Disabled),
                InfoBridge::ForwardDelay(0),
            ])),
        ]));
        let index = self.create_link(message, name, "bridge", name)?;
        if let Some(alias) = alias {
            self.rollback_on_error(index, |nl| nl.set_alias(index, alias))?;
        }
        Ok(index)
    }

    /// Creates a veth pair and returns the index of the host end:
    /// `ip link add HOST type veth peer name PEER [netns NS]`. With `peer_ns` the peer is created
    /// directly inside that namespace (IFLA_NET_NS_FD in the peer's info), never visible in this
    /// one. Aliases are set afterwards; on any failure the pair is deleted.
    pub fn add_veth(
        &mut self,
        host: &VethEnd,
        peer: &VethEnd,
        peer_ns: Option<&Netns>,
    ) -> Result<u32> {
        validate_name(&host.name)?;
        validate_name(&peer.name)?;
        for alias in [&host.alias, &peer.alias].into_iter().flatten() {
            validate_alias(alias)?;
        }
        if peer_ns.is_none() && host.name == peer.name {
            return Err(DriverError::Invalid(format!(
                "veth {}: both ends have the same name in the same namespace; give the peer \
                 another name",
                host.name
            )));
        }
        let mut peer_message = LinkMessage::default();
        peer_message.attributes = base_attributes(&peer.name, peer.mtu, peer.mac);
        if let Some(ns) = peer_ns {
            peer_message
                .attributes
                .push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        }
        let mut message = LinkMessage::default();
        message.attributes = base_attributes(&host.name, host.mtu, host.mac);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        let object = match peer_ns {
            Some(ns) => format!(
                "{} (peer {} in {})",
                host.name,
                peer.name,
                ns.path().display()
            ),
            None => format!("{} (peer {})", host.name, peer.name),
        };
        let index = self.create_link(message, &host.name, "veth", &object)?;
        if let Some(alias) = &host.alias {
            self.rollback_on_error(index, |nl| nl.set_alias(index, alias))?;
        }
        if let Some(alias) = &peer.alias {
            self.rollback_on_error(index, |nl| match peer_ns {
                Some(ns) => Netlink::open_in(ns)?.set_alias_by_name(&peer.name, alias),
                None => nl.set_alias_by_name(&peer.name, alias),
            })?;
        }
        Ok(index)
    }

    /// Creates a VXLAN device and returns its index: `ip link add NAME [mtu M] [address MAC]
    /// type vxlan id VNI dstport PORT [local IP] [dev DEV] [nolearning]`.
    pub fn add_vxlan(&mut self, spec: &VxlanSpec) -> Result<u32> {
        validate_name(&spec.name)?;
        if spec.vni > MAX_VNI {
            return Err(DriverError::InvalidOption {
                key: "vni".into(),
                value: spec.vni.to_string(),
                reason: format!("a VXLAN id has 24 bits: use 0 to {MAX_VNI}"),
            });
        }
        let mut data = vec![
            InfoVxlan::Id(spec.vni),
            InfoVxlan::Port(spec.port),
            InfoVxlan::Learning(spec.learning),
        ];
        match spec.local {
            Some(IpAddr::V4(ip)) => data.push(InfoVxlan::Local(ip)),
            Some(IpAddr::V6(ip)) => data.push(InfoVxlan::Local6(ip)),
            None => {}
        }
        if let Some(dev) = spec.dev_index {
            data.push(InfoVxlan::Link(dev));
        }
        let mut message = LinkMessage::default();
        message.attributes = base_attributes(&spec.name, spec.mtu, spec.mac);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        let object = format!("{} (vni {})", spec.name, spec.vni);
        self.create_link(message, &spec.name, "vxlan", &object)
    }

    /// `ip link set dev DEV up`.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_link(index, "set link up", |m| {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        })
    }

    /// `ip link set dev DEV down`.
    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_link(index, "set link down", |m| {
            m.header.flags = LinkFlags::empty();
            m.header.change_mask = LinkFlags::Up;
        })
    }

    /// `ip link set dev DEV master BRIDGE`, or `nomaster` with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        self.set_link(index, "set link master", |m| {
            m.attributes
                .push(LinkAttribute::Controller(master.unwrap_or(0)));
        })
    }

    /// `ip link set dev DEV mtu MTU`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_link(index, "set link mtu", |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu))
        })
    }

    /// `ip link set dev DEV address MAC`.
    pub fn set_mac(&mut self, index: u32, mac: MacAddr) -> Result<()> {
        self.set_link(index, "set link address", |m| {
            m.attributes.push(LinkAttribute::Address(mac.0.to_vec()))
        })
    }

    /// `ip link set dev DEV alias ALIAS`; an empty alias removes it.
    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        self.set_link(index, "set link alias", |m| {
            m.attributes.push(LinkAttribute::IfAlias(alias.into()))
        })
    }

    /// `ip link set dev DEV name NAME` (the link must be down).
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        validate_name(name)?;
        self.set_link(index, "rename link", |m| {
            m.attributes.push(LinkAttribute::IfName(name.into()))
        })
    }

    /// `ip link set dev DEV netns NS`. The index may change in the new namespace; look the link
    /// up there by name.
    pub fn move_to_netns(&mut self, index: u32, ns: &Netns) -> Result<()> {
        self.set_link(index, "move link to netns", |m| {
            m.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()))
        })
    }

    /// `bridge link set dev PORT hairpin on|off isolated on|off` (RTM_SETLINK, AF_BRIDGE,
    /// IFLA_PROTINFO). The link must be a bridge port.
    pub fn set_bridge_port(&mut self, index: u32, hairpin: bool, isolated: bool) -> Result<()> {
        self.set_link(index, "set bridge port", |m| {
            m.header.interface_family = AddressFamily::Bridge;
            m.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
                brport_flag(IFLA_BRPORT_MODE, hairpin),
                brport_flag(IFLA_BRPORT_ISOLATED, isolated),
            ]));
        })
    }

    /// The bridge-port settings of `index`, `None` when it is not a bridge port:
    /// `bridge -d link show dev PORT`.
    pub fn bridge_port(&mut self, index: u32) -> Result<Option<BridgePort>> {
        let reply = self
            .socket
            .request(RouteNetlinkMessage::GetLink(link_message(index)), 0)
            .map_err(|f| f.into_error("show bridge port", format!("ifindex {index}")))?;
        Ok(reply.iter().filter_map(as_link).find_map(parse_bridge_port))
    }

    /// `ip link del dev DEV`. Deleting one end of a veth pair deletes both.
    pub fn del_link(&mut self, index: u32) -> Result<()> {
        self.socket
            .request(RouteNetlinkMessage::DelLink(link_message(index)), 0)
            .map(drop)
            .map_err(|f| f.into_error("delete link", format!("ifindex {index}")))
    }

    /// `ip link del dev NAME`, idempotent: `Ok(false)` when there is no such link.
    pub fn del_link_by_name(&mut self, name: &str) -> Result<bool> {
        if validate_name(name).is_err() {
            return Ok(false);
        }
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        match self
            .socket
            .request(RouteNetlinkMessage::DelLink(message), 0)
        {
            Ok(_) => Ok(true),
            Err(f) if f.errno == libc::ENODEV => Ok(false),
            Err(f) => Err(f.into_error("delete link", name)),
        }
    }

    fn set_alias_by_name(&mut self, name: &str, alias: &str) -> Result<()> {
        let link = self.link_by_name(name)?.ok_or_else(|| {
            Failure::kernel(libc::ENODEV, None).into_error("set link alias", name)
        })?;
        self.set_alias(link.index, alias)
    }

    fn get_link(&mut self, message: LinkMessage, object: &str) -> Result<Option<Link>> {
        match self
            .socket
            .request(RouteNetlinkMessage::GetLink(message), 0)
        {
            Ok(replies) => Ok(replies.iter().filter_map(as_link).find_map(parse_link)),
            Err(f) if f.errno == libc::ENODEV => Ok(None),
            Err(f) => Err(f.into_error("show link", object)),
        }
    }

    /// RTM_NEWLINK with CREATE|EXCL; the kernel echoes the new link (NLM_F_ECHO) so its index
    /// costs no extra round trip, with a lookup by name as the fallback for older kernels.
    fn create_link(
        &mut self,
        message: LinkMessage,
        name: &str,
        kind: &str,
        object: &str,
    ) -> Result<u32> {
        let flags = NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
        let replies = self
            .socket
            .request(RouteNetlinkMessage::NewLink(message), flags)
            .map_err(|f| creation_error(f, kind, object))?;
        let echoed = replies
            .iter()
            .filter_map(as_link)
            .filter_map(parse_link)
            .find(|link| link.name == name);
        match echoed {
            Some(link) => Ok(link.index),
            None => self.link_by_name(name)?.map(|l| l.index).ok_or_else(|| {
                Failure::kernel(
                    libc::ENODEV,
                    Some("created but not found afterwards".into()),
                )
                .into_error("add link", object)
            }),
        }
    }

    fn set_link(
        &mut self,
        index: u32,
        op: &'static str,
        configure: impl FnOnce(&mut LinkMessage),
    ) -> Result<()> {
        let mut message = link_message(index);
        configure(&mut message);
        match self
            .socket
            .request(RouteNetlinkMessage::SetLink(message), 0)
        {
            Ok(_) => Ok(()),
            Err(f) => {
                let object = self.describe(index);
                Err(f.into_error(op, object))
            }
        }
    }

    /// "veth1 (ifindex 7)" for error messages; only the index when the name cannot be had.
    fn describe(&mut self, index: u32) -> String {
        match self.link_by_index(index) {
            Ok(Some(link)) => format!("{} (ifindex {index})", link.name),
            _ => format!("ifindex {index}"),
        }
    }

    /// Runs a follow-up step of a creation; if it fails, the new link is deleted again.
    fn rollback_on_error(
        &mut self,
        index: u32,
        step: impl FnOnce(&mut Netlink) -> Result<()>,
    ) -> Result<()> {
        step(self).inspect_err(|_| {
            if let Err(e) = self.del_link(index) {
                tracing::warn!(index, error = %e, "rollback of a half-created link failed");
            }
        })
    }
}

fn link_message(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
}

fn base_attributes(name: &str, mtu: Option<u32>, mac: Option<MacAddr>) -> Vec<LinkAttribute> {
    let mut attributes = vec![LinkAttribute::IfName(name.into())];
    if let Some(mtu) = mtu {
        attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    attributes
}

fn brport_flag(kind: u16, on: bool) -> LinkProtoInfoBridge {
    LinkProtoInfoBridge::Other(DefaultNla::new(kind, vec![u8::from(on)]))
}

/// A missing link kind is a kernel capability problem, not a bad request.
fn creation_error(failure: Failure, kind: &str, object: &str) -> DriverError {
    if failure.errno == libc::EOPNOTSUPP {
        return DriverError::Unsupported {
            feature: format!("{kind} interfaces (creating {object})"),
            hint: format!(
                "the kernel answered \"Operation not supported\": load the {kind} module \
                 (modprobe {kind}) or use a kernel that has it"
            ),
        };
    }
    failure.into_error("add link", object)
}

/// Interface names are at most 15 bytes, with no `/`, `:` or whitespace, and not `.` or `..`.
pub(super) fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "invalid interface name {name:?}: use 1 to {MAX_NAME_LEN} bytes without '/', ':' \
             or spaces"
        )))
    }
}

fn validate_alias(alias: &str) -> Result<()> {
    if alias.len() <= MAX_ALIAS_LEN {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!(
            "interface alias {alias:?} is {} bytes long: the kernel keeps at most {MAX_ALIAS_LEN}",
            alias.len()
        )))
    }
}

fn as_link(message: &RouteNetlinkMessage) -> Option<&LinkMessage> {
    match message {
        RouteNetlinkMessage::NewLink(link) => Some(link),
        _ => None,
    }
}

pub(super) fn parse_link(message: &LinkMessage) -> Option<Link> {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        kind: String::new(),
        mtu: 0,
        mac: None,
        up: message.header.flags.contains(LinkFlags::Up),
        master: None,
        alias: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) => link.mac = mac_from(bytes),
            LinkAttribute::Controller(master) if *master != 0 => link.master = Some(*master),
            LinkAttribute::IfAlias(alias) if !alias.is_empty() => link.alias = Some(alias.clone()),
            LinkAttribute::LinkInfo(infos) => {
                if let Some(kind) = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                }) {
                    link.kind = kind;
                }
            }
            _ => {}
        }
    }
    (!link.name.is_empty()).then_some(link)
}

fn parse_bridge_port(message: &LinkMessage) -> Option<BridgePort> {
    let bridge = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(master) if *master != 0 => Some(*master),
        _ => None,
    })?;
    let settings = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::PortData(InfoPortData::BridgePort(settings)) => Some(settings),
            _ => None,
        }),
        _ => None,
    })?;
    let mut port = BridgePort {
        bridge,
        hairpin: false,
        isolated: false,
    };
    for setting in settings {
        match setting {
            InfoBridgePort::HairpinMode(on) => port.hairpin = *on,
            InfoBridgePort::Isolated(on) => port.isolated = *on,
            _ => {}
        }
    }
    Some(port)
}

pub(super) fn mac_from(bytes: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_before_the_kernel_sees_them() {
        for good in ["eth0", "br-0123456789ab", "eth0.100", "veth_a"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a-name-of-16-byt", "a/b", "a b", ".", "..", "x:1"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_parsing_reads_kind_master_alias() {
        let mut message = link_message(7);
        message.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        message.attributes = vec![
            LinkAttribute::IfName("vx0".into()),
            LinkAttribute::Mtu(1450),
            LinkAttribute::Address(vec![2, 0x42, 10, 0, 0, 1]),
            LinkAttribute::Controller(3),
            LinkAttribute::IfAlias("weft:abc".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Vxlan)]),
        ];
        let link = parse_link(&message).unwrap();
        assert_eq!(
            link,
            Link {
                index: 7,
                name: "vx0".into(),
                kind: "vxlan".into(),
                mtu: 1450,
                mac: Some(MacAddr([2, 0x42, 10, 0, 0, 1])),
                up: true,
                master: Some(3),
                alias: Some("weft:abc".into()),
            }
        );
    }

    #[test]
    fn missing_kind_module_is_unsupported() {
        let err = creation_error(Failure::kernel(libc::EOPNOTSUPP, None), "ipip", "tun0");
        assert!(matches!(err, DriverError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("modprobe ipip"), "{err}");
    }
}
