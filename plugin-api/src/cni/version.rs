//! The CNI spec versions weft speaks, and what each one allows.
//!
//! Result shapes differ between versions (0.3.x and 0.4.0 carry `"version": "4"|"6"` on every
//! IP; 1.0.0 dropped it; 1.1.0 added optional fields), and commands arrived over time (CHECK in
//! 0.4.0, STATUS and GC in 1.1.0). A plugin answers in the version the config asked for.

use std::fmt;
use std::str::FromStr;

/// One spec version weft supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.3.0: rich results and chaining.
    V0_3_0,
    /// 0.3.1: a typo fix of 0.3.0.
    V0_3_1,
    /// 0.4.0: CHECK, and prevResult on DEL.
    V0_4_0,
    /// 1.0.0: no `version` field on IPs; configs are lists.
    V1_0_0,
    /// 1.1.0: STATUS, GC, and more optional result fields.
    V1_1_0,
}

/// Every version weft speaks, oldest first (what VERSION reports).
pub const SUPPORTED: [Version; 5] = [
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

/// The newest version: used when the request names none weft can read (errors, VERSION).
pub const LATEST: Version = Version::V1_1_0;

impl Version {
    /// The version as the spec writes it (`"1.0.0"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK exists from 0.4.0 on.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// Results before 1.0.0 carry `"version": "4"|"6"` on every IP.
    pub fn ips_carry_version(self) -> bool {
        self < Version::V1_0_0
    }

    /// 1.1.0 results may carry interface MTUs.
    pub fn has_interface_mtu(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SUPPORTED
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "CNI version {s:?} is not supported; weft speaks {}",
                    supported_list()
                )
            })
    }
}

/// `0.3.0, 0.3.1, …` for messages.
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_the_rest() {
        for v in SUPPORTED {
            assert_eq!(v.as_str().parse::<Version>(), Ok(v));
        }
        for bad in ["0.1.0", "0.2.0", "1.2.0", "", "1.0"] {
            let e = bad.parse::<Version>().unwrap_err();
            assert!(e.contains("1.1.0"), "{e}");
        }
    }

    #[test]
    fn features_follow_the_spec_history() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_status_and_gc());
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(Version::V0_4_0.ips_carry_version());
        assert!(!Version::V1_0_0.ips_carry_version());
    }
}
