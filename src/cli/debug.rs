//! `weft debug …` (hidden): tools for tests, not for production use.
//!
//! `weft debug bgp-host FILE` runs the bgp backend of one host from a JSON file, without etcd
//! and without the rest of the daemon: where a whole `weft daemon` with an etcd is too heavy
//! (the IPIP test boots a VM with a stock kernel, because this one lacks ipip), it is the
//! same backend code the cluster agent runs, fed the peers the file lists. It serves the
//! control socket, so `weft bgp status|routes` work against it, and tears everything down
//! at SIGTERM or SIGINT.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};
use ipnet::IpNet;
use serde::Deserialize;
use tracing::{error, info};
use weft_bgp::backend::BgpBackendConfig;
use weft_bgp::BgpBackend;
use weft_drivers::backend::{Backend, LocalNode, Peer};
use weft_engine::EngineError;

use crate::control::{self, ControlState};

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Run the bgp backend of one host from a JSON file (no etcd) until SIGTERM.
    BgpHost(BgpHostArgs),
}

#[derive(Args, Debug)]
pub struct BgpHostArgs {
    /// The host: {"cluster", "iface" or "public_ip", "subnets", "cluster_networks", "bgp":
    /// BgpBackendConfig, "peers": [{"name", "subnets", "public_ip", "data"}]}.
    pub config: PathBuf,
    /// The control socket to serve (default as `weft daemon`'s).
    #[arg(long, env = control::SOCKET_ENV)]
    pub control_socket: Option<PathBuf>,
}

/// The file `weft debug bgp-host` reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    cluster: String,
    #[serde(default)]
    iface: Option<String>,
    #[serde(default)]
    public_ip: Option<IpAddr>,
    subnets: Vec<IpNet>,
    cluster_networks: Vec<IpNet>,
    #[serde(default)]
    bgp: BgpBackendConfig,
    #[serde(default)]
    peers: Vec<Peer>,
}

pub fn run(state_dir: &Path, cmd: DebugCommand) -> Result<(), EngineError> {
    match cmd {
        DebugCommand::BgpHost(args) => bgp_host(state_dir, args),
    }
}

fn bgp_host(state_dir: &Path, args: BgpHostArgs) -> Result<(), EngineError> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| EngineError::Invalid(format!("cannot read {}: {e}", args.config.display())))?;
    let file: HostFile = serde_json::from_str(&text).map_err(|e| {
        EngineError::Invalid(format!(
            "{} is not a bgp-host file: {e}",
            args.config.display()
        ))
    })?;
    use crate::agent::UnderlayChoice;
    let choice = match (file.public_ip, file.iface.clone()) {
        (Some(ip), _) => UnderlayChoice::PublicIp(ip),
        (None, Some(name)) => UnderlayChoice::Iface(name),
        (None, None) => UnderlayChoice::DefaultRoute,
    };
    let underlay = crate::agent::find_underlay(&choice).map_err(crate::agent::into_engine)?;
    let node = LocalNode {
        cluster: file.cluster.clone(),
        subnets: file.subnets.clone(),
        public_ip: underlay.public_ip,
        underlay_index: underlay.index,
        underlay_mtu: underlay.mtu,
        cluster_networks: file.cluster_networks.clone(),
    };
    let backend = Arc::new(BgpBackend::new(file.bgp.clone()));
    let init = backend.init(&node)?;
    println!(
        "{}",
        serde_json::json!({"started": node.public_ip, "mtu": init.mtu, "data": init.data})
    );
    let socket = control::socket_path(args.control_socket.as_deref(), state_dir);
    let outcome = serve_until_signal(&socket, &file, backend.clone());
    if let Err(e) = backend.teardown() {
        error!("teardown: {e}");
    }
    info!("bgp host stopped");
    outcome
}

/// Programs the peers, serves the control socket and waits for SIGTERM or SIGINT.
fn serve_until_signal(
    socket: &Path,
    file: &HostFile,
    backend: Arc<BgpBackend>,
) -> Result<(), EngineError> {
    let report = backend.sync_peers(&file.peers)?;
    for change in &report.changes {
        info!("{change}");
    }
    for problem in &report.problems {
        error!("{problem}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::System(format!("cannot start a runtime: {e}")))?;
    let state = Arc::new(ControlState::default());
    state.set_cluster(&file.cluster);
    state.set_backend("bgp", Some(backend));
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let socket = control::server::bind(socket).await?;
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| EngineError::System(format!("cannot handle SIGTERM: {e}")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| EngineError::System(format!("cannot handle SIGINT: {e}")))?;
        socket
            .serve(state, async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            })
            .await;
        Ok(())
    })
}
