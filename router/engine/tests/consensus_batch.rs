//! Consensus bundles of one store batch reach an ABI 1.1 consensus plugin
//! in one `on_bundles` call (`Engine::handle_batch`), with the per-bundle
//! results counted and reported as one `on_bundle` call each would be; an
//! ABI 1.0 plugin still gets one `on_bundle` call per bundle, as they
//! arrive. Two real engines with real LMDB stores, plugins through the
//! real host (built-in descriptors), frames passed by hand.

mod common;

use std::sync::Arc;

use common::{Services, flood_entry};
use meshpay_abi::sdk::{ConsensusHost, ConsensusPlugin, Host, Level as SdkLevel, PluginError, Table};
use meshpay_abi::{BundleInfo, MpPluginEntry};
use meshpay_engine::{Action, Clock, Engine, EngineConfig, Event, LinkId, Note, Submit};
use meshpay_host::Plugin;
use meshpay_store::{Store, StoreConfig};

const GROUP: &str = "dtn://~ledger/test";

/// Consensus: subscribes to `GROUP`, records each accepted payload in table
/// "seen", refuses payloads starting with "bad". ABI 1.0 only.
struct Ledger10 {
    host: Host,
    kv: ConsensusHost,
    seen: Table,
}

impl Ledger10 {
    fn accept(&self, b: &BundleInfo<'_>) -> Result<(), PluginError> {
        if b.payload.starts_with(b"bad") {
            return Err(PluginError::invalid("bad payload"));
        }
        self.kv.put(self.seen, b.payload, b"1")
    }
}

impl ConsensusPlugin for Ledger10 {
    fn create(host: Host, kv: ConsensusHost, _: &[u8]) -> Result<Self, PluginError> {
        kv.subscribe(GROUP)?;
        let seen = kv.open("seen")?;
        Ok(Ledger10 { host, kv, seen })
    }
    fn on_bundle(&mut self, b: &BundleInfo<'_>) -> Result<(), PluginError> {
        self.host.log(SdkLevel::Info, "on_bundle");
        self.accept(b)
    }
}

/// The same with `on_bundles` (ABI 1.1).
struct Ledger11(Ledger10);

impl ConsensusPlugin for Ledger11 {
    const ON_BUNDLES: bool = true;

    fn create(host: Host, kv: ConsensusHost, config: &[u8]) -> Result<Self, PluginError> {
        Ok(Ledger11(Ledger10::create(host, kv, config)?))
    }
    fn on_bundle(&mut self, b: &BundleInfo<'_>) -> Result<(), PluginError> {
        self.0.on_bundle(b)
    }
    fn on_bundles(
        &mut self,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), PluginError>>, PluginError> {
        self.0.host.log(SdkLevel::Info, &format!("on_bundles {}", bundles.len()));
        Ok(bundles.iter().map(|b| self.0.accept(b)).collect())
    }
}

/// An `on_bundles` that fails as a whole (as on a host failure) when a
/// payload is "fail", after writing: the engine must roll it back and hand
/// the bundles to `on_bundle` one by one.
struct Failing(Ledger10);

impl ConsensusPlugin for Failing {
    const ON_BUNDLES: bool = true;

    fn create(host: Host, kv: ConsensusHost, config: &[u8]) -> Result<Self, PluginError> {
        Ok(Failing(Ledger10::create(host, kv, config)?))
    }
    fn on_bundle(&mut self, b: &BundleInfo<'_>) -> Result<(), PluginError> {
        self.0.on_bundle(b)
    }
    fn on_bundles(
        &mut self,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), PluginError>>, PluginError> {
        self.0.kv.put(self.0.seen, b"written by the failed call", b"1")?;
        if bundles.iter().any(|b| b.payload.starts_with(b"ok5")) {
            return Err(PluginError::failed("whole call fails"));
        }
        Ok(bundles.iter().map(|b| self.0.accept(b)).collect())
    }
}

meshpay_abi::meshpay_plugin! {
    fn failing_entry;
    id: "org.meshpay.test.ledger",
    name: "ledger 1.1, failing",
    version: "0",
    vendor: "tests",
    description: "",
    consensus: Failing,
}

meshpay_abi::meshpay_plugin! {
    fn ledger10_entry;
    id: "org.meshpay.test.ledger",
    name: "ledger 1.0",
    version: "0",
    vendor: "tests",
    description: "",
    consensus: Ledger10,
}

meshpay_abi::meshpay_plugin! {
    fn ledger11_entry;
    id: "org.meshpay.test.ledger",
    name: "ledger 1.1",
    version: "0",
    vendor: "tests",
    description: "",
    consensus: Ledger11,
}

struct Node {
    engine: Engine,
    store: Store,
    services: Arc<Services>,
    _dir: tempfile::TempDir,
}

const CLOCK: Clock = Clock { mono_ms: 1, unix_ms: 1_800_000_000_000 };

impl Node {
    fn new(key: u8, consensus: Option<fn() -> &'static MpPluginEntry>) -> Node {
        let services = Arc::new(Services::new([key; 32]));
        let routing =
            Plugin::builtin(flood_entry).unwrap().create_routing("flood", b"{}", services.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut engine = Engine::new(EngineConfig::default(), [key; 32], routing);
        if let Some(entry) = consensus {
            let plugin = Plugin::builtin(entry).unwrap();
            let mut batch = store.batch().unwrap();
            let mut call = batch.plugin_call(&plugin.descriptor().id);
            let c = plugin.create_consensus("ledger", b"{}", services.clone(), &mut call).unwrap();
            call.finish(true).unwrap();
            batch.commit().unwrap();
            engine.set_consensus(c);
        }
        Node { engine, store, services, _dir: dir }
    }

    /// Runs `f` in one batch, commits, returns the frames sent and the notes.
    fn step(
        &mut self,
        f: impl FnOnce(&mut Engine, &mut meshpay_store::Batch<'_>),
    ) -> (Vec<Vec<u8>>, Vec<Note>) {
        let mut batch = self.store.batch().unwrap();
        f(&mut self.engine, &mut batch);
        batch.commit().unwrap();
        let (mut frames, mut notes) = (Vec::new(), Vec::new());
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Send { frame, .. } => frames.push(frame),
                Action::Note(n) => notes.push(n),
                _ => {}
            }
        }
        (frames, notes)
    }

    fn count(&self, line: &str) -> usize {
        self.services.logs.lock().unwrap().iter().filter(|l| l.as_str() == line).count()
    }

    fn seen(&self) -> Vec<Vec<u8>> {
        let mut batch = self.store.batch().unwrap();
        let mut call = batch.plugin_call("org.meshpay.test.ledger");
        let t = meshpay_host::KvStore::open(&mut call, "seen").unwrap();
        let mut keys = Vec::new();
        meshpay_host::KvStore::scan(&mut call, t, &[0], &mut |k, _| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        keys
    }
}

fn link(peer: &str) -> LinkId {
    LinkId { transport: 1, peer: peer.into() }
}

/// Node `a` (no consensus) sends 10 bundles to `GROUP` (two of them
/// "bad"); node `b` (consensus plugin `entry`) receives all their frames in
/// one `handle_batch`. Returns `b` and the notes of that batch.
fn deliver_ten(entry: fn() -> &'static MpPluginEntry) -> (Node, Vec<Note>) {
    let mut a = Node::new(1, None);
    let mut b = Node::new(2, Some(entry));
    // Contact: HELLOs and summaries both ways until quiet.
    let (mut to_b, _) = a.step(|e, batch| {
        e.handle(CLOCK, batch, Event::LinkUp { link: link("b"), metric: None, signal_dbm: None }).unwrap()
    });
    let (mut to_a, _) = b.step(|e, batch| {
        e.handle(CLOCK, batch, Event::LinkUp { link: link("a"), metric: None, signal_dbm: None }).unwrap()
    });
    while !(to_a.is_empty() && to_b.is_empty()) {
        let (for_a, for_b) = (std::mem::take(&mut to_a), std::mem::take(&mut to_b));
        for f in for_b {
            to_a.extend(
                b.step(|e, batch| {
                    e.handle(CLOCK, batch, Event::Frame { link: link("a"), data: &f }).unwrap()
                })
                .0,
            );
        }
        for f in for_a {
            to_b.extend(
                a.step(|e, batch| {
                    e.handle(CLOCK, batch, Event::Frame { link: link("b"), data: &f }).unwrap()
                })
                .0,
            );
        }
    }
    let payloads: Vec<String> =
        (0..10).map(|i| if i == 3 || i == 7 { format!("bad{i}") } else { format!("ok{i}") }).collect();
    let (frames, _) = a.step(|e, batch| {
        for p in &payloads {
            let s = Submit {
                destination: GROUP,
                source_service: "app",
                payload: p.as_bytes(),
                lifetime_ms: None,
                priority: 1,
            };
            e.submit(CLOCK, batch, s).unwrap();
        }
    });
    assert_eq!(frames.len(), 10, "one bundle frame each");
    let (_, notes) = b.step(|e, batch| {
        let events = frames.iter().map(|f| Event::Frame { link: link("a"), data: f });
        e.handle_batch(CLOCK, batch, events).unwrap()
    });
    (b, notes)
}

fn summary(b: &Node, notes: &[Note]) -> (u64, u64, usize, Vec<Vec<u8>>) {
    let refused = notes.iter().filter(|n| matches!(n, Note::ConsensusRefused { .. })).count();
    let c = b.engine.counters();
    (c.bundles_delivered, c.consensus_refused, refused, b.seen())
}

#[test]
fn a_1_1_plugin_gets_a_batchs_bundles_in_one_call_and_a_1_0_plugin_one_call_each() {
    let (b11, notes11) = deliver_ten(ledger11_entry);
    assert_eq!(b11.count("on_bundles 10"), 1, "{:?}", b11.services.logs.lock().unwrap());
    assert_eq!(b11.count("on_bundle"), 0);

    let (b10, notes10) = deliver_ten(ledger10_entry);
    assert_eq!(b10.count("on_bundle"), 10);

    // Same counts, notes and tables either way.
    let s11 = summary(&b11, &notes11);
    assert_eq!(s11, summary(&b10, &notes10));
    assert_eq!((s11.0, s11.1, s11.2), (8, 2, 2));
    assert_eq!(s11.3.len(), 8);
    // The bundles also travel on (a group destination), as before.
    assert_eq!(b11.engine.counters().bundles_stored, 10);
}

#[test]
fn a_failed_on_bundles_call_is_rolled_back_and_its_bundles_delivered_one_by_one() {
    let (b, notes) = deliver_ten(failing_entry);
    assert_eq!(b.count("on_bundle"), 10);
    assert!(
        notes.iter().any(|n| matches!(n, Note::PluginFailed { what, .. } if what == "consensus on_bundles")),
        "{notes:?}"
    );
    let s = summary(&b, &notes);
    assert_eq!((s.0, s.1, s.2), (8, 2, 2));
    assert_eq!(s.3.len(), 8, "the failed call's write was rolled back: {:?}", s.3);
}
