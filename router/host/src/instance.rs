//! Plugin instances as Rust trait objects: each wraps an instance pointer,
//! its vtable and its host context, checks every status, and quarantines the
//! instance when it reports a panic.

use core::ffi::c_void;
use std::os::fd::RawFd;
use std::sync::Arc;

use meshpay_abi::sdk::{FdState, Level, TransportMode};
use meshpay_abi::*;

use crate::context::{HostAction, InstanceCtx, InstanceId, InstanceLabel, KvStore};
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
    /// Returns the JSON reply; a refusal that came with a reply is
    /// `CallError::Rejected` carrying it.
    fn on_control(&mut self, kv: &mut dyn KvStore, method: &str, body: &[u8]) -> Result<Vec<u8>, CallError>;
    fn on_timer(&mut self, kv: &mut dyn KvStore, timer_id: u64) -> Result<(), CallError>;
    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, CallError>;
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
        let mut core =
            Core { plugin, ctx, instance, destroy, state: InstanceState::Active, quarantined: false };
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
        self.quarantined = true;
        self.state = InstanceState::Disabled { reason };
    }

    pub(crate) fn disable(&mut self, reason: String) {
        if self.state == InstanceState::Active {
            self.ctx().log(Level::Warn, &format!("disabled: {reason}"));
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

impl Consensus for FfiConsensus {
    fn on_bundle(&mut self, kv: &mut dyn KvStore, bundle: &BundleInfo<'_>) -> Result<(), CallError> {
        let f = optional(self.vtable.on_bundle, "on_bundle")?;
        let raw = bundle.as_raw();
        let ctx = self.core.ctx;
        // SAFETY: the context outlives the loan (freed only in Drop).
        let _loan = unsafe { &*ctx }.lend_kv(kv);
        self.core.call("on_bundle", |i| unsafe { f(i, &raw) })
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
