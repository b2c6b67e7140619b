//! The meshpay router: the daemon and its command line.
//!
//! * [`runtime`]: `meshpay run`, the tokio event loop that drives the engine
//!   and the plugin instances;
//! * [`control`]: the JSON control API on the node's Unix socket;
//! * [`config`], [`state_dir`], [`identity`]: what a node is made of;
//! * [`config_check`]: `meshpay config check`, plugins created but never run;
//! * [`builtins`]: plugins linked into the binary;
//! * [`wallet`]: the wallet key and payments through the local node;
//! * [`cli`]: the `meshpay` commands.

pub mod builtins;
pub mod cli;
pub mod config;
pub mod config_check;
pub mod control;
pub mod identity;
pub mod runtime;
pub mod state_dir;
pub mod wallet;
