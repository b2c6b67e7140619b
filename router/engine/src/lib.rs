//! # meshpay engine (sans-IO)
//!
//! The protocol core of a meshpay node, after quinn's split of `quinn-proto`
//! from its runtime: the [`Engine`] takes [`Event`]s (a link came up, a frame
//! arrived, time passed) with the driver's [`Clock`] and the store [`Batch`]
//! the driver opened, and queues [`Action`]s (send this frame, a neighbour
//! appeared, a payload is ready). It never reads a clock, touches a socket
//! or commits: the daemon drives it with tokio and real transports, and a
//! simulator drives the very same code with virtual time and a contact plan.
//!
//! What travels between nodes is defined in [`frame`]: HELLO (who I am),
//! SUMMARY (which bundles I hold, as 8-byte id prefixes: an exact set, so no
//! bundle is ever withheld by a false positive), BUNDLE, ACK (sent only after
//! the receiver's batch is durable) and CONTROL (routing plugin data).
//!
//! [`Batch`]: meshpay_store::Batch

mod build;
mod engine;
pub mod frame;
mod peer;

pub use engine::{
    Action, Clock, Counters, Engine, EngineConfig, Event, LinkId, NeighbourStatus, Note, RateLimit, Submit,
    SubmitError,
};
