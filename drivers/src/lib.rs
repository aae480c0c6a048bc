//! The driver contract (CNM model and the `NetworkDriver` trait) and the kernel plumbing every
//! driver shares: typed netlink, network namespaces, nft firewall, sysctls.

pub mod backend;
pub mod builtin;
pub mod driver;
pub mod error;
pub mod firewall;
pub mod model;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod owned_link;
pub mod reconcile;
pub mod sandbox;
pub mod sysctl;
pub mod vxlan;

pub use driver::{JoinInfo, NetworkDriver};
pub use error::DriverError;
pub use model::{Endpoint, MacAddr, Network, PortMapping, Protocol, Sandbox, SubnetInfo};
