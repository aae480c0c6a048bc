//! The cluster agent inside `weft daemon`: joins a cluster network through the lease keeper,
//! drives the backend with the peers it reports, keeps the local network that local consumers
//! attach to, and writes what they need to the local store.
//!
//! Wiring only: every decision about leases is the keeper's (`weft_ipam::cluster::keeper`),
//! every kernel change the backend's. This task owns the clock, the etcd connection and the
//! watch stream, and executes the keeper's requests one after another.
//!
//! The local network uses the driver the cluster's attachment names: `bridge` (a bridge with
//! the subnet's gateway) or `routed` (no bridge; the routed driver keeps the subnet's
//! blackhole route, so the bgp backend is told not to install its own). The bgp backend is
//! also handed to the control socket ([`crate::control`]) for `weft bgp status|routes`.

mod bgp;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tracing::{error, info, warn};
use weft_bgp::BgpBackend;
use weft_bridge::options as bridge_options;
use weft_drivers::backend::{Backend, LocalNode, Peer};
use weft_drivers::netlink::Netlink;
use weft_drivers::DriverError;
use weft_engine::{Controller, EngineError, IpamRequest, NetworkRequest, Origin, CLUSTER_LABEL};
use weft_hostgw::HostGwBackend;
use weft_ipam::cluster::etcd::{Etcd, EtcdAccess, Watch};
use weft_ipam::cluster::keeper::WatchEvent;
use weft_ipam::cluster::local::{self, LocalRecord};
use weft_ipam::cluster::{
    Action, Attachment, ClusterConfig, ClusterError, Event, Input, Keeper, KeeperConfig, Keys,
    Lease, Request, DEFAULT_PREFIX,
};
use weft_ipam::PoolRequest;
use weft_overlay::{VxlanBackend, VxlanConfig};
use weft_routed::options as routed_options;

use crate::control::ControlState;

/// How often the keeper's clock ticks.
const TICK: Duration = Duration::from_millis(200);
/// How often the backend checks its device is still there.
const REPAIR_EVERY: Duration = Duration::from_secs(2);
/// Most problems kept in the local record.
const MAX_PROBLEMS: usize = 20;

/// How every command that talks to etcd reaches it (flannel's and Calico's flag names).
#[derive(Args, Clone)]
pub struct EtcdConnArgs {
    /// etcd endpoints (comma-separated or repeated), e.g. http://10.0.0.1:2379 (https:// with
    /// --etcd-cafile).
    #[arg(long, value_delimiter = ',', env = "WEFT_ETCD_ENDPOINTS")]
    pub etcd_endpoints: Vec<String>,
    /// CA certificate (PEM) that signed etcd's server certificate; turns TLS on.
    #[arg(long, env = "WEFT_ETCD_CAFILE", value_name = "PATH")]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate (PEM), for an etcd started with --client-cert-auth.
    #[arg(
        long,
        env = "WEFT_ETCD_CERTFILE",
        value_name = "PATH",
        requires = "etcd_keyfile"
    )]
    pub etcd_certfile: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "WEFT_ETCD_KEYFILE",
        value_name = "PATH",
        requires = "etcd_certfile"
    )]
    pub etcd_keyfile: Option<PathBuf>,
    /// etcd user, when etcd has authentication enabled.
    #[arg(long, env = "WEFT_ETCD_USERNAME", requires = "etcd_password")]
    pub etcd_username: Option<String>,
    /// Its password; prefer WEFT_ETCD_PASSWORD (a command line is visible to every user of
    /// the host). Never logged.
    #[arg(
        long,
        env = "WEFT_ETCD_PASSWORD",
        hide_env_values = true,
        requires = "etcd_username"
    )]
    pub etcd_password: Option<String>,
}

impl std::fmt::Debug for EtcdConnArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.access().fmt(f)
    }
}

impl EtcdConnArgs {
    pub fn access(&self) -> EtcdAccess {
        EtcdAccess {
            endpoints: self.etcd_endpoints.clone(),
            ca_file: self.etcd_cafile.clone(),
            cert_file: self.etcd_certfile.clone(),
            key_file: self.etcd_keyfile.clone(),
            username: self.etcd_username.clone(),
            password: self.etcd_password.clone(),
        }
    }
}

/// `weft daemon` flags for joining a cluster network.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    #[command(flatten)]
    pub etcd: EtcdConnArgs,
    /// Cluster network to join (its config must exist: `weft cluster init`).
    #[arg(long, requires = "etcd_endpoints")]
    pub cluster: Option<String>,
    /// This host's address on the underlay (default: the address of --iface, or of the
    /// interface with the default route).
    #[arg(long, conflicts_with_all = ["iface", "iface_regex", "iface_can_reach"])]
    pub public_ip: Option<IpAddr>,
    /// The underlay interface (its first IPv4 address is the public address).
    #[arg(long, conflicts_with_all = ["iface_regex", "iface_can_reach"])]
    pub iface: Option<String>,
    /// The underlay is the first interface, in name order, whose name matches this regular
    /// expression and has an IPv4 address (flanneld's --iface-regex).
    #[arg(long, value_name = "RE", conflicts_with = "iface_can_reach")]
    pub iface_regex: Option<String>,
    /// The underlay is the interface this host's route to IP goes out of (flanneld's
    /// --iface-can-reach).
    #[arg(long, value_name = "IP")]
    pub iface_can_reach: Option<IpAddr>,
    /// Where to write the flannel-style subnet.env (FLANNEL_NETWORK, FLANNEL_SUBNET,
    /// FLANNEL_MTU, FLANNEL_IPMASQ) once the lease is held (default /run/weft/subnet.env, or
    /// subnet.env in a --state-dir other than /var/lib/weft).
    #[arg(long, value_name = "PATH")]
    pub subnet_file: Option<PathBuf>,
    /// Lease time-to-live in seconds; renewed every third of it.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub lease_ttl: u64,
    /// etcd key prefix.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// Settings of this host when the cluster uses the bgp backend.
    #[command(flatten)]
    pub bgp: bgp::BgpHostArgs,
}

/// How the daemon's flags pick the underlay.
#[derive(Debug, Clone)]
pub enum UnderlayChoice {
    /// `--public-ip`: the interface holding it.
    PublicIp(IpAddr),
    /// `--iface NAME`.
    Iface(String),
    /// `--iface-regex RE`: the first matching name in name order.
    IfaceRegex(String),
    /// `--iface-can-reach IP`: the route's output interface.
    CanReach(IpAddr),
    /// None given: the interface of the default route.
    DefaultRoute,
}

impl AgentArgs {
    /// Which underlay flag was given (clap refuses more than one).
    pub fn underlay_choice(&self) -> UnderlayChoice {
        if let Some(ip) = self.public_ip {
            UnderlayChoice::PublicIp(ip)
        } else if let Some(name) = &self.iface {
            UnderlayChoice::Iface(name.clone())
        } else if let Some(re) = &self.iface_regex {
            UnderlayChoice::IfaceRegex(re.clone())
        } else if let Some(ip) = self.iface_can_reach {
            UnderlayChoice::CanReach(ip)
        } else {
            UnderlayChoice::DefaultRoute
        }
    }
}

/// The underlay as found at start.
#[derive(Debug, Clone)]
pub struct Underlay {
    /// This host's public address.
    pub public_ip: IpAddr,
    /// The interface holding it.
    pub index: u32,
    /// That interface's MTU.
    pub mtu: u32,
}

/// What the agent holds while joined.
#[derive(Debug, Clone)]
struct Joined {
    subnet: Ipv4Net,
    subnet_v6: Option<Ipv6Net>,
    config: ClusterConfig,
    mtu: Option<u32>,
}

struct Agent {
    name: String,
    controller: Arc<Controller>,
    keeper: Keeper,
    keys: Keys,
    etcd: Etcd,
    watch: Option<Watch>,
    underlay: Underlay,
    backend: Option<Arc<dyn Backend>>,
    joined: Option<Joined>,
    identity: bgp::Identity,
    bgp_args: bgp::BgpHostArgs,
    /// What the control socket shows.
    control: Arc<ControlState>,
    /// The backend missed peer events (not initialized then): sync everything when it is.
    needs_sync: bool,
    problems: Vec<String>,
    /// Set when this host's configuration cannot work: the agent stops, releases its lease
    /// and the daemon exits (see `is_fatal`).
    fatal: Option<String>,
    started: Instant,
    last_repair: Instant,
    /// The subnet.env file and what was last written to it.
    subnet_file: PathBuf,
    /// Interior: the record (and so the file) is saved from `&self` paths.
    subnet_env: std::cell::RefCell<Option<String>>,
}

/// An agent ready to run: flags checked, underlay found, node id known.
pub struct Prepared {
    controller: Arc<Controller>,
    args: AgentArgs,
    name: String,
    underlay: Underlay,
    keeper: Keeper,
    identity: bgp::Identity,
    subnet_file: PathBuf,
}

/// The default subnet.env: in /run/weft for the default state directory (where flannel's
/// readers look for /run/flannel/subnet.env), else in the state directory, so that several
/// daemons on one machine (tests, say) never share one.
pub fn subnet_file_path(given: Option<&std::path::Path>, state_dir: &std::path::Path) -> PathBuf {
    match given {
        Some(path) => path.to_path_buf(),
        None if state_dir == std::path::Path::new(crate::setup::DEFAULT_STATE_DIR) => {
            PathBuf::from(DEFAULT_SUBNET_FILE)
        }
        None => state_dir.join("subnet.env"),
    }
}

/// Where subnet.env goes with the default state directory.
pub const DEFAULT_SUBNET_FILE: &str = "/run/weft/subnet.env";

/// Checks the flags and finds the underlay; everything that cannot be retried fails here,
/// before the daemon serves anything. `None` when no `--cluster` was given.
pub fn prepare(
    controller: Arc<Controller>,
    args: &AgentArgs,
    state_dir: &std::path::Path,
) -> Result<Option<Prepared>, ClusterError> {
    let Some(name) = args.cluster.clone() else {
        return Ok(None);
    };
    if !weft_ipam::store::is_safe_segment(&name) {
        return Err(ClusterError::InvalidConfig {
            reason: format!("cluster name {name:?} may only hold A-Z a-z 0-9 . _ : @ -"),
        });
    }
    args.bgp
        .check()
        .map_err(|reason| ClusterError::HostConfig {
            cluster: name.clone(),
            reason,
        })?;
    let underlay = find_underlay(&args.underlay_choice())?;
    let node_id = local::node_id(controller.store())?;
    let previous = local::load_record(controller.store(), &name)?.map(|r| r.subnet);
    info!(
        cluster = %name, public_ip = %underlay.public_ip, node = %node_id,
        previous = ?previous, "joining cluster network"
    );
    let identity = bgp::Identity {
        hostname: hostname(),
        node_id: node_id.clone(),
        public_ip: underlay.public_ip,
    };
    let keeper = Keeper::new(KeeperConfig {
        prefix: args.etcd_prefix.clone(),
        cluster: name.clone(),
        public_ip: underlay.public_ip,
        node_id,
        hostname: identity.hostname.clone(),
        ttl: Duration::from_secs(args.lease_ttl),
        previous,
    });
    Ok(Some(Prepared {
        controller,
        args: args.clone(),
        name,
        underlay,
        keeper,
        identity,
        subnet_file: subnet_file_path(args.subnet_file.as_deref(), state_dir),
    }))
}

/// Runs the agent until `shutdown` completes, reporting its backend to `control`. etcd
/// trouble is logged and retried forever.
pub async fn run(
    prepared: Prepared,
    control: Arc<ControlState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ClusterError> {
    let Prepared {
        controller,
        args,
        name,
        underlay,
        keeper,
        identity,
        subnet_file,
    } = prepared;
    control.set_cluster(&name);
    // `weft cluster leave` reaches the agent through the control socket: the daemon holds
    // the lease id and renews it, so only the daemon can give it back for good (a CLI
    // revoking it in etcd would see the daemon re-acquire at once).
    let (leave_tx, mut leave) = tokio::sync::mpsc::channel(1);
    control.set_leave(Some(leave_tx));
    tokio::pin!(shutdown);
    let mut agent = Agent {
        identity,
        bgp_args: args.bgp.clone(),
        control,
        keys: keeper.keys().clone(),
        keeper,
        etcd: match connect(&args.etcd.access(), &name, &mut shutdown).await? {
            Some(etcd) => etcd,
            None => return Ok(()),
        },
        watch: None,
        underlay,
        backend: None,
        joined: None,
        needs_sync: false,
        problems: Vec::new(),
        fatal: None,
        started: Instant::now(),
        last_repair: Instant::now(),
        subnet_file,
        subnet_env: Default::default(),
        controller,
        name,
    };
    let outcome = agent.run(&mut shutdown, &mut leave).await;
    agent.control.set_leave(None);
    agent.control.update_health(|h| h.lease = None);
    match outcome {
        None => Ok(()),
        Some(reason) => Err(ClusterError::HostConfig {
            cluster: agent.name.clone(),
            reason,
        }),
    }
}

/// Connects to etcd, retrying while it cannot be reached (the client logs in at once when
/// it has a user, so an etcd down at start fails here); `None` when `shutdown` came first.
/// Settings that cannot work (unreadable TLS files, credentials etcd refuses) are fatal.
async fn connect(
    access: &EtcdAccess,
    cluster: &str,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<Option<Etcd>, ClusterError> {
    const RETRY: Duration = Duration::from_secs(2);
    loop {
        match Etcd::connect(access).await {
            Ok(etcd) => return Ok(Some(etcd)),
            Err(e @ ClusterError::Etcd { refused: false, .. }) if !access.endpoints.is_empty() => {
                warn!(
                    cluster,
                    "etcd unavailable: {e}; retrying in {:.1} s",
                    RETRY.as_secs_f64()
                );
            }
            Err(e) => {
                return Err(ClusterError::HostConfig {
                    cluster: cluster.to_string(),
                    reason: e.to_string(),
                })
            }
        }
        tokio::select! {
            _ = shutdown.as_mut() => return Ok(None),
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// How the daemon reports an agent that cannot start.
/// Cluster errors as the CLI's exit codes see them: bad input 2, missing 3, conflicts 4,
/// etcd and the system 1.
pub fn into_engine(e: ClusterError) -> EngineError {
    match e {
        ClusterError::InvalidConfig { .. }
        | ClusterError::HostConfig { .. }
        | ClusterError::EtcdSettings { .. }
        | ClusterError::InvalidReservation { .. }
        | ClusterError::MalformedLease { .. } => EngineError::Invalid(e.to_string()),
        ClusterError::NoConfig { cluster, key } => EngineError::NotFound {
            kind: "cluster",
            hint: format!(
                "; etcd has no config under {key}: create it with `weft cluster init {cluster} --network CIDR`"
            ),
            name: cluster,
        },
        ClusterError::DuplicatePublicIp { .. }
        | ClusterError::Exhausted { .. }
        | ClusterError::SubnetLeased { .. }
        | ClusterError::ClusterInUse { .. }
        | ClusterError::AlreadyReserved { .. } => {
            EngineError::InUse(e.to_string())
        }
        ClusterError::Store(e) => EngineError::Store(e),
        ClusterError::Etcd { .. } => EngineError::System(e.to_string()),
    }
}

impl Agent {
    /// Runs until `shutdown`, or until this host's configuration proves unusable: then the
    /// lease is revoked (the others drop this host's routes now, not after the TTL) and the
    /// reason returned.
    async fn run(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        leave: &mut tokio::sync::mpsc::Receiver<crate::control::LeaveRequest>,
    ) -> Option<String> {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pending = VecDeque::new();
        loop {
            while let Some(request) = pending.pop_front() {
                if self.fatal.is_some() {
                    break;
                }
                let input = self.execute(request).await;
                if let Some(input) = input {
                    self.feed(input, &mut pending);
                }
            }
            if let Some(reason) = self.fatal.clone() {
                let _ = self.release().await;
                return Some(reason);
            }
            tokio::select! {
                _ = shutdown.as_mut() => break,
                Some(reply) = leave.recv() => {
                    let answer = self.leave().await;
                    let _ = reply.send(answer);
                    info!(cluster = %self.name, "left the cluster; the daemon serves its local networks on, restart it to join again");
                    return None;
                }
                _ = ticks.tick() => {
                    self.feed(Input::Tick(self.started.elapsed()), &mut pending);
                    self.maintain(&mut pending);
                }
                batch = next_events(&mut self.watch) => match batch {
                    Ok(events) => {
                        for event in events {
                            self.feed(Input::Watched(event), &mut pending);
                        }
                    }
                    Err(e) => {
                        self.watch = None;
                        self.feed(Input::WatchFailed(e.to_string()), &mut pending);
                    }
                },
            }
        }
        info!(cluster = %self.name, "agent stopped; the lease expires after its TTL unless the daemon returns");
        None
    }

    /// Revokes this host's lease before the daemon exits on a fatal error. etcd being down
    /// then is not retried: the lease expires after its TTL anyway.
    async fn release(&mut self) -> Result<bool, String> {
        let Some(id) = self.keeper.lease_id() else {
            return Ok(false);
        };
        match self.etcd.revoke(id).await {
            Ok(()) => {
                info!(cluster = %self.name, subnet = ?self.keeper.subnet(), "lease released");
                self.save_record(false);
                self.remove_subnet_env();
                Ok(true)
            }
            Err(e) => {
                warn!(cluster = %self.name, "cannot release the lease (it expires after its TTL): {e}");
                Err(format!(
                    "cannot give back the lease of cluster {}: {e}; it expires after its TTL",
                    self.name
                ))
            }
        }
    }

    /// `weft cluster leave`: revoke the lease (its key goes with it, so every peer's watch
    /// removes this host's routes now) and drop this host's routes to the peers, which it is
    /// no longer one of. The local network stays: containers on it keep their addresses.
    async fn leave(&mut self) -> Result<serde_json::Value, String> {
        let subnet = self.keeper.subnet();
        let released = self.release().await?;
        if let Some(backend) = self.ready_backend() {
            match backend.sync_peers(&[]) {
                Ok(report) => {
                    for problem in report.problems {
                        warn!(cluster = %self.name, "leaving: {problem}");
                    }
                }
                Err(e) => {
                    warn!(cluster = %self.name, "leaving: cannot remove the routes to the peers: {e}")
                }
            }
        }
        Ok(serde_json::json!({
            "cluster": self.name,
            "subnet": subnet.filter(|_| released),
            "released": released,
        }))
    }

    fn remove_subnet_env(&self) {
        match std::fs::remove_file(&self.subnet_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(cluster = %self.name, "cannot remove {}: {e}", self.subnet_file.display())
            }
        }
        *self.subnet_env.borrow_mut() = None;
    }

    /// Runs one keeper request against etcd.
    async fn execute(&mut self, request: Request) -> Option<Input> {
        if let Request::Watch { from_revision } = request {
            return match self.etcd.watch(&self.keys, from_revision).await {
                Ok(watch) => {
                    self.watch = Some(watch);
                    None
                }
                Err(e) => Some(Input::WatchFailed(e.to_string())),
            };
        }
        let input = self.etcd.execute(&self.keys, request).await;
        // Every keeper request is an etcd round trip: its outcome is etcd's reachability as
        // `--healthz` reports it (at least every third of the TTL, by the renewals).
        let outcome = match &input {
            Some(Input::Loaded(r)) => Some(r.as_ref().map(drop).map_err(Clone::clone)),
            Some(Input::Granted(r)) | Some(Input::KeptAlive(r)) => {
                Some(r.as_ref().map(drop).map_err(Clone::clone))
            }
            Some(Input::Claimed(r)) => Some(r.as_ref().map(drop).map_err(Clone::clone)),
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.control.update_health(|h| h.etcd = Some(outcome));
        }
        input
    }

    /// Feeds the keeper and acts on what it says, until nothing follows.
    fn feed(&mut self, input: Input, pending: &mut VecDeque<Request>) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            for action in self.keeper.handle(input) {
                match action {
                    Action::Request(r) => pending.push_back(r),
                    Action::Event(e) => {
                        if let Some(next) = self.on_event(e) {
                            inputs.push_back(next);
                        }
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Option<Input> {
        match event {
            Event::EtcdUnavailable {
                op,
                error,
                retry_in,
            } => {
                // `error` names etcd, the call and the fix; `op` is the keeper's step.
                warn!(cluster = %self.name, step = op, "etcd unavailable: {error}; retrying in {:.1} s", retry_in.as_secs_f64());
                None
            }
            Event::Waiting { reason, retry_in } => {
                error!(cluster = %self.name, "cannot join yet: {reason}; retrying in {:.1} s", retry_in.as_secs_f64());
                self.problem(reason);
                None
            }
            Event::LeaseAcquired {
                subnet,
                subnet_v6,
                config,
            } => {
                self.control
                    .update_health(|h| h.lease = Some(subnet.to_string()));
                self.on_acquired(subnet, subnet_v6, config)
            }
            Event::LeaseLost { subnet, reason } => {
                self.control.update_health(|h| h.lease = None);
                error!(cluster = %self.name, %subnet, "LEASE LOST: {reason}; re-acquiring (this host keeps its subnet only if nobody else took it)");
                self.problem(format!("lease on {subnet} lost: {reason}"));
                self.save_record(false);
                None
            }
            Event::PeersSynced(leases) => {
                self.sync(&leases);
                None
            }
            Event::PeerAdded(lease) | Event::PeerChanged(lease) => {
                self.peer_changed(&lease);
                None
            }
            Event::PeerRemoved(lease) => {
                self.peer_removed(&lease);
                None
            }
            Event::MalformedLease { error } => {
                warn!(cluster = %self.name, "ignoring a lease: {error}");
                None
            }
            Event::ConfigChanged => {
                warn!(cluster = %self.name, "the cluster config changed in etcd; restart weft daemon to apply it");
                None
            }
        }
    }

    fn on_acquired(
        &mut self,
        subnet: Ipv4Net,
        subnet_v6: Option<Ipv6Net>,
        config: ClusterConfig,
    ) -> Option<Input> {
        info!(cluster = %self.name, %subnet, subnet_v6 = ?subnet_v6, backend = %config.backend.kind, "lease acquired");
        if let Some(old) = self.joined.as_ref().filter(|j| j.subnet != subnet) {
            error!(cluster = %self.name, old = %old.subnet, new = %subnet, "this host's subnet CHANGED: its old subnet is held by another host now");
        }
        // PeersSynced follows at once and programs the peers.
        self.joined = Some(Joined {
            subnet,
            subnet_v6,
            config,
            mtu: None,
        });
        let data = self.init_backend();
        self.save_record(true);
        data.map(Input::BackendData)
    }

    /// Makes (or re-initializes) the backend and the local network; returns the data to
    /// publish. A failure is logged and retried by `maintain`.
    fn init_backend(&mut self) -> Option<serde_json::Value> {
        let joined = self.joined.clone()?;
        let backend = match &self.backend {
            Some(b) if b.name() == joined.config.backend.kind => b.clone(),
            _ => match self.make_backend(&joined.config) {
                Ok(b) => {
                    self.backend = Some(b.clone());
                    b
                }
                Err(e) => {
                    // Settings that cannot be expressed at all: fatal.
                    let reason = format!(
                        "backend {} cannot be set up: {e}",
                        joined.config.backend.kind
                    );
                    self.problem(reason.clone());
                    self.fatal = Some(reason);
                    return None;
                }
            },
        };
        let node = self.local_node(&joined);
        let init = match backend.init(&node) {
            Ok(init) => init,
            Err(e) if is_fatal(&e) => {
                let reason = format!("backend {} cannot start: {e}", backend.name());
                self.problem(reason.clone());
                self.fatal = Some(reason);
                return None;
            }
            Err(e) => {
                error!(cluster = %self.name, "backend {} cannot start: {e}; retrying", backend.name());
                self.problem(format!("backend: {e}"));
                return None;
            }
        };
        if let Some(j) = self.joined.as_mut() {
            j.mtu = Some(init.mtu);
        }
        match ensure_network(&self.controller, &self.name, &joined, init.mtu) {
            Ok(Some(change)) => info!(cluster = %self.name, "{change}"),
            Ok(None) => {}
            Err(e) => {
                error!(cluster = %self.name, "local network: {e}");
                self.problem(format!("local network: {e}"));
            }
        }
        if self.needs_sync {
            let leases: Vec<Lease> = self.keeper.peers().cloned().collect();
            self.sync(&leases);
        }
        Some(init.data)
    }

    fn sync(&mut self, leases: &[Lease]) {
        let Some(backend) = self.ready_backend() else {
            self.needs_sync = true;
            return;
        };
        let peers: Vec<Peer> = leases
            .iter()
            .map(|l| self.peer(l))
            .filter(|p| !awaiting_data(backend.as_ref(), p))
            .collect();
        match backend.sync_peers(&peers) {
            Ok(report) => {
                self.needs_sync = false;
                for change in &report.changes {
                    info!(cluster = %self.name, "reconciled: {change}");
                }
                for problem in report.problems {
                    error!(cluster = %self.name, "{problem}");
                    self.problem(problem.to_string());
                }
                info!(cluster = %self.name, peers = peers.len(), "peers in sync");
            }
            Err(e) => {
                error!(cluster = %self.name, "syncing peers failed: {e}");
                self.problem(e.to_string());
            }
        }
    }

    fn peer_changed(&mut self, lease: &Lease) {
        let Some(backend) = self.ready_backend() else {
            self.needs_sync = true;
            return;
        };
        let peer = self.peer(lease);
        if awaiting_data(backend.as_ref(), &peer) {
            info!(cluster = %self.name, peer = %peer.describe(), "peer has not published its backend data yet");
            return;
        }
        match backend.add_or_update_peer(&peer) {
            Ok(changes) => {
                info!(cluster = %self.name, peer = %peer.describe(), changes = changes.len(), "peer programmed")
            }
            Err(e) => {
                error!(cluster = %self.name, "{e}");
                self.problem(e.to_string());
            }
        }
    }

    fn peer_removed(&mut self, lease: &Lease) {
        let Some(backend) = self.ready_backend() else {
            self.needs_sync = true;
            return;
        };
        let peer = self.peer(lease);
        match backend.remove_peer(&peer) {
            Ok(_) => {
                info!(cluster = %self.name, peer = %peer.describe(), "peer gone: its routes are removed")
            }
            Err(e) => {
                error!(cluster = %self.name, "removing peer {}: {e}", peer.describe());
                self.problem(e.to_string());
            }
        }
    }

    /// Periodic work: retry a backend that failed to start, re-create a deleted device.
    fn maintain(&mut self, pending: &mut VecDeque<Request>) {
        if self.joined.is_none() || self.keeper.subnet().is_none() {
            return;
        }
        if self.last_repair.elapsed() < REPAIR_EVERY {
            return;
        }
        self.last_repair = Instant::now();
        if self.joined.as_ref().is_some_and(|j| j.mtu.is_none()) {
            if let Some(data) = self.init_backend() {
                // The MTU is known only now: the record and subnet.env get it.
                self.save_record(true);
                self.feed(Input::BackendData(data), pending);
            }
            return;
        }
        let Some(backend) = self.backend.clone() else {
            return;
        };
        match backend.repair() {
            Ok(changes) if changes.is_empty() => {}
            Ok(changes) => {
                for change in changes {
                    warn!(cluster = %self.name, "repaired: {change}");
                }
                let leases: Vec<Lease> = self.keeper.peers().cloned().collect();
                self.sync(&leases);
            }
            Err(e) => error!(cluster = %self.name, "backend repair failed: {e}"),
        }
    }

    /// The backend the cluster config names, reported to the control socket.
    fn make_backend(&self, config: &ClusterConfig) -> Result<Arc<dyn Backend>, String> {
        let backend: Arc<dyn Backend> = match config.backend.kind.as_str() {
            "bgp" => {
                let settings = bgp::backend_config(config, &self.bgp_args, &self.identity)?;
                let bgp = Arc::new(BgpBackend::new(settings));
                self.control.set_backend("bgp", Some(bgp.clone()));
                return Ok(bgp);
            }
            "host-gw" => Arc::new(HostGwBackend::new()),
            _ => Arc::new(VxlanBackend::new(VxlanConfig {
                vni: config.backend.vni,
                port: config.backend.port,
                direct_routing: config.backend.direct_routing,
            })),
        };
        self.control.set_backend(backend.name(), None);
        Ok(backend)
    }

    fn ready_backend(&self) -> Option<Arc<dyn Backend>> {
        self.joined.as_ref()?.mtu?;
        self.backend.clone()
    }

    fn local_node(&self, joined: &Joined) -> LocalNode {
        let mut subnets = vec![IpNet::V4(joined.subnet)];
        subnets.extend(joined.subnet_v6.map(IpNet::V6));
        LocalNode {
            cluster: self.name.clone(),
            subnets,
            public_ip: self.underlay.public_ip,
            underlay_index: self.underlay.index,
            underlay_mtu: self.underlay.mtu,
            cluster_networks: joined.config.networks(),
        }
    }

    fn peer(&self, lease: &Lease) -> Peer {
        let mut subnets = vec![IpNet::V4(lease.subnet)];
        if self.joined.as_ref().is_some_and(|j| j.subnet_v6.is_some()) {
            subnets.extend(lease.value.subnet_v6.map(IpNet::V6));
        }
        Peer {
            name: if lease.value.hostname.is_empty() {
                lease.value.node_id.clone()
            } else {
                lease.value.hostname.clone()
            },
            subnets,
            public_ip: lease.value.public_ip,
            data: lease.value.backend_data.clone(),
        }
    }

    fn problem(&mut self, text: String) {
        self.problems.push(text);
        let excess = self.problems.len().saturating_sub(MAX_PROBLEMS);
        self.problems.drain(..excess);
        self.save_record(self.keeper.subnet().is_some());
    }

    fn save_record(&self, held: bool) {
        let Some(joined) = &self.joined else {
            return;
        };
        let record = LocalRecord {
            cluster: self.name.clone(),
            subnet: joined.subnet,
            subnet_v6: joined.subnet_v6,
            mtu: joined.mtu.unwrap_or(self.underlay.mtu),
            network: joined.config.network,
            network_v6: joined.config.network_v6,
            backend: joined.config.backend.kind.clone(),
            public_ip: self.underlay.public_ip,
            lease_held: held,
            problems: self.problems.clone(),
        };
        if let Err(e) = local::save_record(self.controller.store(), &record) {
            error!(cluster = %self.name, "cannot write the local cluster record: {e}");
        }
        if held && joined.mtu.is_some() {
            self.write_subnet_env(&subnet_env(&record, joined.config.masquerade));
        }
    }

    /// Writes subnet.env when its content changed: atomically (a reader never sees half a
    /// file), and not on every problem noted, which saves the record too.
    fn write_subnet_env(&self, text: &str) {
        if self.subnet_env.borrow().as_deref() == Some(text) {
            return;
        }
        match write_atomically(&self.subnet_file, text.as_bytes()) {
            Ok(()) => {
                info!(cluster = %self.name, path = %self.subnet_file.display(), "subnet.env written");
                *self.subnet_env.borrow_mut() = Some(text.to_string());
            }
            Err(e) => error!(
                cluster = %self.name,
                "cannot write {}: {e}; tools reading it will not see this host's subnet (fix the directory or pass --subnet-file)",
                self.subnet_file.display()
            ),
        }
    }
}

/// Whether a backend's refusal is about this host's configuration (bad flags or cluster
/// settings, a port taken, a kind of device the kernel lacks), which no retry mends, rather
/// than a passing kernel failure (netlink, nft), which the next repair round retries.
fn is_fatal(e: &DriverError) -> bool {
    matches!(
        e,
        DriverError::Invalid(_)
            | DriverError::InvalidOption { .. }
            | DriverError::Unsupported { .. }
    )
}

/// A vxlan or bgp peer that has claimed its subnet but not yet published its backend data
/// (its VTEP MAC, whether it reflects routes; it does right after its backend is up): not an
/// error, it is programmed when its lease says more.
fn awaiting_data(backend: &dyn Backend, peer: &Peer) -> bool {
    matches!(backend.name(), "vxlan" | "bgp") && peer.data.is_null()
}

async fn next_events(watch: &mut Option<Watch>) -> Result<Vec<WatchEvent>, ClusterError> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// The local network named after the cluster: a network of the attachment's driver (bridge or
/// routed) on this host's subnet with the backend's MTU, exempting the cluster networks from
/// masquerade. Re-made when the driver, subnet or MTU changed and no container is attached;
/// refused (with what to do) otherwise.
fn ensure_network(
    controller: &Controller,
    name: &str,
    joined: &Joined,
    mtu: u32,
) -> Result<Option<String>, EngineError> {
    let cidrs: Vec<String> = joined
        .config
        .networks()
        .iter()
        .map(ToString::to_string)
        .collect();
    let driver = joined.config.attachment.driver();
    let (mtu_key, cidr_key, masquerade_key) = match joined.config.attachment {
        Attachment::Bridge => (
            bridge_options::MTU,
            bridge_options::CLUSTER_CIDR,
            bridge_options::ENABLE_IP_MASQUERADE,
        ),
        Attachment::Routed => (
            routed_options::MTU,
            routed_options::CLUSTER_CIDR,
            routed_options::MASQUERADE,
        ),
    };
    let mut options = BTreeMap::new();
    options.insert(mtu_key.to_string(), mtu.to_string());
    options.insert(cidr_key.to_string(), cidrs.join(","));
    // Only when off: networks made before the option existed stay as they are (re-making
    // one needs its containers gone).
    if !joined.config.masquerade {
        options.insert(masquerade_key.to_string(), "false".to_string());
    }
    let mut wanted: Vec<IpNet> = vec![IpNet::V4(joined.subnet)];
    wanted.extend(joined.subnet_v6.map(IpNet::V6));
    match controller.network(name) {
        Ok(rec) => {
            let subnets: Vec<IpNet> = rec.network.subnets.iter().map(|s| s.subnet).collect();
            // Masquerade back on (the key absent from `options`) differs from a network
            // made with it off.
            let same_options = options
                .iter()
                .all(|(k, v)| rec.network.options.get(k) == Some(v))
                && rec.network.options.get(masquerade_key) == options.get(masquerade_key);
            if subnets == wanted && same_options && rec.network.driver == driver {
                return Ok(None);
            }
            let endpoints = controller.endpoints(&rec.network.id)?;
            if !endpoints.is_empty() {
                return Err(EngineError::InUse(format!(
                    "network {name} is a {} network on {} but this host now needs a {driver} network on {}; its {} container(s) must be disconnected before it can be re-made",
                    rec.network.driver,
                    subnets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                    wanted.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                    endpoints.len()
                )));
            }
            controller.delete_network(name)?;
        }
        Err(EngineError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let pool = |subnet: IpNet| PoolRequest {
        subnet: Some(subnet),
        v6: subnet.addr().is_ipv6(),
        owner: format!("cluster {name}"),
        ..PoolRequest::default()
    };
    let mut labels = BTreeMap::new();
    labels.insert(CLUSTER_LABEL.to_string(), name.to_string());
    controller.create_network(NetworkRequest {
        name: name.to_string(),
        id: None,
        driver: driver.into(),
        internal: false,
        enable_ipv6: joined.subnet_v6.is_some(),
        ipam: IpamRequest::Weft {
            v4: vec![pool(IpNet::V4(joined.subnet))],
            v6: joined
                .subnet_v6
                .map(|s| pool(IpNet::V6(s)))
                .into_iter()
                .collect(),
        },
        options,
        labels,
        origin: Origin::Daemon,
    })?;
    Ok(Some(format!(
        "local {driver} network {name} is on {} (mtu {mtu})",
        wanted
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )))
}

/// The public address and its interface: `--public-ip` (the interface holding it), `--iface`
/// (its first IPv4 address), `--iface-regex` (the first matching interface, by name, that has
/// an IPv4 address), `--iface-can-reach` (the output interface of the route to that address),
/// or the interface of the default route.
pub fn find_underlay(choice: &UnderlayChoice) -> Result<Underlay, ClusterError> {
    let fail = |reason: String| ClusterError::InvalidConfig { reason };
    let mut nl = Netlink::open().map_err(|e| fail(e.to_string()))?;
    let addresses = nl.addresses(None).map_err(|e| fail(e.to_string()))?;
    let first_v4 = |index: u32| {
        addresses
            .iter()
            .filter(|(i, a)| *i == index && a.addr().is_ipv4())
            .map(|(_, a)| a.addr())
            .next()
    };
    let (index, public_ip) = if let UnderlayChoice::PublicIp(ip) = choice {
        let index = addresses
            .iter()
            .find(|(_, a)| a.addr() == *ip)
            .map(|(i, _)| *i)
            .ok_or_else(|| {
                fail(format!(
                    "--public-ip {ip} is not an address of this host; give one of its addresses"
                ))
            })?;
        (index, *ip)
    } else {
        let (index, flag) = match choice {
            UnderlayChoice::Iface(name) => (
                nl.link_by_name(name)
                    .map_err(|e| fail(e.to_string()))?
                    .ok_or_else(|| fail(format!("--iface {name}: no such interface")))?
                    .index,
                format!("--iface {name}"),
            ),
            UnderlayChoice::IfaceRegex(pattern) => {
                let re = regex::Regex::new(pattern).map_err(|e| {
                    fail(format!(
                        "--iface-regex {pattern:?} is not a regular expression: {e}"
                    ))
                })?;
                let mut links = nl.links().map_err(|e| fail(e.to_string()))?;
                links.sort_by(|a, b| a.name.cmp(&b.name));
                let matching: Vec<_> = links.iter().filter(|l| re.is_match(&l.name)).collect();
                // An interface without an IPv4 address cannot be the underlay: skip it, as
                // flanneld does, so that `eth.*` finds the one that is configured.
                let link = matching
                    .iter()
                    .find(|l| first_v4(l.index).is_some())
                    .ok_or_else(|| {
                        fail(format!(
                            "--iface-regex {pattern:?}: {}; interfaces here: {}",
                            if matching.is_empty() {
                                "no interface name matches".to_string()
                            } else {
                                format!(
                                    "no IPv4 address on the matching {}",
                                    matching
                                        .iter()
                                        .map(|l| l.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )
                            },
                            links
                                .iter()
                                .map(|l| l.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                (link.index, format!("--iface-regex {pattern:?}"))
            }
            UnderlayChoice::CanReach(ip) => (
                nl.route_get_oif(*ip)
                    .map_err(|e| fail(e.to_string()))?
                    .ok_or_else(|| {
                        fail(format!(
                            "--iface-can-reach {ip}: this host has no route to {ip}; give an \
                             address it can reach, or --iface"
                        ))
                    })?,
                format!("--iface-can-reach {ip}"),
            ),
            _ => (
                default_route_interface(&mut nl)
                    .map_err(|e| fail(e.to_string()))?
                    .ok_or_else(|| fail("this host has no default route to find its public address by; pass --public-ip or --iface".into()))?,
                "the default route".to_string(),
            ),
        };
        let ip = first_v4(index).ok_or_else(|| {
            fail(format!(
                "interface {index} (found by {flag}) has no IPv4 address; pass --public-ip"
            ))
        })?;
        (index, ip)
    };
    let link = nl
        .link_by_index(index)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail(format!("interface {index} vanished")))?;
    Ok(Underlay {
        public_ip,
        index,
        mtu: link.mtu,
    })
}

fn default_route_interface(nl: &mut Netlink) -> Result<Option<u32>, DriverError> {
    Ok(nl
        .routes(None, Some(254))?
        .into_iter()
        .find(|r| r.destination.prefix_len() == 0 && r.destination.addr().is_ipv4())
        .and_then(|r| r.oif))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// flannel's subnet.env (what CNI's flannel plugin and other tools read), with WEFT_
/// duplicates. FLANNEL_SUBNET is the host's gateway address with the subnet's length, as
/// flanneld writes it.
fn subnet_env(record: &LocalRecord, masquerade: bool) -> String {
    let gateway = |net: IpNet| {
        net.hosts()
            .next()
            .map(|gw| format!("{gw}/{}", net.prefix_len()))
            .unwrap_or_else(|| net.to_string())
    };
    let mut vars = vec![
        ("NETWORK", record.network.to_string()),
        ("SUBNET", gateway(IpNet::V4(record.subnet))),
    ];
    if let (Some(net6), Some(sub6)) = (record.network_v6, record.subnet_v6) {
        vars.push(("IPV6_NETWORK", net6.to_string()));
        vars.push(("IPV6_SUBNET", gateway(IpNet::V6(sub6))));
    }
    vars.push(("MTU", record.mtu.to_string()));
    vars.push(("IPMASQ", masquerade.to_string()));
    let mut out = String::new();
    for prefix in ["FLANNEL", "WEFT"] {
        for (key, value) in &vars {
            out.push_str(&format!("{prefix}_{key}={value}\n"));
        }
    }
    out
}

/// Write to a temporary file beside `path`, fsync, rename over it, fsync the directory: a
/// reader sees the old content or the new, never a part.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod subnet_env_tests {
    use super::*;

    #[test]
    fn subnet_env_has_flannels_variables() {
        let record = LocalRecord {
            cluster: "c1".into(),
            subnet: "10.244.3.0/24".parse().unwrap(),
            subnet_v6: None,
            mtu: 1450,
            network: "10.244.0.0/16".parse().unwrap(),
            network_v6: None,
            backend: "vxlan".into(),
            public_ip: "192.168.0.1".parse().unwrap(),
            lease_held: true,
            problems: vec![],
        };
        let text = subnet_env(&record, false);
        assert!(text.starts_with(
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
        ), "{text}");
        assert!(text.contains("WEFT_SUBNET=10.244.3.1/24\n"), "{text}");
    }
}
