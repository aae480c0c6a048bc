//! weft's BGP-4 speaker: message codec, sans-IO session state machine, RIB and policy, a
//! thin tokio driver, the kernel route programmer and the `bgp` backend of cluster networks.
//!
//! The protocol logic is pure — inputs in, outputs out, timers as inputs:
//!
//! - [`codec`]: every message type, encode and decode. Decoding never panics; it yields a
//!   message or a [`codec::DecodeError`] that names the NOTIFICATION (RFC 4271 §6) or RFC 7606
//!   action (treat-as-withdraw, attribute discard, session reset) it calls for.
//!   [`codec::FrameSplitter`] cuts a TCP byte stream into messages.
//! - [`fsm`]: the RFC 4271 session: `Session::handle(Event) -> Vec<Action>`, including
//!   collision resolution between two connections and graceful-restart bookkeeping.
//! - [`rib`]: Adj-RIB-In, Loc-RIB with best-path selection and ECMP, Adj-RIB-Out with iBGP
//!   rules and route reflection, graceful-restart stale routes; every call returns the kernel
//!   route diff ([`RouteChange`]) and the UPDATEs to send.
//! - [`policy`]: prefix lists and the prefix limit.
//!
//! [`speaker`] owns sockets and clocks: a task per peer, a listener, one RIB task; peers can
//! be added and removed while it runs.
//!
//! [`kernel`] keeps the kernel's routes equal to the Loc-RIB (coalesced, pipelined netlink
//! writes on a thread of its own), and [`backend`] puts it all together as the
//! [`weft_drivers::backend::Backend`] called `bgp`: full mesh or route reflectors, external
//! peers, encapsulation none/ipip/vxlan/cross-subnet.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_bgp::Error> {
//! use weft_bgp::{PeerConfig, Speaker, SpeakerConfig};
//! let mut cfg = SpeakerConfig::new(64512, "10.0.0.1".parse().unwrap(), Some("10.0.0.1:179".parse().unwrap()));
//! cfg.peers.push(PeerConfig::new("10.0.0.2".parse().unwrap(), 64512));
//! let mut speaker = Speaker::start(cfg).await?;
//! let mut routes = speaker.take_route_changes().unwrap();
//! speaker.announce("10.244.1.0/24".parse().unwrap())?;
//! while let Some(change) = routes.recv().await {
//!     println!("program the kernel: {change:?}");
//! }
//! # Ok(()) }
//! ```

pub mod backend;
pub mod codec;
pub mod error;
pub mod fsm;
pub mod kernel;
pub mod policy;
pub mod rib;
pub mod speaker;

pub use backend::{BgpBackend, BgpBackendConfig};
pub use error::Error;
pub use rib::RouteChange;
pub use speaker::{PeerConfig, PeerStatus, Speaker, SpeakerConfig};
