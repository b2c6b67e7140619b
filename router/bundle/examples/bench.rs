//! Throughput of the hot path: parse + id of a received bundle, and forwarding.
//!
//! `cargo run --release -p meshpay-bundle --example bench` prints `name value unit` lines.
//! The router needs ≥ 25k 200-byte bundles/s and ≥ 200 MB/s of 64 KiB bundles through a relay
//! (parse + id on receipt, forward on sending), on one core, with plenty of headroom.

use std::hint::black_box;
use std::time::{Duration, Instant};

use meshpay_bundle::{Bundle, BundleView, CreationTimestamp, Eid, Limits, Priority, forward};

fn bundle_of(total_len: usize) -> Vec<u8> {
    let make = |payload_len: usize| {
        // Short node names: two 64-hex-digit node keys alone would take 150 of the 200 bytes.
        Bundle::builder("dtn://n1/wallet".parse().unwrap(), "dtn://n2/quorum".parse().unwrap())
            .creation(CreationTimestamp { dtn_time_ms: 820_000_000_000, sequence: 42 })
            .priority(Priority::Normal)
            .payload(vec![0xa5; payload_len])
            .build()
            .unwrap()
            .emit()
    };
    let overhead = make(0).len();
    assert!(overhead < total_len, "headers alone take {overhead} bytes");
    // Payload length changes the length's own encoding by at most a couple of bytes.
    let mut payload_len = total_len - overhead;
    while make(payload_len).len() > total_len {
        payload_len -= 1;
    }
    make(payload_len)
}

/// Runs `f` repeatedly for about `dur`; returns iterations per second.
fn rate(dur: Duration, mut f: impl FnMut()) -> f64 {
    // Warm up.
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let limits = Limits::default();
    let me = Eid::for_node_key(&[0x33; 32]);
    let dur = Duration::from_secs(2);
    for (name, size) in [("200B", 200usize), ("64KiB", 64 * 1024)] {
        let bytes = bundle_of(size);
        let parse_id = rate(dur, || {
            let v = BundleView::parse(black_box(&bytes), &limits).unwrap();
            black_box(v.id());
        });
        let parse_only = rate(dur, || {
            black_box(BundleView::parse(black_box(&bytes), &limits).unwrap());
        });
        let fwd = rate(dur, || {
            black_box(forward(black_box(&bytes), 10, &me, &limits).unwrap());
        });
        // A relay: parse + id on receipt, then forward (which parses again) on sending.
        let relay = rate(dur, || {
            let v = BundleView::parse(black_box(&bytes), &limits).unwrap();
            black_box(v.id());
            black_box(forward(black_box(&bytes), 10, &me, &limits).unwrap());
        });
        let mb = |r: f64| r * bytes.len() as f64 / 1e6;
        println!("bundle_bytes_{name} {} bytes", bytes.len());
        println!("parse_id_{name} {parse_id:.0} bundles/s");
        println!("parse_id_{name}_throughput {:.0} MB/s", mb(parse_id));
        println!("parse_only_{name} {parse_only:.0} bundles/s");
        println!("forward_{name} {fwd:.0} bundles/s");
        println!("relay_{name} {relay:.0} bundles/s");
        println!("relay_{name}_throughput {:.0} MB/s", mb(relay));
    }
}
