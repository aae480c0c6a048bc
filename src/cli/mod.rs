//! Command line: `weft network …`, `weft daemon`, `weft cluster …`, `weft bgp …`.

pub mod output;

/// `println!` for every command: stdout through [`output::write`], so that a closed pipe ends
/// the output instead of panicking. Defined before the command modules so that theirs is this one.
macro_rules! println {
    () => {
        $crate::cli::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for every command, as [`println!`].
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::cli::output::write(format_args!($($arg)*))
    };
}

mod bgp;
mod cidr;
mod cluster;
mod debug;
mod docker_api;
mod network;
mod port;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use weft_engine::EngineError;

use crate::setup;

#[derive(Parser, Debug)]
#[command(
    name = "weft",
    version,
    about = "Container networking: bridge networks, Docker and CNI plugin, multi-host routing"
)]
pub struct Cli {
    /// Where weft keeps its state (networks, endpoints, address reservations).
    #[arg(long, global = true, env = "WEFT_STATE_DIR", default_value = setup::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter); default warn, info for the daemon.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage networks (create, ls, inspect, rm, connect, disconnect).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// The host ports weft published for a container, as `docker port` prints them.
    Port(port::PortArgs),
    /// Show every network and what differs between its records and the kernel.
    Status(status::StatusArgs),
    /// Serve Docker's remote NetworkDriver and IpamDriver plugin protocol (and, with
    /// --cluster, join a multi-host cluster network).
    Daemon(crate::daemon::DaemonArgs),
    /// Multi-host cluster networks in etcd (init, reserve, unreserve, status).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The running daemon's BGP sessions and routes (bgp backend; read over its control
    /// socket).
    #[command(subcommand)]
    Bgp(bgp::BgpCommand),
    /// Tools for tests and debugging, not for production use.
    #[command(subcommand, hide = true)]
    Debug(debug::DebugCommand),
}

impl Command {
    pub fn is_daemon(&self) -> bool {
        matches!(self, Command::Daemon(_) | Command::Debug(_))
    }
}

pub fn run(cli: Cli) -> Result<(), EngineError> {
    match cli.command {
        Command::Network(cmd) => network::run(&cli.state_dir, cmd),
        Command::Port(args) => port::run(&cli.state_dir, args),
        Command::Status(args) => status::run(&cli.state_dir, args),
        Command::Daemon(args) => crate::daemon::run(&cli.state_dir, args),
        Command::Cluster(cmd) => cluster::run(&cli.state_dir, cmd),
        Command::Bgp(cmd) => bgp::run(&cli.state_dir, cmd),
        Command::Debug(cmd) => debug::run(&cli.state_dir, cmd),
    }
}
