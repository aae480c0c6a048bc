//! weft's BGP-4 speaker: message codec, sans-IO session state machine, RIB and policy, and a
//! thin tokio driver.
//!
//! The protocol logic ([`codec`], [`fsm`], [`rib`], [`policy`]) is pure: inputs in, outputs out,
//! timers as inputs. [`speaker`] owns sockets and clocks and feeds them in.

pub mod codec;
pub mod error;
pub mod fsm;
pub mod policy;
pub mod rib;
pub mod speaker;

pub use error::Error;
pub use rib::RouteChange;
pub use speaker::{PeerConfig, PeerStatus, Speaker, SpeakerConfig};
