//! Turning what the kernel (or the socket) said into a `DriverError` a person can act on.

use nix::errno::Errno;

use crate::error::DriverError;

/// A failed exchange, before it is tied to the operation and object it concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    /// Positive errno; 0 when the failure is not the kernel's (a reply we could not decode).
    pub errno: i32,
    /// Extended-ack text from the kernel (`NLMSGERR_ATTR_MSG`) or our own description.
    pub detail: String,
}

impl Failure {
    pub fn kernel(errno: i32, detail: Option<String>) -> Self {
        Failure {
            errno,
            detail: detail.unwrap_or_default(),
        }
    }

    pub fn io(e: &std::io::Error) -> Self {
        Failure {
            errno: e.raw_os_error().unwrap_or(0),
            detail: String::new(),
        }
    }

    pub fn decode(detail: String) -> Self {
        Failure { errno: 0, detail }
    }

    /// The error for `op` (e.g. "add link") on `object` (e.g. "br-weft0").
    pub fn into_error(self, op: &'static str, object: impl Into<String>) -> DriverError {
        DriverError::Netlink {
            op,
            object: object.into(),
            message: self.message(op),
            errno: self.errno,
        }
    }

    /// "File exists (EEXIST): <kernel detail>; <what to do>".
    fn message(&self, op: &str) -> String {
        if self.errno == 0 {
            return format!("unexpected reply from the kernel: {}", self.detail);
        }
        let mut text = errno_text(self.errno);
        if !self.detail.is_empty() {
            text.push_str(": ");
            text.push_str(&self.detail);
        }
        if let Some(hint) = hint(self.errno, op) {
            text.push_str("; ");
            text.push_str(hint);
        }
        text
    }
}

/// "File exists (EEXIST)".
pub(super) fn errno_text(errno: i32) -> String {
    let e = Errno::from_raw(errno);
    format!("{} ({e:?})", e.desc())
}

/// What the user can do about the common refusals.
fn hint(errno: i32, op: &str) -> Option<&'static str> {
    let deleting = op.starts_with("delete");
    Some(match Errno::from_raw(errno) {
        Errno::EEXIST => "it already exists: delete it first or choose another name",
        Errno::EPERM | Errno::EACCES => "this needs root (CAP_NET_ADMIN)",
        Errno::ENODEV => "no such interface in this network namespace",
        Errno::ESRCH | Errno::ENOENT if deleting => "it does not exist (already deleted?)",
        Errno::ENETUNREACH => {
            "the gateway is not inside a subnet of the interface: add an address in that \
             subnet first or mark the route onlink"
        }
        Errno::ENETDOWN => "the interface is down: bring it up first",
        Errno::EADDRNOTAVAIL if deleting => "the interface does not have that address",
        Errno::EADDRNOTAVAIL => "the address is not usable here (not local, or wrong family)",
        Errno::EAFNOSUPPORT => "the address family is not enabled (is IPv6 disabled?)",
        Errno::ERANGE => "a value is out of range for the kernel (e.g. MTU, name length)",
        Errno::EBUSY => "the object is in use",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eexist_message_names_errno_and_object() {
        let err = Failure::kernel(libc::EEXIST, None).into_error("add link", "br-x");
        assert_eq!(err.errno(), Some(libc::EEXIST));
        let text = err.to_string();
        assert!(text.contains("add link br-x"), "{text}");
        assert!(text.contains("File exists (EEXIST)"), "{text}");
    }

    #[test]
    fn kernel_detail_is_kept() {
        let err = Failure::kernel(
            libc::EINVAL,
            Some("Invalid prefix for given prefix length".into()),
        )
        .into_error("add route", "10.0.0.1/24");
        assert!(err.to_string().contains("Invalid prefix"), "{err}");
    }

    #[test]
    fn decode_failures_carry_no_errno() {
        let err = Failure::decode("short message".into()).into_error("dump links", "");
        assert_eq!(err.errno(), None);
    }
}
