//! 802.11s against a real kernel: boots a QEMU guest (Debian's kernel,
//! mac80211_hwsim with three radios) and runs `tests/vm/mesh-basic.sh`, in
//! which `meshctl` (crate meshpay-mesh) alone creates, joins, inspects,
//! blocks, leaves and deletes the mesh interfaces.
//!
//! Run alone: `cargo test -p meshpay-tests --test vm_mesh -- --ignored --nocapture`.
//! It fails (never skips) when the guest cannot be built or booted.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use meshpay_tests::{repo_root, target_profile_dir};

/// The `meshctl` binary this test run should put in the guest: the one of
/// this profile, else target/debug's, built if missing.
fn meshctl() -> PathBuf {
    let here = target_profile_dir().join("meshctl");
    if here.exists() {
        return here;
    }
    eprintln!("vm_mesh: {} is missing: running `cargo build -p meshpay-mesh --bin meshctl`", here.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "-p", "meshpay-mesh", "--bin", "meshctl"])
        .current_dir(repo_root())
        .status()
        .expect("run cargo");
    assert!(st.success(), "building meshctl failed");
    let debug = repo_root().join("target/debug/meshctl");
    assert!(debug.exists(), "cargo built no {}", debug.display());
    debug
}

#[test]
#[ignore = "slow: boots a VM"]
fn mesh_basic_in_a_vm() {
    let root = repo_root();
    let bin = meshctl();

    let t0 = Instant::now();
    let build = Command::new("bash")
        .arg(root.join("tests/vm/build-guest.sh"))
        .arg(&bin)
        .current_dir(&root)
        .output()
        .expect("run tests/vm/build-guest.sh");
    let build_s = t0.elapsed().as_secs_f64();
    assert!(
        build.status.success(),
        "build-guest.sh failed ({}):\n{}\n{}",
        build.status,
        String::from_utf8_lossy(&build.stdout),
        String::from_utf8_lossy(&build.stderr)
    );

    let t1 = Instant::now();
    let run = Command::new("bash")
        .arg(root.join("tests/vm/run-guest.sh"))
        .arg(root.join("tests/vm/mesh-basic.sh"))
        .current_dir(&root)
        .output()
        .expect("run tests/vm/run-guest.sh");
    let run_s = t1.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("vm_mesh: build-guest {build_s:.1} s, boot+test+poweroff {run_s:.1} s");
    eprintln!("{stdout}{stderr}");

    let log_path = root.join("target/vm/mesh-basic.log");
    let log = std::fs::read(&log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let steps: Vec<&str> = log.lines().filter(|l| l.starts_with("STEP ")).collect();
    eprintln!("guest steps:\n{}", steps.join("\n"));

    assert!(
        run.status.success(),
        "the guest test failed (exit {}): see {}; last console lines:\n{}",
        run.status,
        log_path.display(),
        log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // The verdict line itself, not only the exit status.
    assert!(
        log.lines().any(|l| l.trim_end().starts_with("RESULT ok")),
        "no RESULT ok in {}",
        log_path.display()
    );
    for step in ["peer links ESTAB", "stations agree with iw", "2-hop path 0 -> 1 -> 2", "left and deleted"] {
        assert!(steps.iter().any(|s| s.contains(step)), "guest never reached {step:?}");
    }
}
