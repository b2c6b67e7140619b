//! Ledger benchmark: the `quorum` consensus plugin's authority, through the
//! real plugin host and the real LMDB store (fsync per commit), against the
//! limits its cryptography sets on this machine.
//!
//! Prints `name value unit` lines (details on stderr, `#`-prefixed):
//!
//! * the crypto limits: one Ed25519 verification plus one signature per
//!   transfer order (per core, and measured on 2 threads at once); one
//!   batch verification of a certificate (the sender's signature and 3
//!   votes: a quorum of 4 equal authorities) per certificate;
//! * transfer orders validated, signed and durably committed per second by
//!   one authority, each LMDB batch's votes released only after its commit
//!   (the lock is on disk before the vote leaves), and certificates
//!   confirmed per second the same way, through the real plugin host
//!   (`meshpay_host::Plugin::builtin` of the plugin's descriptor, the C
//!   ABI, the SDK) and the real store:
//!   - `abi_pipelined` (the figure that counts): ABI 1.1, one `on_bundles`
//!     call per LMDB batch, and `prepare_bundles` of batch N+1 on a worker
//!     thread while batch N runs and commits, as a host does;
//!   - `abi_batched`: ABI 1.1 `on_bundles` without `prepare_bundles`;
//!   - `authority`: ABI 1.0, one `on_bundle` call per bundle (batches of 1,
//!     64 and 1024 bundles per LMDB commit);
//!   - `direct_pipelined`: the plugin core driven without the ABI (the
//!     `direct` feature), as `abi_pipelined`: what the ABI path costs;
//! * each throughput as a ratio to its limit (`..._ratio 0.83 x`, and
//!   `..._ratio_2_cores` against twice the one-core limit: the target is
//!   0.8 on both cores), and against the crypto rate two threads reach
//!   right before and after each run (`..._ratio_local`: this shared
//!   machine's speed drifts); the share of the time spent in LMDB commits
//!   (`..._commit_share`); the CPU time per order or certificate
//!   (`..._cpu_us`, all threads) and the cryptography's share of it
//!   (`..._cpu_ratio`): what the path costs beyond the cryptography,
//!   whatever share of the cores it got. Medians of the rounds.
//!
//! `cargo run --release -p meshpay-benches --bin ledger [-- --quick]`

use std::hint::black_box;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, SignedMessage};
use meshpay_consensus_quorum::batch::Incoming;
use meshpay_consensus_quorum::config::Config;
use meshpay_consensus_quorum::direct::{DirectCrypto, DirectEnv};
use meshpay_consensus_quorum::keys::hex;
use meshpay_consensus_quorum::protocol::Core;
use meshpay_consensus_quorum::wire::{self, Body, Certificate, Message, Order, OrderBody, OrderKind};
use meshpay_consensus_quorum::{PLUGIN_ID, ledger, plugin_entry};
use meshpay_host::{
    Consensus, HostAction, HostError, HostServices, InstanceId, InstanceLabel, Level, Plugin, Preparer,
};
use meshpay_store::{Store, StoreConfig};

// ------------------------------------------------------------------ setup

struct Services {
    key: SigningKey,
    start: Instant,
}

impl HostServices for Services {
    fn log(&self, _: &InstanceLabel, level: Level, message: &str) {
        if level <= Level::Warn {
            eprintln!("# plugin {level:?}: {message}");
        }
    }
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    fn node_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    fn node_endpoint(&self) -> String {
        format!("dtn://{}/", hex(&self.node_key()))
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
    fn set_timer(&self, _: InstanceId, _: u64, _: u64) -> Result<(), HostError> {
        Ok(()) // the housekeeping tick never fires here
    }
    fn cancel_timer(&self, _: InstanceId, _: u64) -> bool {
        false
    }
    fn watch_fd(&self, _: InstanceId, _: RawFd, _: u32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn unwatch_fd(&self, _: InstanceId, _: RawFd) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
}

fn seed_key(tag: u8, i: u64) -> SigningKey {
    let mut s = [tag; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    SigningKey::from_bytes(&s)
}

/// Order payloads and the matching confirmation payloads.
type Workload = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Four authorities of weight 1 (authority 0 is measured; 1 to 3 sign the
/// certificates' votes), and `accounts` funded wallets.
struct Fixture {
    authorities: Vec<SigningKey>,
    wallets: Vec<SigningKey>,
    config: Vec<u8>,
    committee: [u8; 32],
    client: String,
}

impl Fixture {
    fn new(accounts: usize) -> Fixture {
        let authorities: Vec<SigningKey> = (0..4).map(|i| seed_key(0xa0, i)).collect();
        let wallets: Vec<SigningKey> = (0..accounts as u64).map(|i| seed_key(0x5a, i)).collect();
        let authority_json: Vec<String> = authorities
            .iter()
            .map(|k| format!(r#"{{"key":"{}","weight":1}}"#, hex(&k.verifying_key().to_bytes())))
            .collect();
        let genesis_json: Vec<String> = wallets
            .iter()
            .map(|k| format!(r#"{{"account":"{}","balance":1000000}}"#, hex(&k.verifying_key().to_bytes())))
            .collect();
        let config = format!(
            r#"{{"role":"authority","committee":{{"authority":[{}],"genesis":[{}]}}}}"#,
            authority_json.join(","),
            genesis_json.join(",")
        )
        .into_bytes();
        let committee = *Config::parse(&config).expect("the bench config parses").committee.hash();
        let client = format!("dtn://{}/quorum", hex(&seed_key(0xc1, 0).verifying_key().to_bytes()));
        Fixture { authorities, wallets, config, committee, client }
    }

    /// Wallets `range` each pay their neighbour 1 unit at sequence 0: the
    /// order payloads and the matching confirmation payloads (votes of
    /// authorities 1 to 3). Built on 2 threads.
    fn workload(&self, range: std::ops::Range<usize>) -> Workload {
        let ids: Vec<usize> = range.collect();
        let half = ids.len().div_ceil(2);
        let parts: Vec<Workload> = std::thread::scope(|s| {
            let hs: Vec<_> = ids.chunks(half.max(1)).map(|c| s.spawn(move || self.build(c))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut orders = Vec::new();
        let mut certs = Vec::new();
        for (o, c) in parts {
            orders.extend(o);
            certs.extend(c);
        }
        (orders, certs)
    }

    fn build(&self, ids: &[usize]) -> Workload {
        let mut orders = Vec::with_capacity(ids.len());
        let mut certs = Vec::with_capacity(ids.len());
        for &i in ids {
            let w = &self.wallets[i];
            let recipient = self.wallets[(i + 1) % self.wallets.len()].verifying_key().to_bytes();
            let body = OrderBody {
                sender: w.verifying_key().to_bytes(),
                sequence: 0,
                amount: 1,
                kind: OrderKind::Transfer { recipient },
            };
            let signature = w.sign(&body.signing_message(&self.committee)).to_bytes();
            let h = body.hash(&self.committee);
            let order = Order { body, signature };
            let vote = wire::vote_message(&h);
            let votes = wire::canonical_signatures(
                self.authorities[1..]
                    .iter()
                    .map(|a| (a.verifying_key().to_bytes(), a.sign(&vote).to_bytes()))
                    .collect(),
            );
            orders.push(Message { committee: self.committee, body: Body::Order(order.clone()) }.to_bytes());
            let cert = Certificate { order, votes };
            certs.push(Message { committee: self.committee, body: Body::Confirmation(cert) }.to_bytes());
        }
        (orders, certs)
    }
}

fn open_store() -> (tempfile::TempDir, Store) {
    // In the working directory's file system, not a tmpfs: commits must
    // really reach the disk.
    let dir = tempfile::Builder::new().prefix("ledger-bench-").tempdir_in(".").expect("a temp dir");
    let store = Store::open(dir.path(), StoreConfig::default()).expect("the store opens");
    (dir, store)
}

/// The authority under test through the plugin host.
struct AbiAuthority {
    _dir: tempfile::TempDir,
    store: Store,
    plugin: Box<dyn Consensus>,
}

impl AbiAuthority {
    fn new(f: &Fixture) -> AbiAuthority {
        let (dir, store) = open_store();
        let services = Arc::new(Services { key: f.authorities[0].clone(), start: Instant::now() });
        let plugin = Plugin::builtin(plugin_entry).expect("the descriptor is valid");
        let mut batch = store.batch().unwrap();
        let mut call = batch.plugin_call(PLUGIN_ID);
        let instance = plugin.create_consensus("quorum", &f.config, services, &mut call).expect("create");
        call.finish(true).unwrap();
        batch.commit().unwrap();
        AbiAuthority { _dir: dir, store, plugin: instance }
    }

    /// Delivers `payloads` in LMDB batches of `group`, one `on_bundle`
    /// call (ABI 1.0) per bundle; returns the seconds taken and the bundles
    /// released (emitted after their batch committed).
    fn run(&mut self, source: &str, payloads: &[Vec<u8>], group: usize) -> (f64, usize) {
        let start = Instant::now();
        let mut released = 0;
        for chunk in payloads.chunks(group) {
            let mut batch = self.store.batch().unwrap();
            for p in chunk {
                let info = bundle_info(source, p);
                let mut call = batch.plugin_call(PLUGIN_ID);
                let r = self.plugin.on_bundle(&mut call, &info);
                call.finish(r.is_ok()).unwrap();
                r.expect("the authority accepts the bench's bundles");
            }
            let actions = self.plugin.take_actions();
            commit(batch);
            // Only now may the votes leave.
            released += emitted(&actions);
        }
        (start.elapsed().as_secs_f64(), released)
    }

    /// ABI 1.1: one `on_bundles` call per LMDB batch of `group` bundles, in
    /// one plugin-call undo scope; with `prepare`, `prepare_bundles` of the
    /// next batch runs on a worker thread meanwhile (the first batch is
    /// prepared before, on this thread, as a host would while the previous
    /// one committed).
    fn run_batched(
        &mut self,
        source: &str,
        payloads: &[Vec<u8>],
        group: usize,
        prepare: bool,
    ) -> (f64, usize) {
        let start = Instant::now();
        let batches: Vec<Vec<BundleInfo<'_>>> =
            payloads.chunks(group).map(|c| c.iter().map(|p| bundle_info(source, p)).collect()).collect();
        let preparer: Option<Preparer> = prepare.then(|| self.plugin.preparer());
        if let (Some(p), Some(first)) = (&preparer, batches.first()) {
            p.prepare_bundles(first).expect("prepare_bundles");
        }
        let mut released = 0;
        for (k, bundles) in batches.iter().enumerate() {
            let (store, plugin) = (&self.store, &mut self.plugin);
            std::thread::scope(|s| {
                let worker = match (&preparer, batches.get(k + 1)) {
                    (Some(p), Some(next)) => Some(s.spawn(move || p.prepare_bundles(next))),
                    _ => None,
                };
                let mut batch = store.batch().unwrap();
                let mut call = batch.plugin_call(PLUGIN_ID);
                let results = plugin.on_bundles(&mut call, bundles).expect("no failure of the whole call");
                call.finish(true).unwrap();
                assert!(results.iter().all(Result::is_ok), "the authority accepts the bench's bundles");
                let actions = plugin.take_actions();
                commit(batch);
                released += emitted(&actions);
                if let Some(w) = worker {
                    w.join().unwrap().expect("prepare_bundles");
                }
            });
        }
        (start.elapsed().as_secs_f64(), released)
    }
}

fn bundle_info<'a>(source: &'a str, payload: &'a [u8]) -> BundleInfo<'a> {
    BundleInfo {
        id: &[1],
        source,
        destination: "dtn://~authorities/quorum",
        priority: 2,
        created_ms: 0,
        lifetime_ms: 3_600_000,
        age_ms: 0,
        payload_len: payload.len() as u64,
        hop_count: 1,
        copies: MP_COPIES_UNLIMITED,
        payload,
    }
}

/// Bundles a call emitted (released only after its batch's commit).
fn emitted(actions: &[HostAction]) -> usize {
    actions.iter().filter(|a| matches!(a, HostAction::EmitBundle { .. })).count()
}

/// The same authority's core driven directly (no ABI): the reference for
/// what the ABI path costs.
struct BatchAuthority {
    _dir: tempfile::TempDir,
    store: Store,
    core: Core,
    crypto: DirectCrypto,
}

impl BatchAuthority {
    fn new(f: &Fixture) -> BatchAuthority {
        let (dir, store) = open_store();
        let crypto = DirectCrypto::new(f.authorities[0].clone());
        let cfg = Config::parse(&f.config).unwrap();
        let endpoint = format!("dtn://{}/", hex(&crypto.public_key()));
        let core = Core::new(cfg, crypto.public_key(), &endpoint).unwrap();
        let mut batch = store.batch().unwrap();
        let mut call = batch.plugin_call(PLUGIN_ID);
        let env = DirectEnv::open(&mut call, &crypto).unwrap();
        ledger::init(&env, core.committee()).unwrap();
        drop(env);
        call.finish(true).unwrap();
        batch.commit().unwrap();
        BatchAuthority { _dir: dir, store, core, crypto }
    }

    /// `Core::on_bundles` per LMDB batch of `group`, the signatures of
    /// batch k+1 checked (`Checker::prepare`, what `prepare_bundles` runs)
    /// on a worker while batch k does its ledger work and commits.
    fn run_pipelined(
        &mut self,
        source: &str,
        payloads: &[Vec<u8>],
        group: usize,
        threads: usize,
    ) -> (f64, usize) {
        let start = Instant::now();
        let batches: Vec<Vec<Incoming<'_>>> = payloads
            .chunks(group)
            .map(|c| c.iter().map(|p| Incoming { source, payload: p }).collect())
            .collect();
        let checker = self.core.checker.clone();
        let crypto = &self.crypto;
        if let Some(first) = batches.first() {
            checker.prepare(crypto, threads, first);
        }
        let mut released = 0;
        for (k, items) in batches.iter().enumerate() {
            let (store, core, checker) = (&self.store, &mut self.core, &checker);
            std::thread::scope(|s| {
                if let Some(next) = batches.get(k + 1) {
                    s.spawn(move || checker.prepare(crypto, threads, next));
                }
                let mut batch = store.batch().unwrap();
                let mut call = batch.plugin_call(PLUGIN_ID);
                let env = DirectEnv::open(&mut call, crypto).unwrap();
                let results = core.on_bundles(&env, crypto, threads, items).expect("no host failure");
                assert!(results.iter().all(Result::is_ok), "the authority accepts the bench's bundles");
                let emitted = env.take_emitted().len();
                drop(env);
                call.finish(true).unwrap();
                commit(batch);
                released += emitted;
            });
        }
        (start.elapsed().as_secs_f64(), released)
    }
}

/// Time spent in LMDB commits (write-out and fsync) since the last reset.
static COMMIT_NS: AtomicU64 = AtomicU64::new(0);

fn commit(batch: meshpay_store::Batch<'_>) {
    let t = Instant::now();
    batch.commit().unwrap();
    COMMIT_NS.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// Seconds spent committing since the last call.
fn take_commit_s() -> f64 {
    COMMIT_NS.swap(0, Ordering::Relaxed) as f64 / 1e9
}

/// `struct rusage` of Linux on 64-bit targets.
#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

unsafe extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// CPU seconds this process used so far, all its threads, ended ones
/// included (user + system, `getrusage(RUSAGE_SELF)`, microseconds).
fn cpu_s() -> f64 {
    let mut r = Rusage { utime: [0; 2], stime: [0; 2], rest: [0; 14] };
    // SAFETY: a valid out-pointer to a struct of the kernel's layout.
    if unsafe { getrusage(0, &mut r) } != 0 {
        return f64::NAN;
    }
    (r.utime[0] + r.stime[0]) as f64 + (r.utime[1] + r.stime[1]) as f64 / 1e6
}

/// What `threads` threads doing `f` achieve right now (the best of 3
/// short batches of `iters` each), and the CPU seconds `f` took each
/// time: the machine's speed drifts with its other load, and its CPU
/// accounting with it.
fn local_limit(threads: usize, iters: usize, f: impl Fn() + Sync) -> (f64, f64) {
    let cpu0 = cpu_s();
    let rate = rate_on_threads(threads, 3, iters, f);
    (rate, (cpu_s() - cpu0) / (3 * threads * iters) as f64)
}

// ------------------------------------------------------------ crypto limits

/// Fastest ns per call of `f` over `batches` timed batches of `iters`: on
/// a shared machine the least disturbed batch is the machine's ability,
/// and a higher limit only makes the ratios stricter.
fn per_op_ns(batches: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters {
        f();
    }
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[0]
}

/// Operations per second with `threads` threads doing `f` at once (the
/// best of `batches` runs of `iters` per thread).
fn rate_on_threads(threads: usize, batches: usize, iters: usize, f: impl Fn() + Sync) -> f64 {
    let mut rates: Vec<f64> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..iters {
                            f();
                        }
                    });
                }
            });
            (threads * iters) as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() - 1]
}

/// The load average and the CPU pressure (share of time runnable tasks
/// waited for a core), for the notes: this machine is shared.
fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let pressure = std::fs::read_to_string("/proc/pressure/cpu").unwrap_or_default();
    let some = pressure.lines().next().unwrap_or("").replace("some ", "");
    format!("load average {}; cpu pressure {some}", load.join(" "))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.2} {unit}");
}

/// One way of running the authority, with its own store.
enum Runner {
    /// ABI 1.0: `on_bundle` per bundle.
    Abi(AbiAuthority),
    /// ABI 1.1: `on_bundles` per batch, without `prepare_bundles`.
    AbiBatched(AbiAuthority),
    /// ABI 1.1: `on_bundles` per batch, `prepare_bundles` of the next batch
    /// on a worker thread.
    AbiPipelined(AbiAuthority),
    /// The core without the ABI, pipelined like `AbiPipelined`.
    DirectPipelined(Box<BatchAuthority>),
}

struct Setting {
    /// Figure name prefix: `authority` (ABI 1.0, one call per bundle),
    /// `abi_batched`, `abi_pipelined` (ABI 1.1), `direct_pipelined`.
    name: &'static str,
    /// Orders (and certificates) per LMDB transaction.
    group: usize,
    /// Only orders, and only an eighth of each round (a commit per order is slow).
    orders_only: bool,
    runner: Runner,
    orders: Vec<f64>,
    certs: Vec<f64>,
    /// Share of the time spent in commits, orders and certificates.
    commit_share: Vec<f64>,
    /// CPU seconds (all threads) per order and per certificate.
    cpu_order: Vec<f64>,
    cpu_cert: Vec<f64>,
    /// Each round's throughput over the two-thread crypto rate measured
    /// right before and after it (the machine in the same state).
    local_orders: Vec<f64>,
    local_certs: Vec<f64>,
    /// Each round's crypto CPU time per operation (measured with the local
    /// rates) over the path's CPU time per order or certificate.
    cpu_local_orders: Vec<f64>,
    cpu_local_certs: Vec<f64>,
}

impl Setting {
    fn run(&mut self, f: &Fixture, payloads: &[Vec<u8>], threads: usize) -> (f64, usize) {
        match &mut self.runner {
            Runner::Abi(a) => a.run(&f.client, payloads, self.group),
            Runner::AbiBatched(a) => a.run_batched(&f.client, payloads, self.group, false),
            Runner::AbiPipelined(a) => a.run_batched(&f.client, payloads, self.group, true),
            Runner::DirectPipelined(b) => b.run_pipelined(&f.client, payloads, self.group, threads),
        }
    }

    fn store(&self) -> &Store {
        match &self.runner {
            Runner::Abi(a) | Runner::AbiBatched(a) | Runner::AbiPipelined(a) => &a.store,
            Runner::DirectPipelined(b) => &b.store,
        }
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (accounts_per_round, rounds, crypto_batches, crypto_iters) =
        if quick { (2_048, 3, 9, 200) } else { (8_192, 5, 31, 1_000) };
    let threads = 2;
    // Operations per thread and batch of the crypto rates measured beside
    // each run (3 batches, before and after).
    let local_iters = if quick { 100 } else { 200 };
    eprintln!("# machine at start: {}", machine_load());
    eprintln!(
        "# {} mode: {rounds} rounds of {accounts_per_round} orders and certificates from fresh accounts \
         ({} accounts in genesis); {threads} threads for the direct path; stores under {}",
        if quick { "quick" } else { "full" },
        accounts_per_round * rounds,
        std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
    );

    let f = Fixture::new(accounts_per_round * rounds);

    // --- Crypto limits, with the host's own functions.
    let (sample_orders, sample_certs) = f.workload(0..1);
    let Body::Order(order) = Message::parse(&sample_orders[0]).unwrap().body else { unreachable!() };
    let Body::Confirmation(cert) = Message::parse(&sample_certs[0]).unwrap().body else { unreachable!() };
    let order_msg = order.body.signing_message(&f.committee);
    let h = order.body.hash(&f.committee);
    let vote_msg = wire::vote_message(&h);
    let node = &f.authorities[0];
    let verify = || {
        assert!(meshpay_host::verify_strict(&order.body.sender, black_box(&order_msg), &order.signature));
    };
    let sign = || {
        black_box(node.sign(black_box(&vote_msg)));
    };
    let verify_ns = per_op_ns(crypto_batches, crypto_iters, verify);
    let sign_ns = per_op_ns(crypto_batches, crypto_iters, sign);
    let order_limit = 1e9 / (verify_ns + sign_ns);
    let order_measured_threads = rate_on_threads(threads, crypto_batches.min(9), crypto_iters * 2, || {
        verify();
        sign();
    });
    // The orders' signatures as the plugin checks them: batches of
    // `order_group` (128 for a call of 1024 on 2 threads). The limit with
    // batch verification is the stricter one.
    let group = meshpay_consensus_quorum::checks::order_group(1024, threads);
    let (group_orders, _) = f.workload(0..group);
    let group_orders: Vec<Order> = group_orders
        .iter()
        .map(|p| match Message::parse(p).unwrap().body {
            Body::Order(o) => o,
            _ => unreachable!(),
        })
        .collect();
    let group_msgs: Vec<Vec<u8>> =
        group_orders.iter().map(|o| o.body.signing_message(&f.committee)).collect();
    let group_items: Vec<SignedMessage<'_>> = group_orders
        .iter()
        .zip(&group_msgs)
        .map(|(o, m)| SignedMessage { public_key: &o.body.sender, message: m, signature: &o.signature })
        .collect();
    let verify_batched_ns = per_op_ns(crypto_batches, (crypto_iters / 64).max(2), || {
        assert!(meshpay_host::verify_batch(black_box(&group_items)).is_ok())
    }) / group as f64;
    let order_batched_limit = 1e9 / (verify_batched_ns + sign_ns);
    let cert_items = {
        let mut items = vec![SignedMessage {
            public_key: &cert.order.body.sender,
            message: &order_msg,
            signature: &cert.order.signature,
        }];
        items.extend(cert.votes.iter().map(|(k, s)| SignedMessage {
            public_key: k,
            message: &vote_msg,
            signature: s,
        }));
        items
    };
    let cert_verify = || assert!(meshpay_host::verify_batch(black_box(&cert_items)).is_ok());
    let cert_ns = per_op_ns(crypto_batches, crypto_iters / 2, cert_verify);
    let cert_limit = 1e9 / cert_ns;
    let cert_measured_threads = rate_on_threads(threads, crypto_batches.min(9), crypto_iters, cert_verify);
    // The limit on both cores: twice one core's (what 2 threads really got
    // on this shared machine is printed beside it).
    let order_limit_2 = 2.0 * order_limit;
    let cert_limit_2 = 2.0 * cert_limit;
    print("crypto_verify_us", verify_ns / 1e3, "us");
    print("crypto_sign_us", sign_ns / 1e3, "us");
    print("order_crypto_limit_per_core", order_limit, "orders/s");
    print("order_crypto_limit_2_cores", order_limit_2, "orders/s");
    print("order_crypto_2_threads_measured", order_measured_threads, "orders/s");
    print("crypto_verify_batched_us", verify_batched_ns / 1e3, "us");
    print("order_batched_crypto_limit_per_core", order_batched_limit, "orders/s");
    print("order_batched_crypto_limit_2_cores", 2.0 * order_batched_limit, "orders/s");
    print("cert_batch_verify_us", cert_ns / 1e3, "us");
    print("cert_crypto_limit_per_core", cert_limit, "certs/s");
    print("cert_crypto_limit_2_cores", cert_limit_2, "certs/s");
    print("cert_crypto_2_threads_measured", cert_measured_threads, "certs/s");

    // --- The authority, several ways, each with its own store.
    let setting = |name, group, orders_only, runner| Setting {
        name,
        group,
        orders_only,
        runner,
        orders: Vec::new(),
        certs: Vec::new(),
        commit_share: Vec::new(),
        cpu_order: Vec::new(),
        cpu_cert: Vec::new(),
        local_orders: Vec::new(),
        local_certs: Vec::new(),
        cpu_local_orders: Vec::new(),
        cpu_local_certs: Vec::new(),
    };
    // `--only NAME[,NAME...]`: just the settings of those names (profiling,
    // comparisons).
    let only: Option<Vec<String>> = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .map(|names| names.split(',').map(str::to_owned).collect());
    let mut settings = vec![
        setting("authority", 1, true, Runner::Abi(AbiAuthority::new(&f))),
        setting("authority", 64, false, Runner::Abi(AbiAuthority::new(&f))),
        setting("authority", 1024, false, Runner::Abi(AbiAuthority::new(&f))),
        setting("abi_batched", 1024, false, Runner::AbiBatched(AbiAuthority::new(&f))),
        setting("abi_pipelined", 64, false, Runner::AbiPipelined(AbiAuthority::new(&f))),
        setting("abi_pipelined", 1024, false, Runner::AbiPipelined(AbiAuthority::new(&f))),
        setting("direct_pipelined", 1024, false, Runner::DirectPipelined(Box::new(BatchAuthority::new(&f)))),
    ];
    settings.retain(|s| only.as_ref().is_none_or(|o| o.iter().any(|n| n == s.name)));
    for r in 0..rounds {
        let (orders, certs) = f.workload(r * accounts_per_round..(r + 1) * accounts_per_round);
        let n = orders.len();
        // Rotate the order of the settings, so other load on the machine
        // hits them all alike.
        let count = settings.len();
        for k in 0..count {
            let s = &mut settings[(k + r) % count];
            let orders = if s.orders_only { &orders[..n / 8] } else { &orders[..] };
            // What both cores do with pure cryptography right now, before
            // and after the run (the higher rate counts): this machine's
            // speed drifts with its other load.
            let order_op = || {
                verify();
                sign();
            };
            let (order_before, order_cpu_before) = local_limit(threads, local_iters, order_op);
            let (cert_before, cert_cpu_before) = local_limit(threads, local_iters / 2, cert_verify);
            take_commit_s();
            let cpu0 = cpu_s();
            let (t, out) = s.run(&f, orders, threads);
            assert_eq!(out, orders.len(), "one vote per order, released after its commit");
            let cpu_order = (cpu_s() - cpu0) / orders.len() as f64;
            let mut total = t;
            let order_rate = orders.len() as f64 / t;
            let mut cert_run = None;
            if !s.orders_only {
                let cpu0 = cpu_s();
                let (t, _) = s.run(&f, &certs, threads);
                cert_run = Some((n as f64 / t, (cpu_s() - cpu0) / n as f64));
                total += t;
            }
            s.commit_share.push(take_commit_s() / total);
            let (order_after, order_cpu_after) = local_limit(threads, local_iters, order_op);
            let (cert_after, cert_cpu_after) = local_limit(threads, local_iters / 2, cert_verify);
            s.orders.push(order_rate);
            s.local_orders.push(order_rate / order_before.max(order_after));
            s.cpu_order.push(cpu_order);
            s.cpu_local_orders.push((order_cpu_before + order_cpu_after) / 2.0 / cpu_order);
            if let Some((rate, cpu)) = cert_run {
                s.certs.push(rate);
                s.local_certs.push(rate / cert_before.max(cert_after));
                s.cpu_cert.push(cpu);
                s.cpu_local_certs.push((cert_cpu_before + cert_cpu_after) / 2.0 / cpu);
            }
            eprintln!(
                "# round {r}: {} n={}: orders {:.0}/s ({:.2} of the crypto rate on 2 threads then; \
                 cpu {:.0} us each, {:.2} of it in crypto){}",
                s.name,
                s.group,
                s.orders[r],
                s.local_orders[r],
                cpu_order * 1e6,
                s.cpu_local_orders[r],
                s.certs
                    .get(r)
                    .map(|c| format!(
                        "; certificates {c:.0}/s ({:.2}; cpu {:.0} us each, {:.2})",
                        s.local_certs[r],
                        s.cpu_cert[r] * 1e6,
                        s.cpu_local_certs[r]
                    ))
                    .unwrap_or_default()
            );
        }
    }
    // The ledgers are consistent afterwards.
    let crypto = DirectCrypto::new(f.authorities[0].clone());
    for s in settings.iter().filter(|s| !s.orders_only) {
        let mut batch = s.store().batch().unwrap();
        let mut call = batch.plugin_call(PLUGIN_ID);
        let env = DirectEnv::open(&mut call, &crypto).unwrap();
        let audit = ledger::audit(&env).unwrap();
        assert!(audit.conserved(), "money not conserved: {audit:?}");
        let applied = ledger::counter(&env, ledger::Counter::CertificatesApplied).unwrap();
        assert_eq!(applied as usize, rounds * accounts_per_round);
    }

    eprintln!("# machine at the end: {}", machine_load());
    // Medians of the rounds. `_ratio_2_cores`: against twice the one-core
    // limit measured at the start (the best of its short batches, the
    // least disturbed one). `_ratio_local`: against what two threads of
    // pure cryptography did right before and after the run, the higher of
    // the two (the machine in the same state: its speed drifts). `_cpu_us`:
    // CPU time per item, all threads; `_cpu_ratio`: the cryptography's CPU
    // time per operation, measured beside it, over that.
    for s in settings {
        let (name, n) = (s.name, s.group);
        print(&format!("{name}_commit_share_n{n}"), median(s.commit_share.clone()), "x");
        let orders = median(s.orders.clone());
        print(&format!("{name}_orders_per_s_n{n}"), orders, "orders/s");
        if name == "authority" {
            print(&format!("{name}_orders_n{n}_ratio"), orders / order_limit, "x");
        }
        print(&format!("{name}_orders_n{n}_ratio_2_cores"), orders / order_limit_2, "x");
        print(
            &format!("{name}_orders_n{n}_ratio_2_cores_batched"),
            orders / (2.0 * order_batched_limit),
            "x",
        );
        print(&format!("{name}_orders_n{n}_ratio_local"), median(s.local_orders.clone()), "x");
        print(&format!("{name}_orders_n{n}_cpu_us"), median(s.cpu_order.clone()) * 1e6, "us");
        print(&format!("{name}_orders_n{n}_cpu_ratio"), median(s.cpu_local_orders.clone()), "x");
        if s.certs.is_empty() {
            continue;
        }
        let certs = median(s.certs.clone());
        print(&format!("{name}_certificates_per_s_n{n}"), certs, "certs/s");
        if name == "authority" {
            print(&format!("{name}_certificates_n{n}_ratio"), certs / cert_limit, "x");
        }
        print(&format!("{name}_certificates_n{n}_ratio_2_cores"), certs / cert_limit_2, "x");
        print(&format!("{name}_certificates_n{n}_ratio_local"), median(s.local_certs.clone()), "x");
        print(&format!("{name}_certificates_n{n}_cpu_us"), median(s.cpu_cert.clone()) * 1e6, "us");
        print(&format!("{name}_certificates_n{n}_cpu_ratio"), median(s.cpu_local_certs.clone()), "x");
    }
}
