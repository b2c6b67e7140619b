//! Plugins linked into the router binary. They are loaded through their
//! descriptors exactly like a `.so` (one code path, small flash footprint).

use meshpay_abi::MpPluginEntry;

/// What the `meshpay_plugin!` macro generates for a plugin.
pub type EntryFn = fn() -> &'static MpPluginEntry;

/// `(id, entry function)` of every built-in plugin.
pub const BUILTINS: &[(&str, EntryFn)] = &[
    ("org.meshpay.transport.unixdgram", meshpay_transport_unixdgram::plugin_entry),
    ("org.meshpay.transport.udp", meshpay_transport_udp::plugin_entry),
    ("org.meshpay.routing.epidemic", meshpay_routing_epidemic::plugin_entry),
    ("org.meshpay.routing.prophet", meshpay_routing_prophet::plugin_entry),
    ("org.meshpay.routing.spray-and-wait", meshpay_routing_spray::plugin_entry),
    ("org.meshpay.consensus.quorum", meshpay_consensus_quorum::plugin_entry),
];

/// The entry function of a built-in plugin.
pub fn find(id: &str) -> Option<EntryFn> {
    BUILTINS.iter().find(|(i, _)| *i == id).map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_validates_and_its_id_matches_its_descriptor() {
        for (id, entry) in BUILTINS {
            let plugin = meshpay_host::Plugin::builtin(*entry).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(&plugin.descriptor().id, id);
        }
    }
}
