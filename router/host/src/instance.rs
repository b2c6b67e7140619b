//! Plugin instances as Rust trait objects: each wraps an instance pointer,
//! its vtable and its host context, checks every status, and quarantines the
//! instance when it reports a panic.

use core::ffi::c_void;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use meshpay_abi::sdk::{FdState, Level, TransportMode};
use meshpay_abi::*;

use crate::context::{HostAction, HostError, InstanceCtx, InstanceId, InstanceLabel, KvStore};
use crate::load::Plugin;

/// Whether an instance is still called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceState {
    Active,
    /// Never called again; `reason` says why (logged when it happened).
    Disabled {
        reason: String,
    },
}

/// Why a call into a plugin did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// `MP_ERR_AGAIN`: busy or drained; try later.
    #[error("try again later")]
    Again,
    /// The plugin returned an error status (and logged why).
    #[error("{what} failed: {}", status_name(*.status))]
    Failed { what: &'static str, status: MpStatus },
    /// The plugin returned an error status and wrote a reply explaining it
    /// (a consensus `on_control` refusing a request).
    #[error("{what} failed: {}: {}", status_name(*.status), String::from_utf8_lossy(.reply))]
    Rejected { what: &'static str, status: MpStatus, reply: Vec<u8> },
    /// The plugin panicked; the instance is now quarantined.
    #[error("panicked in {what}; the instance is disabled")]
    Panicked { what: &'static str },
    /// The instance was disabled earlier.
    #[error("instance disabled: {reason}")]
    Disabled { reason: String },
    /// The plugin does not implement this call.
    #[error("{what} is not implemented by the plugin")]
    Unsupported { what: &'static str },
}

impl CallError {
    /// The status code, for a call that returned one.
    pub fn status(&self) -> Option<MpStatus> {
        match self {
            CallError::Again => Some(MP_ERR_AGAIN),
            CallError::Failed { status, .. } | CallError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What every instance kind shares.
pub trait PluginInstance: Send {
    fn id(&self) -> InstanceId;
    fn label(&self) -> &InstanceLabel;
    fn plugin(&self) -> &Arc<Plugin>;
    fn state(&self) -> &InstanceState;
    /// Stops calling the instance (it is still destroyed normally).
    fn disable(&mut self, reason: String);
    /// Requests the plugin queued during its last calls.
    fn take_actions(&mut self) -> Vec<HostAction>;
}

/// A transport instance.
pub trait Transport: PluginInstance {
    fn mode(&self) -> TransportMode;
    fn start(&mut self) -> Result<(), CallError>;
    fn stop(&mut self) -> Result<(), CallError>;
    /// Non-blocking; `CallError::Again` if the link is busy.
    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), CallError>;
    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError>;
    fn on_timer(&mut self, timer_id: u64) -> Result<(), CallError>;
}

/// A routing instance.
pub trait Routing: PluginInstance {
    fn on_contact(&mut self, peer: &PeerInfo<'_>, kind: u32) -> Result<(), CallError>;
    fn on_control(&mut self, peer: &str, data: &[u8]) -> Result<(), CallError>;
    /// `MP_COPIES_UNLIMITED` if the plugin does not count copies.
    fn initial_copies(&mut self, bundle: &BundleInfo<'_>) -> u32;
    /// Appends `(peer index, copies)` for each neighbour that gets the bundle.
    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Vec<(usize, u32)>,
    ) -> Result<(), CallError>;
    fn on_timer(&mut self, timer_id: u64) -> Result<(), CallError>;
    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError>;
}

/// A consensus instance. Every call runs against the tables in `kv`, inside
/// the embedding's write transaction.
pub trait Consensus: PluginInstance {
    /// `CallError::Failed { status: MP_ERR_INVALID, .. }` means refused.
    fn on_bundle(&mut self, kv: &mut dyn KvStore, bundle: &BundleInfo<'_>) -> Result<(), CallError>;
    /// Several bundles in one call, in order, as one `on_bundle` each would
    /// be handled: through the plugin's `on_bundles` (ABI 1.1) when it has
    /// one, otherwise one `on_bundle` per bundle, each refused one undone
    /// alone (the wrapper records what it overwrites in `kv` and drops what
    /// the bundle queued).
    ///
    /// `Ok` holds one result per bundle; a refused bundle (`Err`) left no
    /// write in `kv` and no queued action. `Err` of the whole: the caller
    /// rolls back everything the call wrote to `kv` and drops its actions
    /// (`take_actions`); it may then retry the bundles one by one.
    fn on_bundles(
        &mut self,
        kv: &mut dyn KvStore,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), CallError>>, CallError>;
    /// Whether the plugin has its own `on_bundles` (ABI 1.1). Without it,
    /// [`Consensus::on_bundles`] costs what `on_bundle` per bundle costs.
    fn has_on_bundles(&self) -> bool;
    /// A handle that calls the plugin's `prepare_bundles` (ABI 1.1) from
    /// any thread, also while this instance is in another call; a no-op
    /// when the plugin has none. See [`Preparer`] for what it guarantees.
    fn preparer(&self) -> Preparer;
    /// Returns the JSON reply; a refusal that came with a reply is
    /// `CallError::Rejected` carrying it.
    fn on_control(&mut self, kv: &mut dyn KvStore, method: &str, body: &[u8]) -> Result<Vec<u8>, CallError>;
    fn on_timer(&mut self, kv: &mut dyn KvStore, timer_id: u64) -> Result<(), CallError>;
    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError>;
}

/// Admission to an instance for calls from other threads (thread-safe
/// plugin functions): each such call holds `lock` for reading while it
/// runs and goes ahead only while `open`; the owner closes the gate under
/// the write lock, which waits for the calls running, before `destroy`
/// and when it disables or quarantines the instance. A thread-safe call
/// that sees a panic closes it too (atomically; it holds the read lock).
#[derive(Debug)]
pub(crate) struct Gate {
    lock: RwLock<()>,
    open: AtomicBool,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate { lock: RwLock::new(()), open: AtomicBool::new(true) })
    }

    /// Closes the gate; returns once no thread-safe call runs any more.
    fn close(&self) {
        let _w = self.lock.write().unwrap_or_else(|e| e.into_inner());
        self.open.store(false, Ordering::SeqCst);
    }
}

/// The parts every wrapper has.
pub(crate) struct Core {
    plugin: Arc<Plugin>,
    ctx: *mut InstanceCtx,
    instance: *mut c_void,
    destroy: unsafe extern "C" fn(*mut c_void),
    state: InstanceState,
    /// Set when the plugin panicked: it is never called again, not even
    /// `destroy`, and its memory is deliberately leaked.
    quarantined: bool,
    gate: Arc<Gate>,
}

// SAFETY: the host never calls one instance from two threads at once (all
// calls take `&mut self`); the context is Sync.
unsafe impl Send for Core {}

impl Core {
    /// Creates an instance through a vtable's `create`.
    pub(crate) fn create(
        plugin: Arc<Plugin>,
        ctx: *mut InstanceCtx,
        destroy: Option<unsafe extern "C" fn(*mut c_void)>,
        create: impl FnOnce(*mut *mut c_void) -> MpStatus,
    ) -> Result<Core, CallError> {
        let Some(destroy) = destroy else {
            // Validated at load; kept as a check rather than an unwrap.
            free_ctx(ctx);
            return Err(CallError::Unsupported { what: "destroy" });
        };
        let mut instance = core::ptr::null_mut();
        let status = create(&mut instance);
        let mut core = Core {
            plugin,
            ctx,
            instance,
            destroy,
            state: InstanceState::Active,
            quarantined: false,
            gate: Gate::new(),
        };
        match status {
            MP_OK if !instance.is_null() => Ok(core),
            MP_OK => {
                core.ctx().log(Level::Error, "create returned MP_OK but no instance");
                Err(CallError::Failed { what: "create", status: MP_ERR_FAILED })
            }
            MP_ERR_PANIC => {
                core.quarantine("create");
                Err(CallError::Panicked { what: "create" })
            }
            status => Err(CallError::Failed { what: "create", status }),
        }
    }

    pub(crate) fn ctx(&self) -> &InstanceCtx {
        // SAFETY: allocated in InstanceCtx::create and freed only in Drop.
        unsafe { &*self.ctx }
    }

    /// Calls the plugin unless disabled; quarantines on a panic.
    pub(crate) fn call(
        &mut self,
        what: &'static str,
        f: impl FnOnce(*mut c_void) -> MpStatus,
    ) -> Result<(), CallError> {
        if let InstanceState::Disabled { reason } = &self.state {
            return Err(CallError::Disabled { reason: reason.clone() });
        }
        if self.ctx().is_quarantined() {
            // A thread-safe call on another thread saw the plugin panic.
            self.quarantine("prepare_bundles");
            return Err(CallError::Panicked { what: "prepare_bundles" });
        }
        match f(self.instance) {
            MP_OK => Ok(()),
            MP_ERR_AGAIN => Err(CallError::Again),
            MP_ERR_PANIC => {
                self.quarantine(what);
                Err(CallError::Panicked { what })
            }
            status => Err(CallError::Failed { what, status }),
        }
    }

    fn quarantine(&mut self, what: &str) {
        let reason = format!("panicked in {what}");
        self.ctx().log(Level::Error, &format!("{reason}: disabling this instance; the router keeps running"));
        self.ctx().quarantine();
        self.gate.close();
        self.quarantined = true;
        self.state = InstanceState::Disabled { reason };
    }

    pub(crate) fn disable(&mut self, reason: String) {
        if self.state == InstanceState::Active {
            self.ctx().log(Level::Warn, &format!("disabled: {reason}"));
            self.gate.close();
            self.state = InstanceState::Disabled { reason };
        }
    }

    pub(crate) fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    pub(crate) fn state(&self) -> &InstanceState {
        &self.state
    }
}

fn free_ctx(ctx: *mut InstanceCtx) {
    // SAFETY: allocated by Box::into_raw in InstanceCtx::create.
    drop(unsafe { Box::from_raw(ctx) });
}

impl Drop for Core {
    fn drop(&mut self) {
        if self.quarantined {
            // The plugin may still hold pointers into the context (and run
            // threads in its library): leak both rather than free them.
            std::mem::forget(self.plugin.clone());
            return;
        }
        // No thread-safe call may run during or after destroy.
        self.gate.close();
        if !self.instance.is_null() {
            // SAFETY: created by this vtable, destroyed once.
            unsafe { (self.destroy)(self.instance) };
        }
        free_ctx(self.ctx);
    }
}

macro_rules! plugin_instance {
    ($t:ty) => {
        impl PluginInstance for $t {
            fn id(&self) -> InstanceId {
                self.core.ctx().id
            }
            fn label(&self) -> &InstanceLabel {
                &self.core.ctx().label
            }
            fn plugin(&self) -> &Arc<Plugin> {
                self.core.plugin()
            }
            fn state(&self) -> &InstanceState {
                self.core.state()
            }
            fn disable(&mut self, reason: String) {
                self.core.disable(reason)
            }
            fn take_actions(&mut self) -> Vec<HostAction> {
                self.core.ctx().take_actions()
            }
        }
    };
}

fn fd_state(r: Result<(), CallError>) -> Result<FdState, CallError> {
    match r {
        Ok(()) => Ok(FdState::More),
        Err(CallError::Again) => Ok(FdState::Drained),
        Err(e) => Err(e),
    }
}

fn optional<F>(f: Option<F>, what: &'static str) -> Result<F, CallError> {
    f.ok_or(CallError::Unsupported { what })
}

// ---------------------------------------------------------------- transport

pub(crate) struct FfiTransport {
    pub(crate) core: Core,
    pub(crate) vtable: MpTransportV1,
    pub(crate) mode: TransportMode,
}

plugin_instance!(FfiTransport);

impl Transport for FfiTransport {
    fn mode(&self) -> TransportMode {
        self.mode
    }

    fn start(&mut self) -> Result<(), CallError> {
        let f = optional(self.vtable.start, "start")?;
        self.core.call("start", |i| unsafe { f(i) })
    }

    fn stop(&mut self) -> Result<(), CallError> {
        let f = optional(self.vtable.stop, "stop")?;
        self.core.call("stop", |i| unsafe { f(i) })
    }

    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), CallError> {
        let f = optional(self.vtable.send, "send")?;
        self.core.call("send", |i| unsafe { f(i, MpStr::new(peer), MpBytes::new(frame)) })
    }

    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError> {
        let f = optional(self.vtable.on_fd, "on_fd")?;
        fd_state(self.core.call("on_fd", |i| unsafe { f(i, fd, events) }))
    }

    fn on_timer(&mut self, timer_id: u64) -> Result<(), CallError> {
        let f = optional(self.vtable.on_timer, "on_timer")?;
        self.core.call("on_timer", |i| unsafe { f(i, timer_id) })
    }
}

// ------------------------------------------------------------------ routing

pub(crate) struct FfiRouting {
    pub(crate) core: Core,
    pub(crate) vtable: MpRoutingV1,
    /// Reused per `decide` so the hot path does not allocate.
    scratch_peers: Vec<MpPeerInfo>,
    scratch_ptrs: Vec<*const MpPeerInfo>,
}

// SAFETY: the scratch buffers only hold pointers during a `decide` call (into
// data on that call's stack); between calls they are dead capacity.
unsafe impl Send for FfiRouting {}

impl FfiRouting {
    pub(crate) fn new(core: Core, vtable: MpRoutingV1) -> Self {
        FfiRouting { core, vtable, scratch_peers: Vec::new(), scratch_ptrs: Vec::new() }
    }
}

plugin_instance!(FfiRouting);

struct ForwardCollector<'a> {
    out: &'a mut Vec<(usize, u32)>,
    peer_count: usize,
}

unsafe extern "C" fn collect_forward(ctx: *mut c_void, peer_index: usize, copies: u32) -> MpStatus {
    // SAFETY: ctx is the ForwardCollector of the `decide` call on the stack.
    let c = unsafe { &mut *(ctx as *mut ForwardCollector<'_>) };
    if peer_index >= c.peer_count {
        return MP_ERR_INVALID;
    }
    c.out.push((peer_index, copies));
    MP_OK
}

impl Routing for FfiRouting {
    fn on_contact(&mut self, peer: &PeerInfo<'_>, kind: u32) -> Result<(), CallError> {
        let f = optional(self.vtable.on_contact, "on_contact")?;
        let raw = peer.as_raw();
        self.core.call("on_contact", |i| unsafe { f(i, &raw, kind) })
    }

    fn on_control(&mut self, peer: &str, data: &[u8]) -> Result<(), CallError> {
        let f = optional(self.vtable.on_control, "on_control")?;
        self.core.call("on_control", |i| unsafe { f(i, MpStr::new(peer), MpBytes::new(data)) })
    }

    fn initial_copies(&mut self, bundle: &BundleInfo<'_>) -> u32 {
        let Some(f) = self.vtable.initial_copies else { return MP_COPIES_UNLIMITED };
        let raw = bundle.as_raw();
        let mut copies = MP_COPIES_UNLIMITED;
        let _ = self.core.call("initial_copies", |i| {
            copies = unsafe { f(i, &raw) };
            MP_OK
        });
        copies
    }

    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Vec<(usize, u32)>,
    ) -> Result<(), CallError> {
        let f = optional(self.vtable.decide, "decide")?;
        let raw_bundle = bundle.as_raw();
        self.scratch_peers.clear();
        self.scratch_peers.extend(peers.iter().map(PeerInfo::as_raw));
        self.scratch_ptrs.clear();
        self.scratch_ptrs.extend(self.scratch_peers.iter().map(|p| p as *const MpPeerInfo));
        let mut collector = ForwardCollector { out, peer_count: peers.len() };
        let sink = MpForwardSink {
            struct_size: table_size::<MpForwardSink>(),
            ctx: &mut collector as *mut ForwardCollector<'_> as *mut c_void,
            forward: Some(collect_forward),
        };
        let ptrs = self.scratch_ptrs.as_ptr();
        let n = self.scratch_ptrs.len();
        self.core.call("decide", |i| unsafe { f(i, &raw_bundle, ptrs, n, &sink) })
    }

    fn on_timer(&mut self, timer_id: u64) -> Result<(), CallError> {
        let f = optional(self.vtable.on_timer, "on_timer")?;
        self.core.call("on_timer", |i| unsafe { f(i, timer_id) })
    }

    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError> {
        let f = optional(self.vtable.on_fd, "on_fd")?;
        fd_state(self.core.call("on_fd", |i| unsafe { f(i, fd, events) }))
    }
}

// ---------------------------------------------------------------- consensus

pub(crate) struct FfiConsensus {
    pub(crate) core: Core,
    pub(crate) vtable: MpConsensusV1,
}

plugin_instance!(FfiConsensus);

unsafe extern "C" fn append_reply(ctx: *mut c_void, data: MpBytes) -> MpStatus {
    // SAFETY: ctx is the Vec of the `on_control` call on the stack.
    let out = unsafe { &mut *(ctx as *mut Vec<u8>) };
    out.extend_from_slice(unsafe { data.as_slice() });
    MP_OK
}

/// What `on_bundles` finds in a status the plugin did not write: no status
/// the ABI defines.
const STATUS_UNSET: MpStatus = MpStatus::MIN;

/// A bundle's result from its status in `on_bundles`.
fn bundle_result(status: MpStatus) -> Result<(), CallError> {
    match status {
        MP_OK => Ok(()),
        MP_ERR_AGAIN => Err(CallError::Again),
        status => Err(CallError::Failed { what: "on_bundles", status }),
    }
}

/// A [`KvStore`] that remembers what each write replaced, so the writes of
/// one bundle can be undone while the rest of the call's stay (the fallback
/// of [`Consensus::on_bundles`] for plugins without `on_bundles`).
struct UndoKv<'a> {
    inner: &'a mut dyn KvStore,
    undo: Vec<(u32, Vec<u8>, Option<Vec<u8>>)>,
}

impl UndoKv<'_> {
    fn remember(&mut self, table: u32, key: &[u8]) -> Result<(), HostError> {
        let old = self.inner.get(table, key)?.map(<[u8]>::to_vec);
        self.undo.push((table, key.to_vec(), old));
        Ok(())
    }

    /// Undoes every write since the last `keep`.
    fn undo(&mut self) -> Result<(), HostError> {
        while let Some((table, key, old)) = self.undo.pop() {
            match old {
                Some(v) => self.inner.put(table, &key, &v)?,
                None => {
                    self.inner.delete(table, &key)?;
                }
            }
        }
        Ok(())
    }

    fn keep(&mut self) {
        self.undo.clear();
    }
}

impl KvStore for UndoKv<'_> {
    fn open(&mut self, name: &str) -> Result<u32, HostError> {
        self.inner.open(name)
    }
    fn get(&mut self, table: u32, key: &[u8]) -> Result<Option<&[u8]>, HostError> {
        self.inner.get(table, key)
    }
    fn put(&mut self, table: u32, key: &[u8], value: &[u8]) -> Result<(), HostError> {
        self.remember(table, key)?;
        self.inner.put(table, key, value)
    }
    fn delete(&mut self, table: u32, key: &[u8]) -> Result<bool, HostError> {
        self.remember(table, key)?;
        self.inner.delete(table, key)
    }
    fn scan(
        &mut self,
        table: u32,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), HostError> {
        self.inner.scan(table, start, visit)
    }
}

impl FfiConsensus {
    /// `on_bundles` for a plugin without it: `on_bundle` per bundle, each
    /// refused one undone alone, as separate calls would have been.
    fn on_bundles_one_by_one(
        &mut self,
        kv: &mut dyn KvStore,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), CallError>>, CallError> {
        let f = optional(self.vtable.on_bundle, "on_bundle")?;
        let ctx = self.core.ctx;
        let mut undo = UndoKv { inner: kv, undo: Vec::new() };
        let mut results = Vec::with_capacity(bundles.len());
        for bundle in bundles {
            let raw = bundle.as_raw();
            // SAFETY: the context outlives the loan (freed only in Drop).
            let mark = unsafe { &*ctx }.actions_len();
            let r = {
                let _loan = unsafe { &*ctx }.lend_kv(&mut undo);
                self.core.call("on_bundle", |i| unsafe { f(i, &raw) })
            };
            match r {
                Ok(()) => undo.keep(),
                // Disabled now: the whole call fails (the caller rolls back).
                Err(e @ (CallError::Panicked { .. } | CallError::Disabled { .. })) => return Err(e),
                Err(e) => {
                    undo.undo().map_err(|h| {
                        unsafe { &*ctx }
                            .log(Level::Error, &format!("undoing a refused bundle's writes: {h}"));
                        CallError::Failed { what: "on_bundles", status: h.status() }
                    })?;
                    unsafe { &*ctx }.truncate_actions(mark);
                    results.push(Err(e));
                    continue;
                }
            }
            results.push(Ok(()));
        }
        Ok(results)
    }
}

impl Consensus for FfiConsensus {
    fn on_bundle(&mut self, kv: &mut dyn KvStore, bundle: &BundleInfo<'_>) -> Result<(), CallError> {
        let f = optional(self.vtable.on_bundle, "on_bundle")?;
        let raw = bundle.as_raw();
        let ctx = self.core.ctx;
        // SAFETY: the context outlives the loan (freed only in Drop).
        let _loan = unsafe { &*ctx }.lend_kv(kv);
        self.core.call("on_bundle", |i| unsafe { f(i, &raw) })
    }

    fn on_bundles(
        &mut self,
        kv: &mut dyn KvStore,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), CallError>>, CallError> {
        if bundles.is_empty() {
            return Ok(Vec::new());
        }
        let Some(f) = self.vtable.on_bundles else {
            return self.on_bundles_one_by_one(kv, bundles);
        };
        let raw: Vec<MpBundleInfo> = bundles.iter().map(BundleInfo::as_raw).collect();
        let ptrs: Vec<*const MpBundleInfo> = raw.iter().map(|r| r as *const MpBundleInfo).collect();
        let mut statuses = vec![STATUS_UNSET; bundles.len()];
        let ctx = self.core.ctx;
        {
            // SAFETY: the context outlives the loan (freed only in Drop).
            let _loan = unsafe { &*ctx }.lend_kv(kv);
            let out = statuses.as_mut_ptr();
            self.core.call("on_bundles", |i| unsafe { f(i, ptrs.as_ptr(), ptrs.len(), out) })?;
        }
        if let Some(i) = statuses.iter().position(|&s| s == STATUS_UNSET) {
            // Its writes, if any, cannot be told apart: the call fails.
            self.core.ctx().log(
                Level::Error,
                &format!("on_bundles returned MP_OK without a status for bundle {i} of {}", bundles.len()),
            );
            return Err(CallError::Failed { what: "on_bundles", status: MP_ERR_FAILED });
        }
        Ok(statuses.into_iter().map(bundle_result).collect())
    }

    fn has_on_bundles(&self) -> bool {
        self.vtable.on_bundles.is_some()
    }

    fn preparer(&self) -> Preparer {
        Preparer {
            f: self.vtable.prepare_bundles,
            instance: self.core.instance,
            ctx: self.core.ctx,
            gate: self.core.gate.clone(),
            _plugin: self.core.plugin.clone(),
        }
    }

    fn on_control(&mut self, kv: &mut dyn KvStore, method: &str, body: &[u8]) -> Result<Vec<u8>, CallError> {
        let f = optional(self.vtable.on_control, "on_control")?;
        let mut reply = Vec::new();
        let sink = MpBytesSink {
            struct_size: table_size::<MpBytesSink>(),
            ctx: &mut reply as *mut Vec<u8> as *mut c_void,
            write: Some(append_reply),
        };
        let ctx = self.core.ctx;
        let _loan = unsafe { &*ctx }.lend_kv(kv);
        match self.core.call("on_control", |i| unsafe { f(i, MpStr::new(method), MpBytes::new(body), &sink) })
        {
            Ok(()) => Ok(reply),
            // The reply of a refused request says why: pass it on.
            Err(CallError::Failed { what, status }) if !reply.is_empty() => {
                Err(CallError::Rejected { what, status, reply })
            }
            Err(e) => Err(e),
        }
    }

    fn on_timer(&mut self, kv: &mut dyn KvStore, timer_id: u64) -> Result<(), CallError> {
        let f = optional(self.vtable.on_timer, "on_timer")?;
        let ctx = self.core.ctx;
        let _loan = unsafe { &*ctx }.lend_kv(kv);
        self.core.call("on_timer", |i| unsafe { f(i, timer_id) })
    }

    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError> {
        let f = optional(self.vtable.on_fd, "on_fd")?;
        fd_state(self.core.call("on_fd", |i| unsafe { f(i, fd, events) }))
    }
}

type PrepareFn = unsafe extern "C" fn(*mut c_void, *const *const MpBundleInfo, usize) -> MpStatus;

/// Calls a consensus instance's `prepare_bundles` (ABI 1.1) from any
/// thread: typically a worker checks the signatures of batch N+1 while the
/// host thread runs batch N's `on_bundles` and commits it. Cloned freely;
/// a no-op when the plugin has no `prepare_bundles`.
///
/// Why it is `Send + Sync`, although it holds the instance's raw pointers
/// while the instance itself (a `Box<dyn Consensus>`, `Send` but not
/// `Sync`) is in `&mut` calls on another thread:
///
/// * the ABI makes `prepare_bundles` thread-safe: it may run on any thread,
///   several at once, and while any other call of the instance runs; the
///   plugin may then use only the host functions that are thread-safe
///   themselves (log, clock, sign, verify: `HostServices` is `Send + Sync`,
///   the context's shared state is atomic or locked). The kv functions, the
///   only ones that reach the caller's `&mut` store, refuse a thread other
///   than the one of the call that lent the store;
/// * the instance pointer and its context are used only under the read
///   lock of the instance's gate, after checking it is open; the owner
///   closes the gate under the write lock, which waits for running calls,
///   before `destroy`, and when it disables or quarantines the instance. So
///   no call runs during or after `destroy`, and a handle that outlives its
///   instance only returns [`CallError::Disabled`];
/// * the handle holds an `Arc<Plugin>`: the library stays loaded;
/// * a panic (`MP_ERR_PANIC`) closes the gate and flags the context, so the
///   owner quarantines the instance at its next call.
///
/// The SDK keeps its side sound the same way: host-thread calls borrow the
/// plugin object, `prepare_bundles` only the separate `BundlePreparer`.
#[derive(Clone)]
pub struct Preparer {
    f: Option<PrepareFn>,
    instance: *mut c_void,
    ctx: *const InstanceCtx,
    gate: Arc<Gate>,
    _plugin: Arc<Plugin>,
}

// SAFETY: see the type's documentation: the pointers are used only through
// the thread-safe `prepare_bundles`, inside the gate.
unsafe impl Send for Preparer {}
unsafe impl Sync for Preparer {}

impl core::fmt::Debug for Preparer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Preparer").field("active", &self.is_active()).finish()
    }
}

impl Preparer {
    /// Whether the plugin has `prepare_bundles` (otherwise calls do nothing).
    pub fn is_active(&self) -> bool {
        self.f.is_some()
    }

    /// Lets the plugin check `bundles` ahead of the call that will deliver
    /// them. Errors are advisory (the later call checks everything); the
    /// plugin logged why.
    pub fn prepare_bundles(&self, bundles: &[BundleInfo<'_>]) -> Result<(), CallError> {
        let Some(f) = self.f else { return Ok(()) };
        if bundles.is_empty() {
            return Ok(());
        }
        let raw: Vec<MpBundleInfo> = bundles.iter().map(BundleInfo::as_raw).collect();
        let ptrs: Vec<*const MpBundleInfo> = raw.iter().map(|r| r as *const MpBundleInfo).collect();
        let _read = self.gate.lock.read().unwrap_or_else(|e| e.into_inner());
        if !self.gate.open.load(Ordering::SeqCst) {
            return Err(CallError::Disabled { reason: "the instance is disabled or destroyed".into() });
        }
        // SAFETY: the gate is open and held: the instance and its context
        // live until we release it; the function is thread-safe by the ABI.
        match unsafe { f(self.instance, ptrs.as_ptr(), ptrs.len()) } {
            MP_OK => Ok(()),
            MP_ERR_AGAIN => Err(CallError::Again),
            MP_ERR_PANIC => {
                self.gate.open.store(false, Ordering::SeqCst);
                let ctx = unsafe { &*self.ctx };
                ctx.quarantine();
                ctx.log(
                    Level::Error,
                    "panicked in prepare_bundles: the instance is disabled at its next call",
                );
                Err(CallError::Panicked { what: "prepare_bundles" })
            }
            status => Err(CallError::Failed { what: "prepare_bundles", status }),
        }
    }
}
