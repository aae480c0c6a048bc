//! `weft status`: each network and what differs between its records and the kernel, the
//! operations an interrupted process left pending, and the records that cannot be read.

use std::path::Path;

use serde_json::json;
use weft_engine::EngineError;

use crate::setup;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print JSON: {"networks": [...], "pending": [...], "corrupt": [...]}.
    #[arg(long)]
    pub json: bool,
    /// First settle interrupted operations and repair the kernel from the records (what the
    /// daemon does at start), printing each change.
    #[arg(long)]
    pub repair: bool,
}

pub fn run(state_dir: &Path, args: StatusArgs) -> Result<(), EngineError> {
    let c = setup::controller(state_dir)?;
    let mut repaired = Vec::new();
    if args.repair {
        repaired = c.reconcile()?;
    }
    let status = c.status()?;
    let pending = c.pending()?;
    let corrupt: Vec<_> = c
        .corrupt_records()?
        .into_iter()
        .map(|(key, reason)| json!({"key": key, "path": state_dir.join(&key), "reason": reason}))
        .collect();
    if args.json {
        let mut out = json!({"networks": status, "pending": pending, "corrupt": corrupt});
        if args.repair {
            out["repaired"] = json!(repaired);
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(());
    }
    for line in &repaired {
        println!("repaired: {line}");
    }
    println!(
        "{:<24}{:<10}{:>10}  STATE",
        "NETWORK", "DRIVER", "ENDPOINTS"
    );
    for n in &status {
        let problems = n["problems"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        println!(
            "{:<24}{:<10}{:>10}  {}",
            n["network"].as_str().unwrap_or(""),
            n["driver"].as_str().unwrap_or(""),
            n["endpoints"],
            if problems.is_empty() {
                "ok".to_string()
            } else {
                format!("{} problem(s)", problems.len())
            }
        );
        for p in problems {
            println!("    - {}", p.as_str().unwrap_or(""));
        }
    }
    if !pending.is_empty() {
        println!(
            "\nINTERRUPTED OPERATIONS (settled by the next command, or `weft status --repair`)"
        );
        for p in &pending {
            match p["operation"].as_str() {
                Some(op) => println!("    - {op} (process {} is gone)", p["pid"]),
                None => println!("    - {}: {}", p["key"], p["error"]),
            }
        }
    }
    if !corrupt.is_empty() {
        println!("\nCORRUPT RECORDS (skipped; restore each from a backup, or remove it)");
        for r in &corrupt {
            println!(
                "    - {}: {}",
                r["path"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}
