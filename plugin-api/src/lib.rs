//! Consumers of the engine: the Docker remote NetworkDriver/IpamDriver plugin server and the
//! CNI protocol.

pub mod cni;
pub mod docker;
pub mod socket;
