//! Running nft transactions: the real `nft` program, or a recorder for unit tests.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::elements::{self, ElementOp};
use super::ruleset;
use crate::error::DriverError;

/// Runs nft: scripts as single transactions, listings as JSON.
pub trait NftRunner: Send + Sync {
    /// Applies `script` (nft text syntax) atomically: all of it or nothing.
    fn run(&self, script: &str) -> Result<(), DriverError>;
    /// `nft -j list <what>`: the JSON listing (nft 1.0.6 prints nothing for listings read from
    /// a script, so listings go on the command line).
    fn list(&self, what: &[&str]) -> Result<String, DriverError>;
    /// Adds and deletes port-map elements: the adds all or nothing, deletes of absent elements
    /// done. By default as an nft script.
    fn elements(&self, ops: &[ElementOp]) -> Result<(), DriverError> {
        self.run(&ruleset::elements_script(ops))
    }
}

/// The `nft` program.
pub struct SystemNft;

impl SystemNft {
    fn exec(args: &[&str], input: &str) -> Result<String, DriverError> {
        let mut child = Command::new("nft")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DriverError::Firewall {
                message: format!("cannot run nft ({e}); install the nftables package"),
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let written = stdin.write_all(input.as_bytes());
        drop(stdin);
        let out = child
            .wait_with_output()
            .map_err(|e| DriverError::Firewall {
                message: format!("waiting for nft: {e}"),
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(DriverError::Firewall {
                message: format!("nft {} refused: {}", args.join(" "), stderr.trim()),
            });
        }
        written.map_err(|e| DriverError::Firewall {
            message: format!("writing to nft: {e}"),
        })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl NftRunner for SystemNft {
    fn run(&self, script: &str) -> Result<(), DriverError> {
        Self::exec(&["-f", "-"], script).map(drop)
    }

    fn list(&self, what: &[&str]) -> Result<String, DriverError> {
        let mut args = vec!["-j", "list"];
        args.extend_from_slice(what);
        Self::exec(&args, "")
    }

    /// Straight over netlink: the hot path of every attach and detach.
    fn elements(&self, ops: &[ElementOp]) -> Result<(), DriverError> {
        elements::apply(ops)
    }
}

/// Records every script and answers listings from canned output (unit tests of pure logic).
#[derive(Default)]
pub struct RecordingNft {
    pub scripts: Mutex<Vec<String>>,
    pub listing: Mutex<Option<String>>,
}

impl NftRunner for RecordingNft {
    fn run(&self, script: &str) -> Result<(), DriverError> {
        self.scripts.lock().unwrap().push(script.to_string());
        Ok(())
    }

    fn list(&self, _what: &[&str]) -> Result<String, DriverError> {
        Ok(self.listing.lock().unwrap().clone().unwrap_or_default())
    }
}
