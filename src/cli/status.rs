//! `weft status`: each network and what differs between its records and the kernel.

use std::path::Path;

use weft_engine::EngineError;

use crate::setup;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(state_dir: &Path, args: StatusArgs) -> Result<(), EngineError> {
    let c = setup::controller(state_dir)?;
    let status = c.status()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status).expect("json"));
        return Ok(());
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
    Ok(())
}
