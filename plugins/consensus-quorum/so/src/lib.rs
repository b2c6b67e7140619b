//! Committee-quorum payments, as a plugin library exporting only
//! `meshpay_plugin_entry` (rustc's own version script keeps every other
//! symbol local).

meshpay_abi::export_plugin_entry!(meshpay_consensus_quorum::plugin_entry);
