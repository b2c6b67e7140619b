//! The Rust plugin SDK: implement one of the plugin traits, declare the
//! plugin with [`meshpay_plugin!`](crate::meshpay_plugin), and the SDK builds
//! the C tables, guards every entry point against panics and turns
//! `Result`s into status codes.
//!
//! ```ignore
//! struct Epidemic { /* ... */ }
//! impl meshpay_abi::sdk::RoutingPlugin for Epidemic { /* ... */ }
//!
//! meshpay_abi::meshpay_plugin! {
//!     pub fn plugin_entry;
//!     id: "org.meshpay.routing.epidemic",
//!     name: "Epidemic routing",
//!     version: env!("CARGO_PKG_VERSION"),
//!     vendor: "meshpay",
//!     description: "Every bundle to every neighbour that lacks it",
//!     routing: Epidemic,
//! }
//! ```
//! and, in the plugin's `cdylib` wrapper crate:
//! `meshpay_abi::export_plugin_entry!(my_plugin::plugin_entry);`

#[cfg(feature = "config")]
mod config;
mod consensus;
mod guard;
mod host;
mod routing;
mod transport;

#[cfg(feature = "config")]
pub use config::parse_config;
pub use consensus::{BundlePreparer, ConsensusHost, ConsensusPlugin, ConsensusVtable, Reply, Table};
pub use guard::PluginError;
pub use host::{Host, Level};
pub use routing::{Forwarder, RoutingHost, RoutingPlugin, RoutingVtable};
pub use transport::{FdState, TransportHost, TransportMode, TransportPlugin, TransportVtable};

use crate::ffi::MpPluginEntry;

/// A plugin descriptor that can live in a `static` (the raw strings in
/// [`MpPluginEntry`] point to static data).
#[repr(transparent)]
pub struct StaticEntry(pub MpPluginEntry);

// SAFETY: the descriptor is immutable and only points to 'static data.
unsafe impl Sync for StaticEntry {}

/// Declares a plugin: generates `fn $entry() -> &'static MpPluginEntry`
/// describing it, with `get_interface` serving the kinds listed.
///
/// The function is what the router links in for a built-in plugin; the
/// plugin's `cdylib` wrapper exports it as `meshpay_plugin_entry` with
/// [`export_plugin_entry!`](crate::export_plugin_entry).
#[macro_export]
macro_rules! meshpay_plugin {
    (
        $(#[$meta:meta])*
        $vis:vis fn $entry:ident;
        id: $id:expr,
        name: $name:expr,
        version: $version:expr,
        vendor: $vendor:expr,
        description: $description:expr,
        $(transport: $transport:ty,)?
        $(routing: $routing:ty,)?
        $(consensus: $consensus:ty,)?
    ) => {
        $(#[$meta])*
        $vis fn $entry() -> &'static $crate::ffi::MpPluginEntry {
            unsafe extern "C" fn get_interface(
                interface_id: $crate::ffi::MpStr,
            ) -> *const ::core::ffi::c_void {
                // SAFETY: the host passes a valid borrowed string.
                let _id = unsafe { interface_id.as_bytes() };
                $(if _id == $crate::INTERFACE_TRANSPORT_V1.as_bytes() {
                    return $crate::sdk::TransportVtable::<$transport>::get() as *const _ as *const _;
                })?
                $(if _id == $crate::INTERFACE_ROUTING_V1.as_bytes() {
                    return $crate::sdk::RoutingVtable::<$routing>::get() as *const _ as *const _;
                })?
                $(if _id == $crate::INTERFACE_CONSENSUS_V1.as_bytes() {
                    return $crate::sdk::ConsensusVtable::<$consensus>::get() as *const _ as *const _;
                })?
                ::core::ptr::null()
            }
            static ENTRY: $crate::sdk::StaticEntry = $crate::sdk::StaticEntry($crate::ffi::MpPluginEntry {
                struct_size: $crate::table_size::<$crate::ffi::MpPluginEntry>(),
                abi: $crate::ABI_VERSION,
                kinds: 0
                    $(| $crate::sdk::TransportVtable::<$transport>::KIND)?
                    $(| $crate::sdk::RoutingVtable::<$routing>::KIND)?
                    $(| $crate::sdk::ConsensusVtable::<$consensus>::KIND)?,
                id: $crate::ffi::MpStr::new($id),
                name: $crate::ffi::MpStr::new($name),
                version: $crate::ffi::MpStr::new($version),
                vendor: $crate::ffi::MpStr::new($vendor),
                description: $crate::ffi::MpStr::new($description),
                get_interface: Some(get_interface),
            });
            &ENTRY.0
        }
    };
}

/// Exports a plugin declared with [`meshpay_plugin!`](crate::meshpay_plugin)
/// as the library's one entry symbol, `meshpay_plugin_entry`. Use it once, in
/// a `cdylib` crate.
#[macro_export]
macro_rules! export_plugin_entry {
    ($entry:path) => {
        /// The plugin library's one exported symbol.
        #[unsafe(no_mangle)]
        pub extern "C" fn meshpay_plugin_entry() -> *const $crate::ffi::MpPluginEntry {
            $entry() as *const $crate::ffi::MpPluginEntry
        }
    };
}
