//! Wiring: the store, the controller with its drivers, logging, exit codes.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weft_bridge::BridgeDriver;
use weft_drivers::builtin::BuiltinDriver;
use weft_drivers::firewall::Firewall;
use weft_engine::{Controller, EngineError, ErrorClass};
use weft_ipam::{FileStore, StoreError};
use weft_routed::RoutedDriver;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/weft";

pub fn controller(state_dir: &Path) -> Result<Controller, EngineError> {
    controller_over(open_store(state_dir)?)
}

/// The store in `state_dir`, which every command opens through here. A state directory others
/// may write to is bad configuration (exit 2), not a failure of the system.
pub fn open_store(state_dir: &Path) -> Result<FileStore, EngineError> {
    FileStore::open(state_dir).map_err(|e| match e {
        e @ StoreError::UnsafeDir { .. } => EngineError::Invalid(e.to_string()),
        e => EngineError::Store(e),
    })
}

/// A controller whose store lock gives up after `lock_timeout` (for CNI runtimes, which
/// would rather hear "try again later" than wait behind a stuck process).
pub fn controller_with_lock_timeout(
    state_dir: &Path,
    lock_timeout: Duration,
) -> Result<Controller, EngineError> {
    controller_over(open_store(state_dir)?.with_lock_timeout(lock_timeout))
}

fn controller_over(store: FileStore) -> Result<Controller, EngineError> {
    let mut c = Controller::new(Arc::new(store));
    c.register(Arc::new(BridgeDriver::new()));
    c.register(Arc::new(RoutedDriver::new()));
    for builtin in BuiltinDriver::all() {
        c.register(Arc::new(builtin));
    }
    c.set_firewall(Firewall::system());
    Ok(c)
}

pub fn init_logging(level: Option<&str>, daemon: bool) {
    let default = if daemon { "info" } else { "warn" };
    let filter = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: in a log file (`weft daemon
        // 2>weft.log`, a service manager's journal) they are noise around every field.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// 1: the system failed; 2: the request is wrong (clap uses 2 for bad usage too); 3: not found;
/// 4: conflict (exists, in use, exhausted).
pub fn exit_code(e: &EngineError) -> u8 {
    match e.class() {
        ErrorClass::System => 1,
        ErrorClass::Invalid => 2,
        ErrorClass::NotFound => 3,
        ErrorClass::Conflict => 4,
    }
}
