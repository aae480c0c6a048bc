//! The crate's error type.

use std::net::IpAddr;

/// Errors of the BGP speaker's API (protocol faults on the wire are [`crate::codec::DecodeError`]
/// values that become NOTIFICATIONs, not errors of the API).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("invalid BGP configuration: {what}; fix the speaker or peer settings")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// Binding the listener failed.
    #[error("cannot listen for BGP on {addr}: {source}; is another BGP daemon using the port?")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The peer is not configured.
    #[error("no BGP peer {addr} is configured; add it to the speaker configuration first")]
    UnknownPeer {
        /// The peer address.
        addr: IpAddr,
    },
    /// The speaker's tasks have stopped.
    #[error("the BGP speaker has shut down; start a new one")]
    Stopped,
    /// A prefix cannot be announced.
    #[error("cannot announce {prefix}: {why}")]
    Announce {
        /// The prefix.
        prefix: ipnet::IpNet,
        /// The reason.
        why: String,
    },
    /// The kernel refused or the netlink socket failed.
    #[error("cannot {what}: {source}")]
    Kernel {
        /// What was being done ("read the kernel's routes").
        what: String,
        /// The kernel's answer.
        source: weft_drivers::DriverError,
    },
}
