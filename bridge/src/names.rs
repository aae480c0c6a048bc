//! Names of the bridge driver's kernel objects. Endpoint-level names are shared with every
//! veth-based driver (`weft_drivers::names`).

pub use weft_drivers::names::{
    check_ifname, endpoint_alias, endpoint_of_alias, host_veth, network_alias as bridge_alias,
    short, staged_veth,
};

/// `br-<first 12 hex of the network id>`, as Docker names its bridges.
pub fn bridge(network_id: &str) -> String {
    format!("br-{}", weft_drivers::names::short(network_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_name_fits_ifnamsiz() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(bridge(id), "br-0123456789ab");
        assert!(check_ifname(&bridge(id)).is_ok());
    }
}
