//! # meshpay plugin host
//!
//! Loads plugins, checks them, and hands the rest of the router safe Rust
//! trait objects ([`Transport`], [`Routing`], [`Consensus`]) in place of the
//! C function tables.
//!
//! * [`Plugin::load`] opens a `.so` with libloading; [`Plugin::builtin`] takes
//!   a plugin linked into the router. Both go through the same descriptor
//!   validation (null pointers, struct sizes, ABI major, interfaces present),
//!   so a built-in is exactly as checked as a vendor's library.
//! * [`Plugin::create_transport`] and friends build an instance: they give it
//!   a host table backed by [`HostServices`] (implemented by the daemon with
//!   tokio, and by the simulator with virtual time) and wrap its vtable.
//! * A plugin call that returns `MP_ERR_PANIC` quarantines the instance: it is
//!   never called again (not even `destroy`, since its state may be broken and
//!   its threads may still run), its callbacks into the host are refused, and
//!   its memory and library stay in place. The router logs why and goes on.
//!
//! * ABI 1.1 consensus plugins take many bundles in one call
//!   ([`Consensus::on_bundles`]; for a 1.0 plugin the wrapper calls
//!   `on_bundle` per bundle and undoes each refused one alone) and check the
//!   next batch ahead from another thread through a [`Preparer`], whose
//!   documentation says why that is sound while the instance is in a call.
//!
//! Calls that reach the engine re-entrantly (emit a bundle, send routing
//! control data, subscribe) are queued as [`HostAction`]s on the instance and
//! collected with `take_actions` after the call: the host stays sans-IO and
//! a plugin can never observe a half-updated engine.
//!
//! Plugins run in the router's process with its privileges: this crate
//! protects against version skew and panics, not against malicious code.

mod context;
mod crypto;
mod instance;
mod load;

pub use context::{HostAction, HostError, HostServices, InstanceId, InstanceLabel, KvStore, TransportEvents};
pub use crypto::{verify_batch, verify_strict};
pub use instance::{CallError, Consensus, InstanceState, PluginInstance, Preparer, Routing, Transport};
pub use load::{Descriptor, LoadError, Plugin, PluginSource, kind_names};
pub use meshpay_abi::sdk::{FdState, Level, TransportMode};
