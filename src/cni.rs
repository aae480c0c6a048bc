//! CNI mode: the binary is a CNI plugin when `CNI_COMMAND` is set. Wiring only: the runtime's
//! environment and stdin in, the reply out; the protocol lives in `weft_plugin_api::cni`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use weft_plugin_api::cni::{self, Backend, Invocation};

use crate::setup;

/// Warnings and errors to stderr, plain text: runtimes quote a plugin's stderr in their own
/// messages. `RUST_LOG` asks for more.
fn init_logging() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Whether the runtime started us as a CNI plugin.
pub fn invoked_as_plugin() -> bool {
    std::env::var_os("CNI_COMMAND").is_some()
}

/// Runs one CNI command: logs go to stderr (warnings only unless `RUST_LOG` says otherwise),
/// the result or error result to stdout.
pub fn main() -> ExitCode {
    init_logging();
    let mut stdin = Vec::new();
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let inv = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => Invocation { vars, stdin },
        // Unreadable stdin reads as empty, which the protocol answers with a decoding error.
        Err(e) => {
            tracing::warn!(error = %e, "cannot read stdin");
            Invocation {
                vars,
                stdin: Vec::new(),
            }
        }
    };
    let reply = cni::run(
        &inv,
        &Backend {
            default_state_dir: Path::new(setup::DEFAULT_STATE_DIR),
            controller: &setup::controller_with_lock_timeout,
        },
    );
    let mut out = std::io::stdout().lock();
    // Nothing to do if the runtime closed stdout: the exit code still tells it.
    let _ = out
        .write_all(reply.stdout.as_bytes())
        .and_then(|()| out.flush());
    ExitCode::from(reply.exit_code)
}
