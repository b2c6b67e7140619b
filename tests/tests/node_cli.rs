//! The `meshpay` binary as an operator meets it: state directory, identity,
//! status, configuration errors, clean shutdown.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use meshpay_tests::*;

#[test]
fn a_node_on_embedded_defaults_answers_status_and_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut child = std::process::Command::new(meshpay_bin())
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .stderr(std::fs::File::create(tmp.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let status = wait_for(Duration::from_secs(20), || {
        let out = meshpay(&["--state-dir", state.to_str().unwrap(), "status", "--json"]);
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    })
    .expect("status never answered");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["abi"], "1.0");
    assert!(status["uptime_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(status["node"]["id"].as_str().unwrap().len(), 64);
    assert!(status["node"]["did"].as_str().unwrap().starts_with("did:key:z6Mk"));
    let plugins = status["plugins"].as_array().unwrap();
    assert!(
        plugins.iter().any(|p| p["id"] == "org.meshpay.transport.unixdgram" && p["abi"] == "1.0"),
        "{status:#}"
    );
    assert_eq!(transport(&status, "local")["state"], "active");

    // The key is there, mode 0600, and `meshpay id` shows the same identity.
    let key = state.join("node.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let out = meshpay(&["--state-dir", state.to_str().unwrap(), "id", "--json"]);
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["id"], status["node"]["id"]);
    assert_eq!(id["did"], status["node"]["did"]);

    // A second node on the same state directory is refused.
    let out = meshpay(&["--state-dir", state.to_str().unwrap(), "run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));

    // SIGTERM: clean exit, control socket removed, same identity next time.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = wait_for(Duration::from_secs(10), || child.try_wait().unwrap()).expect("did not exit");
    assert_eq!(code.code(), Some(0));
    assert!(!state.join("control.sock").exists());
    let log = std::fs::read_to_string(tmp.path().join("log")).unwrap();
    assert!(log.contains("shutting down (SIGTERM)") && log.contains("meshpay stopped"), "{log}");
}

#[test]
fn sigint_also_stops_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProc::start(tmp.path(), "[node]\nname = \"x\"\n");
    node.signal(libc::SIGINT);
    assert_eq!(node.wait_exit(Duration::from_secs(10)).unwrap().code(), Some(0));
}

#[test]
fn status_without_a_running_node_says_how_to_start_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = meshpay(&["--state-dir", tmp.path().to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("meshpay run") && err.contains("control.sock"), "{err}");
}

#[test]
fn a_broken_config_is_refused_naming_the_key_and_nothing_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[node]\nname = \"x\"\n\n[[transport]]\nplugin = \"org.meshpay.transport.unixdgram\"\nconfg = {}\n",
    )
    .unwrap();
    let state = tmp.path().join("state");
    let out = meshpay(&["--state-dir", state.to_str().unwrap(), "run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transport[0]") && err.contains("confg") && err.contains("line 6"), "{err}");
    assert!(!state.exists(), "nothing may be created for a broken config");

    // An unknown built-in is a config-check error too.
    std::fs::write(&cfg, "[[transport]]\nplugin = \"org.example.nope\"\n").unwrap();
    let out = meshpay(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no built-in plugin `org.example.nope`"));
}

#[test]
fn help_explains_the_commands_and_the_state_dir() {
    let out = meshpay(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "status", "id", "plugins", "config", "--state-dir", "MESHPAY_STATE_DIR"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = meshpay(&["config", "default"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[[transport]]"));
}
