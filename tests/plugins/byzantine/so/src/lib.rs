//! `libmeshpay_test_plugin_byzantine.so`: exports the Byzantine test
//! authority's descriptor as `meshpay_plugin_entry`, the library's only
//! dynamic symbol.

meshpay_abi::export_plugin_entry!(meshpay_test_byzantine::plugin_entry);
