//! Fuzz target: the CNI network configuration on stdin, through the same steps as
//! `cni::run`: JSON, its `cniVersion`, then `NetConf::parse` and what the plugin reads off it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_plugin_api::cni::{parse_json, version_of, NetConf};

fuzz_target!(|data: &[u8]| {
    let Ok(root) = parse_json(data) else { return };
    let _ = version_of(&root);
    if let Ok(conf) = NetConf::parse(&root) {
        let _ = conf.network();
        let _ = conf.configured_state_dir();
        let _ = conf.static_ips();
        let _ = conf.mac();
    }
});
