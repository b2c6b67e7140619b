//! One-way throughput of the UDP transport over a veth pair between two
//! network namespaces (needs root), each instance on its own thread behind
//! the real `meshpay_host`, as in the tests.
//!
//! ```sh
//! cargo run --release -p meshpay-transport-udp --example throughput [-- --quick] [-- --only 64k]
//! ```
//!
//! stdout: one figure per line, `name value unit`; details on stderr (`#`).
//! The sender keeps at most a window of frames in flight (sent, not yet
//! delivered), as a router does whose engine only sends what the link takes:
//! the figures are what arrives, not what was thrown at the receiver. Frames
//! the receiver never got (kernel queue overflow) are counted as lost.
//! `MB` is 10^6 bytes of frame payload.

use meshpay_tests::lab;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lab::{Node, Pair, Recorder};
use meshpay_host::CallError;

struct Scenario {
    name: &'static str,
    size: usize,
    /// Extra config keys for both instances, and for the receiver only.
    both: serde_json::Value,
    receiver: serde_json::Value,
}

fn scenarios() -> Vec<Scenario> {
    let none = serde_json::json!({});
    let mut out = Vec::new();
    for (size, tag) in [(200, "200b"), (64 * 1024, "64k")] {
        let s = |suffix: &'static str, both: serde_json::Value, receiver: serde_json::Value| Scenario {
            name: Box::leak(format!("{tag}{suffix}").into_boxed_str()),
            size,
            both,
            receiver,
        };
        out.push(s("", none.clone(), none.clone()));
        out.push(s("_gso_only", none.clone(), serde_json::json!({"gro": false})));
        out.push(s("_no_offload", serde_json::json!({"gso": false, "gro": false}), none.clone()));
        out.push(s(
            "_no_offload_batch1",
            serde_json::json!({"gso": false, "gro": false, "batch": 1}),
            none.clone(),
        ));
    }
    out
}

fn config(extra: &[&serde_json::Value]) -> String {
    let mut c =
        serde_json::json!({"interfaces": ["mesh0"], "beacon_interval_ms": 200, "peer_timeout_ms": 5000});
    for e in extra {
        c.as_object_mut().unwrap().extend(e.as_object().unwrap().clone());
    }
    c.to_string()
}

/// Process CPU time (user + system), which includes the kernel's work for
/// both instances: on a veth pair the receive path runs in the sender's
/// system calls.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn run(s: &Scenario, seconds: f64) {
    let pair = Pair::new().unwrap_or_else(|e| {
        eprintln!("cannot create network namespaces ({e}); run as root");
        std::process::exit(2)
    });
    let recorder = Arc::new(Recorder::default());
    recorder.count_only.store(true, Ordering::Relaxed);
    let rx = Node::spawn_with(&pair.b, &config(&[&s.both, &s.receiver]), recorder.clone(), false).unwrap();
    let tx = Node::spawn(&pair.a, &config(&[&s.both])).unwrap();
    let b_ip: std::net::Ipv6Addr = pair.link_local(&pair.b).unwrap().parse().unwrap();
    let peer = format!("[{b_ip}%mesh0]:4556");
    let p = peer.clone();
    assert!(tx.recorder.wait(Duration::from_secs(10), |e| lab::up_peers(e) == [p.clone()]), "no link");
    assert!(rx.recorder.wait(Duration::from_secs(10), |e| !lab::up_peers(e).is_empty()), "no link back");

    // Window: about 2 MB in flight, well inside the receive buffer.
    let window = (2_000_000 / s.size).max(16) as u64;
    let sent = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let frame = vec![0x5Au8; s.size];
    {
        let (sent, lost, delivered) = (sent.clone(), lost.clone(), recorder.clone());
        let mut last = (0u64, Instant::now());
        tx.call(move |ctx| {
            ctx.idle = Some(Box::new(move |t| {
                for _ in 0..256 {
                    let got = delivered.frames.load(Ordering::Relaxed);
                    let in_flight = sent.load(Ordering::Relaxed) - got - lost.load(Ordering::Relaxed);
                    if got != last.0 {
                        last = (got, Instant::now());
                    }
                    if in_flight >= window {
                        // No progress for 200 ms: what is in flight is lost.
                        if last.1.elapsed() > Duration::from_millis(200) {
                            lost.fetch_add(in_flight, Ordering::Relaxed);
                            last.1 = Instant::now();
                        }
                        return false;
                    }
                    match t.send(&peer, &frame) {
                        Ok(()) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(CallError::Again) => return false,
                        Err(e) => panic!("send: {e}"),
                    }
                }
                true
            }));
        });
    }
    std::thread::sleep(Duration::from_millis(500)); // warm up
    let (f0, b0, c0, t0) = (
        recorder.frames.load(Ordering::Relaxed),
        recorder.bytes.load(Ordering::Relaxed),
        cpu_time(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (f1, b1, c1, t1) = (
        recorder.frames.load(Ordering::Relaxed),
        recorder.bytes.load(Ordering::Relaxed),
        cpu_time(),
        Instant::now(),
    );
    tx.call(|ctx| ctx.idle = None);
    let wall = (t1 - t0).as_secs_f64();
    let frames = (f1 - f0) as f64 / wall;
    let mb = (b1 - b0) as f64 / wall / 1e6;
    let cores = (c1 - c0).as_secs_f64() / wall;
    let name = s.name;
    println!("udp_oneway_{name}_frames_per_s {frames:.0} frames/s");
    println!("udp_oneway_{name}_mb_per_s {mb:.1} MB/s");
    println!("udp_oneway_{name}_cpu {cores:.2} cores");
    println!("udp_oneway_{name}_lost {} frames", lost.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_millis(300)); // a stats line from each side
    eprintln!("# {name}: window {window} frames; sent {}", sent.load(Ordering::Relaxed));
    for (side, node) in [("sender", &tx), ("receiver", &rx)] {
        let stats = node.recorder.last_stats();
        let mut keys: Vec<_> = stats.iter().filter(|(_, v)| **v > 0).collect();
        keys.sort();
        eprintln!("# {name} {side}: {keys:?}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let seconds = if quick { 1.5 } else { 5.0 };
    for s in scenarios() {
        if only.as_ref().is_some_and(|o| !s.name.starts_with(o.as_str())) {
            continue;
        }
        run(&s, seconds);
    }
}
