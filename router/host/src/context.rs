//! The host side of the ABI: the tables a plugin instance calls into, and
//! the traits through which the embedding router provides them.

use core::ffi::c_void;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use meshpay_abi::sdk::Level;
use meshpay_abi::*;

/// Identifies one plugin instance inside this router, for timers, fds and
/// deliveries the runtime routes back to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub u64);

impl InstanceId {
    pub(crate) fn next() -> InstanceId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        InstanceId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// How logs and status name an instance: `transport "mesh0" (org.meshpay.transport.udp)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceLabel {
    pub kind: &'static str,
    /// The name the configuration gave the instance.
    pub name: String,
    pub plugin_id: String,
}

impl core::fmt::Display for InstanceLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} \"{}\" ({})", self.kind, self.name, self.plugin_id)
    }
}

/// Errors the embedding returns to plugin calls; each maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("not supported here")]
    Unsupported,
    #[error("invalid argument")]
    Invalid,
    #[error("not found")]
    NotFound,
    #[error("full")]
    Full,
    #[error("failed")]
    Failed,
}

impl HostError {
    pub fn status(self) -> MpStatus {
        match self {
            HostError::Unsupported => MP_ERR_UNSUPPORTED,
            HostError::Invalid => MP_ERR_INVALID,
            HostError::NotFound => MP_ERR_NOT_FOUND,
            HostError::Full => MP_ERR_FULL,
            HostError::Failed => MP_ERR_FAILED,
        }
    }
}

fn status_of(r: Result<(), HostError>) -> MpStatus {
    match r {
        Ok(()) => MP_OK,
        Err(e) => e.status(),
    }
}

/// What the embedding router provides every plugin instance. The daemon
/// implements it with tokio and the node key; the simulator with virtual
/// time. Methods marked host-thread are only called from inside a plugin
/// call the embedding made.
pub trait HostServices: Send + Sync + 'static {
    /// Thread-safe.
    fn log(&self, instance: &InstanceLabel, level: Level, message: &str);
    /// Thread-safe. Monotonic milliseconds.
    fn now_ms(&self) -> u64;
    /// Thread-safe. The node's Ed25519 public key.
    fn node_key(&self) -> [u8; 32];
    /// Thread-safe. The node's endpoint URI.
    fn node_endpoint(&self) -> String;
    /// Thread-safe. Signs with the node key.
    fn sign(&self, message: &[u8]) -> [u8; 64];
    /// Host thread. Arms a timer that makes the embedding call the
    /// instance's `on_timer(timer_id)` once.
    fn set_timer(&self, instance: InstanceId, timer_id: u64, delay_ms: u64) -> Result<(), HostError>;
    /// Host thread. Returns whether the timer was armed.
    fn cancel_timer(&self, instance: InstanceId, timer_id: u64) -> bool;
    /// Host thread. Level-triggered readiness of `fd`, reported through the
    /// instance's `on_fd`.
    fn watch_fd(&self, instance: InstanceId, fd: RawFd, events: u32) -> Result<(), HostError>;
    /// Host thread.
    fn unwatch_fd(&self, instance: InstanceId, fd: RawFd) -> Result<(), HostError>;
}

/// Where transport instances' frames and link events go. Thread-safe and
/// non-blocking: OWN_THREAD transports call it from their own threads.
pub trait TransportEvents: Send + Sync + 'static {
    /// `Err(HostError::Full)` drops the frame (the embedding counts it).
    fn deliver(&self, instance: InstanceId, peer: &str, frame: &[u8]) -> Result<(), HostError>;
    fn link_event(&self, instance: InstanceId, event: &LinkEvent<'_>) -> Result<(), HostError>;
}

/// A consensus plugin's tables, inside the write transaction the embedding
/// holds during a call.
pub trait KvStore {
    fn open(&mut self, name: &str) -> Result<u32, HostError>;
    /// The value stays borrowed until the next call on the store.
    fn get(&mut self, table: u32, key: &[u8]) -> Result<Option<&[u8]>, HostError>;
    fn put(&mut self, table: u32, key: &[u8], value: &[u8]) -> Result<(), HostError>;
    /// Returns whether the key existed.
    fn delete(&mut self, table: u32, key: &[u8]) -> Result<bool, HostError>;
    /// Visits entries with key >= `start` while `visit` returns true.
    fn scan(
        &mut self,
        table: u32,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), HostError>;
}

/// A plugin request that needs the engine, queued during the plugin call and
/// carried out by the embedding after it (see `take_actions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostAction {
    EmitBundle {
        destination: String,
        source_service: String,
        payload: Vec<u8>,
        priority: u32,
        lifetime_ms: u64,
    },
    SendControl {
        peer: String,
        data: Vec<u8>,
    },
    Subscribe {
        endpoint: String,
    },
}

/// The store a consensus call runs against, as a raw pointer valid only
/// while the call that set it is on the stack, and the thread that call runs
/// on: only that thread may use it.
struct KvSlot(*mut (dyn KvStore + 'static), std::thread::ThreadId);
// SAFETY: dereferenced only on the thread recorded with it, during the call
// that set it (`with_kv` checks the thread).
unsafe impl Send for KvSlot {}

/// Everything behind one instance's `ctx` pointer. Allocated once, never
/// moved (the plugin holds pointers into it), freed after `destroy` or
/// leaked if the instance is quarantined.
pub(crate) struct InstanceCtx {
    pub(crate) id: InstanceId,
    pub(crate) label: InstanceLabel,
    services: Arc<dyn HostServices>,
    endpoint: String,
    quarantined: AtomicBool,
    actions: Mutex<Vec<HostAction>>,
    events: Option<Arc<dyn TransportEvents>>,
    kv: Mutex<Option<KvSlot>>,
    pub(crate) host: MpHost,
    pub(crate) transport_host: MpTransportHost,
    pub(crate) routing_host: MpRoutingHost,
    pub(crate) consensus_host: MpConsensusHost,
}

impl InstanceCtx {
    /// Allocates a context and points its tables at it.
    pub(crate) fn create(
        label: InstanceLabel,
        services: Arc<dyn HostServices>,
        events: Option<Arc<dyn TransportEvents>>,
    ) -> *mut InstanceCtx {
        let endpoint = services.node_endpoint();
        let raw = Box::into_raw(Box::new(InstanceCtx {
            id: InstanceId::next(),
            label,
            services,
            endpoint,
            quarantined: AtomicBool::new(false),
            actions: Mutex::new(Vec::new()),
            events,
            kv: Mutex::new(None),
            host: MpHost {
                struct_size: table_size::<MpHost>(),
                abi: ABI_VERSION,
                ctx: core::ptr::null_mut(),
                log: Some(host_log),
                now_ms: Some(host_now_ms),
                set_timer: Some(host_set_timer),
                cancel_timer: Some(host_cancel_timer),
                node_key: Some(host_node_key),
                node_endpoint: Some(host_node_endpoint),
                sign: Some(host_sign),
                verify: Some(host_verify),
                verify_batch: Some(host_verify_batch),
                emit_bundle: Some(host_emit_bundle),
                watch_fd: Some(host_watch_fd),
                unwatch_fd: Some(host_unwatch_fd),
                get_extension: Some(host_get_extension),
            },
            transport_host: MpTransportHost {
                struct_size: table_size::<MpTransportHost>(),
                ctx: core::ptr::null_mut(),
                deliver: Some(host_deliver),
                link_event: Some(host_link_event),
            },
            routing_host: MpRoutingHost {
                struct_size: table_size::<MpRoutingHost>(),
                ctx: core::ptr::null_mut(),
                send_control: Some(host_send_control),
            },
            consensus_host: MpConsensusHost {
                struct_size: table_size::<MpConsensusHost>(),
                ctx: core::ptr::null_mut(),
                subscribe: Some(host_subscribe),
                kv_open: Some(host_kv_open),
                kv_get: Some(host_kv_get),
                kv_put: Some(host_kv_put),
                kv_delete: Some(host_kv_delete),
                kv_scan: Some(host_kv_scan),
            },
        }));
        // SAFETY: just allocated; nothing else has the pointer yet.
        unsafe {
            let ctx = raw as *mut c_void;
            (*raw).host.ctx = ctx;
            (*raw).transport_host.ctx = ctx;
            (*raw).routing_host.ctx = ctx;
            (*raw).consensus_host.ctx = ctx;
        }
        raw
    }

    pub(crate) fn log(&self, level: Level, message: &str) {
        self.services.log(&self.label, level, message);
    }

    /// From now on every callback from this instance is refused.
    pub(crate) fn quarantine(&self) {
        self.quarantined.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::SeqCst)
    }

    pub(crate) fn take_actions(&self) -> Vec<HostAction> {
        std::mem::take(&mut *self.actions.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many actions are queued: a mark to drop back to.
    pub(crate) fn actions_len(&self) -> usize {
        self.actions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Drops the actions queued after `mark` (those of a refused bundle).
    pub(crate) fn truncate_actions(&self, mark: usize) {
        self.actions.lock().unwrap_or_else(|e| e.into_inner()).truncate(mark);
    }

    fn push(&self, action: HostAction) {
        self.actions.lock().unwrap_or_else(|e| e.into_inner()).push(action);
    }

    /// Lends `kv` to the plugin's kv callbacks until the guard drops.
    pub(crate) fn lend_kv<'a>(&'a self, kv: &'a mut dyn KvStore) -> KvLoan<'a> {
        // SAFETY: the lifetime is erased only for the duration of the loan;
        // the guard clears the slot before `kv`'s borrow ends.
        let erased: *mut (dyn KvStore + 'static) = unsafe { std::mem::transmute(kv as *mut dyn KvStore) };
        *self.kv.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(KvSlot(erased, std::thread::current().id()));
        KvLoan { ctx: self }
    }

    fn with_kv<R>(&self, f: impl FnOnce(&mut dyn KvStore) -> Result<R, HostError>) -> Result<R, HostError> {
        // try_lock: a kv call from inside a kv_scan visitor (which the ABI
        // forbids) is refused instead of deadlocking the router.
        let Ok(slot) = self.kv.try_lock() else { return Err(HostError::Invalid) };
        match &*slot {
            // SAFETY: set by a live KvLoan on this thread; no other reference
            // to the store exists while the plugin call runs.
            Some(KvSlot(p, thread)) if *thread == std::thread::current().id() => f(unsafe { &mut **p }),
            // Another thread (`prepare_bundles` breaking the ABI rule while a
            // call runs): refused, never a second `&mut` to the store.
            Some(_) => {
                drop(slot);
                self.log(Level::Error, "kv function called from another thread than the call's: refused");
                Err(HostError::Invalid)
            }
            None => Err(HostError::Unsupported),
        }
    }
}

pub(crate) struct KvLoan<'a> {
    ctx: &'a InstanceCtx,
}

impl Drop for KvLoan<'_> {
    fn drop(&mut self) {
        *self.ctx.kv.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The context behind `ctx`, unless the instance is quarantined.
unsafe fn live<'a>(ctx: *mut c_void) -> Option<&'a InstanceCtx> {
    let c = unsafe { (ctx as *const InstanceCtx).as_ref() }?;
    (!c.quarantined.load(Ordering::SeqCst)).then_some(c)
}

/// Host code must never unwind into a plugin's C frames.
fn guarded(f: impl FnOnce() -> MpStatus) -> MpStatus {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(MP_ERR_FAILED)
}

fn level_of(level: MpLogLevel) -> Level {
    match level {
        MP_LOG_ERROR => Level::Error,
        MP_LOG_WARN => Level::Warn,
        MP_LOG_INFO => Level::Info,
        MP_LOG_DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

unsafe extern "C" fn host_log(ctx: *mut c_void, level: MpLogLevel, message: MpStr) {
    guarded(|| {
        // Logs are allowed even from a quarantined instance: they may say why.
        if let Some(c) = unsafe { (ctx as *const InstanceCtx).as_ref() } {
            let text = String::from_utf8_lossy(unsafe { message.as_bytes() });
            c.log(level_of(level), &text);
        }
        MP_OK
    });
}

unsafe extern "C" fn host_now_ms(ctx: *mut c_void) -> u64 {
    catch_unwind(AssertUnwindSafe(|| unsafe { live(ctx) }.map_or(0, |c| c.services.now_ms()))).unwrap_or(0)
}

unsafe extern "C" fn host_set_timer(ctx: *mut c_void, timer_id: u64, delay_ms: u64) -> MpStatus {
    guarded(|| match unsafe { live(ctx) } {
        Some(c) => status_of(c.services.set_timer(c.id, timer_id, delay_ms)),
        None => MP_ERR_FAILED,
    })
}

unsafe extern "C" fn host_cancel_timer(ctx: *mut c_void, timer_id: u64) -> MpStatus {
    guarded(|| match unsafe { live(ctx) } {
        Some(c) if c.services.cancel_timer(c.id, timer_id) => MP_OK,
        Some(_) => MP_ERR_NOT_FOUND,
        None => MP_ERR_FAILED,
    })
}

unsafe extern "C" fn host_node_key(ctx: *mut c_void, key_out: *mut u8) -> MpStatus {
    guarded(|| match unsafe { live(ctx) } {
        Some(_) if key_out.is_null() => MP_ERR_INVALID,
        Some(c) => {
            let key = c.services.node_key();
            unsafe { core::ptr::copy_nonoverlapping(key.as_ptr(), key_out, 32) };
            MP_OK
        }
        None => MP_ERR_FAILED,
    })
}

unsafe extern "C" fn host_node_endpoint(ctx: *mut c_void) -> MpStr {
    match unsafe { (ctx as *const InstanceCtx).as_ref() } {
        Some(c) => MpStr::new(&c.endpoint),
        None => MpStr::EMPTY,
    }
}

unsafe extern "C" fn host_sign(ctx: *mut c_void, message: MpBytes, signature_out: *mut u8) -> MpStatus {
    guarded(|| match unsafe { live(ctx) } {
        Some(_) if signature_out.is_null() => MP_ERR_INVALID,
        Some(c) => {
            let sig = c.services.sign(unsafe { message.as_slice() });
            unsafe { core::ptr::copy_nonoverlapping(sig.as_ptr(), signature_out, 64) };
            MP_OK
        }
        None => MP_ERR_FAILED,
    })
}

unsafe extern "C" fn host_verify(
    _ctx: *mut c_void,
    public_key: *const u8,
    message: MpBytes,
    signature: *const u8,
) -> MpStatus {
    guarded(|| {
        let raw = MpSignedMessage { public_key, message, signature };
        match unsafe { SignedMessage::from_raw(&raw) } {
            Some(m) if crate::verify_strict(m.public_key, m.message, m.signature) => MP_OK,
            _ => MP_ERR_INVALID,
        }
    })
}

unsafe extern "C" fn host_verify_batch(
    _ctx: *mut c_void,
    items: *const MpSignedMessage,
    count: usize,
    first_invalid: *mut usize,
) -> MpStatus {
    guarded(|| {
        let raw: &[MpSignedMessage] = if count == 0 {
            &[]
        } else if items.is_null() {
            return MP_ERR_INVALID;
        } else {
            unsafe { core::slice::from_raw_parts(items, count) }
        };
        let mut messages = Vec::with_capacity(count);
        for (i, r) in raw.iter().enumerate() {
            match unsafe { SignedMessage::from_raw(r) } {
                Some(m) => messages.push(m),
                None => return report_invalid(first_invalid, i),
            }
        }
        match crate::verify_batch(&messages) {
            Ok(()) => MP_OK,
            Err(i) => report_invalid(first_invalid, i),
        }
    })
}

fn report_invalid(first_invalid: *mut usize, index: usize) -> MpStatus {
    if !first_invalid.is_null() {
        unsafe { *first_invalid = index };
    }
    MP_ERR_INVALID
}

unsafe extern "C" fn host_emit_bundle(ctx: *mut c_void, bundle: *const MpOutBundle) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        match unsafe { OutBundle::from_raw(bundle) } {
            Ok(b) => {
                c.push(HostAction::EmitBundle {
                    destination: b.destination.to_owned(),
                    source_service: b.source_service.to_owned(),
                    payload: b.payload.to_vec(),
                    priority: b.priority,
                    lifetime_ms: b.lifetime_ms,
                });
                MP_OK
            }
            Err(e) => {
                c.log(Level::Warn, &format!("emit_bundle refused: {e}"));
                MP_ERR_INVALID
            }
        }
    })
}

unsafe extern "C" fn host_watch_fd(ctx: *mut c_void, fd: i32, events: u32) -> MpStatus {
    guarded(|| match unsafe { live(ctx) } {
        Some(_) if fd < 0 || events & !(MP_FD_READABLE | MP_FD_WRITABLE) != 0 || events == 0 => {
            MP_ERR_INVALID
        }
        Some(c) => status_of(c.services.watch_fd(c.id, fd, events)),
        None => MP_ERR_FAILED,
    })
}

unsafe extern "C" fn host_unwatch_fd(ctx: *mut c_void, fd: i32) -> MpStatus {
    guarded(|| match unsafe { live(ctx) } {
        Some(c) => status_of(c.services.unwatch_fd(c.id, fd)),
        None => MP_ERR_FAILED,
    })
}

unsafe extern "C" fn host_get_extension(_ctx: *mut c_void, _id: MpStr) -> *const c_void {
    // No host extensions yet (ABI 1.1).
    core::ptr::null()
}

unsafe extern "C" fn host_deliver(ctx: *mut c_void, peer: MpStr, frame: MpBytes) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        let Some(events) = &c.events else { return MP_ERR_UNSUPPORTED };
        let Ok(peer) = (unsafe { peer.to_str() }) else { return MP_ERR_INVALID };
        status_of(events.deliver(c.id, peer, unsafe { frame.as_slice() }))
    })
}

unsafe extern "C" fn host_link_event(ctx: *mut c_void, event: *const MpLinkEvent) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        let Some(events) = &c.events else { return MP_ERR_UNSUPPORTED };
        match unsafe { LinkEvent::from_raw(event) } {
            Ok(e) if matches!(e.kind, MP_LINK_UP | MP_LINK_DOWN | MP_LINK_UPDATE) => {
                status_of(events.link_event(c.id, &e))
            }
            Ok(e) => {
                c.log(Level::Warn, &format!("link event of unknown kind {} ignored", e.kind));
                MP_ERR_INVALID
            }
            Err(e) => {
                c.log(Level::Warn, &format!("bad link event: {e}"));
                MP_ERR_INVALID
            }
        }
    })
}

unsafe extern "C" fn host_send_control(ctx: *mut c_void, peer: MpStr, data: MpBytes) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        let Ok(peer) = (unsafe { peer.to_str() }) else { return MP_ERR_INVALID };
        c.push(HostAction::SendControl { peer: peer.to_owned(), data: unsafe { data.as_slice() }.to_vec() });
        MP_OK
    })
}

unsafe extern "C" fn host_subscribe(ctx: *mut c_void, endpoint: MpStr) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        match unsafe { endpoint.to_str() } {
            Ok(e) if !e.is_empty() => {
                c.push(HostAction::Subscribe { endpoint: e.to_owned() });
                MP_OK
            }
            _ => MP_ERR_INVALID,
        }
    })
}

unsafe extern "C" fn host_kv_open(ctx: *mut c_void, name: MpStr, table_out: *mut u32) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        let Ok(name) = (unsafe { name.to_str() }) else { return MP_ERR_INVALID };
        if table_out.is_null() || name.is_empty() {
            return MP_ERR_INVALID;
        }
        match c.with_kv(|kv| kv.open(name)) {
            Ok(t) => {
                unsafe { *table_out = t };
                MP_OK
            }
            Err(e) => e.status(),
        }
    })
}

unsafe extern "C" fn host_kv_get(
    ctx: *mut c_void,
    table: u32,
    key: MpBytes,
    value_out: *mut MpBytes,
) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        if value_out.is_null() {
            return MP_ERR_INVALID;
        }
        // The value stays valid after the slot's lock is released: it lives
        // in the transaction, which outlasts the plugin call.
        match c.with_kv(|kv| kv.get(table, unsafe { key.as_slice() }).map(|v| v.map(MpBytes::new))) {
            Ok(Some(v)) => {
                unsafe { *value_out = v };
                MP_OK
            }
            Ok(None) => MP_ERR_NOT_FOUND,
            Err(e) => e.status(),
        }
    })
}

unsafe extern "C" fn host_kv_put(ctx: *mut c_void, table: u32, key: MpBytes, value: MpBytes) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        status_of(c.with_kv(|kv| kv.put(table, unsafe { key.as_slice() }, unsafe { value.as_slice() })))
    })
}

unsafe extern "C" fn host_kv_delete(ctx: *mut c_void, table: u32, key: MpBytes) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        match c.with_kv(|kv| kv.delete(table, unsafe { key.as_slice() })) {
            Ok(true) => MP_OK,
            Ok(false) => MP_ERR_NOT_FOUND,
            Err(e) => e.status(),
        }
    })
}

unsafe extern "C" fn host_kv_scan(
    ctx: *mut c_void,
    table: u32,
    start: MpBytes,
    visitor: *const MpKvVisitor,
) -> MpStatus {
    guarded(|| {
        let Some(c) = (unsafe { live(ctx) }) else { return MP_ERR_FAILED };
        let Ok(visitor) = (unsafe { read_sized(visitor) }) else { return MP_ERR_INVALID };
        let Some(visit) = visitor.visit else { return MP_ERR_INVALID };
        let mut call =
            |k: &[u8], v: &[u8]| unsafe { visit(visitor.ctx, MpBytes::new(k), MpBytes::new(v)) } == MP_OK;
        status_of(c.with_kv(|kv| kv.scan(table, unsafe { start.as_slice() }, &mut call)))
    })
}
