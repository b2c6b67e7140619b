//! # meshpay engine (sans-IO)
//!
//! The protocol core of a meshpay node, after quinn's split of `quinn-proto`
//! from its runtime: the [`Engine`] takes [`Event`]s (a link came up, a frame
//! arrived) with the current time and queues [`Action`]s (send this frame,
//! a neighbour appeared). It never reads a clock or touches a socket, so the
//! daemon drives it with tokio and real transports while a simulator drives
//! the very same code with virtual time and a contact plan.

pub mod frame;
mod node;

pub use node::{Action, Counters, Engine, Event, LinkId, Neighbour};
