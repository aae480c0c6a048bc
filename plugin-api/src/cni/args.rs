//! `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
//!
//! weft reads `IP` (static addresses, comma-separated, as host-local reads it) and `MAC`. The
//! Kubernetes keys (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_INFRA_CONTAINER_ID`,
//! `K8S_POD_UID`) are known and ignored. Any other key is refused unless `IgnoreUnknown` is true
//! (libcni's rule), so a typo does not silently drop a static address.

use std::net::IpAddr;

use weft_drivers::MacAddr;

use super::error::CniError;

const IGNORED: [&str; 4] = [
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// What weft takes from `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `IP=`: static addresses.
    pub ips: Vec<IpAddr>,
    /// `MAC=`: the container interface's MAC.
    pub mac: Option<MacAddr>,
}

/// Parses `CNI_ARGS` (empty is fine).
pub fn parse(raw: &str) -> Result<CniArgs, CniError> {
    let bad = |why: String| CniError::Environment(format!("CNI_ARGS={raw:?}: {why}"));
    let mut pairs = Vec::new();
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('=') => pairs.push((k, v)),
            _ => return Err(bad(format!("{pair:?} is not KEY=VALUE"))),
        }
    }
    let ignore_unknown = match pairs.iter().find(|(k, _)| *k == "IgnoreUnknown") {
        None => false,
        Some((_, v)) => parse_bool(v).ok_or_else(|| {
            bad(format!(
                "IgnoreUnknown={v:?} is not a boolean (use 1/true or 0/false)"
            ))
        })?,
    };
    let mut out = CniArgs::default();
    for (k, v) in pairs {
        match k {
            "IgnoreUnknown" => {}
            "IP" => {
                for ip in v.split(',').filter(|s| !s.is_empty()) {
                    out.ips.push(
                        parse_ip(ip)
                            .ok_or_else(|| bad(format!("IP={ip:?} is not an IP address")))?,
                    );
                }
            }
            "MAC" => out.mac = Some(v.parse().map_err(|e: String| bad(format!("MAC: {e}")))?),
            k if IGNORED.contains(&k) => {}
            k if ignore_unknown => {
                tracing::debug!(key = k, "ignoring unknown CNI_ARGS key");
            }
            k => {
                return Err(bad(format!(
                "unknown key {k:?}; weft reads IP and MAC (add IgnoreUnknown=1 to pass other keys)"
            )))
            }
        }
    }
    Ok(out)
}

/// An address, also accepted in CIDR form (the prefix is the network's business, not the
/// caller's).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<ipnet::IpNet>().ok().map(|n| n.addr()))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "t" => Some(true),
        "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_and_mac_and_skips_kubernetes_keys() {
        let a = parse(
            "IgnoreUnknown=1;K8S_POD_NAME=p1;IP=10.1.0.5,fd00::5/64;MAC=02:00:00:00:00:01;FOO=bar",
        )
        .unwrap();
        assert_eq!(
            a.ips,
            vec![
                "10.1.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(a.mac.unwrap().to_string(), "02:00:00:00:00:01");
        assert_eq!(parse("").unwrap(), CniArgs::default());
        assert!(parse("K8S_POD_NAME=x").is_ok());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let e = parse("FOO=bar").unwrap_err();
        assert_eq!(e.code(), crate::cni::error::INVALID_ENVIRONMENT);
        assert!(e.to_string().contains("FOO"), "{e}");
        assert!(parse("IgnoreUnknown=0;FOO=bar").is_err());
    }

    #[test]
    fn malformed_pairs_and_values_are_refused() {
        for bad in [
            "novalue",
            "=x",
            "IP=banana",
            "MAC=zz",
            "IgnoreUnknown=maybe",
            "a=b=c",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
