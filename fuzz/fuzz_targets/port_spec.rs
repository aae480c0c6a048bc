//! Fuzz target: the CLI's `-p` syntax (`weft_engine::PortSpec::from_str`). A spec that parses
//! must hold what the engine relies on: ranges in order, container port not 0, and a host range
//! as long as the container range (or one container port, or "any").
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use weft_engine::PortSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = PortSpec::from_str(text) {
        let (cs, ce) = spec.container_ports;
        let (hs, he) = spec.host_ports;
        assert!(cs != 0 && cs <= ce, "{text:?} → {spec:?}");
        assert!(hs <= he && (hs != 0 || he == 0), "{text:?} → {spec:?}");
        assert!(
            hs == 0 || cs == ce || he - hs == ce - cs,
            "{text:?} → {spec:?}"
        );
        // The same text parses the same way again (no hidden state).
        assert_eq!(PortSpec::from_str(text), Ok(spec));
    }
});
