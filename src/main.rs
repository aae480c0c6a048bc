//! `weft`: the CLI, the daemon, and — when invoked with `CNI_COMMAND` set — the CNI plugin.

mod agent;
mod cli;
mod cni;
mod control;
mod daemon;
mod healthz;
mod setup;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if cni::invoked_as_plugin() {
        return cni::main();
    }
    let args = cli::Cli::parse();
    setup::init_logging(args.log_level.as_deref(), args.command.is_daemon());
    match cli::run(args) {
        // The work succeeded but its output was lost (not merely cut short by a reader that
        // went away): the user did not get what they asked for.
        Ok(()) if cli::output::failed() => ExitCode::from(1),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: error: {e}");
            ExitCode::from(setup::exit_code(&e))
        }
    }
}
