//! ABI 1.1 batched delivery to consensus plugins, through the real host and
//! real LMDB tables (`meshpay-store`):
//!
//! * a C plugin built against the golden 1.0 header (its function table
//!   followed in memory by trap pointers where 1.1 appended its fields) is
//!   called through `on_bundle`, one bundle at a time, and a refused
//!   bundle's writes and emitted bundles are undone alone;
//! * the same C source built against the current header gets one
//!   `on_bundles` call, and `prepare_bundles` from another thread;
//! * Rust SDK plugins export NULL unless they implement the functions;
//!   `prepare_bundles` really runs while `on_bundles` runs; a panic in it
//!   disables the instance; a handle outliving its instance is refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use meshpay_abi::sdk::{BundlePreparer, ConsensusHost, ConsensusPlugin, Host, PluginError};
use meshpay_abi::{BundleInfo, MP_ERR_INVALID, MpVersion};
use meshpay_host::{
    CallError, Consensus, HostAction, HostError, HostServices, InstanceId, InstanceLabel, InstanceState,
    KvStore, Level, Plugin,
};
use meshpay_store::{Store, StoreConfig};

// ------------------------------------------------------------------ harness

#[derive(Default)]
struct Services {
    logs: Mutex<Vec<String>>,
}

impl Services {
    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
    fn count(&self, line: &str) -> usize {
        self.logs().iter().filter(|l| l.as_str() == line).count()
    }
}

impl HostServices for Services {
    fn log(&self, _: &InstanceLabel, _: Level, message: &str) {
        self.logs.lock().unwrap().push(message.to_owned());
    }
    fn now_ms(&self) -> u64 {
        0
    }
    fn node_key(&self) -> [u8; 32] {
        [9; 32]
    }
    fn node_endpoint(&self) -> String {
        "dtn://node/".into()
    }
    fn sign(&self, _: &[u8]) -> [u8; 64] {
        [0; 64]
    }
    fn set_timer(&self, _: InstanceId, _: u64, _: u64) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn cancel_timer(&self, _: InstanceId, _: u64) -> bool {
        false
    }
    fn watch_fd(&self, _: InstanceId, _: i32, _: u32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn unwatch_fd(&self, _: InstanceId, _: i32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
}

fn bundle(payload: &[u8]) -> BundleInfo<'_> {
    BundleInfo {
        id: b"id",
        source: "dtn://peer/app",
        destination: "dtn://node/counter",
        priority: 1,
        created_ms: 0,
        lifetime_ms: 60_000,
        age_ms: 0,
        payload_len: payload.len() as u64,
        hop_count: 1,
        copies: 1,
        payload,
    }
}

struct Node {
    _dir: tempfile::TempDir,
    store: Store,
    services: Arc<Services>,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        Node { _dir: dir, store, services: Arc::default() }
    }

    fn create(&self, plugin: &Arc<Plugin>) -> Box<dyn Consensus> {
        let mut batch = self.store.batch().unwrap();
        let id = plugin.descriptor().id.clone();
        let mut call = batch.plugin_call(&id);
        let instance = plugin.create_consensus("c", b"{}", self.services.clone(), &mut call).expect("create");
        call.finish(true).unwrap();
        batch.commit().unwrap();
        instance
    }

    /// `on_bundles` in one batch and one plugin call, committed unless the
    /// whole call failed.
    fn on_bundles(
        &self,
        c: &mut Box<dyn Consensus>,
        payloads: &[&[u8]],
    ) -> Result<Vec<Result<(), CallError>>, CallError> {
        let bundles: Vec<BundleInfo<'_>> = payloads.iter().map(|p| bundle(p)).collect();
        let mut batch = self.store.batch().unwrap();
        let id = c.plugin().descriptor().id.clone();
        let mut call = batch.plugin_call(&id);
        let r = c.on_bundles(&mut call, &bundles);
        call.finish(r.is_ok()).unwrap();
        batch.commit().unwrap();
        r
    }

    /// The keys in the plugin's table `table`.
    fn keys(&self, plugin_id: &str, table: &str) -> Vec<Vec<u8>> {
        let mut batch = self.store.batch().unwrap();
        let mut call = batch.plugin_call(plugin_id);
        let t = call.open(table).unwrap();
        let mut keys = Vec::new();
        call.scan(t, &[0], &mut |k, _| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        keys
    }
}

fn emitted(c: &mut Box<dyn Consensus>) -> Vec<Vec<u8>> {
    c.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            HostAction::EmitBundle { payload, .. } => Some(payload),
            _ => None,
        })
        .collect()
}

fn refused(r: &Result<(), CallError>) -> bool {
    matches!(r, Err(CallError::Failed { status: MP_ERR_INVALID, .. }))
}

/// Builds `tests/c/counter_consensus.c` against `header` (copied in as
/// `meshpay_plugin.h`, as a vendor would have it).
fn build_counter(header: &str, out: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inc = out.join(format!("{header}-include"));
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::copy(root.join("../../abi/include").join(header), inc.join("meshpay_plugin.h")).unwrap();
    let lib = out.join(format!("libcounter-{header}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC", "-shared", "-fvisibility=hidden"])
        .arg("-I")
        .arg(&inc)
        .arg(root.join("tests/c/counter_consensus.c"))
        .arg("-o")
        .arg(&lib)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "compiling counter_consensus.c against {header} failed");
    lib
}

// ------------------------------------------------------------ C plugins

const COUNTER: &str = "org.meshpay.test.counter";

#[test]
fn a_1_0_plugin_is_called_through_on_bundle_and_each_refusal_is_undone_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = Plugin::load(&build_counter("meshpay_plugin_v1_0.h", tmp.path())).unwrap();
    assert_eq!(plugin.descriptor().abi, MpVersion { major: 1, minor: 0 });
    let node = Node::new();
    let mut c = node.create(&plugin);
    assert!(!c.has_on_bundles(), "a 1.0 table has no on_bundles, whatever follows it in memory");
    let preparer = c.preparer();
    assert!(!preparer.is_active());
    preparer.prepare_bundles(&[bundle(b"k0")]).unwrap();

    let results = node.on_bundles(&mut c, &[b"k1", b"bad", b"k2"]).unwrap();
    assert!(results[0].is_ok() && refused(&results[1]) && results[2].is_ok(), "{results:?}");
    // One on_bundle call per bundle; the traps were never called.
    assert_eq!(node.services.count("on_bundle"), 3, "{:?}", node.services.logs());
    assert!(!node.services.logs().iter().any(|l| l.contains("TRAP") || l == "on_bundles"));
    // The refused bundle wrote and emitted before refusing: both undone,
    // the others' kept.
    assert_eq!(emitted(&mut c), vec![b"k1".to_vec(), b"k2".to_vec()]);
    assert_eq!(node.keys(COUNTER, "seen"), vec![b"k1".to_vec(), b"k2".to_vec()]);
}

#[test]
fn a_1_1_plugin_gets_one_on_bundles_call_and_prepare_from_another_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let plugin = Plugin::load(&build_counter("meshpay_plugin.h", tmp.path())).unwrap();
    assert_eq!(plugin.descriptor().abi, meshpay_abi::ABI_VERSION);
    let node = Node::new();
    let mut c = node.create(&plugin);
    assert!(c.has_on_bundles());
    let preparer = c.preparer();
    assert!(preparer.is_active());
    std::thread::spawn(move || preparer.prepare_bundles(&[bundle(b"k1"), bundle(b"k2")]))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(node.services.count("prepare_bundles"), 1);

    let results = node.on_bundles(&mut c, &[b"k1", b"bad", b"k2"]).unwrap();
    assert!(results[0].is_ok() && refused(&results[1]) && results[2].is_ok(), "{results:?}");
    assert_eq!(node.services.count("on_bundles"), 1, "{:?}", node.services.logs());
    assert_eq!(node.services.count("on_bundle"), 0);
    assert_eq!(emitted(&mut c), vec![b"k1".to_vec(), b"k2".to_vec()]);
    assert_eq!(node.keys(COUNTER, "seen"), vec![b"k1".to_vec(), b"k2".to_vec()]);
}

// ------------------------------------------------------ Rust SDK plugins

/// Accepts bundles whose payload does not start with "bad", writing each
/// to table "seen"; implements nothing of ABI 1.1.
struct Plain {
    consensus: ConsensusHost,
    seen: meshpay_abi::sdk::Table,
}

impl ConsensusPlugin for Plain {
    fn create(_: Host, consensus: ConsensusHost, _: &[u8]) -> Result<Self, PluginError> {
        let seen = consensus.open("seen")?;
        Ok(Plain { consensus, seen })
    }
    fn on_bundle(&mut self, b: &BundleInfo<'_>) -> Result<(), PluginError> {
        self.consensus.put(self.seen, b.payload, b"1")?;
        if b.payload.starts_with(b"bad") { Err(PluginError::invalid("bad payload")) } else { Ok(()) }
    }
}

meshpay_abi::meshpay_plugin! {
    fn plain_entry;
    id: "org.meshpay.test.plain",
    name: "plain",
    version: "0",
    vendor: "tests",
    description: "",
    consensus: Plain,
}

/// Both 1.1 functions. `on_bundles` and `prepare_bundles` each wait at
/// `MEET` for the other when the payload is "meet"; a preparer panics on
/// "panic".
struct Batched {
    plain: Plain,
}

/// A two-party rendezvous: each side waits (at most 20 s) for the other.
struct Meet {
    arrived: Mutex<u32>,
    cv: Condvar,
}

static MEET: Meet = Meet { arrived: Mutex::new(0), cv: Condvar::new() };

impl Meet {
    /// Whether the other side arrived too.
    fn wait(&self) -> bool {
        let mut n = self.arrived.lock().unwrap();
        *n += 1;
        self.cv.notify_all();
        let (n, timeout) = self.cv.wait_timeout_while(n, Duration::from_secs(20), |n| *n < 2).unwrap();
        drop(n);
        !timeout.timed_out()
    }
}

struct BatchedPreparer;

impl BundlePreparer for BatchedPreparer {
    fn prepare_bundles(&self, bundles: &[BundleInfo<'_>]) -> Result<(), PluginError> {
        for b in bundles {
            match b.payload {
                b"meet" if !MEET.wait() => return Err(PluginError::failed("on_bundles never came")),
                b"panic" => panic!("prepare panics"),
                _ => {}
            }
        }
        Ok(())
    }
}

impl ConsensusPlugin for Batched {
    const ON_BUNDLES: bool = true;
    const PREPARE_BUNDLES: bool = true;

    fn create(host: Host, consensus: ConsensusHost, config: &[u8]) -> Result<Self, PluginError> {
        Ok(Batched { plain: Plain::create(host, consensus, config)? })
    }
    fn on_bundle(&mut self, b: &BundleInfo<'_>) -> Result<(), PluginError> {
        self.plain.on_bundle(b)
    }
    fn on_bundles(
        &mut self,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), PluginError>>, PluginError> {
        let mut out = Vec::new();
        for b in bundles {
            if b.payload == b"meet" && !MEET.wait() {
                return Err(PluginError::failed("prepare_bundles never came"));
            }
            if b.payload.starts_with(b"bad") {
                out.push(Err(PluginError::invalid("bad payload")));
            } else {
                self.plain.consensus.put(self.plain.seen, b.payload, b"1")?;
                out.push(Ok(()));
            }
        }
        Ok(out)
    }
    fn preparer(&self) -> Option<Arc<dyn BundlePreparer>> {
        Some(Arc::new(BatchedPreparer))
    }
}

meshpay_abi::meshpay_plugin! {
    fn batched_entry;
    id: "org.meshpay.test.batched",
    name: "batched",
    version: "0",
    vendor: "tests",
    description: "",
    consensus: Batched,
}

#[test]
fn sdk_plugins_export_the_1_1_functions_only_when_they_implement_them() {
    let node = Node::new();
    let mut plain = node.create(&Plugin::builtin(plain_entry).unwrap());
    assert!(!plain.has_on_bundles() && !plain.preparer().is_active());
    // The host's fallback: one on_bundle each, the refused one undone.
    let results = node.on_bundles(&mut plain, &[b"a", b"bad", b"b"]).unwrap();
    assert!(results[0].is_ok() && refused(&results[1]) && results[2].is_ok(), "{results:?}");
    assert_eq!(node.keys("org.meshpay.test.plain", "seen"), vec![b"a".to_vec(), b"b".to_vec()]);

    let mut batched = node.create(&Plugin::builtin(batched_entry).unwrap());
    assert!(batched.has_on_bundles() && batched.preparer().is_active());
    let results = node.on_bundles(&mut batched, &[b"a", b"bad", b"b"]).unwrap();
    assert!(results[0].is_ok() && refused(&results[1]) && results[2].is_ok(), "{results:?}");
    assert_eq!(node.keys("org.meshpay.test.batched", "seen"), vec![b"a".to_vec(), b"b".to_vec()]);
    // The SDK logged the refusal as it logs one of on_bundle.
    assert!(
        node.services.logs().iter().any(|l| l == "on_bundles: bad payload"),
        "{:?}",
        node.services.logs()
    );
}

#[test]
fn prepare_bundles_runs_while_on_bundles_runs_and_a_panic_in_it_disables_the_instance() {
    let node = Node::new();
    let mut c = node.create(&Plugin::builtin(batched_entry).unwrap());
    let preparer = c.preparer();
    // Each side waits for the other: this finishes only if the host lets
    // them overlap (a host that serialised them would time out).
    let worker = std::thread::spawn({
        let preparer = preparer.clone();
        move || preparer.prepare_bundles(&[bundle(b"meet")])
    });
    let results = node.on_bundles(&mut c, &[b"meet"]).unwrap();
    assert!(results[0].is_ok());
    worker.join().unwrap().expect("prepare_bundles met on_bundles");

    let r = std::thread::spawn(move || preparer.prepare_bundles(&[bundle(b"panic")])).join().unwrap();
    assert_eq!(r, Err(CallError::Panicked { what: "prepare_bundles" }));
    // The owner disables the instance at its next call, and says why.
    assert_eq!(node.on_bundles(&mut c, &[b"x"]), Err(CallError::Panicked { what: "prepare_bundles" }));
    assert!(matches!(c.state(), InstanceState::Disabled { .. }));
    assert!(matches!(c.preparer().prepare_bundles(&[bundle(b"y")]), Err(CallError::Disabled { .. })));
    assert!(node.services.logs().iter().any(|l| l.starts_with("panic in prepare_bundles: prepare panics")));
}

#[test]
fn a_preparer_outliving_its_instance_is_refused() {
    let node = Node::new();
    let c = node.create(&Plugin::builtin(batched_entry).unwrap());
    let preparer = c.preparer();
    preparer.prepare_bundles(&[bundle(b"a")]).unwrap();
    drop(c);
    assert!(matches!(preparer.prepare_bundles(&[bundle(b"a")]), Err(CallError::Disabled { .. })));
}
