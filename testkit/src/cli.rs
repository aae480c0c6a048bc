//! The `weft` CLI run inside a test namespace, against a state directory of the test's own
//! rather than the machine's `/var/lib/weft`.
//!
//! `bin` is the `weft` Cargo built for the calling test, `env!("CARGO_BIN_EXE_weft")`: only the
//! root crate's tests can name it.

use std::path::Path;
use std::process::Output;

use crate::ns::Ns;

/// `weft --state-dir STATE ARGS` inside `ns`.
pub fn weft(ns: &Ns, bin: &str, state: &Path, args: &[&str]) -> Output {
    ns.cmd(bin)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run weft")
}

/// [`weft`], which must succeed; its stdout. Panics with the exit status and stderr otherwise.
pub fn weft_ok(ns: &Ns, bin: &str, state: &Path, args: &[&str]) -> String {
    let out = weft(ns, bin, state, args);
    assert!(
        out.status.success(),
        "weft {} on {} failed ({}): {}",
        args.join(" "),
        ns.name,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
