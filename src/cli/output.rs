//! Everything the CLI prints to stdout goes through [`write`] (the `println!`/`print!` of
//! `cli/*` are shadowed by macros in `cli/mod.rs` that call it).
//!
//! std's `println!` panics when stdout is a pipe whose reader has gone (`weft network
//! inspect X | head -1`: EPIPE, exit 101). A reader that stops reading has seen all it wants, so
//! here the output simply ends: the command still finishes its work (and its teardown) and exits
//! with its own status, 0 on success. SIGPIPE stays ignored (Rust's default) rather than
//! restored: weft writes to `nft -f -` and to sockets, and dying of SIGPIPE half-way through a
//! `network create` would skip its rollback.

use std::fmt;
use std::io::{self, ErrorKind, Write};
use std::sync::Mutex;

/// Why stdout stopped taking output: `None` while it works.
static STOPPED: Mutex<Option<Stopped>> = Mutex::new(None);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// The reader went away (EPIPE): a normal end of the output.
    ReaderGone,
    /// Anything else (a full disk, EIO): the output the user asked for is lost.
    Failed,
}

/// Writes `args` to stdout and flushes, once stdout has failed, does nothing.
pub fn write(args: fmt::Arguments<'_>) {
    let mut stopped = STOPPED.lock().unwrap_or_else(|p| p.into_inner());
    if stopped.is_some() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            *stopped = Some(Stopped::ReaderGone);
        } else {
            eprintln!("weft: error: cannot write the output to stdout: {e}; check where stdout goes (a full disk, a closed terminal)");
            *stopped = Some(Stopped::Failed);
        }
    }
}

/// True when output was lost for a reason other than the reader going away; the command
/// then exits 1 even if its work succeeded.
pub fn failed() -> bool {
    *STOPPED.lock().unwrap_or_else(|p| p.into_inner()) == Some(Stopped::Failed)
}
