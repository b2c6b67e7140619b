//! Criterion bench of one plugin call through the C ABI against the same
//! plugin code behind a plain Rust trait object.
//!
//! ```text
//! cargo bench -p meshpay-benches --bench abi_call [-- --quick]
//! ```
//!
//! Groups: `send` (one frame to one peer) and `decide_3_peers` (one bundle,
//! three peers, forward to all), each with an `abi` and a `direct` function.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use meshpay_benches::{
    BenchServices, PEER, abi_routing, abi_transport, bundle, direct_routing, direct_transport, frame, peers,
};

fn send(c: &mut Criterion) {
    let services = BenchServices::new();
    let frame = frame();
    let mut abi = abi_transport(services);
    let mut direct = direct_transport();

    let mut group = c.benchmark_group("send");
    group.bench_function("abi", |b| {
        b.iter(|| black_box(&mut *abi).send(black_box(PEER), black_box(&frame)).is_ok())
    });
    group.bench_function("direct", |b| {
        b.iter(|| black_box(&mut *direct).send(black_box(PEER), black_box(&frame)).is_ok())
    });
    group.finish();
}

fn decide(c: &mut Criterion) {
    let services = BenchServices::new();
    let (bundle, peers) = (bundle(), peers());
    let mut abi = abi_routing(services);
    let mut direct = direct_routing();
    let mut out = Vec::with_capacity(peers.len());

    let mut group = c.benchmark_group("decide_3_peers");
    group.bench_function("abi", |b| {
        b.iter(|| {
            out.clear();
            let ok = black_box(&mut *abi).decide(black_box(&bundle), black_box(&peers), &mut out).is_ok();
            ok && black_box(&out).len() == 3
        })
    });
    group.bench_function("direct", |b| {
        b.iter(|| {
            out.clear();
            let ok = black_box(&mut *direct).decide(black_box(&bundle), black_box(&peers), &mut out).is_ok();
            ok && black_box(&out).len() == 3
        })
    });
    group.finish();
}

fn config() -> Criterion {
    // Calls take nanoseconds: a short window is plenty, and keeps a full run
    // (4 functions) under half a minute on a 2-core machine.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = send, decide
}
criterion_main!(benches);
