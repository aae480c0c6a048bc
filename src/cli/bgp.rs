//! `weft bgp status|routes`: what the running daemon's bgp backend knows, asked over the
//! control socket (only the daemon holds the BGP sessions).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::Value;
use weft_engine::EngineError;

use crate::control::{self, client, Method};

#[derive(Subcommand, Debug)]
pub enum BgpCommand {
    /// The BGP neighbours: address, AS, role, session state, uptime, prefixes received and
    /// sent; the announced subnets and the kernel route counters.
    Status(BgpArgs),
    /// The learned and announced routes (Loc-RIB) next to what weft keeps in the kernel.
    Routes(BgpArgs),
}

#[derive(Args, Debug)]
pub struct BgpArgs {
    /// The daemon's control socket (default /run/weft/weft.sock, or control.sock in a
    /// --state-dir other than /var/lib/weft).
    #[arg(long, env = control::SOCKET_ENV)]
    pub control_socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(state_dir: &Path, cmd: BgpCommand) -> Result<(), EngineError> {
    let (args, method) = match &cmd {
        BgpCommand::Status(a) => (a, Method::BgpStatus),
        BgpCommand::Routes(a) => (a, Method::BgpRoutes),
    };
    let socket = control::socket_path(args.control_socket.as_deref(), state_dir);
    let answer = client::call(&socket, method)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer).expect("json"));
        return Ok(());
    }
    let text = match method {
        Method::BgpRoutes => routes_table(&answer),
        _ => status_table(&answer),
    };
    print!("{text}");
    Ok(())
}

/// The header lines and one line per neighbour.
fn status_table(s: &Value) -> String {
    if s["initialized"] == Value::Bool(false) {
        return "bgp backend: not started yet (the host has not joined its cluster)\n".into();
    }
    let mut out = format!(
        "cluster {}  AS {}  router id {}  encapsulation {}  mesh {}{}\n",
        text(&s["cluster"]),
        text(&s["as"]),
        text(&s["router_id"]),
        text(&s["encapsulation"]),
        if s["mesh"] == Value::Bool(true) {
            "on"
        } else {
            "off"
        },
        match &s["route_reflector_cluster_id"] {
            Value::Null => String::new(),
            id => format!("  route reflector (cluster id {})", text(id)),
        }
    );
    out.push_str(&format!("announced: {}\n", list(&s["announced"])));
    out.push_str(&format!(
        "{:<26}{:<12}{:<17}{:<13}{:>10}{:>10}{:>7}\n",
        "NEIGHBOUR", "AS", "ROLE", "STATE", "UPTIME", "RECEIVED", "SENT"
    ));
    for n in s["neighbours"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "{:<26}{:<12}{:<17}{:<13}{:>10}{:>10}{:>7}\n",
            text(&n["address"]),
            text(&n["remote_as"]),
            text(&n["role"]),
            text(&n["state"]),
            n["uptime_secs"]
                .as_u64()
                .map(uptime)
                .unwrap_or_else(|| "-".into()),
            text(&n["prefixes_received"]),
            text(&n["prefixes_sent"]),
        ));
        // Why a session is not up; an old error of a session that is up says nothing.
        if let (Some(e), false) = (n["last_error"].as_str(), n["state"] == "Established") {
            out.push_str(&format!("    last error: {e}\n"));
        }
    }
    let r = &s["routes"];
    out.push_str(&format!(
        "kernel: {} route(s), {} refused\n",
        text(&r["routes"]),
        text(&r["failed"])
    ));
    for f in r["failures"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        out.push_str(&format!("    {}: {}\n", text(&f[0]), text(&f[1])));
    }
    out
}

/// One line per prefix: where the best path came from, its next hops and AS path, and
/// whether the kernel has it.
fn routes_table(v: &Value) -> String {
    let kernel = v["kernel"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = format!(
        "{:<22}{:<20}{:<34}{:<14}{}\n",
        "PREFIX", "FROM", "NEXT HOPS", "AS PATH", "KERNEL"
    );
    let rib = v["rib"].as_array().map(Vec::as_slice).unwrap_or_default();
    for r in rib {
        let prefix = text(&r["prefix"]);
        let from = match &r["source"] {
            Value::String(s) if s == "Local" => "this host".to_string(),
            Value::Object(o) => o.get("Peer").map(text).unwrap_or_default(),
            other => text(other),
        };
        let in_kernel = kernel.iter().find(|k| text(&k["prefix"]) == prefix);
        let state = match in_kernel {
            None if from == "this host" => "(own subnet)".to_string(),
            None => "-".to_string(),
            Some(k) => match k["error"].as_str() {
                Some(e) => format!("refused: {e}"),
                None => "installed".to_string(),
            },
        };
        let stale = if r["stale"] == Value::Bool(true) {
            " (stale)"
        } else {
            ""
        };
        out.push_str(&format!(
            "{:<22}{:<20}{:<34}{:<14}{state}{stale}\n",
            prefix,
            from,
            match list(&r["next_hops"]) {
                s if s.is_empty() => "-".to_string(),
                s => s,
            },
            as_path(&r["attrs"]["as_path"]),
        ));
    }
    for k in kernel {
        let prefix = text(&k["prefix"]);
        if !rib.iter().any(|r| text(&r["prefix"]) == prefix) {
            out.push_str(&format!(
                "{:<22}{:<20}{:<34}{:<14}kept, no longer in the RIB\n",
                prefix,
                "-",
                list(&k["next_hops"]),
                "-"
            ));
        }
    }
    out
}

fn as_path(p: &Value) -> String {
    let asns: Vec<String> = p["segments"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .flat_map(|s| s["asns"].as_array().cloned().unwrap_or_default())
        .map(|a| text(&a))
        .collect();
    if asns.is_empty() {
        "(iBGP)".into()
    } else {
        asns.join(" ")
    }
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(text)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_shows_every_neighbour_with_state_and_counts() {
        let s = json!({
            "cluster": "c1", "as": 64512, "router_id": "192.168.100.1", "encapsulation": "none",
            "mesh": true, "route_reflector_cluster_id": null, "announced": ["10.244.1.0/24"],
            "neighbours": [{"address": "192.168.100.2", "remote_as": 64512, "role": "mesh",
                "state": "Established", "uptime_secs": 75, "prefixes_received": 1,
                "prefixes_sent": 1, "last_error": null, "flaps": 0}],
            "routes": {"routes": 1, "failed": 0, "failures": []}
        });
        let t = status_table(&s);
        assert!(t.contains("cluster c1  AS 64512"), "{t}");
        assert!(t.contains("announced: 10.244.1.0/24"), "{t}");
        let line = t.lines().find(|l| l.starts_with("192.168.100.2")).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "192.168.100.2",
                "64512",
                "mesh",
                "Established",
                "1m15s",
                "1",
                "1"
            ]
        );
        assert!(t.contains("kernel: 1 route(s), 0 refused"), "{t}");
    }

    #[test]
    fn routes_show_source_hops_and_kernel_state() {
        let v = json!({
            "rib": [
                {"prefix": "10.244.1.0/24", "source": "Local", "next_hops": [], "stale": false,
                 "attrs": {"as_path": {"segments": []}}},
                {"prefix": "10.244.2.0/24", "source": {"Peer": "192.168.100.2"},
                 "next_hops": ["192.168.100.2"], "stale": false,
                 "attrs": {"as_path": {"segments": [{"kind": "Sequence", "asns": [65001]}]}}}
            ],
            "kernel": [{"prefix": "10.244.2.0/24", "next_hops": ["192.168.100.2"], "error": null}]
        });
        let t = routes_table(&v);
        let own = t.lines().find(|l| l.starts_with("10.244.1.0/24")).unwrap();
        assert!(
            own.contains("this host") && own.contains("(own subnet)"),
            "{t}"
        );
        let learned = t.lines().find(|l| l.starts_with("10.244.2.0/24")).unwrap();
        assert!(
            learned.contains("192.168.100.2") && learned.contains("65001"),
            "{t}"
        );
        assert!(learned.ends_with("installed"), "{t}");
    }
}
