//! The CNM model as drivers see it: a network, an endpoint on it, the sandbox it joins.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One subnet of a network with its gateway, as IPAM handed them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    pub subnet: IpNet,
    /// Gateway with the subnet's prefix length (the address put on the bridge).
    pub gateway: Option<IpNet>,
    pub ip_range: Option<IpNet>,
    /// IPAM pool the subnet came from (empty when another IPAM driver owns it).
    #[serde(default)]
    pub pool_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 lowercase hex characters (Docker's network id, or generated).
    pub id: String,
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    pub subnets: Vec<SubnetInfo>,
    /// Driver options (`com.docker.network.bridge.name`, `com.docker.network.driver.mtu`, …).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Network {
    pub fn v4_subnets(&self) -> impl Iterator<Item = &SubnetInfo> {
        self.subnets
            .iter()
            .filter(|s| matches!(s.subnet, IpNet::V4(_)))
    }
    pub fn v6_subnets(&self) -> impl Iterator<Item = &SubnetInfo> {
        self.subnets
            .iter()
            .filter(|s| matches!(s.subnet, IpNet::V6(_)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
    /// IANA protocol number (Docker's `com.docker.network.portmap` uses these).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            other => Err(format!("unknown protocol {other:?}: use tcp, udp or sctp")),
        }
    }
}

/// One published port, resolved: a single host port (ranges are expanded before they get here,
/// and host port 0 has been replaced by the port picked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    /// `None` = every address of the host (0.0.0.0 / ::).
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Docker's scheme: 02:42 followed by the IPv4 address; a random locally administered one
    /// when there is none.
    pub fn from_ipv4(ip: std::net::Ipv4Addr) -> Self {
        let o = ip.octets();
        MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad =
            || format!("invalid MAC address {s:?}: expected six hex octets like 02:42:ac:11:00:02");
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(bad());
            }
            m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if m[0] & 1 == 1 {
            return Err(format!(
                "invalid MAC address {s}: it is a multicast address"
            ));
        }
        Ok(MacAddr(m))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where an endpoint's container side lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sandbox {
    /// A network namespace file (`/run/netns/x`, `/proc/PID/ns/net`): the driver creates the
    /// container side directly inside it and configures addresses and routes there.
    Netns(PathBuf),
    /// Docker: the driver leaves the container side in the host namespace under a temporary name;
    /// the engine moves, renames and configures it from what `join` returns.
    Delegated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// 64 lowercase hex characters (Docker's endpoint id, or derived).
    pub id: String,
    pub network_id: String,
    /// Container addresses with the subnet's prefix length.
    pub addresses: Vec<IpNet>,
    pub mac: MacAddr,
    /// Interface name inside the sandbox.
    pub ifname: String,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Set once joined.
    #[serde(default)]
    pub sandbox: Option<Sandbox>,
    /// Driver options for this endpoint.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Endpoint {
    pub fn v4(&self) -> Option<std::net::Ipv4Addr> {
        self.addresses.iter().find_map(|a| match a.addr() {
            IpAddr::V4(v) => Some(v),
            _ => None,
        })
    }
    pub fn v6(&self) -> Option<std::net::Ipv6Addr> {
        self.addresses.iter().find_map(|a| match a.addr() {
            IpAddr::V6(v) => Some(v),
            _ => None,
        })
    }
}
