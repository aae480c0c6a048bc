//! Deciding that a test cannot run here, and saying so: a test that returns early without a word
//! would pass as coverage it is not.

use std::process::Command;

/// Whether the test can create network namespaces (it runs as root); prints why not.
pub fn root_or_skip(test: &str) -> bool {
    can_run(test, &[])
}

/// Whether the test can run as root with every one of `programs` installed; prints why not.
pub fn can_run(test: &str, programs: &[&str]) -> bool {
    match skip_reason(programs) {
        None => true,
        Some(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

/// Why a test that needs root and `programs` (names on `PATH`, or paths) cannot run here, if it
/// cannot.
pub fn skip_reason(programs: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root to create network namespaces".into());
    }
    programs
        .iter()
        .find(|p| !installed(p))
        .map(|p| format!("{p} is not installed (run scripts/install-deps)"))
}

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
