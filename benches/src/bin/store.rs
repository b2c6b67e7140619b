//! Store benchmark: what the LMDB bundle store costs per bundle, on the
//! real disk (`/var/tmp`, fsync per commit), as the store grows.
//!
//! A relay's store sees, per bundle passing through: an insert, later a
//! removal (delivered downstream) and a seen entry kept until expiry. This
//! inserts `N` bundles of 200 bytes in batches (one commit each, as the
//! router groups a loop turn's frames), removing each batch's bundles two
//! batches later, and prints per phase (the first and the last tenth of the
//! run, so growth shows):
//!
//! * `store_bundles_per_s_{first,last}`: inserts committed per second;
//! * `store_write_bytes_per_bundle_{first,last}`: bytes the process sent to
//!   the disk per bundle (`/proc/self/io` `write_bytes`): the store's write
//!   amplification, what bounds a relay of three stores on one disk;
//! * `store_file_mb`: the LMDB file's size at the end;
//! * `store_index_heap_bytes_per_seen_id`: growth of the id index's heap
//!   (`Store::index_heap_bytes`, an estimate) per id seen, from a quarter of
//!   the run to its end, and `store_rss_anon_bytes_per_seen_id`, the same
//!   for the process's anonymous memory (`/proc/self/status` `RssAnon`: the
//!   index, LMDB's page buffers, the allocator's slack);
//! * `store_index_heap_kb`: the index's heap at the end;
//! * `store_expire_all_us_per_bundle`: then one batch expiring everything
//!   (what the run deferred: every id seen must be forgotten in the end),
//!   per bundle of the run.
//!
//! `cargo run --release -p meshpay-benches --bin store [-- --quick]`

use std::time::Instant;

use meshpay_store::{BundleMeta, Insert, Store, StoreConfig};

fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb =
        status.lines().find_map(|l| l.strip_prefix("RssAnon:")).and_then(|v| v.trim().strip_suffix("kB"));
    kb.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

fn id(n: u64) -> [u8; 32] {
    // Content hashes: spread uniformly over the key space.
    *blake3::hash(&n.to_le_bytes()).as_bytes()
}

fn meta(n: u64) -> BundleMeta {
    BundleMeta {
        id: id(n),
        source: "dtn://node/6a8f1c3e9b2d4f7a8c1e3b5d7f9a2c4e6b8d0f1a3c5e7b9d1f3a5c7e9b1d3f5a/app".into(),
        destination: "dtn://node/0b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d/app".into(),
        priority: 1,
        size: 0,
        copies: u32::MAX,
        received_unix_ms: 1_700_000_000_000 + n,
        expires_unix_ms: 1_700_003_600_000 + n,
        from_peer: Some([7; 32]),
        local: false,
        seq: 0,
    }
}

fn print(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.2} {unit}");
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (count, batch) = if quick { (40_000u64, 2_000u64) } else { (200_000, 2_000) };
    let dir = tempfile::Builder::new().prefix("store-bench-").tempdir_in("/var/tmp").expect("a temp dir");
    let config = StoreConfig { quota_bytes: 2 << 30, ..StoreConfig::default() };
    let config = StoreConfig { map_bytes: meshpay_store::default_map_bytes(config.quota_bytes), ..config };
    let store = Store::open(dir.path(), config).expect("the store opens");
    let payload = vec![0x5a; 200];
    let batches = count / batch;
    let tenth = (batches / 10).max(1);
    let mut phases = Vec::new();
    let mut quarter = None;
    let (mut t0, mut w0) = (Instant::now(), write_bytes());
    for b in 0..batches {
        if b % tenth == 0 {
            (t0, w0) = (Instant::now(), write_bytes());
        }
        let mut txn = store.batch().expect("a batch");
        for n in b * batch..(b + 1) * batch {
            assert!(matches!(txn.insert(&meta(n), &payload).expect("insert"), Insert::Stored { .. }));
        }
        // Bundles forwarded and acknowledged downstream leave the store
        // (they stay seen).
        if b >= 2 {
            for n in (b - 2) * batch..(b - 1) * batch {
                assert!(txn.remove(&id(n)).expect("remove"));
            }
        }
        txn.commit().expect("commit");
        if b % tenth == tenth - 1 {
            let secs = t0.elapsed().as_secs_f64();
            let bundles = (tenth * batch) as f64;
            phases.push((bundles / secs, (write_bytes() - w0) as f64 / bundles));
        }
        if b == batches / 4 {
            quarter = Some((store.known_ids(), store.index_heap_bytes(), rss_anon_bytes()));
        }
    }
    let (first, last) = (phases[0], phases[phases.len() - 1]);
    print("store_bundles_per_s_first", first.0, "1/s");
    print("store_bundles_per_s_last", last.0, "1/s");
    print("store_write_bytes_per_bundle_first", first.1, "B");
    print("store_write_bytes_per_bundle_last", last.1, "B");
    let file = std::fs::metadata(dir.path().join("data.mdb")).map(|m| m.len()).unwrap_or(0);
    print("store_file_mb", file as f64 / 1e6, "MB");
    // (Held bundles are the same number at both points: the ids added are
    // ids seen.)
    let (known0, heap0, rss0) = quarter.expect("more than four batches");
    let (known, heap, rss) = (store.known_ids(), store.index_heap_bytes(), rss_anon_bytes());
    let seen = (known - known0) as f64;
    print("store_index_heap_bytes_per_seen_id", (heap as f64 - heap0 as f64) / seen, "B");
    print("store_rss_anon_bytes_per_seen_id", (rss as f64 - rss0 as f64) / seen, "B");
    print("store_index_heap_kb", heap as f64 / 1024.0, "kB");
    let t0 = Instant::now();
    let mut txn = store.batch().expect("a batch");
    txn.expire(u64::MAX).expect("expire");
    txn.commit().expect("commit");
    assert_eq!(store.known_ids(), 0);
    print("store_expire_all_us_per_bundle", t0.elapsed().as_secs_f64() * 1e6 / count as f64, "us");
}
