//! IP-in-IP tunnel devices (Calico-style `tunl`): one device per host, no fixed remote, so a
//! route `via PEER dev TUNNEL onlink` chooses the outer destination per packet.
//!
//! Kernels built without `ipip` answer "Unknown device type" (EOPNOTSUPP); that is reported
//! as [`DriverError::Unsupported`] with what to do, not as a netlink failure.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::link::{InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkInfo};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::validate_name;
use super::{Netlink, Result};
use crate::error::DriverError;

/// What a kernel without ipip support is told to do.
const IPIP_HINT: &str = "load the ipip module (modprobe ipip) or use encapsulation none/vxlan";

impl Netlink {
    /// Creates an IPIP tunnel device without a fixed remote and returns its index:
    /// `ip link add NAME [mtu M] type ipip [local IP] [dev DEV]`. The device is left down.
    ///
    /// On a kernel without ipip this fails with [`DriverError::Unsupported`] and creates
    /// nothing.
    pub fn add_ipip(
        &mut self,
        name: &str,
        local: Option<Ipv4Addr>,
        dev: Option<u32>,
        mtu: Option<u32>,
    ) -> Result<u32> {
        validate_name(name)?;
        let mut data = Vec::new();
        if let Some(local) = local {
            data.push(InfoIpTunnel::Local(IpAddr::V4(local)));
        }
        if let Some(dev) = dev {
            data.push(InfoIpTunnel::Link(dev));
        }
        // Path MTU discovery keeps the DF bit of the inner packet on the outer one.
        data.push(InfoIpTunnel::PMtuDisc(true));
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::IpIp),
            LinkInfo::Data(InfoData::IpTunnel(data)),
        ]));
        self.socket
            .request(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .map_err(|f| {
                if f.errno == libc::EOPNOTSUPP {
                    unsupported()
                } else {
                    f.into_error("add link", format!("{name} (ipip)"))
                }
            })?;
        match self.link_by_name(name)? {
            Some(link) => Ok(link.index),
            None => Err(DriverError::Invalid(format!(
                "ipip tunnel {name} was created but is gone again; retry"
            ))),
        }
    }
}

fn unsupported() -> DriverError {
    DriverError::Unsupported {
        feature: "ipip tunnels".into(),
        hint: IPIP_HINT.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread inside a fresh network namespace; None (with the reason printed)
    /// when not root.
    fn in_new_netns<R: Send>(f: impl FnOnce() -> R + Send) -> Option<R> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIPPED: needs root to create a network namespace");
            return None;
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
                f()
            })
            .join()
            .unwrap()
        })
        .into()
    }

    #[test]
    fn bad_names_are_refused_before_the_kernel() {
        // Opening a netlink socket needs no privilege; the name is refused before any request.
        let mut nl = Netlink::open().unwrap();
        let e = nl.add_ipip("a/b", None, None, None).unwrap_err();
        assert!(e.to_string().contains("invalid interface name"), "{e}");
    }

    #[test]
    fn ipip_is_created_or_reported_unsupported_and_nothing_is_left() {
        let result = in_new_netns(|| {
            let mut nl = Netlink::open().unwrap();
            let made = nl.add_ipip(
                "tunl-test",
                Some(Ipv4Addr::new(192, 0, 2, 1)),
                None,
                Some(1480),
            );
            let present = nl.link_by_name("tunl-test").unwrap();
            (made, present)
        });
        let Some((made, present)) = result else {
            return;
        };
        match made {
            Ok(index) => {
                // A kernel with ipip: the device is there, with the MTU asked for.
                let link = present.expect("created tunnel is listed");
                assert_eq!(
                    (link.index, link.kind.as_str(), link.mtu),
                    (index, "ipip", 1480)
                );
            }
            Err(e) => {
                assert!(
                    matches!(&e, DriverError::Unsupported { feature, hint }
                        if feature == "ipip tunnels" && hint.contains("modprobe ipip")),
                    "{e:?}"
                );
                assert!(
                    e.to_string().contains("the kernel lacks ipip tunnels"),
                    "{e}"
                );
                assert_eq!(present, None, "a failed creation leaves nothing behind");
            }
        }
    }
}
