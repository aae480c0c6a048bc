//! Object ids and names: Docker-style 64-hex ids, ids derived from a consumer's own key, and the
//! rules for names.

use sha2::{Digest, Sha256};

/// A fresh random id (64 lowercase hex, like Docker's).
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

/// An id derived from what a consumer knows an endpoint by (CNI: container id and ifname; the
/// CLI: network, namespace path and ifname), so later commands find it without an index.
pub fn derived_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Docker's rule for network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; weft also caps the length so
/// a name is always a valid store key.
pub fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("a network name cannot be empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(format!(
                "network name {name:?} must start with a letter or digit"
            ))
        }
        _ => {}
    }
    if name.len() > 128 {
        return Err(format!(
            "network name {name:?} is longer than 128 characters"
        ));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!(
            "network name {name:?} contains {c:?}; use letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_dockers() {
        let id = random_id();
        assert!(is_id(&id), "{id}");
        assert_ne!(id, random_id());
        let d = derived_id(&["a", "b"]);
        assert!(is_id(&d));
        assert_eq!(d, derived_id(&["a", "b"]));
        assert_ne!(d, derived_id(&["ab", ""]), "parts are separated");
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(check_name("my-net_1.0").is_ok());
        for bad in ["", "-x", "a b", "a/b", "..", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
