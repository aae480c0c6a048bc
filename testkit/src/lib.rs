//! The harness weft's integration tests share: throw-away network namespaces and commands run in
//! them (the `weft` CLI among them), polling with a deadline, skipping with a printed reason,
//! stopping the processes a test started, and the two-host underlay the backend tests use. One
//! copy, so that a fix to cleanup or to a skip check reaches every test.

pub mod child;
pub mod cli;
pub mod ns;
pub mod poll;
pub mod skip;
pub mod two_hosts;

pub use child::{stop_child, StopOnDrop};
pub use ns::{Lab, Ns};
pub use poll::eventually;
pub use skip::{can_run, root_or_skip, skip_reason};
