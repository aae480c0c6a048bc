//! `weft daemon`: serves Docker's remote plugin protocol and reconciles state at start.
//!
//! It also serves the control API ([`crate::control`]) for `weft bgp status|routes`. That
//! socket is a convenience: when it cannot be served (another daemon holds it) the daemon says
//! so and runs on without it.
//!
//! At start the kernel is brought back in line with the store (`Controller::reconcile`): Docker
//! does not replay CreateNetwork or RequestPool after a restart, so the store is the truth.
//! SIGTERM or SIGINT stops accepting, lets in-flight requests finish, removes the socket and
//! exits 0, leaving every network and endpoint in the kernel as it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};
use weft_engine::EngineError;
use weft_plugin_api::docker::{self, DockerApi, DockerError};

use crate::control::{self, ControlState};
use crate::setup;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Unix socket dockerd finds the plugin by (its file name is the driver's name).
    #[arg(long, env = "WEFT_DOCKER_SOCKET", default_value = docker::SOCKET_PATH)]
    pub socket: PathBuf,
    /// Do not create the default bridge network `weft` (bridge weft0) at start.
    #[arg(long)]
    pub no_default_network: bool,
    /// Unix socket of the control API that `weft bgp status|routes` read (default
    /// /run/weft/weft.sock, or control.sock in a --state-dir other than /var/lib/weft).
    #[arg(long, env = control::SOCKET_ENV)]
    pub control_socket: Option<PathBuf>,
    /// Serve `GET /healthz` on ADDR:PORT (flanneld's --healthz-ip/--healthz-port): 200 while
    /// the cluster lease is held and etcd answers, 503 with the reason otherwise.
    #[arg(long, value_name = "ADDR:PORT")]
    pub healthz: Option<std::net::SocketAddr>,
    /// Joining a multi-host cluster network (optional).
    #[command(flatten)]
    pub cluster: crate::agent::AgentArgs,
}

/// `--public-ip` / `--iface` must name something this host has. The agent finds the underlay
/// too, but reports a miss as "invalid cluster config …; fix it with `weft cluster init`",
/// which sends the user to etcd for a mistake in this host's own flags; checked here first, the
/// error is about the flag and its value (exit 2).
fn check_underlay_flags(args: &crate::agent::AgentArgs) -> Result<(), EngineError> {
    if args.cluster.is_none() {
        return Ok(());
    }
    match crate::agent::find_underlay(&args.underlay_choice()) {
        Ok(_) => Ok(()),
        Err(weft_ipam::cluster::ClusterError::InvalidConfig { reason }) => {
            Err(EngineError::Invalid(reason))
        }
        Err(e) => Err(crate::agent::into_engine(e)),
    }
}

/// Test hook: plugin methods (e.g. `NetworkDriver.Join`) that do their work, undo it and fail.
const FAULTS_ENV: &str = "WEFT_DOCKER_FAIL";

pub fn run(state_dir: &Path, args: DaemonArgs) -> Result<(), EngineError> {
    let controller = Arc::new(setup::controller(state_dir)?);
    let faults = std::env::var(FAULTS_ENV).unwrap_or_default();
    let api = DockerApi::new(controller.clone())
        .with_faults(&faults)
        .map_err(|e| EngineError::Invalid(format!("{FAULTS_ENV}: {e}")))?;
    if !faults.is_empty() {
        warn!(methods = %faults, "failures are injected into these plugin methods");
    }
    check_underlay_flags(&args.cluster)?;
    let agent = crate::agent::prepare(controller.clone(), &args.cluster, state_dir)
        .map_err(crate::agent::into_engine)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::System(format!("cannot start the daemon's runtime: {e}")))?;
    runtime.block_on(async move {
        let reconciled = {
            let c = controller.clone();
            tokio::task::spawn_blocking(move || c.reconcile()).await
        };
        report_reconcile(reconciled);
        if !args.no_default_network {
            let c = controller.clone();
            match tokio::task::spawn_blocking(move || c.ensure_default_network()).await {
                Ok(Ok(Some(rec))) => info!(
                    network = %rec.network.name,
                    subnet = %rec.network.subnets.iter().map(|s| s.subnet.to_string()).collect::<Vec<_>>().join(","),
                    "default network created"
                ),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => error!(error = %e, "cannot create the default network weft"),
                Err(e) => error!(error = %e, "creating the default network panicked"),
            }
        }
        let signal = shutdown_signal()?;
        // The agent fails only on a fatal error (bad configuration); the daemon then stops
        // as on a signal and exits with it.
        let (agent_failed, failed) = tokio::sync::oneshot::channel::<()>();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            let failed = async {
                if failed.await.is_err() {
                    // No agent, or it ended without error: only a signal stops the daemon.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = signal => {}
                _ = failed => info!("shutting down: the cluster agent cannot run"),
            }
            let _ = stop.send(true);
        };
        let stopped_too = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let state = Arc::new(ControlState::default());
        let healthz = match args.healthz {
            Some(addr) => Some(tokio::spawn(crate::healthz::serve(
                crate::healthz::bind(addr).await?,
                state.clone(),
                stopped_too(stopped.clone()),
            ))),
            None => None,
        };
        let socket = control::socket_path(args.control_socket.as_deref(), state_dir);
        let control = match control::server::bind(&socket).await {
            Ok(socket) => Some(tokio::spawn(
                socket.serve(state.clone(), stopped_too(stopped.clone())),
            )),
            Err(e) => {
                error!("{e}; `weft bgp` cannot reach this daemon");
                None
            }
        };
        let agent = agent.map(|prepared| {
            let run = crate::agent::run(prepared, state.clone(), stopped_too(stopped.clone()));
            tokio::spawn(async move {
                let result = run.await;
                if result.is_err() {
                    let _ = agent_failed.send(());
                }
                result
            })
        });
        let served = docker::serve(Arc::new(api), &args.socket, shutdown)
            .await
            .map_err(into_engine);
        let mut result = served;
        if let Some(agent) = agent {
            match agent.await {
                Ok(Ok(())) => {}
                // Reported by main as the daemon's error (exit 2 for bad configuration).
                Ok(Err(e)) => result = result.and(Err(crate::agent::into_engine(e))),
                Err(e) => error!(error = %e, "cluster agent panicked"),
            }
        }
        if let Some(control) = control {
            let _ = control.await;
        }
        if let Some(healthz) = healthz {
            let _ = healthz.await;
        }
        result
    })
}

fn report_reconcile(result: Result<Result<Vec<String>, EngineError>, tokio::task::JoinError>) {
    match result {
        Ok(Ok(lines)) if lines.is_empty() => info!("reconciled: kernel and store agree"),
        Ok(Ok(lines)) => {
            for line in lines {
                info!("reconciled: {line}");
            }
        }
        // Serving anyway: Docker needs the plugin to tear down what it can.
        Ok(Err(e)) => error!(error = %e, "reconciliation at start left problems"),
        Err(e) => error!(error = %e, "reconciliation at start panicked"),
    }
}

/// Completes at the first SIGTERM or SIGINT.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, EngineError> {
    let handler = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| EngineError::System(format!("cannot handle {name}: {e}")))
    };
    let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(
            signal = name,
            "shutting down: finishing requests in flight, leaving networks as they are"
        );
    })
}

/// The CLI reports engine errors; a socket that cannot be served is a conflict with whatever
/// holds it.
fn into_engine(e: DockerError) -> EngineError {
    match e {
        DockerError::Engine(e) => e,
        DockerError::Ipam(e) => EngineError::Ipam(e),
        other => EngineError::InUse(other.to_string()),
    }
}
