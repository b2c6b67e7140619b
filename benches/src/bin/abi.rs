//! Bench binary for the `abi` area: what a plugin call through the C ABI
//! costs compared with the same plugin code behind a plain Rust trait object.
//!
//! ```text
//! cargo run --release -p meshpay-benches --bin abi -- [--quick]
//! ```
//!
//! Prints one figure per line on stdout as `name value unit`; details of each
//! measurement (iterations per batch, spread) go to stderr.
//!
//! Method: each pair (ABI, direct) is calibrated to a fixed batch duration,
//! warmed up, then measured in alternating batches (ABI first on even rounds,
//! direct first on odd ones) so that load from other processes on this
//! shared machine hits both sides alike. A figure is the median ns per call
//! over the batches; a ratio is the ratio of the two medians.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use meshpay_benches::{
    BenchServices, FRAME_LEN, PEER, abi_routing, abi_transport, bundle, direct_routing, direct_transport,
    frame, peers, stop_and_count,
};

struct Plan {
    warm_up: Duration,
    batch: Duration,
    batches: usize,
}

impl Plan {
    /// About 2 s in all.
    const QUICK: Plan =
        Plan { warm_up: Duration::from_millis(100), batch: Duration::from_millis(10), batches: 31 };
    /// About 30 s in all.
    const FULL: Plan =
        Plan { warm_up: Duration::from_secs(1), batch: Duration::from_millis(50), batches: 121 };
}

/// Runs `n` calls; returns the number of calls that failed.
type Runner<'a> = dyn FnMut(u64) -> u64 + 'a;

/// Iterations that take about `target`.
fn calibrate(run: &mut Runner<'_>, target: Duration) -> u64 {
    let mut n = 64u64;
    loop {
        let start = Instant::now();
        run(n);
        let took = start.elapsed();
        if took >= target / 4 || n >= 1 << 40 {
            let scaled = n as f64 * target.as_secs_f64() / took.as_secs_f64().max(1e-9);
            return (scaled as u64).max(1);
        }
        n *= 2;
    }
}

fn warm_up(run: &mut Runner<'_>, n: u64, time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        run(n);
    }
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 { xs[m] } else { (xs[m - 1] + xs[m]) / 2.0 }
}

struct Figure {
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
    per_batch: u64,
}

/// Measures two runners in alternating batches; returns (a, b).
fn measure_pair(
    name: &str,
    plan: &Plan,
    a: &mut Runner<'_>,
    b: &mut Runner<'_>,
) -> Result<(Figure, Figure), String> {
    let na = calibrate(a, plan.batch);
    let nb = calibrate(b, plan.batch);
    warm_up(a, na, plan.warm_up);
    warm_up(b, nb, plan.warm_up);
    let (mut ta, mut tb) = (Vec::with_capacity(plan.batches), Vec::with_capacity(plan.batches));
    let mut failures = 0;
    for round in 0..plan.batches {
        let mut one = |run: &mut Runner<'_>, n: u64, out: &mut Vec<f64>| {
            let start = Instant::now();
            failures += run(n);
            out.push(start.elapsed().as_nanos() as f64 / n as f64);
        };
        if round % 2 == 0 {
            one(a, na, &mut ta);
            one(b, nb, &mut tb);
        } else {
            one(b, nb, &mut tb);
            one(a, na, &mut ta);
        }
    }
    if failures != 0 {
        return Err(format!("{name}: {failures} calls failed"));
    }
    let figure = |ts: &mut Vec<f64>, n| Figure {
        median_ns: median(ts),
        min_ns: ts[0],
        max_ns: ts[ts.len() - 1],
        per_batch: n,
    };
    Ok((figure(&mut ta, na), figure(&mut tb, nb)))
}

fn report(area: &str, abi: &Figure, direct: &Figure) {
    for (side, f) in [("abi", abi), ("direct", direct)] {
        eprintln!(
            "# {side}_{area}: median {:.2} ns, min {:.2}, max {:.2} over batches of {} calls",
            f.median_ns, f.min_ns, f.max_ns, f.per_batch
        );
    }
    println!("abi_{area}_ns {:.2} ns", abi.median_ns);
    println!("direct_{area}_ns {:.2} ns", direct.median_ns);
    println!("abi_{area}_overhead_ns {:.2} ns", abi.median_ns - direct.median_ns);
    println!("abi_{area}_overhead_ratio {:.2} x", abi.median_ns / direct.median_ns);
}

fn run(plan: &Plan) -> Result<(), String> {
    let services = BenchServices::new();

    // ---- send: one frame to one peer.
    let frame = frame();
    let mut abi = abi_transport(services.clone());
    let mut direct = direct_transport();
    let (mut abi_calls, mut direct_calls) = (0u64, 0u64);
    let mut abi_send = |n: u64| {
        abi_calls += n;
        let mut failed = 0;
        for _ in 0..n {
            let t = black_box(&mut *abi);
            failed += t.send(black_box(PEER), black_box(&frame)).is_err() as u64;
        }
        failed
    };
    let mut direct_send = |n: u64| {
        direct_calls += n;
        let mut failed = 0;
        for _ in 0..n {
            let t = black_box(&mut *direct);
            failed += t.send(black_box(PEER), black_box(&frame)).is_err() as u64;
        }
        failed
    };
    let (a, d) = measure_pair("send", plan, &mut abi_send, &mut direct_send)?;
    // Every call must have reached the plugin and counted its frame.
    let frame_len = FRAME_LEN as u64;
    match stop_and_count(&mut *abi, &services) {
        Some(got) if got == (abi_calls, abi_calls * frame_len) => {}
        got => {
            return Err(format!("ABI transport counted {got:?}, expected {abi_calls} frames"));
        }
    }
    if direct.sent() != (direct_calls, direct_calls * frame_len) {
        return Err(format!("direct transport counted {:?}, expected {direct_calls} frames", direct.sent()));
    }
    report("send", &a, &d);

    // ---- decide: one bundle, three peers, forward to all.
    let (bundle, peers) = (bundle(), peers());
    let mut routing = abi_routing(services.clone());
    let mut direct = direct_routing();
    let mut out = Vec::with_capacity(peers.len());
    let mut abi_decide = |n: u64| {
        let mut failed = 0;
        for _ in 0..n {
            out.clear();
            let r = black_box(&mut *routing);
            failed += r.decide(black_box(&bundle), black_box(&peers), &mut out).is_err() as u64;
            failed += (black_box(&out).len() != 3) as u64;
        }
        failed
    };
    let mut direct_out = Vec::with_capacity(peers.len());
    let mut direct_decide = |n: u64| {
        let mut failed = 0;
        for _ in 0..n {
            direct_out.clear();
            let r = black_box(&mut *direct);
            failed += r.decide(black_box(&bundle), black_box(&peers), &mut direct_out).is_err() as u64;
            failed += (black_box(&direct_out).len() != 3) as u64;
        }
        failed
    };
    let (a, d) = measure_pair("decide", plan, &mut abi_decide, &mut direct_decide)?;
    report("decide", &a, &d);
    Ok(())
}

fn main() -> ExitCode {
    let mut quick = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => quick = true,
            // `cargo bench` passes this to every target.
            "--bench" => {}
            "-h" | "--help" => {
                println!(
                    "usage: abi [--quick]\n\nPrints `name value unit` lines: ns per plugin call through the C ABI and through a plain Rust trait object, for send and decide (3 peers)."
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("abi: unknown argument `{other}` (usage: abi [--quick])");
                return ExitCode::from(2);
            }
        }
    }
    let plan = if quick { &Plan::QUICK } else { &Plan::FULL };
    eprintln!(
        "# abi bench: {} mode, {} batches of ~{} ms per side after {} ms warm-up",
        if quick { "quick" } else { "full" },
        plan.batches,
        plan.batch.as_millis(),
        plan.warm_up.as_millis()
    );
    match run(plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("abi: {e}");
            ExitCode::FAILURE
        }
    }
}
