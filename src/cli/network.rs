//! `weft network …`

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ipnet::IpNet;
use serde_json::json;
use weft_drivers::MacAddr;
use weft_engine::{
    AddressRequest, ConnectRequest, Controller, EndpointRecord, EndpointRequest, EngineError,
    IpamRequest, NetworkRecord, NetworkRequest, Origin, PortSpec,
};
use weft_ipam::{AllocMode, PoolRequest};

use crate::setup;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks (those made by Docker and CNI too).
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show a network as recorded next to what the kernel really has (JSON).
    Inspect {
        /// Network names or ids.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (they must have no endpoints).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Attach a network namespace to a network (veth pair, addresses, routes, published ports).
    Connect(ConnectArgs),
    /// Detach a namespace (or an endpoint by id) from a network.
    Disconnect(DisconnectArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub name: String,
    /// Network driver.
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form (repeat for several, e.g. an IPv4 and an IPv6 one); default: a free
    /// default pool.
    #[arg(long, value_parser = super::cidr::ip_net)]
    pub subnet: Vec<IpNet>,
    /// Gateway for the subnet that contains it.
    #[arg(long)]
    pub gateway: Vec<IpAddr>,
    /// Allocate container addresses only from this range (inside a subnet).
    #[arg(long, value_parser = super::cidr::ip_net)]
    pub ip_range: Vec<IpNet>,
    /// Addresses never handed out: NAME=IP.
    #[arg(long, value_parser = parse_aux)]
    pub aux_address: Vec<(String, IpAddr)>,
    /// Enable IPv6 (a ULA /64 is picked unless an IPv6 --subnet is given).
    #[arg(long)]
    pub ipv6: bool,
    /// No access to or from outside the network.
    #[arg(long)]
    pub internal: bool,
    /// Driver option KEY=VALUE (e.g. com.docker.network.bridge.enable_icc=false).
    #[arg(short = 'o', long = "opt", value_parser = parse_kv)]
    pub opts: Vec<(String, String)>,
    /// Label KEY=VALUE.
    #[arg(long, value_parser = parse_kv)]
    pub label: Vec<(String, String)>,
    /// Address allocation: first-free (Docker's) or serial (round robin, like CNI host-local).
    #[arg(long, value_enum, default_value = "first-free")]
    pub ip_allocation: AllocArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AllocArg {
    FirstFree,
    Serial,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print only ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// A network name or id; `none` (loopback only), `host` (the host's own namespace) or
    /// `container:PATH` (join the namespace at PATH).
    pub network: String,
    /// Network namespace file of the container (e.g. /run/netns/c1 or /proc/PID/ns/net).
    /// Optional for `host` (the host's namespace) and `container:PATH` (PATH itself).
    #[arg(long)]
    pub netns: Option<PathBuf>,
    /// Static address (one per subnet family at most).
    #[arg(long)]
    pub ip: Vec<IpAddr>,
    #[arg(long)]
    pub mac: Option<MacAddr>,
    /// Publish a port: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp]; ranges as A-B.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<PortSpec>,
    /// Interface name inside the namespace.
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
}

#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// As given to connect (a network, `none`, `host` or `container:PATH`).
    pub network: String,
    /// The namespace given to connect (not needed for `host` and `container:PATH`).
    #[arg(long, conflicts_with = "endpoint")]
    pub netns: Option<PathBuf>,
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
    /// Endpoint id (as printed by connect or inspect).
    #[arg(long)]
    pub endpoint: Option<String>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn parse_aux(s: &str) -> Result<(String, IpAddr), String> {
    let (k, v) = parse_kv(s)?;
    let ip = v
        .parse()
        .map_err(|_| format!("{v:?} in {s:?} is not an IP address"))?;
    Ok((k, ip))
}

pub fn run(state_dir: &Path, cmd: NetworkCommand) -> Result<(), EngineError> {
    let c = setup::controller(state_dir)?;
    match cmd {
        NetworkCommand::Create(args) => {
            let rec = c.create_network(create_request(args)?)?;
            println!("{}", rec.network.id);
        }
        NetworkCommand::Ls(args) => list(&c, &args)?,
        NetworkCommand::Inspect { networks } => {
            let mut out = Vec::new();
            for n in networks {
                let mut v = c.inspect_network(&n)?;
                if let Err(e) = super::docker_api::annotate_inspect(&mut v) {
                    eprintln!("weft: note: Docker's names are not shown: {e}");
                }
                out.push(v);
            }
            println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        }
        NetworkCommand::Rm { networks } => {
            for n in networks {
                c.delete_network(&n)?;
                println!("{n}");
            }
        }
        NetworkCommand::Connect(args) => {
            let rec = connect(&c, args)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&endpoint_summary(&rec)).expect("json")
            );
        }
        NetworkCommand::Disconnect(args) => {
            let target = Target::parse(&args.network, args.netns.clone())?;
            let net = c.network(&target.network)?;
            let id = match (&args.endpoint, &target.netns) {
                (Some(id), _) => id.clone(),
                (None, Some(ns)) => c.attached_endpoint(&net.network.id, ns, &args.ifname)?,
                (None, None) => {
                    return Err(EngineError::Invalid(
                        "name the attachment with --netns PATH or --endpoint ID".into(),
                    ))
                }
            };
            c.disconnect(&net.network.id, &id)?;
        }
    }
    Ok(())
}

/// Pairs each --gateway, --ip-range and --aux-address with the --subnet that contains it, as
/// Docker does.
fn create_request(args: CreateArgs) -> Result<NetworkRequest, EngineError> {
    let mode = match args.ip_allocation {
        AllocArg::FirstFree => AllocMode::FirstFree,
        AllocArg::Serial => AllocMode::Serial,
    };
    let mut pools: Vec<PoolRequest> = args
        .subnet
        .iter()
        .map(|s| PoolRequest {
            subnet: Some(*s),
            v6: matches!(s, IpNet::V6(_)),
            mode,
            ..PoolRequest::default()
        })
        .collect();
    let owning = |pools: &mut Vec<PoolRequest>,
                  ip: IpAddr,
                  what: &str|
     -> Result<usize, EngineError> {
        pools
            .iter()
            .position(|p| p.subnet.is_some_and(|s| s.contains(&ip)))
            .ok_or_else(|| EngineError::Invalid(format!("{what} {ip} is not inside any --subnet")))
    };
    for gw in &args.gateway {
        let i = owning(&mut pools, *gw, &format!("--gateway {gw}"))?;
        if pools[i].gateway.replace(*gw).is_some() {
            return Err(EngineError::Invalid(format!(
                "two --gateway values for subnet {}",
                pools[i].subnet.unwrap()
            )));
        }
    }
    for r in &args.ip_range {
        let i = owning(&mut pools, r.network(), &format!("--ip-range {r}"))?;
        if pools[i].ip_range.replace(*r).is_some() {
            return Err(EngineError::Invalid(format!(
                "two --ip-range values for subnet {}",
                pools[i].subnet.unwrap()
            )));
        }
    }
    for (name, ip) in &args.aux_address {
        let i = owning(&mut pools, *ip, &format!("--aux-address {name}={ip}"))?;
        pools[i].aux.insert(name.clone(), *ip);
    }
    let (v6, v4): (Vec<_>, Vec<_>) = pools.into_iter().partition(|p| p.v6);
    let v4 = if v4.is_empty() {
        vec![PoolRequest {
            mode,
            ..PoolRequest::default()
        }]
    } else {
        v4
    };
    Ok(NetworkRequest {
        name: args.name,
        id: None,
        driver: args.driver,
        internal: args.internal,
        enable_ipv6: args.ipv6,
        ipam: IpamRequest::Weft { v4, v6 },
        options: args.opts.into_iter().collect::<BTreeMap<_, _>>(),
        labels: args.label.into_iter().collect(),
        origin: Origin::Cli,
    })
}

fn list(c: &Controller, args: &LsArgs) -> Result<(), EngineError> {
    let nets = c.networks()?;
    // Docker never tells a driver a network's name (its record is `docker-<id12>`): ask dockerd.
    let docker_names = if !args.quiet && nets.iter().any(|n| n.origin == Origin::Docker) {
        super::docker_api::network_names().unwrap_or_else(|e| {
            eprintln!("weft: note: Docker's networks are shown by id: {e}");
            BTreeMap::new()
        })
    } else {
        BTreeMap::new()
    };
    let name_of = |n: &NetworkRecord| match n.origin {
        Origin::Docker => docker_names.get(&n.network.id).cloned(),
        _ => None,
    };
    if args.quiet {
        for n in &nets {
            println!("{}", &n.network.id[..12]);
        }
    } else if args.json {
        let mut out = serde_json::to_value(&nets).expect("json");
        for (v, n) in out.as_array_mut().expect("a list").iter_mut().zip(&nets) {
            if let Some(name) = name_of(n) {
                v["docker_name"] = name.into();
            }
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "{:<14}{:<24}{:<10}{:<8}SUBNETS",
            "NETWORK ID", "NAME", "DRIVER", "ORIGIN"
        );
        for n in &nets {
            println!(
                "{:<14}{:<24}{:<10}{:<8}{}",
                &n.network.id[..12],
                name_of(n).unwrap_or_else(|| n.network.name.clone()),
                n.network.driver,
                origin(n),
                n.network
                    .subnets
                    .iter()
                    .map(|s| s.subnet.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
    }
    Ok(())
}

fn origin(n: &NetworkRecord) -> &'static str {
    match n.origin {
        Origin::Cli => "cli",
        Origin::Docker => "docker",
        Origin::Cni => "cni",
        Origin::Daemon => "daemon",
    }
}

/// What `connect`/`disconnect` name: a network and the sandbox, with the built-in modes'
/// defaults filled in.
struct Target {
    network: String,
    netns: Option<PathBuf>,
    options: BTreeMap<String, String>,
}

impl Target {
    fn parse(network: &str, netns: Option<PathBuf>) -> Result<Target, EngineError> {
        if let Some(path) = network.strip_prefix("container:") {
            if path.is_empty() {
                return Err(EngineError::Invalid(
                    "container: needs a namespace path, e.g. container:/run/netns/c1".into(),
                ));
            }
            return Ok(Target {
                network: "container".into(),
                netns: Some(netns.unwrap_or_else(|| PathBuf::from(path))),
                options: BTreeMap::from([(
                    weft_drivers::builtin::container::JOINS.to_string(),
                    path.to_string(),
                )]),
            });
        }
        let netns = match (network, netns) {
            ("host", None) => Some(PathBuf::from("/proc/self/ns/net")),
            (_, n) => n,
        };
        Ok(Target {
            network: network.to_string(),
            netns,
            options: BTreeMap::new(),
        })
    }
}

fn connect(c: &Controller, args: ConnectArgs) -> Result<EndpointRecord, EngineError> {
    let target = Target::parse(&args.network, args.netns)?;
    let netns = target.netns.ok_or_else(|| {
        EngineError::Invalid(format!("connecting to {} needs --netns PATH", args.network))
    })?;
    c.connect(
        &target.network,
        &ConnectRequest {
            netns: netns.clone(),
            endpoint: EndpointRequest {
                addresses: AddressRequest::Allocate {
                    static_ips: args.ip,
                },
                mac: args.mac,
                ifname: args.ifname,
                options: target.options,
                owner: netns.display().to_string(),
            },
            ports: args.publish,
            endpoint_id: None,
        },
    )
}

fn endpoint_summary(rec: &EndpointRecord) -> serde_json::Value {
    json!({
        "endpoint": rec.endpoint.id,
        "network": rec.endpoint.network_id,
        "ifname": rec.endpoint.ifname,
        "mac": rec.endpoint.mac,
        "addresses": rec.endpoint.addresses,
        "host_ifname": rec.join.as_ref().map(|j| j.host_ifname.clone()),
        "gateways": rec.join.as_ref().map(|j| json!([j.gateway_v4, j.gateway_v6])),
        "ports": rec.endpoint.ports,
    })
}
