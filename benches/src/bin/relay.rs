//! Relay benchmark: three `meshpay run` processes A–B–C in network
//! namespaces joined by veth pairs, over the UDP transport, every node with
//! its persistent LMDB store (fsync per batch). A submits bundles through its
//! control API; C's application receives and acknowledges them. Payloads
//! pass the control API as raw attachments (`RELAY_BASE64=1`: in base64).
//!
//! Prints `name value unit` lines:
//! - bundles/s and MB/s end to end for 200-byte and 64 KiB payloads, each
//!   with its ratio to the project's target (25k/s, 200 MB/s);
//! - median and 99th-percentile delivery latency (paced traffic, one bundle
//!   at a time, so queueing does not hide the path's own latency);
//! - the relay's (B's) peak RSS, and its anonymous (heap) RSS after 10k and
//!   after all 200-byte bundles passed, with their ratio (flat memory: close
//!   to 1). File-backed RSS (LMDB's mapped pages: the seen set grows with
//!   the bundles passed within their lifetime, on disk) is printed apart;
//! - CPU per bundle on each node and in the applications, and the rate two
//!   cores would carry if nothing but CPU limited it;
//! - for 64 KiB, the disk's write bandwidth and the bytes the disk took
//!   per payload byte (three stores each write every bundle): their
//!   quotient bounds the relay.
//!
//! Needs root (network namespaces) and the release `meshpay` binary:
//! `cargo build --release -p meshpay && cargo run --release -p meshpay-benches --bin relay -- --quick`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use meshpay::control::Client;
use meshpay_tests::{NodeProc, namespaces_or_skip, veth};
use serde_json::json;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// `RELAY_BASE64=1`: the applications pass payloads in base64 inside the
/// control API's JSON, as a JSON-only client does, instead of as raw
/// attachments (the CLI's way), to see what that costs.
fn base64_apps() -> bool {
    std::env::var_os("RELAY_BASE64").is_some_and(|v| v == "1")
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn config(name: &str, interfaces: &[&str]) -> String {
    let ifs = interfaces.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "[node]\nname = \"{name}\"\nlog_level = \"warn\"\n\n\
         [store]\nquota_mb = 2048\n\n\
         [bundles]\nwindow = 2048\n\n\
         [[transport]]\nname = \"udp\"\nplugin = \"org.meshpay.transport.udp\"\n\
         config = {{ interfaces = [{ifs}] }}\n"
    )
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sequential write bandwidth of the disk under `dir`, with an fdatasync
/// every 4 MiB (as a store commits): the limit of a relay whose three
/// stores share this disk is a third of it.
fn disk_write_mb_per_s(dir: &Path) -> f64 {
    use std::io::Write;
    let path = dir.join("disk-probe");
    let mut f = std::fs::File::create(&path).expect("create the disk probe");
    let chunk = vec![0x5au8; 1 << 20];
    let start = Instant::now();
    for i in 0..128 {
        f.write_all(&chunk).expect("write the disk probe");
        if i % 4 == 3 {
            f.sync_data().expect("sync the disk probe");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    128.0 * 1.048_576 / secs
}

/// Bytes written so far to the block device holding `dir`
/// (`/sys/dev/block/MAJ:MIN/stat`, sectors of 512 bytes), or `None` on a
/// file system without one (tmpfs).
fn device_bytes_written(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    let sectors: u64 = stat.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// CPU time (user + system) a process has used so far, in microseconds.
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th and stime the 13th of them.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    // (Every field counts for the position: `state` is a letter and
    // `tpgid` is -1 for a daemon.)
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (field(11) + field(12)) * 1_000_000 / hz
}

/// Receives `count` payloads at C, acknowledging as it goes; records each
/// payload's latency (its first 8 bytes are the send time) and calls
/// `on_progress` with the running count.
fn receive(
    socket: &Path,
    service: &str,
    count: u64,
    on_progress: impl Fn(u64),
    latencies: &Mutex<Vec<u64>>,
) -> Instant {
    let mut c = Client::connect(socket).expect("connect to C");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < count {
        assert!(Instant::now() < deadline, "relay: only {got} of {count} bundles arrived");
        let params = json!({"service": service, "max": 1024, "wait_ms": 1000, "binary": !base64_apps()});
        let (r, attached) = c.call_with("recv", params, &[]).expect("recv");
        let items = r["items"].as_array().map_or(&[][..], Vec::as_slice);
        let arrived = now_ns();
        let mut last_seq = None;
        for (i, item) in items.iter().enumerate() {
            let decoded;
            let payload = match item["payload"].as_str() {
                Some(text) => {
                    decoded = b64().decode(text).unwrap();
                    &decoded[..]
                }
                None => &attached[i][..],
            };
            let sent = u64::from_be_bytes(payload[..8].try_into().unwrap());
            latencies.lock().unwrap().push(arrived.saturating_sub(sent));
            last_seq = item["seq"].as_u64();
        }
        if let Some(seq) = last_seq {
            c.call("ack", json!({"service": service, "seq": seq})).expect("ack");
        }
        got += items.len() as u64;
        on_progress(got);
    }
    Instant::now()
}

/// Pushes `count` payloads of `size` bytes from A to `dest` in batches.
/// Returns when it started and when the last batch was accepted.
fn send_all(
    socket: &Path,
    dest: &str,
    service: &str,
    count: u64,
    size: usize,
    batch: u64,
) -> (Instant, Instant) {
    let mut a = Client::connect(socket).expect("connect to A");
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        let n = batch.min(count - sent);
        let payloads: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut p = vec![(sent + i) as u8; size];
                p[..8].copy_from_slice(&now_ns().to_be_bytes());
                p
            })
            .collect();
        let mut params = json!({"destination": dest, "service": service, "lifetime_s": 3600});
        if base64_apps() {
            params["payloads"] = payloads.iter().map(|p| b64().encode(p)).collect();
            a.call("send", params).expect("send");
        } else {
            let raw: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            a.call_with("send", params, &raw).expect("send");
        }
        sent += n;
    }
    (start, Instant::now())
}

struct Phase {
    bundles_per_s: f64,
    mb_per_s: f64,
}

/// One throughput run: `count` payloads of `size` bytes, submitted `batch`
/// at a time, to `service` at `dest`.
struct Workload<'a> {
    dest: &'a str,
    service: &'a str,
    count: u64,
    size: usize,
    batch: u64,
}

fn throughput(
    a: &NodeProc,
    c: &NodeProc,
    w: Workload,
    b_pid: u32,
    rss: &Arc<Mutex<Vec<(u64, u64)>>>,
) -> Phase {
    let Workload { dest, service, count, size, batch } = w;
    let latencies = Mutex::new(Vec::new());
    let c_sock = c.state_dir().join("control.sock");
    let a_sock = a.state_dir().join("control.sock");
    let dest_owned = dest.to_owned();
    let service_owned = service.to_owned();
    let sender =
        std::thread::spawn(move || send_all(&a_sock, &dest_owned, &service_owned, count, size, batch));
    let rss_marks = rss.clone();
    let next_mark = AtomicU64::new(10_000);
    let end = receive(
        &c_sock,
        service,
        count,
        |got| {
            let mark = next_mark.load(Ordering::Relaxed);
            if got >= mark {
                rss_marks.lock().unwrap().push((got, rss_kb(b_pid, "RssAnon:")));
                next_mark.store(mark + 10_000, Ordering::Relaxed);
            }
        },
        &latencies,
    );
    let (start, submitted) = sender.join().unwrap();
    let secs = end.duration_since(start).as_secs_f64();
    eprintln!(
        "relay: {count} x {size} B: submitted in {:.2} s, all received after {secs:.2} s",
        submitted.duration_since(start).as_secs_f64()
    );
    Phase { bundles_per_s: count as f64 / secs, mb_per_s: count as f64 * size as f64 / secs / 1e6 }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (small_n, large_n, latency_n) = if quick { (20_000, 600, 100) } else { (100_000, 3_000, 400) };
    // `RELAY_200B_COUNT`: more 200-byte bundles, to see where the relay's memory levels off.
    let small_n: u64 = std::env::var("RELAY_200B_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(small_n);
    // `RELAY_64K_COUNT`: a longer 64 KiB phase, to profile it.
    let large_n: u64 = std::env::var("RELAY_64K_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(large_n);

    let Some(ns) = namespaces_or_skip(&["ra", "rb", "rc"]) else {
        eprintln!("relay: needs network namespaces (run as root)");
        std::process::exit(2);
    };
    let (a, b, c) = (&ns[0], &ns[1], &ns[2]);
    veth(a, "eth0", b, "eth0").unwrap();
    veth(b, "eth1", c, "eth0").unwrap();
    // On the real disk (not tmpfs): the store's fsyncs are part of the cost.
    let dir = tempfile::Builder::new()
        .prefix("meshpay-relay-")
        // `RELAY_DIR` for another file system (a tmpfs, to see what the disk costs).
        .tempdir_in(std::env::var("RELAY_DIR").unwrap_or("/var/tmp".into()))
        .unwrap();
    let na = NodeProc::start_in(a, &dir.path().join("a"), &config("A", &["eth0"]));
    let nb = NodeProc::start_in(b, &dir.path().join("b"), &config("B", &["eth0", "eth1"]));
    let nc = NodeProc::start_in(c, &dir.path().join("c"), &config("C", &["eth0"]));
    for (n, want) in [(&na, 1), (&nb, 2), (&nc, 1)] {
        n.wait_status("neighbours", Duration::from_secs(30), |s| {
            s["neighbours"].as_array().map_or(0, Vec::len) >= want
        });
    }
    let (_, c_endpoint) = nc.id();
    let dest = |service: &str| format!("{c_endpoint}{service}");
    let b_pid = nb.pid();
    let rss = Arc::new(Mutex::new(Vec::new()));

    let small_dest = dest("small");
    let small_load = Workload { dest: &small_dest, service: "small", count: small_n, size: 200, batch: 2000 };
    let pids = [na.pid(), b_pid, nc.pid()];
    let cpu_before = pids.map(cpu_us);
    let app_before = cpu_us(std::process::id());
    let small = throughput(&na, &nc, small_load, b_pid, &rss);
    let cpu_after = pids.map(cpu_us);
    let app_us = (cpu_us(std::process::id()) - app_before) as f64 / small_n as f64;
    let rss_after_small = rss_kb(b_pid, "RssAnon:");
    let file_after_small = rss_kb(b_pid, "RssFile:");
    let marks = rss.lock().unwrap().clone();
    let trajectory: Vec<String> =
        marks.iter().map(|(got, kb)| format!("{}k:{:.1}", got / 1000, *kb as f64 / 1024.0)).collect();
    eprintln!("# B heap (RssAnon, MB) as bundles passed: {}", trajectory.join(" "));
    println!("relay_200b_bundles_per_s {:.0} 1/s", small.bundles_per_s);
    println!("relay_200b_mb_per_s {:.2} MB/s", small.mb_per_s);
    println!("relay_200b_target_ratio {:.2} x", small.bundles_per_s / 25_000.0);
    // CPU per bundle on each node: what the relay costs independently of
    // what else runs on the machine, and the rate the two cores could
    // carry if nothing but CPU limited it.
    let mut total_us = 0.0;
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let us = (cpu_after[i] - cpu_before[i]) as f64 / small_n as f64;
        total_us += us;
        println!("relay_200b_cpu_us_per_bundle_{name} {us:.1} us");
    }
    let cpu_bound = 2e6 / total_us.max(0.001);
    println!("relay_200b_cpu_bound_bundles_per_s {cpu_bound:.0} 1/s");
    println!("relay_200b_cpu_bound_ratio {:.2} x", small.bundles_per_s / cpu_bound);
    // The applications (this process: A's sender encoding JSON and base64,
    // C's receiver decoding it) share the same two cores.
    println!("relay_200b_cpu_us_per_bundle_apps {app_us:.1} us");
    let with_apps = 2e6 / (total_us + app_us).max(0.001);
    println!("relay_200b_cpu_bound_with_apps_bundles_per_s {with_apps:.0} 1/s");
    println!("relay_200b_cpu_bound_with_apps_ratio {:.2} x", small.bundles_per_s / with_apps);
    let large_dest = dest("large");
    let large_load =
        Workload { dest: &large_dest, service: "large", count: large_n, size: 64 * 1024, batch: 16 };
    let cpu_before = pids.map(cpu_us);
    let app_before = cpu_us(std::process::id());
    let written_before = device_bytes_written(dir.path());
    let large = throughput(&na, &nc, large_load, b_pid, &Arc::new(Mutex::new(Vec::new())));
    let written_after = device_bytes_written(dir.path());
    let cpu_after = pids.map(cpu_us);
    let app_us = (cpu_us(std::process::id()) - app_before) as f64 / large_n as f64;
    println!("relay_64k_mb_per_s {:.1} MB/s", large.mb_per_s);
    println!("relay_64k_bundles_per_s {:.0} 1/s", large.bundles_per_s);
    println!("relay_64k_target_ratio {:.2} x", large.mb_per_s / 200.0);
    let mut total_us = 0.0;
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let us = (cpu_after[i] - cpu_before[i]) as f64 / large_n as f64;
        total_us += us;
        println!("relay_64k_cpu_us_per_bundle_{name} {us:.0} us");
    }
    println!("relay_64k_cpu_us_per_bundle_apps {app_us:.0} us");
    let with_apps = 2e6 / (total_us + app_us).max(0.001) * 64.0 * 1024.0 / 1e6;
    println!("relay_64k_cpu_bound_with_apps_mb_per_s {with_apps:.0} MB/s");
    // What the disk took per payload byte (three stores, each writing the
    // bundle, plus LMDB's pages and the file system's own writes; anything
    // else writing to the same disk meanwhile counts too).
    // The disk bound divides the disk's bandwidth by that (by 3, the
    // stores' share, where the device cannot be read).
    let mut per_payload_byte = 3.0;
    if let (Some(before), Some(after)) = (written_before, written_after) {
        per_payload_byte = after.saturating_sub(before) as f64 / (large_n as f64 * 64.0 * 1024.0);
        println!("relay_64k_disk_bytes_per_payload_byte {per_payload_byte:.2} 1");
    }
    let disk = disk_write_mb_per_s(dir.path());
    let bound = disk / per_payload_byte.max(1.0);
    println!("disk_write_mb_per_s {disk:.0} MB/s");
    println!("relay_64k_disk_bound_mb_per_s {bound:.0} MB/s");
    println!("relay_64k_disk_bound_ratio {:.2} x", large.mb_per_s / bound);

    // Latency: one bundle at a time, 10 ms apart.
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let c_sock = nc.state_dir().join("control.sock");
    let lat = latencies.clone();
    let receiver = std::thread::spawn(move || receive(&c_sock, "ping", latency_n, |_| {}, &lat));
    let mut a_client = Client::connect(&na.state_dir().join("control.sock")).unwrap();
    for _ in 0..latency_n {
        let mut p = vec![0u8; 200];
        p[..8].copy_from_slice(&now_ns().to_be_bytes());
        a_client
            .call(
                "send",
                json!({"destination": dest("ping"), "service": "ping", "payload": b64().encode(&p)}),
            )
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    receiver.join().unwrap();
    let mut l = latencies.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)] as f64 / 1e6;

    // Where the pipeline loses time: group commit and losses.
    for (name, n) in [("a", &na), ("b", &nb), ("c", &nc)] {
        let st = n.status().unwrap_or_default();
        let c = &st["counters"];
        let commits = st["store"]["commits"].as_u64().unwrap_or(0).max(1);
        println!(
            "relay_{name}_frames_in_per_commit {:.1} 1",
            c["frames_in"].as_u64().unwrap_or(0) as f64 / commits as f64
        );
        println!("relay_{name}_retransmits {} 1", c["retransmits"]);
        println!("relay_{name}_frames_dropped {} 1", c["frames_dropped_queue_full"]);
    }
    let peak = rss_kb(b_pid, "VmHWM:");
    let first_mark = marks.first().map(|m| m.1).unwrap_or(rss_after_small);
    println!("relay_latency_p50_ms {:.2} ms", pct(0.5));
    println!("relay_latency_p99_ms {:.2} ms", pct(0.99));
    println!("relay_b_peak_rss_mb {:.1} MB", peak as f64 / 1024.0);
    println!("relay_b_heap_rss_after_10k_mb {:.1} MB", first_mark as f64 / 1024.0);
    println!("relay_b_heap_rss_after_{}k_mb {:.1} MB", small_n / 1000, rss_after_small as f64 / 1024.0);
    println!("relay_b_heap_rss_growth_ratio {:.2} x", rss_after_small as f64 / first_mark.max(1) as f64);
    println!("relay_b_file_rss_after_{}k_mb {:.1} MB", small_n / 1000, file_after_small as f64 / 1024.0);
    for n in [na, nb, nc] {
        n.stop();
    }
}
