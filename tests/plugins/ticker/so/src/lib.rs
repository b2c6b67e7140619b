//! `libmeshpay_test_ticker.so`: exports the ticker test plugin's descriptor as
//! `meshpay_plugin_entry`, the library's only dynamic symbol (rustc's own
//! export list does that; see plugins/transport-unixdgram/so/src/lib.rs for
//! why a cdylib does not add a version script).

meshpay_abi::export_plugin_entry!(meshpay_test_plugin_ticker::plugin_entry);
