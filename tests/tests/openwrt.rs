//! The OpenWrt package (`openwrt/`), checked without an OpenWrt SDK by the
//! shell harness in `tests/openwrt/` (see its README): shellcheck and
//! `busybox ash -n` over every script; the init script run under busybox ash
//! against stand-ins for OpenWrt's shell libraries, on UCI files, with the
//! real `meshpay config check` judging what it generates; and the package
//! Makefiles evaluated by GNU make against a stand-in SDK, their install
//! recipes run into staging roots and `test.sh` run against the result.
//!
//! Each script prints TAP lines (`ok N - name`) and fails if any check
//! fails; these tests run them and check that every expected check ran.

use std::path::PathBuf;
use std::process::Command;

use meshpay_tests::{cdylib, meshpay_bin, repo_root, target_profile_dir};

fn harness_dir() -> PathBuf {
    repo_root().join("tests/openwrt")
}

/// Runs `tests/openwrt/<script>` and returns its output; fails the test,
/// showing the output, if the script fails.
fn run(script: &str) -> String {
    let work = tempfile::tempdir().expect("tempdir");
    let out = Command::new("sh")
        .arg(harness_dir().join(script))
        .env("MESHPAY_BIN", meshpay_bin())
        .env("PLUGIN_DIR", target_profile_dir())
        .env("WORK", work.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tests/openwrt/{script} failed ({}):\n{stdout}\n{stderr}", out.status);
    stdout
}

/// The names of the checks that passed.
fn passed(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .filter_map(|l| l.split_once(" - ").map(|(_, name)| name))
        .collect()
}

#[test]
fn shell_scripts_pass_shellcheck_and_parse_in_ash() {
    let out = run("shellcheck_test.sh");
    let ok = passed(&out);
    assert!(ok.contains(&"shellcheck and ash catch a bad script"), "{out}");
    for script in ["openwrt/meshpay/files/meshpay.init", "openwrt/meshpay/test.sh"] {
        assert!(ok.contains(&format!("shellcheck: {script}").as_str()), "{script} not checked:\n{out}");
    }
    assert!(ok.len() >= 14, "{out}");
}

#[test]
fn init_script_turns_uci_into_the_routers_config_or_refuses_to_start() {
    // The libraries the cases name, with the harness's advice if missing.
    for lib in ["meshpay_plugin_quorum", "meshpay_plugin_spray", "meshpay_plugin_unixdgram"] {
        cdylib(lib);
    }
    let cases: Vec<String> = std::fs::read_dir(harness_dir().join("cases"))
        .expect("tests/openwrt/cases")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cases.len() >= 19, "cases: {cases:?}");
    let out = run("init_script_test.sh");
    let ok = passed(&out);
    for case in &cases {
        assert!(ok.contains(&format!("init script: {case}").as_str()), "case {case} did not pass:\n{out}");
    }
}

#[test]
fn makefiles_install_what_the_router_needs() {
    for lib in ["meshpay_plugin_quorum", "meshpay_plugin_prophet", "meshpay_plugin_spray"] {
        cdylib(lib);
    }
    let out = run("makefile_test.sh");
    assert_eq!(passed(&out).len(), 7, "{out}");
}

#[test]
#[ignore = "slow: builds the workspace through the package's Build/Compile with cargo"]
fn makefile_builds_with_cargo() {
    let out = run("cargo_build_test.sh");
    assert_eq!(passed(&out), ["Build/Compile with cargo, then the install recipes"], "{out}");
}
