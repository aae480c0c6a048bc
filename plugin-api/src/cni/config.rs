//! The network configuration weft reads from stdin.
//!
//! Keys follow the reference `bridge` and `host-local` plugins where they have one:
//!
//! ```json
//! {
//!   "cniVersion": "1.1.0", "name": "mynet", "type": "weft",
//!   "bridge": "weft0",          // bridge name; default br-<first 12 hex of the network id>
//!   "mtu": 1500,                // default: the kernel's
//!   "ipMasq": true,             // default true (Docker's default, unlike the reference bridge)
//!   "hairpinMode": true,        // default true
//!   "isGateway": true,          // weft's bridge is always the gateway: false is refused
//!   "isDefaultGateway": true,   // containers always get a default route: false is refused
//!   "ipam": {
//!     "type": "weft",           // or absent: weft's own IPAM; any other type is delegated to
//!                               // that plugin in CNI_PATH (e.g. "host-local")
//!     "ranges": [[{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1",
//!                  "rangeStart": "10.1.0.128", "rangeEnd": "10.1.0.254"}],
//!                [{"subnet": "fd00:1::/64"}]],
//!     "subnet": "10.1.0.0/24",  // host-local's single-range form, also accepted
//!     "routes": [{"dst": "192.168.0.0/16"}]
//!   },
//!   "dns": {"nameservers": ["10.1.0.1"]},
//!   "capabilities": {"portMappings": true, "ips": true, "mac": true}
//! }
//! ```
//!
//! weft's own extra keys:
//! - `mode` (`"bridge"` or `"routed"`, default bridge): `routed` attaches containers the
//!   Calico way — no bridge, a /32 (/128) per container, a default route via 169.254.1.1;
//!   `bridge`, `hairpinMode` and `icc` do not apply, and ranges take no gateway.
//! - `icc` (bool, default true): containers of the network may reach each other (Docker's
//!   `enable_icc`; false isolates the bridge ports).
//! - `internal` (bool, default false): no traffic in or out of the network.
//! - `stateDir` (string, also accepted inside `ipam`): weft's state directory; default
//!   `$WEFT_STATE_DIR` or `/var/lib/weft`.
//! - `lockTimeout` (seconds, default 60): how long to wait for another weft process holding the
//!   state directory before answering "try again later" (code 11).
//! - `ipam.ranges[..][0].ipRange` (CIDR): narrows allocation like Docker's `--ip-range`;
//!   `rangeStart`/`rangeEnd` are accepted when they describe such a CIDR.
//! - `cluster` (string): attach to this host's part of a multi-host cluster network, the local
//!   network that `weft daemon --cluster NAME` keeps on the subnet the host leases (addresses
//!   from that subnet, the cluster's MTU, no masquerade toward the cluster). CNI never creates
//!   it: until the host has joined, ADD answers "try again later" (code 11). `name` may then
//!   differ from the cluster's. Leave out `ipam` ranges, `mtu` and `bridge`: given, they must be
//!   the cluster network's, like any config that names an existing network; `ipam.type` must be
//!   weft's. A config *named* after a cluster network attaches to it the same way once it
//!   exists; `cluster` also keeps an ADD that runs before the host has joined from creating an
//!   unrelated local network of that name.
//!
//!   ```json
//!   {"cniVersion": "1.1.0", "name": "pods", "type": "weft", "cluster": "c1"}
//!   ```
//!
//! Without any range, weft's IPAM picks a free default pool (Docker's 172.17-31.0.0/16 …). Each
//! range set holds exactly one range (weft gives one address per subnet); an IPv6 range turns
//! IPv6 on.
//!
//! Keys weft knows to belong elsewhere — `subnet`, `ranges`, `gateway`, `rangeStart`,
//! `rangeEnd`, `ipRange`, `routes` at the plugin level (they go in `ipam`), the bridge's keys
//! inside weft's `ipam` (they go at the plugin level) — are invalid config (code 7) on ADD and
//! CHECK, naming where they belong: ignoring them would quietly give the network a default
//! pool ([`misplaced_keys`]). Other unknown keys are logged as warnings and ignored (they may
//! be another plugin's or the runtime's: [`unknown_keys`]); known keys of the wrong type are
//! decoding errors (code 6);
//! impossible values are invalid config (code 7); reference-bridge features weft lacks (`vlan`,
//! `vlanTrunk`, `promiscMode`, `macspoofchk`, `disableContainerInterface`) are unsupported
//! fields (code 2).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;
use weft_drivers::{MacAddr, Protocol};

use super::args::parse_ip;
use super::error::CniError;
use super::fields::{kind, object_at, Obj};
use super::result::{parse_route, CniResult, RouteEntry};
use super::version::{self, Version};

/// The config's `type` (and IPAM `type`) that means weft.
pub const WEFT_TYPE: &str = "weft";

const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything weft reads from a network configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: results and errors answer in it.
    pub version: Version,
    /// `name`: the weft network's name (unless `cluster` names another).
    pub name: String,
    /// `cluster`: the cluster network whose local network the config attaches to.
    pub cluster: Option<String>,
    /// The plugin `type`: `weft`, or another plugin when weft serves as its IPAM.
    pub plugin_type: String,
    /// The bridge keys (defaults unless `type` is `weft`).
    pub bridge: BridgeConf,
    /// `ipam`.
    pub ipam: IpamConf,
    /// `dns`, passed through to the result.
    pub dns: Option<Value>,
    /// `runtimeConfig`.
    pub runtime: RuntimeConfig,
    /// `args.cni`.
    pub args: ConfArgs,
    /// `prevResult`: the chain's result so far (ADD), or the result to check or undo.
    pub prev_result: Option<CniResult>,
    /// `stateDir`.
    pub state_dir: Option<PathBuf>,
    /// `lockTimeout`.
    pub lock_timeout: Duration,
    /// GC: the attachments the runtime still knows (both spellings of the key, merged).
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The bridge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConf {
    /// `bridge`: the bridge's name; `None` = the driver's `br-<id>`.
    pub bridge: Option<String>,
    /// `mtu`: of the bridge and the veths; `None` = the kernel's default.
    pub mtu: Option<u32>,
    /// `ipMasq`: masquerade traffic leaving the network.
    pub ip_masq: bool,
    /// `hairpinMode`: a container reaches itself through its published ports.
    pub hairpin: bool,
    /// `icc`: containers of the network reach each other.
    pub icc: bool,
    /// `internal`: nothing in or out of the network.
    pub internal: bool,
    /// `mode`: `"bridge"` (default) or `"routed"` (weft's Calico-style driver: no bridge, /32
    /// host routes, link-local gateway).
    pub routed: bool,
}

/// Where addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamKind {
    /// weft's own IPAM, in weft's store.
    Weft,
    /// Another IPAM plugin, found in `CNI_PATH`.
    Plugin(String),
}

/// The `ipam` section as weft reads it. For a delegated plugin only `type` is read: the rest is
/// that plugin's business.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamConf {
    pub kind: IpamKind,
    /// One per range set; empty = one default IPv4 pool.
    pub ranges: Vec<Range>,
    pub routes: Vec<RouteEntry>,
    pub state_dir: Option<PathBuf>,
    pub dns: Option<Value>,
}

/// One subnet to allocate from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub gateway: Option<IpAddr>,
    /// Where automatic allocation picks from (a CIDR inside the subnet).
    pub ip_range: Option<IpNet>,
}

/// `runtimeConfig`: what the runtime passes for declared capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<PortMap>,
    pub ips: Vec<IpAddr>,
    pub mac: Option<MacAddr>,
}

/// One `runtimeConfig.portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMap {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None` = every host address.
    pub host_ip: Option<IpAddr>,
}

/// `args.cni` (the CNI conventions' per-container arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfArgs {
    pub ips: Vec<IpAddr>,
    pub mac: Option<MacAddr>,
}

/// One attachment a runtime still uses (GC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The plugin-level keys weft reads (or refuses, or knows to leave to the runtime).
const PLUGIN_KEYS: &[&str] = &[
    "cniVersion",
    "name",
    "type",
    "bridge",
    "mtu",
    "ipMasq",
    "hairpinMode",
    "isGateway",
    "isDefaultGateway",
    "ipam",
    "dns",
    "capabilities",
    "runtimeConfig",
    "args",
    "prevResult",
    "stateDir",
    "lockTimeout",
    "mode",
    "icc",
    "internal",
    "cluster",
    "vlan",
    "vlanTrunk",
    "promiscMode",
    "macspoofchk",
    "disableContainerInterface",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
];

/// The keys of weft's own `ipam` section.
const IPAM_KEYS: &[&str] = &[
    "type",
    "ranges",
    "subnet",
    "gateway",
    "rangeStart",
    "rangeEnd",
    "ipRange",
    "routes",
    "stateDir",
    "dns",
];

/// Plugin-level keys that belong in `ipam`, and where exactly.
const IPAM_KEYS_AT_PLUGIN_LEVEL: &[(&str, &str)] = &[
    (
        "subnet",
        r#""ipam": {"ranges": [[{"subnet": …}]]} (or "ipam": {"subnet": …})"#,
    ),
    ("ranges", r#""ipam": {"ranges": …}"#),
    (
        "gateway",
        r#"the range: "ipam": {"ranges": [[{"subnet": …, "gateway": …}]]}"#,
    ),
    (
        "rangeStart",
        r#"the range: "ipam": {"ranges": [[{"subnet": …, "rangeStart": …}]]}"#,
    ),
    (
        "rangeEnd",
        r#"the range: "ipam": {"ranges": [[{"subnet": …, "rangeEnd": …}]]}"#,
    ),
    (
        "ipRange",
        r#"the range: "ipam": {"ranges": [[{"subnet": …, "ipRange": …}]]}"#,
    ),
    ("routes", r#""ipam": {"routes": …}"#),
];

/// Keys of the plugin (the bridge) that weft's `ipam` section cannot carry.
const PLUGIN_KEYS_IN_IPAM: &[&str] = &[
    "bridge",
    "mtu",
    "ipMasq",
    "hairpinMode",
    "isGateway",
    "isDefaultGateway",
    "icc",
    "internal",
    "mode",
    "cluster",
];

/// Keys weft knows to be in the wrong place, as one invalid-config error (code 7) that names
/// each, its value and where it belongs; `Ok` when there are none. A `subnet` next to
/// `"type": "weft"` instead of inside `ipam` is the classic: ignored, it would leave the network
/// on a default pool (172.17.0.0/16) with no word said. Only the sections that are weft's are
/// judged: the plugin level when `type` is weft, `ipam` when its type is weft.
pub fn misplaced_keys(root: &Value) -> Result<(), CniError> {
    let o = Obj::root(root, "the network configuration")?;
    let mut found = Vec::new();
    if o.raw("type").and_then(Value::as_str) == Some(WEFT_TYPE) {
        for (key, place) in IPAM_KEYS_AT_PLUGIN_LEVEL {
            if let Some(v) = o.raw(key) {
                found.push(format!(
                    "{key} ({v}) is at the plugin level, where weft does not read it; it belongs in {place}"
                ));
            }
        }
    }
    if let Some(ipam) = o.object("ipam")? {
        let weft_ipam = ipam
            .raw("type")
            .and_then(Value::as_str)
            .is_none_or(|t| t.is_empty() || t == WEFT_TYPE);
        if weft_ipam {
            for key in PLUGIN_KEYS_IN_IPAM {
                if let Some(v) = ipam.raw(key) {
                    found.push(format!(
                        "{} ({v}) is inside \"ipam\", where weft does not read it; it belongs at the plugin level, next to \"type\"",
                        ipam.at(key)
                    ));
                }
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(CniError::InvalidConfig(format!(
        "misplaced configuration keys: {}",
        found.join("; ")
    )))
}

/// The keys of weft's own sections that weft does not know, by path (`"ipamm"`,
/// `"ipam.subnets"`), for a warning: they may be meant for another plugin or the runtime, or be
/// a misspelling. Keys [`misplaced_keys`] reports are not listed again.
pub fn unknown_keys(root: &Value) -> Vec<String> {
    let Ok(o) = Obj::root(root, "the network configuration") else {
        return Vec::new();
    };
    let mut unknown = Vec::new();
    if o.raw("type").and_then(Value::as_str) == Some(WEFT_TYPE) {
        unknown.extend(
            o.keys()
                .filter(|k| !PLUGIN_KEYS.contains(k))
                .filter(|k| !IPAM_KEYS_AT_PLUGIN_LEVEL.iter().any(|(m, _)| m == k))
                .map(|k| o.at(k)),
        );
    }
    if let Ok(Some(ipam)) = o.object("ipam") {
        let weft_ipam = ipam
            .raw("type")
            .and_then(Value::as_str)
            .is_none_or(|t| t.is_empty() || t == WEFT_TYPE);
        if weft_ipam {
            unknown.extend(
                ipam.keys()
                    .filter(|k| !IPAM_KEYS.contains(k) && !PLUGIN_KEYS_IN_IPAM.contains(k))
                    .map(|k| ipam.at(k)),
            );
        }
    }
    unknown
}

/// Parses stdin as JSON (code 6 when it is not).
pub fn parse_json(stdin: &[u8]) -> Result<Value, CniError> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::Decoding(
            "stdin is empty: the network configuration must be passed on stdin".into(),
        ));
    }
    serde_json::from_slice(stdin).map_err(|e| {
        CniError::Decoding(format!(
            "the network configuration on stdin is not valid JSON: {e}"
        ))
    })
}

/// The config's `cniVersion` (code 1 when absent or not spoken by weft).
pub fn version_of(root: &Value) -> Result<Version, CniError> {
    match root.get("cniVersion") {
        None | Some(Value::Null) => Err(CniError::IncompatibleVersion(format!(
            "the configuration has no cniVersion; weft speaks {}",
            version::supported_list()
        ))),
        Some(Value::String(s)) => s.parse().map_err(CniError::IncompatibleVersion),
        Some(other) => Err(CniError::Decoding(format!(
            "cniVersion: expected a string, found {}",
            kind(other)
        ))),
    }
}

impl NetConf {
    /// Reads the whole configuration.
    pub fn parse(root: &Value) -> Result<NetConf, CniError> {
        let o = Obj::root(root, "the network configuration")?;
        let version = version_of(root)?;
        let name: String = o
            .get("name")?
            .ok_or_else(|| CniError::InvalidConfig("the configuration has no name".into()))?;
        weft_engine::ids::check_name(&name)
            .map_err(|e| CniError::InvalidConfig(format!("name: {e}")))?;
        let plugin_type: String = o
            .get("type")?
            .ok_or_else(|| CniError::InvalidConfig("the configuration has no type".into()))?;
        let ipam = parse_ipam(&o)?;
        let mut conf = NetConf {
            version,
            name,
            cluster: None,
            plugin_type,
            bridge: BridgeConf::default(),
            ipam,
            dns: dns(&o)?,
            runtime: parse_runtime(&o)?,
            args: parse_args(&o)?,
            prev_result: match o.raw("prevResult") {
                None => None,
                Some(v) => Some(CniResult::parse(v, "prevResult")?),
            },
            state_dir: o.get::<PathBuf>("stateDir")?,
            lock_timeout: match o.get::<f64>("lockTimeout")? {
                None => DEFAULT_LOCK_TIMEOUT,
                Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
                Some(s) => {
                    return Err(CniError::InvalidConfig(format!(
                        "lockTimeout: {s} is not a number of seconds"
                    )))
                }
            },
            valid_attachments: attachments(&o)?,
        };
        if conf.plugin_type == WEFT_TYPE {
            conf.bridge = parse_bridge(&o)?;
            conf.cluster = parse_cluster(&o, &conf.ipam)?;
        }
        Ok(conf)
    }

    /// The weft network the config attaches to: the cluster's local network when `cluster` is
    /// given (it is named after the cluster), else the network called `name`.
    pub fn network(&self) -> &str {
        self.cluster.as_deref().unwrap_or(&self.name)
    }

    /// The state directory the config names (top level first, then `ipam`).
    pub fn configured_state_dir(&self) -> Option<&PathBuf> {
        self.state_dir.as_ref().or(self.ipam.state_dir.as_ref())
    }

    /// Static addresses the runtime asked for: `runtimeConfig.ips`, else `args.cni.ips`.
    pub fn static_ips(&self) -> &[IpAddr] {
        if self.runtime.ips.is_empty() {
            &self.args.ips
        } else {
            &self.runtime.ips
        }
    }

    /// The MAC the runtime asked for: `runtimeConfig.mac`, else `args.cni.mac`.
    pub fn mac(&self) -> Option<MacAddr> {
        self.runtime.mac.or(self.args.mac)
    }
}

impl Default for BridgeConf {
    fn default() -> Self {
        BridgeConf {
            bridge: None,
            mtu: None,
            ip_masq: true,
            hairpin: true,
            icc: true,
            internal: false,
            routed: false,
        }
    }
}

fn unsupported(key: &str, value: &Value, reason: &str) -> CniError {
    CniError::UnsupportedField {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Reference-bridge features weft does not have: refused rather than silently ignored.
fn refuse_unsupported(o: &Obj) -> Result<(), CniError> {
    let set = |key: &str, is_set: &dyn Fn(&Value) -> bool, why: &str| match o.raw(key) {
        Some(v) if is_set(v) => Err(unsupported(key, v, why)),
        _ => Ok(()),
    };
    let truthy = |v: &Value| v.as_bool() == Some(true);
    let falsy = |v: &Value| v.as_bool() == Some(false);
    set(
        "vlan",
        &|v| v.as_i64() != Some(0),
        "weft bridges do not tag VLANs",
    )?;
    set(
        "vlanTrunk",
        &|v| v.as_array().is_none_or(|a| !a.is_empty()),
        "weft bridges do not trunk VLANs",
    )?;
    set(
        "promiscMode",
        &truthy,
        "weft does not put bridges in promiscuous mode",
    )?;
    set("macspoofchk", &truthy, "weft has no MAC spoof check")?;
    set(
        "disableContainerInterface",
        &truthy,
        "weft always brings the container interface up",
    )?;
    set(
        "isGateway",
        &falsy,
        "a weft bridge always holds its network's gateway addresses",
    )?;
    set(
        "isDefaultGateway",
        &falsy,
        "weft always gives containers a default route via the bridge (use \"internal\": true for none)",
    )?;
    Ok(())
}

fn parse_bridge(o: &Obj) -> Result<BridgeConf, CniError> {
    refuse_unsupported(o)?;
    let d = BridgeConf::default();
    let mtu = match o.get::<u32>("mtu")? {
        None | Some(0) => None,
        Some(m) if (68..=65535).contains(&m) => Some(m),
        Some(m) => {
            return Err(CniError::InvalidConfig(format!(
                "mtu: {m} is not an MTU from 68 to 65535"
            )))
        }
    };
    let bridge = o.get::<String>("bridge")?.filter(|b| !b.is_empty());
    if let Some(b) = &bridge {
        super::env::check_ifname(b).map_err(|_| {
            CniError::InvalidConfig(format!(
                "bridge: {b:?} is not an interface name (1 to 15 bytes, no '/', ':' or whitespace)"
            ))
        })?;
    }
    let routed = match o.get::<String>("mode")?.as_deref() {
        None | Some("bridge") => false,
        Some("routed") => true,
        Some(other) => {
            return Err(CniError::InvalidConfig(format!(
                "mode: {other:?} is not a weft mode; use \"bridge\" or \"routed\""
            )))
        }
    };
    if routed && bridge.is_some() {
        return Err(CniError::InvalidConfig(
            "bridge: a routed network has no bridge; drop the key or use mode \"bridge\"".into(),
        ));
    }
    Ok(BridgeConf {
        routed,
        bridge,
        mtu,
        ip_masq: o.get("ipMasq")?.unwrap_or(d.ip_masq),
        hairpin: o.get("hairpinMode")?.unwrap_or(d.hairpin),
        icc: o.get("icc")?.unwrap_or(d.icc),
        internal: o.get("internal")?.unwrap_or(d.internal),
    })
}

/// `cluster`: a network name, and addresses from weft's pool of the cluster network.
fn parse_cluster(o: &Obj, ipam: &IpamConf) -> Result<Option<String>, CniError> {
    let Some(cluster) = o.get::<String>("cluster")? else {
        return Ok(None);
    };
    weft_engine::ids::check_name(&cluster)
        .map_err(|e| CniError::InvalidConfig(format!("cluster: {e}")))?;
    if let IpamKind::Plugin(plugin) = &ipam.kind {
        return Err(CniError::InvalidConfig(format!(
            "cluster {cluster}: its addresses come from weft's pool of this host's subnet, not from the {plugin} plugin; drop ipam.type"
        )));
    }
    Ok(Some(cluster))
}

fn dns(o: &Obj) -> Result<Option<Value>, CniError> {
    match o.raw("dns") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(v) => Err(CniError::Decoding(format!(
            "{}: expected an object, found {}",
            o.at("dns"),
            kind(v)
        ))),
    }
}

fn parse_ipam(o: &Obj) -> Result<IpamConf, CniError> {
    let Some(ipam) = o.object("ipam")? else {
        return Ok(IpamConf {
            kind: IpamKind::Weft,
            ranges: Vec::new(),
            routes: Vec::new(),
            state_dir: None,
            dns: None,
        });
    };
    let kind = match ipam.get::<String>("type")? {
        None => IpamKind::Weft,
        Some(t) if t == WEFT_TYPE => IpamKind::Weft,
        Some(t) if t.is_empty() => IpamKind::Weft,
        Some(t) => IpamKind::Plugin(t),
    };
    let state_dir = ipam.get::<PathBuf>("stateDir")?;
    if let IpamKind::Plugin(_) = kind {
        return Ok(IpamConf {
            kind,
            ranges: Vec::new(),
            routes: Vec::new(),
            state_dir,
            dns: None,
        });
    }
    Ok(IpamConf {
        kind,
        ranges: parse_ranges(&ipam)?,
        routes: parse_routes(&ipam)?,
        state_dir,
        dns: dns(&ipam)?,
    })
}

fn parse_routes(ipam: &Obj) -> Result<Vec<RouteEntry>, CniError> {
    let Some(list) = ipam.get::<Vec<Value>>("routes")? else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            parse_route(r)
                .map_err(|e| CniError::InvalidConfig(format!("{}[{i}]: {e}", ipam.at("routes"))))
        })
        .collect()
}

/// host-local's two forms: `ranges: [[range]]`, or one range's keys directly in `ipam`.
fn parse_ranges(ipam: &Obj) -> Result<Vec<Range>, CniError> {
    let mut out = Vec::new();
    if let Some(sets) = ipam.get::<Vec<Vec<Value>>>("ranges")? {
        for (i, set) in sets.iter().enumerate() {
            let at = format!("{}[{i}]", ipam.at("ranges"));
            match set.as_slice() {
                [one] => out.push(parse_range(&object_at(one, format!("{at}[0]"))?)?),
                [] => {
                    return Err(CniError::InvalidConfig(format!(
                        "{at} is an empty range set"
                    )))
                }
                more => {
                    return Err(unsupported(
                        &at,
                        &Value::Array(more.to_vec()),
                        "weft allocates from one range per range set; give each subnet its own set",
                    ))
                }
            }
        }
    }
    if ipam.raw("subnet").is_some() {
        if !out.is_empty() {
            return Err(CniError::InvalidConfig(format!(
                "{} and {} are both given; use one form",
                ipam.at("subnet"),
                ipam.at("ranges")
            )));
        }
        out.push(parse_range(ipam)?);
    }
    for (i, a) in out.iter().enumerate() {
        if let Some(b) = out[..i]
            .iter()
            .find(|b| weft_ipam::overlaps(&a.subnet, &b.subnet))
        {
            return Err(CniError::InvalidConfig(format!(
                "{}: subnets {} and {} overlap",
                ipam.at("ranges"),
                b.subnet,
                a.subnet
            )));
        }
    }
    Ok(out)
}

fn parse_range(r: &Obj) -> Result<Range, CniError> {
    let invalid = |key: &str, why: String| CniError::InvalidConfig(format!("{}: {why}", r.at(key)));
    let subnet: String = r
        .get("subnet")?
        .ok_or_else(|| invalid("subnet", "is missing".into()))?;
    let subnet: IpNet = subnet
        .parse()
        .map_err(|_| invalid("subnet", format!("{subnet:?} is not a subnet in CIDR form")))?;
    let subnet = subnet.trunc();
    let ip = |key: &str| -> Result<Option<IpAddr>, CniError> {
        match r.get::<String>(key)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => {
                let ip = parse_ip(&s)
                    .ok_or_else(|| invalid(key, format!("{s:?} is not an IP address")))?;
                if !subnet.contains(&ip) {
                    return Err(invalid(key, format!("{ip} is outside subnet {subnet}")));
                }
                Ok(Some(ip))
            }
        }
    };
    let gateway = ip("gateway")?;
    let (start, end) = (ip("rangeStart")?, ip("rangeEnd")?);
    let explicit: Option<IpNet> = match r.get::<String>("ipRange")? {
        None => None,
        Some(s) => {
            let n: IpNet = s
                .parse()
                .map_err(|_| invalid("ipRange", format!("{s:?} is not a CIDR")))?;
            if !subnet.contains(&n) {
                return Err(invalid(
                    "ipRange",
                    format!("{n} is not inside subnet {subnet}"),
                ));
            }
            Some(n.trunc())
        }
    };
    let from_bounds = match (start, end) {
        (None, None) => None,
        _ => Some(range_cidr(subnet, start, end, gateway).ok_or_else(|| {
            unsupported(
                &r.at("rangeStart"),
                &Value::String(format!(
                    "{}-{}",
                    start.map(|i| i.to_string()).unwrap_or_default(),
                    end.map(|i| i.to_string()).unwrap_or_default()
                )),
                "weft narrows allocation to a CIDR: give rangeStart/rangeEnd that span exactly one (e.g. 10.1.0.128-10.1.0.254 in a /24), or ipRange",
            )
        })?),
    };
    if explicit.is_some() && from_bounds.is_some() {
        return Err(CniError::InvalidConfig(format!(
            "{}: give ipRange or rangeStart/rangeEnd, not both",
            r.path().trim_end_matches('.')
        )));
    }
    Ok(Range {
        subnet,
        gateway,
        ip_range: explicit.or(from_bounds).filter(|n| *n != subnet),
    })
}

/// The CIDR whose allocatable addresses are exactly `start..=end` (missing bounds meaning the
/// subnet's ends). The allocator never hands out the network and broadcast addresses or the
/// gateway, so a range that stops just short of those still matches.
pub fn range_cidr(
    subnet: IpNet,
    start: Option<IpAddr>,
    end: Option<IpAddr>,
    gateway: Option<IpAddr>,
) -> Option<IpNet> {
    let (host_first, host_last) = weft_ipam::alloc::host_bounds(&subnet);
    // The network and broadcast addresses are never handed out: a bound on them means the
    // next host address.
    let s = num(start.unwrap_or(host_first)).max(num(host_first));
    let e = num(end.unwrap_or(host_last)).min(num(host_last));
    let start = start.unwrap_or(host_first);
    if s > e {
        return None;
    }
    let max = subnet.max_prefix_len();
    (subnet.prefix_len()..=max).rev().find_map(|len| {
        let cidr = IpNet::new(start, len).ok()?.trunc();
        if !(num(cidr.network()) <= e && e <= num(cidr.broadcast())) {
            return None;
        }
        let (a, b) = weft_ipam::alloc::allocation_bounds(&subnet, Some(&cidr))?;
        let (a, b) = (num(a), num(b));
        // Allocatable addresses of the CIDR outside start..=end: none, or just the gateway
        // (which is never handed out anyway).
        let only_gateway = |lo: u128, hi_exclusive: u128| match hi_exclusive.saturating_sub(lo) {
            0 => true,
            1 => gateway.map(num) == Some(lo),
            _ => false,
        };
        (a <= s
            && e <= b
            && only_gateway(a, s)
            && only_gateway(e.saturating_add(1), b.saturating_add(1)))
        .then_some(cidr)
    })
}

fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u32::from(v).into(),
        IpAddr::V6(v) => v.into(),
    }
}

#[derive(Deserialize)]
struct RawPortMap {
    #[serde(rename = "hostPort")]
    host_port: u16,
    #[serde(rename = "containerPort")]
    container_port: u16,
    #[serde(default)]
    protocol: Option<String>,
    #[serde(rename = "hostIP", default)]
    host_ip: Option<String>,
}

fn parse_runtime(o: &Obj) -> Result<RuntimeConfig, CniError> {
    let Some(rc) = o.object("runtimeConfig")? else {
        return Ok(RuntimeConfig::default());
    };
    let mut out = RuntimeConfig::default();
    for (i, p) in rc
        .get::<Vec<RawPortMap>>("portMappings")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let at = format!("{}[{i}]", rc.at("portMappings"));
        let protocol = match p.protocol.as_deref() {
            None | Some("") => Protocol::Tcp,
            Some(s) => s
                .parse()
                .map_err(|e| CniError::InvalidConfig(format!("{at}.protocol: {e}")))?,
        };
        let host_ip = match p.host_ip.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                CniError::InvalidConfig(format!("{at}.hostIP: {s:?} is not an IP address"))
            })?),
        }
        .filter(|ip| !ip.is_unspecified());
        if p.container_port == 0 {
            return Err(CniError::InvalidConfig(format!(
                "{at}.containerPort: 0 is not a port"
            )));
        }
        out.port_mappings.push(PortMap {
            host_port: p.host_port,
            container_port: p.container_port,
            protocol,
            host_ip,
        });
    }
    out.ips = ip_list(&rc, "ips")?;
    out.mac = mac(&rc, "mac")?;
    Ok(out)
}

fn parse_args(o: &Obj) -> Result<ConfArgs, CniError> {
    let Some(args) = o.object("args")? else {
        return Ok(ConfArgs::default());
    };
    let Some(cni) = args.object("cni")? else {
        return Ok(ConfArgs::default());
    };
    Ok(ConfArgs {
        ips: ip_list(&cni, "ips")?,
        mac: mac(&cni, "mac")?,
    })
}

fn ip_list(o: &Obj, key: &str) -> Result<Vec<IpAddr>, CniError> {
    o.get::<Vec<String>>(key)?
        .unwrap_or_default()
        .iter()
        .map(|s| {
            parse_ip(s).ok_or_else(|| {
                CniError::InvalidConfig(format!("{}: {s:?} is not an IP address", o.at(key)))
            })
        })
        .collect()
}

fn mac(o: &Obj, key: &str) -> Result<Option<MacAddr>, CniError> {
    match o.get::<String>(key)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e| CniError::InvalidConfig(format!("{}: {e}", o.at(key)))),
    }
}

fn attachments(o: &Obj) -> Result<Option<Vec<Attachment>>, CniError> {
    // 1.1.0 names the key cni.dev/valid-attachments; drafts (and libcni, for safety) also send
    // cni.dev/attachments.
    let a = o.get::<Vec<Attachment>>("cni.dev/valid-attachments")?;
    let b = o.get::<Vec<Attachment>>("cni.dev/attachments")?;
    Ok(match (a, b) {
        (None, None) => None,
        (a, b) => {
            let mut all = a.unwrap_or_default();
            for x in b.unwrap_or_default() {
                if !all.contains(&x) {
                    all.push(x);
                }
            }
            Some(all)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::error::{
        DECODING_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG, UNSUPPORTED_FIELD,
    };
    use serde_json::json;

    fn conf(v: Value) -> Result<NetConf, CniError> {
        NetConf::parse(&v)
    }

    fn base() -> Value {
        json!({"cniVersion": "1.0.0", "name": "n1", "type": "weft"})
    }

    fn with(extra: Value) -> Value {
        let mut b = base();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    }

    #[test]
    fn minimal_config_gets_dockers_defaults() {
        let c = conf(base()).unwrap();
        assert_eq!(c.version, Version::V1_0_0);
        assert_eq!(c.bridge, BridgeConf::default());
        assert!(c.bridge.ip_masq && c.bridge.hairpin && c.bridge.icc);
        assert_eq!(c.ipam.kind, IpamKind::Weft);
        assert!(c.ipam.ranges.is_empty());
        assert_eq!(c.lock_timeout, DEFAULT_LOCK_TIMEOUT);
    }

    #[test]
    fn cluster_names_the_network_to_attach_to() {
        let c = conf(with(json!({"name": "pods", "cluster": "c1"}))).unwrap();
        assert_eq!(c.cluster.as_deref(), Some("c1"));
        assert_eq!(c.network(), "c1");
        assert_eq!(conf(base()).unwrap().network(), "n1");
        let e = conf(with(json!({"cluster": "a b"}))).unwrap_err();
        assert_eq!(e.code(), INVALID_CONFIG);
        assert!(e.to_string().contains("cluster"), "{e}");
        let e = conf(with(json!({"cluster": 5}))).unwrap_err();
        assert_eq!(e.code(), DECODING_FAILURE);
        let e = conf(with(
            json!({"cluster": "c1", "ipam": {"type": "host-local"}}),
        ))
        .unwrap_err();
        assert_eq!(e.code(), INVALID_CONFIG);
        assert!(e.to_string().contains("drop ipam.type"), "{e}");
        // Under another plugin the key is that plugin's business.
        let c = conf(
            json!({"cniVersion": "1.0.0", "name": "n1", "type": "bridge",
            "cluster": 5, "ipam": {"type": "weft", "subnet": "10.1.0.0/24"}}),
        )
        .unwrap();
        assert_eq!(c.cluster, None);
    }

    #[test]
    fn reads_the_reference_keys_and_weft_extras() {
        let c = conf(with(json!({
            "bridge": "wb0", "mtu": 1400, "ipMasq": false, "hairpinMode": false,
            "isGateway": true, "icc": false, "internal": true, "stateDir": "/tmp/s",
            "lockTimeout": 0.5, "someoneElsesKey": [1, {"x": 2}],
            "ipam": {"type": "weft", "ranges": [
                [{"subnet": "10.1.0.0/24", "gateway": "10.1.0.1", "rangeStart": "10.1.0.128", "rangeEnd": "10.1.0.254"}],
                [{"subnet": "fd00:1::/64"}]],
                "routes": [{"dst": "192.168.0.0/16"}]},
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": "127.0.0.1"}],
                              "ips": ["10.1.0.7/24"], "mac": "02:00:00:00:00:07", "bandwidth": {}},
            "args": {"cni": {"ips": ["10.1.0.8"]}},
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth0"}]
        })))
        .unwrap();
        assert_eq!(c.bridge.bridge.as_deref(), Some("wb0"));
        assert_eq!(c.bridge.mtu, Some(1400));
        assert!(!c.bridge.ip_masq && !c.bridge.hairpin && !c.bridge.icc && c.bridge.internal);
        assert_eq!(c.ipam.ranges.len(), 2);
        assert_eq!(
            c.ipam.ranges[0].ip_range,
            Some("10.1.0.128/25".parse().unwrap())
        );
        assert_eq!(c.ipam.routes[0].dst.to_string(), "192.168.0.0/16");
        assert_eq!(c.runtime.port_mappings[0].protocol, Protocol::Udp);
        assert_eq!(c.static_ips(), &["10.1.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(c.valid_attachments.unwrap().len(), 2);
        assert_eq!(c.lock_timeout, Duration::from_millis(500));
    }

    #[test]
    fn host_local_single_range_form_and_delegation() {
        let c = conf(with(json!({"ipam": {"subnet": "10.2.0.0/16"}}))).unwrap();
        assert_eq!(c.ipam.ranges[0].subnet.to_string(), "10.2.0.0/16");
        let d = conf(with(
            json!({"ipam": {"type": "host-local", "ranges": "whatever host-local wants"}}),
        ))
        .unwrap();
        assert_eq!(d.ipam.kind, IpamKind::Plugin("host-local".into()));
    }

    #[test]
    fn errors_carry_the_right_codes() {
        let code = |v: Value| conf(v).unwrap_err().code();
        assert_eq!(
            code(json!({"name": "n", "type": "weft"})),
            INCOMPATIBLE_VERSION
        );
        assert_eq!(
            code(with(json!({"cniVersion": "0.2.0"}))),
            INCOMPATIBLE_VERSION
        );
        assert_eq!(code(with(json!({"mtu": "big"}))), DECODING_FAILURE);
        assert_eq!(code(with(json!({"ipMasq": "yes"}))), DECODING_FAILURE);
        assert_eq!(code(with(json!({"ipam": []}))), DECODING_FAILURE);
        assert_eq!(
            code(with(json!({"prevResult": {"ips": 5}}))),
            DECODING_FAILURE
        );
        assert_eq!(
            code(with(
                json!({"runtimeConfig": {"portMappings": [{"hostPort": "x"}]}})
            )),
            DECODING_FAILURE
        );
        assert_eq!(code(with(json!({"mtu": 9}))), INVALID_CONFIG);
        assert_eq!(code(with(json!({"name": "bad name"}))), INVALID_CONFIG);
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "type": "weft"})),
            INVALID_CONFIG
        );
        assert_eq!(
            code(with(json!({"ipam": {"subnet": "10.0.0.0/33"}}))),
            INVALID_CONFIG
        );
        assert_eq!(
            code(with(
                json!({"ipam": {"subnet": "10.0.0.0/24", "gateway": "10.9.0.1"}})
            )),
            INVALID_CONFIG
        );
        assert_eq!(
            code(with(
                json!({"ipam": {"ranges": [[{"subnet": "10.0.0.0/16"}], [{"subnet": "10.0.1.0/24"}]]}})
            )),
            INVALID_CONFIG
        );
        assert_eq!(code(with(json!({"vlan": 100}))), UNSUPPORTED_FIELD);
        assert_eq!(code(with(json!({"isGateway": false}))), UNSUPPORTED_FIELD);
        assert_eq!(code(with(json!({"promiscMode": true}))), UNSUPPORTED_FIELD);
        assert_eq!(
            code(with(
                json!({"ipam": {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.1.0/24"}]]}})
            )),
            UNSUPPORTED_FIELD
        );
        assert_eq!(
            code(with(
                json!({"ipam": {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.20"}})
            )),
            UNSUPPORTED_FIELD
        );
        let e = conf(with(json!({"vlan": 100}))).unwrap_err().to_string();
        assert!(e.contains("vlan") && e.contains("100"), "{e}");
    }

    #[test]
    fn a_subnet_at_the_plugin_level_is_invalid_config_naming_where_it_belongs() {
        let e = misplaced_keys(&with(json!({"subnet": "10.88.0.0/16"}))).unwrap_err();
        assert_eq!(e.code(), INVALID_CONFIG);
        let m = e.to_string();
        assert!(
            m.contains("subnet (\"10.88.0.0/16\") is at the plugin level"),
            "{m}"
        );
        assert!(m.contains("ipam") && m.contains("ranges"), "{m}");
        // Every misplaced key is named at once.
        let m = misplaced_keys(&with(json!({
            "gateway": "10.88.0.1", "routes": [],
            "ipam": {"ranges": [[{"subnet": "10.88.0.0/16"}]], "ipMasq": false}
        })))
        .unwrap_err()
        .to_string();
        assert!(
            m.contains("gateway (\"10.88.0.1\")") && m.contains("\"ipam\": {\"routes\""),
            "{m}"
        );
        assert!(
            m.contains("ipam.ipMasq (false) is inside \"ipam\"") && m.contains("plugin level"),
            "{m}"
        );
    }

    #[test]
    fn placement_is_judged_only_in_weft_sections() {
        assert!(misplaced_keys(&base()).is_ok());
        assert!(misplaced_keys(&with(json!({"ipam": {"subnet": "10.88.0.0/16"}}))).is_ok());
        // weft as another plugin's IPAM: the plugin level is that plugin's.
        let other = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                           "subnet": "10.1.0.0/16", "ipam": {"type": "weft", "subnet": "10.1.0.0/16"}});
        assert!(misplaced_keys(&other).is_ok());
        // A delegated IPAM's section is that plugin's.
        let delegated = with(json!({"ipam": {"type": "host-local", "mtu": 1400}}));
        assert!(misplaced_keys(&delegated).is_ok());
        assert!(unknown_keys(&delegated).is_empty());
    }

    #[test]
    fn unknown_keys_are_listed_by_path_for_a_warning() {
        let v = with(json!({
            "ipMasqq": true, "subnet": "10.1.0.0/16", "runtimeConfig": {},
            "ipam": {"subnets": [], "subnet": "10.2.0.0/16", "bridge": "x"}
        }));
        assert_eq!(
            unknown_keys(&v),
            vec!["ipMasqq".to_string(), "ipam.subnets".to_string()]
        );
        assert!(unknown_keys(&with(json!({"ipam": {"ranges": [], "routes": []}}))).is_empty());
        // Another plugin's config is not weft's to judge.
        let other = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "isGateway": true,
                           "ipam": {"type": "host-local"}});
        assert!(unknown_keys(&other).is_empty());
        // The parse still succeeds: unknown keys are not errors.
        assert!(conf(v).is_ok());
    }

    #[test]
    fn ranges_map_to_cidrs_when_they_are_one() {
        let s: IpNet = "10.0.0.0/24".parse().unwrap();
        let ip = |x: &str| Some(x.parse::<IpAddr>().unwrap());
        let cidr = |x: &str| Some(x.parse::<IpNet>().unwrap());
        assert_eq!(
            range_cidr(s, ip("10.0.0.128"), ip("10.0.0.255"), None),
            cidr("10.0.0.128/25")
        );
        assert_eq!(
            range_cidr(s, ip("10.0.0.128"), ip("10.0.0.254"), None),
            cidr("10.0.0.128/25")
        );
        assert_eq!(
            range_cidr(s, ip("10.0.0.2"), ip("10.0.0.254"), ip("10.0.0.1")),
            cidr("10.0.0.0/24")
        );
        assert_eq!(
            range_cidr(s, ip("10.0.0.2"), None, ip("10.0.0.1")),
            cidr("10.0.0.0/24")
        );
        assert_eq!(
            range_cidr(s, ip("10.0.0.64"), ip("10.0.0.127"), None),
            cidr("10.0.0.64/26")
        );
        assert_eq!(range_cidr(s, ip("10.0.0.10"), ip("10.0.0.20"), None), None);
        assert_eq!(range_cidr(s, ip("10.0.0.20"), ip("10.0.0.10"), None), None);
    }
}
