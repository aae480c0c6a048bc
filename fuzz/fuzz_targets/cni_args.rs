//! Fuzz target: `CNI_ARGS` parsing and the `CNI_*` environment reader. The first byte picks
//! which variable the rest goes to; the others get valid values, so the reader gets past its
//! earlier checks.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use weft_plugin_api::cni::{parse_cni_args, Command, Env};

const VARS: [&str; 6] = [
    "CNI_ARGS",
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_PATH",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = parse_cni_args(text);
    let _ = Command::parse(text);
    let mut vars: BTreeMap<String, String> = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni:/opt/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.insert(
        VARS[usize::from(pick) % VARS.len()].to_string(),
        text.to_string(),
    );
    if let Ok(env) = Env::from_vars(&vars) {
        // What the plugin does next with what the reader kept.
        let _ = parse_cni_args(&env.args);
    }
});
