//! The plugin ABI, end to end: real `.so` files (Rust and C) loaded by the
//! real router with libloading, talking over real sockets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshpay_tests::*;
use serde_json::Value;

const RUST_UNIXDGRAM: &str = "meshpay_plugin_unixdgram";
const RUST_PANICKY: &str = "meshpay_test_panicky";
const RUST_TICKER: &str = "meshpay_test_ticker";

fn c_example_sources() -> Vec<PathBuf> {
    vec![repo_root().join("plugins/examples/c-unixdgram/unixdgram.c")]
}

fn current_header() -> PathBuf {
    include_dir().join("meshpay_plugin.h")
}

fn golden_1_0_header() -> PathBuf {
    include_dir().join("meshpay_plugin_v1_0.h")
}

/// A config with one unixdgram-protocol transport.
fn link_config(plugin: &str, own: &Path, peer: &Path) -> String {
    format!(
        "[node]\nname = \"n\"\nlog_level = \"debug\"\n\n[[transport]]\nname = \"link\"\nplugin = \"{plugin}\"\nconfig = {{ path = \"{}\", peers = [\"{}\"], probe_interval_ms = 200, peer_timeout_ms = 2000 }}\n",
        own.display(),
        peer.display()
    )
}

fn neighbour_ids(s: &Value) -> Vec<String> {
    s["neighbours"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node"].as_str().map(str::to_owned))
        .collect()
}

fn node_id(s: &Value) -> String {
    s["node"]["id"].as_str().unwrap().to_owned()
}

/// Two nodes, one on `plugin_a`, one on `plugin_b`, over the unixdgram link:
/// each must learn the other's node id from a HELLO frame that crossed both
/// plugins and the host in both directions.
fn two_nodes_exchange_frames(plugin_a: &str, plugin_b: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (sa, sb) = (tmp.path().join("a.sock"), tmp.path().join("b.sock"));
    let a = NodeProc::start(&tmp.path().join("a"), &link_config(plugin_a, &sa, &sb));
    let b = NodeProc::start(&tmp.path().join("b"), &link_config(plugin_b, &sb, &sa));
    let (ida, idb) = (node_id(&a.status().unwrap()), node_id(&b.status().unwrap()));
    let sa_status = a.wait_status("A to see B", Duration::from_secs(20), |s| neighbour_ids(s).contains(&idb));
    let sb_status = b.wait_status("B to see A", Duration::from_secs(20), |s| neighbour_ids(s).contains(&ida));
    for s in [&sa_status, &sb_status] {
        let t = transport(s, "link");
        assert_eq!(t["state"], "active", "{s:#}");
        assert!(t["frames_in"].as_u64().unwrap() >= 1 && t["frames_out"].as_u64().unwrap() >= 1, "{s:#}");
        assert_eq!(s["counters"]["frames_malformed"], 0, "{s:#}");
    }
    assert_eq!(a.stop().code(), Some(0));
    assert_eq!(b.stop().code(), Some(0));
}

#[test]
fn c_example_built_from_the_header_alone_passes_frames_with_the_rust_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let c = build_c_plugin(&c_example_sources(), &current_header(), tmp.path(), "c_unixdgram");
    let rust = cdylib(RUST_UNIXDGRAM);
    two_nodes_exchange_frames(c.to_str().unwrap(), rust.to_str().unwrap());
}

#[test]
fn a_plugin_built_against_the_1_0_golden_header_loads_and_works() {
    let tmp = tempfile::tempdir().unwrap();
    let c = build_c_plugin(&c_example_sources(), &golden_1_0_header(), tmp.path(), "c_unixdgram_v1_0");
    let out = meshpay(&["plugins", "inspect", "--json", c.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["abi"], "1.0");
    // Against the built-in Rust plugin this time.
    two_nodes_exchange_frames(c.to_str().unwrap(), "org.meshpay.transport.unixdgram");
}

#[test]
fn plugin_libraries_export_only_the_entry_symbol() {
    let tmp = tempfile::tempdir().unwrap();
    let mut libs = vec![cdylib(RUST_UNIXDGRAM), cdylib(RUST_PANICKY), cdylib(RUST_TICKER)];
    libs.push(build_c_plugin(&c_example_sources(), &current_header(), tmp.path(), "c_unixdgram"));
    for lib in libs {
        assert_eq!(exported_symbols(&lib), vec!["meshpay_plugin_entry".to_string()], "{}", lib.display());
    }
}

#[test]
fn a_plugin_of_another_abi_major_is_refused_before_any_call() {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo_root().join("tests/plugins/wrong-major/wrong_major.c");
    let lib = build_c_plugin(&[src], &current_header(), tmp.path(), "wrong_major");

    // Its get_interface aborts: a refusal after calling it would be rc 134.
    let out = meshpay(&["plugins", "inspect", lib.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("ABI 2.0") && stderr.contains(&format!("ABI {}", meshpay_abi::ABI_VERSION)),
        "message must name both versions: {stderr}"
    );
    assert!(stderr.contains("major"), "{stderr}");

    // In a running node it is disabled with that reason and the node runs on.
    let node = NodeProc::start(
        &tmp.path().join("n"),
        &format!("[[transport]]\nname = \"vendor\"\nplugin = \"{}\"\n", lib.display()),
    );
    let s = node.status().unwrap();
    let t = transport(&s, "vendor");
    assert_eq!(t["state"], "disabled");
    assert!(t["reason"].as_str().unwrap().contains("ABI 2.0"), "{s:#}");
    assert_eq!(node.stop().code(), Some(0));
}

#[test]
fn inspect_prints_the_descriptor_of_a_rust_plugin_and_refuses_non_plugins() {
    let out = meshpay(&["plugins", "inspect", "--json", cdylib(RUST_UNIXDGRAM).to_str().unwrap()]);
    assert!(out.status.success());
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["id"], "org.meshpay.transport.unixdgram");
    assert_eq!(d["kinds"], serde_json::json!(["transport"]));
    assert_eq!(d["transport_mode"], "PollFd");

    // A shared library that is not a meshpay plugin.
    let libc = Path::new("/lib/x86_64-linux-gnu/libm.so.6");
    if libc.exists() {
        let out = meshpay(&["plugins", "inspect", libc.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a meshpay plugin"));
    }
    let out = meshpay(&["plugins", "inspect", "/nonexistent/x.so"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot load plugin /nonexistent/x.so"));
}

#[test]
fn a_panicking_rust_plugin_is_disabled_while_the_node_keeps_serving_status() {
    let tmp = tempfile::tempdir().unwrap();
    let panicky = cdylib(RUST_PANICKY);
    let config = format!(
        "[[transport]]\nname = \"p_create\"\nplugin = \"{p}\"\nconfig = {{ panic_in = \"create\" }}\n\n\
         [[transport]]\nname = \"p_start\"\nplugin = \"{p}\"\nconfig = {{ panic_in = \"start\" }}\n\n\
         [[transport]]\nname = \"p_send\"\nplugin = \"{p}\"\nconfig = {{ panic_in = \"send\", link_up = true }}\n\n\
         [[transport]]\nname = \"fine\"\nplugin = \"org.meshpay.transport.unixdgram\"\nconfig = {{ path = \"{{state_dir}}/l.sock\", peers = [] }}\n",
        p = panicky.display()
    );
    let mut node = NodeProc::start(&tmp.path().join("n"), &config);
    let s = node.wait_status("the send panic", Duration::from_secs(10), |s| {
        transport(s, "p_send")["state"] == "disabled"
    });
    for (name, call) in [("p_create", "create"), ("p_start", "start"), ("p_send", "send")] {
        let t = transport(&s, name);
        assert_eq!(t["state"], "disabled", "{name}: {s:#}");
        assert!(t["reason"].as_str().unwrap().contains(&format!("panicked in {call}")), "{name}: {s:#}");
    }
    assert_eq!(transport(&s, "fine")["state"], "active");
    assert!(node.log().contains("panic"), "the panic must be logged:\n{}", node.log());
    // Still serving, repeatedly.
    for _ in 0..3 {
        assert!(node.status().is_ok());
    }
    assert!(node.is_running());
    assert_eq!(node.stop().code(), Some(0));
}

#[test]
fn an_own_thread_transport_delivers_from_its_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "[[transport]]\nname = \"tick\"\nplugin = \"{}\"\nconfig = {{ count = 5, interval_ms = 20 }}\n",
        cdylib(RUST_TICKER).display()
    );
    let node = NodeProc::start(&tmp.path().join("n"), &config);
    let s = node.wait_status("5 ticks", Duration::from_secs(10), |s| transport(s, "tick")["frames_in"] == 5);
    // "tick N" is not a meshpay frame: counted as malformed, dropped, no harm.
    assert_eq!(s["counters"]["frames_malformed"], 5);
    // The link-up made the engine send a HELLO back through the plugin.
    assert_eq!(transport(&s, "tick")["frames_out"], 1);
    assert_eq!(node.stop().code(), Some(0));
}
