//! Names and ownership marks of the kernel objects drivers make for endpoints. Every name derives
//! from an id, so any operation can be repeated (or resumed after a crash) and find its objects;
//! the marks (IFLA_IFALIAS) let reconciliation tell weft's links from everyone else's.

/// Host side of an endpoint's veth pair.
pub fn host_veth(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..endpoint_id.len().min(11)])
}

/// Container side while it waits in the host namespace for Docker to move it.
pub fn staged_veth(endpoint_id: &str) -> String {
    format!("vc{}", short(endpoint_id))
}

/// IFLA_IFALIAS of a network-level link weft made (a bridge).
pub fn network_alias(network_id: &str) -> String {
    format!("weft:net:{network_id}")
}

/// IFLA_IFALIAS of an endpoint's host-side veth.
pub fn endpoint_alias(network_id: &str, endpoint_id: &str) -> String {
    format!("weft:ep:{network_id}:{endpoint_id}")
}

/// The endpoint id in an alias made by `endpoint_alias` for `network_id`.
pub fn endpoint_of_alias<'a>(alias: &'a str, network_id: &str) -> Option<&'a str> {
    alias
        .strip_prefix("weft:ep:")?
        .strip_prefix(network_id)?
        .strip_prefix(':')
}

/// The network id in any alias weft made.
pub fn network_of_alias(alias: &str) -> Option<&str> {
    alias.strip_prefix("weft:net:").or_else(|| {
        alias
            .strip_prefix("weft:ep:")
            .and_then(|r| r.split(':').next())
    })
}

/// The first 12 characters of an id, as Docker shows them.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Linux interface names: 1–15 bytes, no '/', ':', whitespace; not "." or "..".
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("interface names are 1 to 15 characters long".into());
    }
    if name == "." || name == ".." {
        return Err("\".\" and \"..\" are not interface names".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "character {c:?} is not allowed; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const EP: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn names_fit_ifnamsiz() {
        for n in [host_veth(EP), staged_veth(EP)] {
            assert!(check_ifname(&n).is_ok(), "{n}");
        }
        assert_eq!(host_veth(EP), "vethfedcba98765");
    }

    #[test]
    fn aliases_round_trip() {
        let a = endpoint_alias(NET, EP);
        assert_eq!(endpoint_of_alias(&a, NET), Some(EP));
        assert_eq!(endpoint_of_alias(&a, EP), None);
        assert_eq!(endpoint_of_alias("eth0", NET), None);
        assert_eq!(network_of_alias(&a), Some(NET));
        assert_eq!(network_of_alias(&network_alias(NET)), Some(NET));
        assert_eq!(network_of_alias("something else"), None);
    }

    #[test]
    fn bad_ifnames_are_refused() {
        for bad in ["", ".", "..", "a b", "a/b", "sixteen-chars-xx"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }
}
