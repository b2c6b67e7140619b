//! `libmeshpay_plugin_unixdgram.so`: the unixdgram transport as a loadable
//! plugin. All the code is in the `meshpay-transport-unixdgram` rlib; this
//! crate only exports its descriptor as the library's one symbol,
//! `meshpay_plugin_entry`.
//!
//! # Why there is no linker version script here
//!
//! C plugins link with `MESHPAY_1 { global: meshpay_plugin_entry; local: *; };`.
//! A Rust cdylib cannot add that script: rustc already passes its own,
//! anonymous one, `{ global: <the #[no_mangle] symbols>; local: *; };`, and a
//! second `-Wl,--version-script` from `cargo:rustc-cdylib-link-arg` either
//! breaks the link or does nothing. Measured with Rust 1.95:
//!
//! * GNU ld (what OpenWrt's cross toolchains use, and rustc here with
//!   `-C linker-features=-lld`) refuses it, named or anonymous: "anonymous
//!   version tag cannot be combined with other version tags".
//! * rust-lld (the default linker on x86_64-unknown-linux-gnu since 1.90)
//!   accepts it but keeps the symbol unversioned and only adds an unused
//!   `MESHPAY_1` version definition.
//!
//! rustc's own script already gives what the version script is for: the
//! dynamic symbol table holds `meshpay_plugin_entry` and nothing else
//! (without the `@@MESHPAY_1` tag, which the host does not need: it looks the
//! name up with `dlsym`). `tests/exports.rs` checks this with
//! `nm -D --defined-only` on the built library, so a dependency that starts
//! exporting a `#[no_mangle]` symbol fails the build's tests.

meshpay_abi::export_plugin_entry!(meshpay_transport_unixdgram::plugin_entry);
