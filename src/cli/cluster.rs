//! `weft cluster …`: write a cluster network's config and reservations to etcd, and show a
//! host's view of the cluster (its lease, the peers, what the kernel has).

use std::net::IpAddr;
use std::path::Path;

use clap::{Args, Subcommand};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::json;
use weft_drivers::backend::{read_owned, Ownership, MAIN_TABLE, ROUTE_PROTOCOL};
use weft_drivers::netlink::Netlink;
use weft_engine::EngineError;
use weft_ipam::cluster::config::{
    DEFAULT_BGP_AS, DEFAULT_SUBNET_LEN, DEFAULT_SUBNET_LEN_V6, DEFAULT_VNI, DEFAULT_VXLAN_PORT,
};
use weft_ipam::cluster::etcd::Etcd;
use weft_ipam::cluster::local;
use weft_ipam::cluster::{
    Attachment, BackendConfig, BgpClusterConfig, ClusterConfig, ClusterError, Keys, DEFAULT_PREFIX,
};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Create or replace a cluster network's config in etcd.
    Init(InitArgs),
    /// Keep a subnet for one host (no TTL).
    Reserve(ReserveArgs),
    /// Remove a reservation.
    Unreserve(UnreserveArgs),
    /// This host's lease and peers (from the local store and, with --etcd-endpoints, etcd)
    /// next to what the kernel has (JSON).
    Status(StatusArgs),
    /// Make this host's running daemon leave its cluster now: it gives its lease back (the
    /// peers remove their routes to it at once) and keeps serving its local networks.
    Leave(LeaveArgs),
    /// Remove a cluster from etcd: its config, reservations and leases (refused while hosts
    /// hold leases, unless --force).
    Rm(RmArgs),
}

#[derive(Args, Debug)]
pub struct LeaveArgs {
    /// The cluster the daemon should leave (checked against the one it joined).
    pub name: Option<String>,
    /// The daemon's control socket (default /run/weft/weft.sock, or control.sock in a
    /// --state-dir other than /var/lib/weft).
    #[arg(long, env = crate::control::SOCKET_ENV)]
    pub control_socket: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Cluster network name.
    pub name: String,
    /// Remove it even while hosts hold leases (they lose their subnets: their daemons log
    /// the lost lease and wait for a config).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

#[derive(Args, Debug)]
pub struct EtcdArgs {
    #[command(flatten)]
    pub conn: crate::agent::EtcdConnArgs,
    /// etcd key prefix.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub etcd_prefix: String,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Cluster network name.
    pub name: String,
    /// The IPv4 cluster network, e.g. 10.244.0.0/16.
    #[arg(long, value_parser = super::cidr::cluster_ipv4_net)]
    pub network: Ipv4Net,
    /// Per-host subnet length.
    #[arg(long, default_value_t = DEFAULT_SUBNET_LEN)]
    pub subnet_len: u8,
    /// Optional IPv6 cluster network.
    #[arg(long, value_parser = super::cidr::ipv6_net)]
    pub network_v6: Option<Ipv6Net>,
    /// Per-host IPv6 subnet length.
    #[arg(long, default_value_t = DEFAULT_SUBNET_LEN_V6)]
    pub subnet_len_v6: u8,
    /// vxlan, host-gw or bgp.
    #[arg(long, default_value = "vxlan")]
    pub backend: String,
    /// How containers attach on each host: bridge (a bridge with the gateway) or routed (no
    /// bridge: a /32 route per container, proxy ARP).
    #[arg(long, default_value = "bridge")]
    pub attachment: Attachment,
    /// VXLAN network id (vxlan, and bgp with VXLAN encapsulation).
    #[arg(long, default_value_t = DEFAULT_VNI)]
    pub vni: u32,
    /// VXLAN UDP port (vxlan, and bgp with VXLAN encapsulation).
    #[arg(long, default_value_t = DEFAULT_VXLAN_PORT)]
    pub port: u16,
    /// vxlan: plain routes to peers on the same L2 segment.
    #[arg(long)]
    pub direct_routing: bool,
    /// The first subnet hosts may lease (flannel's SubnetMin), e.g. 10.244.10.0 or
    /// 10.244.10.0/24.
    #[arg(long, value_parser = range_bound, value_name = "SUBNET")]
    pub subnet_min: Option<(std::net::Ipv4Addr, Option<u8>)>,
    /// The last subnet hosts may lease (flannel's SubnetMax).
    #[arg(long, value_parser = range_bound, value_name = "SUBNET")]
    pub subnet_max: Option<(std::net::Ipv4Addr, Option<u8>)>,
    /// Do not masquerade traffic from the cluster's containers to outside the cluster
    /// networks (flannel's --ip-masq=false): the outside must route the subnets back.
    #[arg(long)]
    pub no_masquerade: bool,
    #[command(flatten)]
    pub bgp: BgpInitArgs,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// The cluster-wide settings of the bgp backend.
#[derive(Args, Debug)]
pub struct BgpInitArgs {
    /// bgp: the cluster's AS.
    #[arg(long, default_value_t = DEFAULT_BGP_AS)]
    pub bgp_as: u32,
    /// bgp: none (native routing), ipip, vxlan, or cross-subnet (encapsulate only toward hosts
    /// on another underlay subnet).
    #[arg(long, default_value = "none")]
    pub encapsulation: String,
    /// bgp: the tunnel of cross-subnet: ipip or vxlan.
    #[arg(long, default_value = "ipip")]
    pub cross_subnet_tunnel: String,
    /// bgp: no node-to-node mesh; hosts peer with the route reflectors only.
    #[arg(long)]
    pub no_mesh: bool,
    /// bgp: the route reflectors, by host name or public address (comma-separated or
    /// repeated; needs --no-mesh). Hosts started with --bgp-route-reflector reflect too.
    #[arg(long, value_delimiter = ',')]
    pub route_reflectors: Vec<String>,
    /// bgp: the route reflectors' cluster id (default: each reflector's router id).
    #[arg(long)]
    pub cluster_id: Option<std::net::Ipv4Addr>,
}

impl BgpInitArgs {
    /// The bgp section, or `None` when every flag is at its default (a config without one
    /// means the defaults); a bgp flag given for another backend is refused by validation.
    fn section(&self) -> Option<BgpClusterConfig> {
        let config = BgpClusterConfig {
            asn: self.bgp_as,
            encapsulation: self.encapsulation.clone(),
            cross_subnet_tunnel: self.cross_subnet_tunnel.clone(),
            mesh: !self.no_mesh,
            route_reflectors: self.route_reflectors.clone(),
            cluster_id: self.cluster_id,
        };
        (config != BgpClusterConfig::default()).then_some(config)
    }
}

#[derive(Args, Debug)]
pub struct ReserveArgs {
    /// Cluster network name.
    pub name: String,
    /// The subnet to keep, e.g. 10.244.9.0/24.
    #[arg(value_parser = super::cidr::ipv4_net)]
    pub subnet: Ipv4Net,
    /// The host it is kept for.
    #[arg(long)]
    pub public_ip: IpAddr,
    /// Replace a reservation of the subnet for another host (a live lease of another host is
    /// never overridden).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

#[derive(Args, Debug)]
pub struct UnreserveArgs {
    /// Cluster network name.
    pub name: String,
    /// The reserved subnet.
    #[arg(value_parser = super::cidr::ipv4_net)]
    pub subnet: Ipv4Net,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Cluster network name.
    pub name: String,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

pub fn run(state_dir: &Path, cmd: ClusterCommand) -> Result<(), EngineError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::System(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async move {
        match cmd {
            ClusterCommand::Init(args) => init(args).await,
            ClusterCommand::Reserve(args) => reserve(args).await,
            ClusterCommand::Unreserve(args) => unreserve(args).await,
            ClusterCommand::Status(args) => status(state_dir, args).await,
            ClusterCommand::Leave(args) => leave(state_dir, args),
            ClusterCommand::Rm(args) => rm(args).await,
        }
    })
}

/// `--subnet-min`/`--subnet-max`: an address (flannel writes `"SubnetMin": "10.244.10.0"`)
/// or a subnet; its length is checked against `--subnet-len` by `init`.
fn range_bound(s: &str) -> Result<(std::net::Ipv4Addr, Option<u8>), String> {
    match s.split_once('/') {
        None => s.parse().map(|a| (a, None)).map_err(|_| {
            format!(
                "{s:?} is not an IPv4 address; give the subnet's first address, e.g. 10.244.10.0"
            )
        }),
        Some(_) => super::cidr::ipv4_net(s).map(|n| (n.addr(), Some(n.prefix_len()))),
    }
}

/// The address of a range bound whose length, when given, is the subnets'.
fn bound(
    flag: &str,
    value: Option<(std::net::Ipv4Addr, Option<u8>)>,
    subnet_len: u8,
) -> Result<Option<std::net::Ipv4Addr>, EngineError> {
    match value {
        Some((addr, Some(len))) if len != subnet_len => Err(EngineError::Invalid(format!(
            "{flag} {addr}/{len}: hosts' subnets are /{subnet_len} (--subnet-len); give \
             {addr}/{subnet_len} or just {addr}"
        ))),
        other => Ok(other.map(|(addr, _)| addr)),
    }
}

async fn init(args: InitArgs) -> Result<(), EngineError> {
    let subnet_min = bound("--subnet-min", args.subnet_min, args.subnet_len)?;
    let subnet_max = bound("--subnet-max", args.subnet_max, args.subnet_len)?;
    let config = ClusterConfig {
        subnet_min,
        subnet_max,
        masquerade: !args.no_masquerade,
        network: args.network,
        subnet_len: args.subnet_len,
        network_v6: args.network_v6,
        subnet_len_v6: args.subnet_len_v6,
        backend: BackendConfig {
            bgp: match args.backend.as_str() {
                "bgp" => Some(args.bgp.section().unwrap_or_default()),
                _ => args.bgp.section(),
            },
            kind: args.backend,
            vni: args.vni,
            port: args.port,
            direct_routing: args.direct_routing,
        },
        attachment: args.attachment,
    };
    config.validate().map_err(crate::agent::into_engine)?;
    let keys = Keys::new(&args.etcd.etcd_prefix, &args.name);
    let mut etcd = connect(&args.etcd).await?;
    etcd.put_config(&keys, &config)
        .await
        .map_err(crate::agent::into_engine)?;
    println!("{}", keys.config());
    Ok(())
}

async fn reserve(args: ReserveArgs) -> Result<(), EngineError> {
    let keys = Keys::new(&args.etcd.etcd_prefix, &args.name);
    let mut etcd = connect(&args.etcd).await?;
    let config = config_of(&mut etcd, &keys, &args.name).await?;
    etcd.reserve(&keys, &config, args.subnet, args.public_ip, args.force)
        .await
        .map_err(crate::agent::into_engine)?;
    println!("{}", keys.reservation(args.subnet));
    Ok(())
}

/// Asks the daemon over its control socket: it alone holds (and renews) the lease.
fn leave(state_dir: &Path, args: LeaveArgs) -> Result<(), EngineError> {
    use crate::control::{client, Method};
    let socket = crate::control::socket_path(args.control_socket.as_deref(), state_dir);
    if let Some(name) = &args.name {
        let info = client::call(&socket, Method::Info)?;
        let joined = info["cluster"].as_str();
        if joined != Some(name.as_str()) {
            return Err(EngineError::NotFound {
                kind: "cluster",
                name: name.clone(),
                hint: match joined {
                    Some(other) => format!(
                        ": the daemon at {} joined cluster {other}; leave that one or run this on the right host",
                        socket.display()
                    ),
                    None => format!(": the daemon at {} joins no cluster", socket.display()),
                },
            });
        }
    }
    let answer = client::call(&socket, Method::ClusterLeave)?;
    println!("{}", serde_json::to_string_pretty(&answer).expect("json"));
    Ok(())
}

async fn rm(args: RmArgs) -> Result<(), EngineError> {
    let keys = Keys::new(&args.etcd.etcd_prefix, &args.name);
    let mut etcd = connect(&args.etcd).await?;
    let removed = etcd
        .remove_cluster(&keys, &args.name, args.force)
        .await
        .map_err(crate::agent::into_engine)?;
    if removed == 0 {
        return Err(EngineError::NotFound {
            kind: "cluster",
            name: args.name.clone(),
            hint: format!("; etcd has nothing under {}", keys.cluster()),
        });
    }
    println!("{}", keys.cluster());
    Ok(())
}

async fn unreserve(args: UnreserveArgs) -> Result<(), EngineError> {
    let keys = Keys::new(&args.etcd.etcd_prefix, &args.name);
    let mut etcd = connect(&args.etcd).await?;
    if !etcd
        .unreserve(&keys, args.subnet)
        .await
        .map_err(crate::agent::into_engine)?
    {
        return Err(EngineError::NotFound {
            kind: "reservation",
            name: args.subnet.to_string(),
            hint: format!(" in cluster {}", args.name),
        });
    }
    Ok(())
}

async fn status(state_dir: &Path, args: StatusArgs) -> Result<(), EngineError> {
    let store = crate::setup::open_store(state_dir)?;
    let record = local::load_record(&store, &args.name).map_err(crate::agent::into_engine)?;
    let mut out = json!({ "cluster": args.name, "local": record });
    let mut networks: Vec<IpNet> = record.iter().map(|r| IpNet::V4(r.network)).collect();
    if !args.etcd.conn.etcd_endpoints.is_empty() {
        let keys = Keys::new(&args.etcd.etcd_prefix, &args.name);
        let mut etcd = connect(&args.etcd).await?;
        let config = config_of(&mut etcd, &keys, &args.name).await?;
        networks = config.networks();
        let leases = etcd
            .leases(&keys, &config)
            .await
            .map_err(crate::agent::into_engine)?;
        let (valid, malformed): (Vec<_>, Vec<_>) = leases.into_iter().partition(Result::is_ok);
        out["config"] = serde_json::to_value(&config).expect("json");
        out["leases"] = valid
            .into_iter()
            .flatten()
            .map(|l| json!({"subnet": l.subnet, "lease": l.value}))
            .collect();
        out["malformed"] = malformed
            .into_iter()
            .filter_map(Result::err)
            .map(|e| json!(e.to_string()))
            .collect();
    }
    out["kernel"] = kernel_view(&networks, record.as_ref())?;
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    Ok(())
}

/// Routes weft made into the cluster networks, and the VXLAN devices with their entries.
fn kernel_view(
    networks: &[IpNet],
    record: Option<&local::LocalRecord>,
) -> Result<serde_json::Value, EngineError> {
    let mut nl = Netlink::open()?;
    let links = nl.links()?;
    let vxlans: Vec<_> = links
        .iter()
        .filter(|l| {
            l.kind == "vxlan"
                && l.alias
                    .as_deref()
                    .is_some_and(|a| a.starts_with(weft_overlay::device::ALIAS_PREFIX))
        })
        .collect();
    let local_subnets: Vec<IpNet> = record.iter().map(|r| IpNet::V4(r.subnet)).collect();
    let all: Vec<u32> = links.iter().map(|l| l.index).collect();
    let mut devices = Vec::new();
    for link in &vxlans {
        let owned = read_owned(
            &mut nl,
            &Ownership {
                networks,
                local_subnets: &local_subnets,
                route_devices: &[link.index],
                entry_device: Some(link.index),
            },
        )?;
        devices.push(json!({"device": link, "entries": weft_overlay::objects_json(&owned)}));
    }
    let routes: Vec<String> = nl
        .routes(None, Some(MAIN_TABLE))?
        .into_iter()
        .filter(|r| {
            r.protocol == ROUTE_PROTOCOL && networks.iter().any(|n| n.contains(&r.destination))
        })
        .filter(|r| r.oif.is_some_and(|o| all.contains(&o)))
        .map(|r| {
            let dev = links
                .iter()
                .find(|l| Some(l.index) == r.oif)
                .map(|l| l.name.clone())
                .unwrap_or_default();
            match r.gateway {
                Some(gw) => format!(
                    "{} via {gw} dev {dev}{}",
                    r.destination,
                    if r.onlink { " onlink" } else { "" }
                ),
                None => format!("{} dev {dev}", r.destination),
            }
        })
        .collect();
    Ok(json!({"routes": routes, "vxlan": devices}))
}

async fn connect(args: &EtcdArgs) -> Result<Etcd, EngineError> {
    Etcd::connect(&args.conn.access())
        .await
        .map_err(crate::agent::into_engine)
}

async fn config_of(etcd: &mut Etcd, keys: &Keys, name: &str) -> Result<ClusterConfig, EngineError> {
    etcd.config(keys)
        .await
        .map_err(crate::agent::into_engine)?
        .ok_or_else(|| {
            crate::agent::into_engine(ClusterError::NoConfig {
                cluster: name.to_string(),
                key: keys.config(),
            })
        })
}
