//! 802.11s against a real kernel: boots a QEMU guest (Debian's kernel,
//! mac80211_hwsim) and runs a guest script from `tests/vm/`:
//!
//! * `mesh-basic.sh`: three radios; `meshctl` (crate meshpay-mesh) alone
//!   creates, joins, inspects, blocks, leaves and deletes the mesh interfaces.
//! * `mesh-meshpay.sh`: six radios, one `meshpay run` per radio in its own
//!   network namespace; the routers alone set up the mesh (managed mode),
//!   shape it into a line with `blocked_peers`, carry bundles and payments
//!   over UDP over multi-hop HWMP paths, survive a kill -9 of a middle
//!   router, and leave the mesh on SIGTERM.
//!
//! Run alone: `cargo test -p meshpay-tests --test vm_mesh -- --ignored --nocapture`
//! (after `cargo build -p meshpay -p meshpay-mesh`). They fail (never skip)
//! when the guest cannot be built or booted. The two tests share one guest
//! build and run one after the other (one VM at a time).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use meshpay_tests::{meshpay_bin, repo_root, target_profile_dir};

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

/// One VM at a time: the guests share target/vm and two cores.
static VM: Mutex<()> = Mutex::new(());

/// Builds the guest (kernel cache, base initramfs with meshctl and meshpay)
/// once per test process.
fn build_guest() {
    static BUILT: OnceLock<Result<f64, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let root = repo_root();
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(root.join("tests/vm/build-guest.sh"))
            .arg(meshctl())
            .arg(meshpay_bin())
            .current_dir(&root)
            .output()
            .expect("run tests/vm/build-guest.sh");
        if out.status.success() {
            Ok(t0.elapsed().as_secs_f64())
        } else {
            Err(format!(
                "build-guest.sh failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match r {
        Ok(s) => eprintln!("vm_mesh: build-guest {s:.1} s"),
        Err(e) => panic!("{e}"),
    }
}

/// What a guest run left: its `STEP` lines.
struct GuestRun {
    steps: Vec<String>,
}

impl GuestRun {
    fn reached(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s.contains(step))
    }
}

/// Boots the guest with `tests/vm/<script>` as init; fails the test unless
/// the guest says `RESULT ok`.
fn run_guest(script: &str) -> GuestRun {
    let _one = VM.lock().unwrap_or_else(|e| e.into_inner());
    build_guest();
    let root = repo_root();
    let t1 = Instant::now();
    let run = Command::new("bash")
        .arg(root.join("tests/vm/run-guest.sh"))
        .arg(root.join("tests/vm").join(script))
        .current_dir(&root)
        .output()
        .expect("run tests/vm/run-guest.sh");
    let run_s = t1.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("vm_mesh: {script}: boot+test+poweroff {run_s:.1} s");
    eprintln!("{stdout}{stderr}");

    let name = script.trim_end_matches(".sh");
    let log_path = root.join(format!("target/vm/{name}.log"));
    let log = std::fs::read(&log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let steps: Vec<String> = log.lines().filter(|l| l.starts_with("STEP ")).map(str::to_owned).collect();
    eprintln!("guest steps:\n{}", steps.join("\n"));

    assert!(
        run.status.success(),
        "the guest test failed (exit {}): see {}; last console lines:\n{}",
        run.status,
        log_path.display(),
        log.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    // The verdict line itself, not only the exit status.
    assert!(
        log.lines().any(|l| l.trim_end().starts_with("RESULT ok")),
        "no RESULT ok in {}",
        log_path.display()
    );
    GuestRun { steps }
}

#[test]
#[ignore = "slow: boots a VM"]
fn mesh_basic_in_a_vm() {
    let run = run_guest("mesh-basic.sh");
    for step in ["peer links ESTAB", "stations agree with iw", "2-hop path 0 -> 1 -> 2", "left and deleted"] {
        assert!(run.reached(step), "guest never reached {step:?}");
    }
}

#[test]
#[ignore = "slow: boots a VM"]
fn meshpay_routers_form_a_mesh_and_carry_bundles_and_payments_in_a_vm() {
    let run = run_guest("mesh-meshpay.sh");
    for step in [
        "a start that cannot join fails clearly and leaves no interface behind",
        "6 routers up, each created mesh0",
        "ESTAB with neighbours, others BLOCKED",
        "stations agree with iw on every router",
        "UDP: r0 and r5 each see 5 neighbours",
        "HWMP: paths from both ends along the line, metrics growing with distance, multi-hop (hop count >= 2)",
        "bundles over UDP over 802.11s",
        "payment r0 -> r1 (one hop): ",
        "payment r0 -> r5 (longest path, 5 hops): ",
        "r2 killed -9 while the stream r0 -> r5 ran through it",
        "line cut: nothing sent meanwhile reached r5, the payment waits",
        "r2 rejoined: ESTAB with r1 and r3",
        "bundles at r5",
        "payment made during the outage: certified and received",
        "each bundle delivered exactly once",
        "balances: r0 965, r1 20, r5 15",
        "r4 killed -9 (radio left alone) and restarted: kept mesh0 joined",
        "SIGTERM: every router left the mesh and deleted mesh0",
    ] {
        assert!(run.reached(step), "guest never reached {step:?}");
    }
    // The times the issue asks for, one hop and the longest path.
    let timed =
        run.steps.iter().filter(|s| s.contains("payment r0 -> r") && s.contains(" s end to end: ")).count();
    assert_eq!(timed, 3, "expected the warm-up, one-hop and longest-path payments timed end to end");
}
