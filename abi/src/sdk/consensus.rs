//! Consensus plugins: validate bundles against the ledger, answer local
//! requests, keep their state in host-provided LMDB tables.

use core::ffi::c_void;
use core::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crate::ffi::*;
use crate::sdk::guard::{
    create_instance_with, destroy_instance, report, with_instance, with_instance_host, with_preparer,
};
use crate::sdk::{FdState, Host, PluginError};
use crate::views::BundleInfo;
use crate::{read_sized, table_size};

/// A handle to one of the plugin's key-value tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Table(pub u32);

/// A consensus plugin's calls into the router: subscriptions and its tables.
/// The kv functions work only inside a call the host made (it holds the
/// write transaction then).
#[derive(Clone, Copy)]
pub struct ConsensusHost {
    table: MpConsensusHost,
}

// SAFETY: the table lives until `destroy`; the kv functions are host-thread
// only, which the documentation states.
unsafe impl Send for ConsensusHost {}
unsafe impl Sync for ConsensusHost {}

fn missing(what: &str) -> PluginError {
    PluginError::unsupported(format!("host has no {what}"))
}

impl ConsensusHost {
    /// # Safety
    /// `raw` must be the consensus host table passed to `create`.
    pub unsafe fn from_raw(raw: *const MpConsensusHost) -> Result<Self, PluginError> {
        let table = unsafe { read_sized(raw) }
            .map_err(|e| PluginError::invalid(format!("consensus host table: {e}")))?;
        Ok(ConsensusHost { table })
    }

    /// Receive bundles addressed to `endpoint`.
    pub fn subscribe(&self, endpoint: &str) -> Result<(), PluginError> {
        let f = self.table.subscribe.ok_or_else(|| missing("subscribe"))?;
        PluginError::check(unsafe { f(self.table.ctx, MpStr::new(endpoint)) }, "subscribe")
    }

    /// Opens (creating if needed) the plugin's table `name`.
    pub fn open(&self, name: &str) -> Result<Table, PluginError> {
        let f = self.table.kv_open.ok_or_else(|| missing("kv_open"))?;
        let mut handle = 0u32;
        PluginError::check(unsafe { f(self.table.ctx, MpStr::new(name), &mut handle) }, "kv_open")?;
        Ok(Table(handle))
    }

    /// Reads `key`, copying the value out.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, PluginError> {
        let f = self.table.kv_get.ok_or_else(|| missing("kv_get"))?;
        let mut value = MpBytes::EMPTY;
        match unsafe { f(self.table.ctx, table.0, MpBytes::new(key), &mut value) } {
            MP_OK => Ok(Some(unsafe { value.as_slice() }.to_vec())),
            MP_ERR_NOT_FOUND => Ok(None),
            status => Err(PluginError::new(status, format!("kv_get: {}", crate::status_name(status)))),
        }
    }

    pub fn put(&self, table: Table, key: &[u8], value: &[u8]) -> Result<(), PluginError> {
        let f = self.table.kv_put.ok_or_else(|| missing("kv_put"))?;
        let status = unsafe { f(self.table.ctx, table.0, MpBytes::new(key), MpBytes::new(value)) };
        PluginError::check(status, "kv_put")
    }

    /// Removes `key`; returns whether it existed.
    pub fn delete(&self, table: Table, key: &[u8]) -> Result<bool, PluginError> {
        let f = self.table.kv_delete.ok_or_else(|| missing("kv_delete"))?;
        match unsafe { f(self.table.ctx, table.0, MpBytes::new(key)) } {
            MP_OK => Ok(true),
            MP_ERR_NOT_FOUND => Ok(false),
            status => Err(PluginError::new(status, format!("kv_delete: {}", crate::status_name(status)))),
        }
    }

    /// Visits entries with key >= `start` in order while `visit` returns true.
    pub fn scan(
        &self,
        table: Table,
        start: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), PluginError> {
        struct State<'f> {
            visit: &'f mut dyn FnMut(&[u8], &[u8]) -> bool,
            panic: Option<Box<dyn std::any::Any + Send>>,
        }
        unsafe extern "C" fn trampoline(ctx: *mut c_void, key: MpBytes, value: MpBytes) -> MpStatus {
            // SAFETY: ctx is the State below, alive for the scan.
            let state = unsafe { &mut *(ctx as *mut State<'_>) };
            let (k, v) = unsafe { (key.as_slice(), value.as_slice()) };
            // A panic must not unwind through the host's frames: catch it
            // here, stop the scan, and re-raise it after the host returns.
            match catch_unwind(AssertUnwindSafe(|| (state.visit)(k, v))) {
                Ok(true) => MP_OK,
                Ok(false) => MP_ERR_AGAIN,
                Err(p) => {
                    state.panic = Some(p);
                    MP_ERR_PANIC
                }
            }
        }
        let f = self.table.kv_scan.ok_or_else(|| missing("kv_scan"))?;
        let mut state = State { visit: &mut visit, panic: None };
        let visitor = MpKvVisitor {
            struct_size: table_size::<MpKvVisitor>(),
            ctx: &mut state as *mut State<'_> as *mut c_void,
            visit: Some(trampoline),
        };
        let status = unsafe { f(self.table.ctx, table.0, MpBytes::new(start), &visitor) };
        if let Some(p) = state.panic.take() {
            resume_unwind(p);
        }
        PluginError::check(status, "kv_scan")
    }
}

/// Where [`ConsensusPlugin::on_control`] writes its answer.
pub struct Reply<'a> {
    target: ReplyTarget<'a>,
}

enum ReplyTarget<'a> {
    Sink(&'a MpBytesSink),
    Collect(&'a mut Vec<u8>),
}

impl<'a> Reply<'a> {
    /// A reply that appends to `out`, for calling `on_control` directly.
    pub fn collecting(out: &'a mut Vec<u8>) -> Reply<'a> {
        Reply { target: ReplyTarget::Collect(out) }
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), PluginError> {
        match &mut self.target {
            ReplyTarget::Sink(sink) => {
                let f = sink.write.ok_or_else(|| PluginError::invalid("reply sink without a function"))?;
                PluginError::check(unsafe { f(sink.ctx, MpBytes::new(data)) }, "reply")
            }
            ReplyTarget::Collect(out) => {
                out.extend_from_slice(data);
                Ok(())
            }
        }
    }
}

/// The thread-safe half of a consensus plugin that implements
/// `prepare_bundles` (ABI 1.1): it checks bundles ahead of the call that
/// will handle them, on whatever thread the host likes, while other calls
/// of the instance run. So it holds only what it can share: immutable
/// configuration, caches behind locks, a copy of the [`Host`] (whose
/// thread-safe functions it may use: log, clock, node key, sign, verify).
pub trait BundlePreparer: Send + Sync + 'static {
    /// Checks `bundles` ahead (see `MpConsensusV1.prepare_bundles`): what it
    /// finds may only make the later call faster, never change its outcome.
    /// An error is logged by the host and otherwise ignored.
    fn prepare_bundles(&self, bundles: &[BundleInfo<'_>]) -> Result<(), PluginError>;
}

/// A consensus plugin.
///
/// The ABI 1.1 functions are optional: a plugin that implements
/// [`ConsensusPlugin::on_bundles`] sets [`ConsensusPlugin::ON_BUNDLES`], one
/// that implements [`ConsensusPlugin::preparer`] sets
/// [`ConsensusPlugin::PREPARE_BUNDLES`]; otherwise the SDK exports NULL
/// pointers and the host calls `on_bundle` once per bundle.
pub trait ConsensusPlugin: Sized + Send + 'static {
    /// Whether the function table carries `on_bundles`.
    const ON_BUNDLES: bool = false;
    /// Whether the function table carries `prepare_bundles`.
    const PREPARE_BUNDLES: bool = false;

    fn create(host: Host, consensus: ConsensusHost, config: &[u8]) -> Result<Self, PluginError>;
    /// A bundle for a subscribed endpoint. `PluginError::invalid` refuses it.
    fn on_bundle(&mut self, bundle: &BundleInfo<'_>) -> Result<(), PluginError>;
    /// ABI 1.1, exported when [`Self::ON_BUNDLES`]: several bundles in one
    /// call, with the meaning of one `on_bundle` per bundle in order.
    /// Returns one result per bundle; a refused bundle (`Err`, logged by the
    /// SDK like a refusal of `on_bundle`) must have made no table write and
    /// emitted nothing. `Err` of the whole rolls back the whole call.
    fn on_bundles(
        &mut self,
        _bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), PluginError>>, PluginError> {
        Err(PluginError::unsupported("on_bundles is not implemented"))
    }
    /// ABI 1.1, used when [`Self::PREPARE_BUNDLES`]: the thread-safe object
    /// `prepare_bundles` calls. Asked once, right after `create`; `None`
    /// makes `prepare_bundles` a no-op.
    fn preparer(&self) -> Option<Arc<dyn BundlePreparer>> {
        None
    }
    /// A local request (`method`, JSON `body`); the JSON answer goes to `reply`.
    fn on_control(&mut self, method: &str, _body: &[u8], _reply: &mut Reply<'_>) -> Result<(), PluginError> {
        Err(PluginError::unsupported(format!("unknown method `{method}`")))
    }
    fn on_timer(&mut self, _timer_id: u64) -> Result<(), PluginError> {
        Ok(())
    }
    fn on_fd(&mut self, _fd: i32, _events: u32) -> Result<FdState, PluginError> {
        Ok(FdState::Drained)
    }
}

/// The C function table for a [`ConsensusPlugin`].
pub struct ConsensusVtable<T>(PhantomData<T>);

impl<T: ConsensusPlugin> ConsensusVtable<T> {
    pub const KIND: u32 = MP_KIND_CONSENSUS;
    const TABLE: MpConsensusV1 = MpConsensusV1 {
        struct_size: crate::table_size::<MpConsensusV1>(),
        flags: 0,
        create: Some(create::<T>),
        destroy: Some(destroy::<T>),
        on_bundle: Some(on_bundle::<T>),
        on_control: Some(on_control::<T>),
        on_timer: Some(on_timer::<T>),
        on_fd: Some(on_fd::<T>),
        on_bundles: if T::ON_BUNDLES { Some(on_bundles::<T>) } else { None },
        prepare_bundles: if T::PREPARE_BUNDLES { Some(prepare_bundles::<T>) } else { None },
    };

    pub fn get() -> &'static MpConsensusV1 {
        &Self::TABLE
    }
}

unsafe extern "C" fn create<T: ConsensusPlugin>(
    host: *const MpHost,
    consensus_host: *const MpConsensusHost,
    config: MpBytes,
    instance_out: *mut *mut c_void,
) -> MpStatus {
    let host = match unsafe { Host::from_raw(host) } {
        Ok(h) => h,
        Err(e) => return e.status,
    };
    create_instance_with(host, instance_out, "create", |host| {
        let consensus = unsafe { ConsensusHost::from_raw(consensus_host) }?;
        let plugin = T::create(host, consensus, unsafe { config.as_slice() })?;
        let preparer = if T::PREPARE_BUNDLES { plugin.preparer() } else { None };
        Ok((plugin, preparer))
    })
}

unsafe extern "C" fn destroy<T: ConsensusPlugin>(instance: *mut c_void) {
    destroy_instance::<T>(instance)
}

unsafe extern "C" fn on_bundle<T: ConsensusPlugin>(
    instance: *mut c_void,
    bundle: *const MpBundleInfo,
) -> MpStatus {
    with_instance::<T>(instance, "on_bundle", |c| {
        let bundle =
            unsafe { BundleInfo::from_raw(bundle) }.map_err(|e| PluginError::invalid(e.to_string()))?;
        c.on_bundle(&bundle).map(|()| MP_OK)
    })
}

/// The bundles behind an `on_bundles` / `prepare_bundles` array. A table
/// that cannot be read (too small, not UTF-8) is reported through `bad`
/// with its index and left out.
///
/// # Safety
/// `bundles` must be NULL or point to `count` pointers valid for `'a`.
unsafe fn bundle_views<'a>(
    bundles: *const *const MpBundleInfo,
    count: usize,
    mut bad: impl FnMut(usize, PluginError),
) -> Result<(Vec<usize>, Vec<BundleInfo<'a>>), PluginError> {
    if count == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    if bundles.is_null() {
        return Err(PluginError::invalid(format!("{count} bundles but a NULL array")));
    }
    let ptrs = unsafe { core::slice::from_raw_parts(bundles, count) };
    let mut index = Vec::with_capacity(count);
    let mut views = Vec::with_capacity(count);
    for (i, &p) in ptrs.iter().enumerate() {
        match unsafe { BundleInfo::from_raw(p) } {
            Ok(v) => {
                index.push(i);
                views.push(v);
            }
            Err(e) => bad(i, PluginError::invalid(format!("bundle {i}: {e}"))),
        }
    }
    Ok((index, views))
}

unsafe extern "C" fn on_bundles<T: ConsensusPlugin>(
    instance: *mut c_void,
    bundles: *const *const MpBundleInfo,
    count: usize,
    statuses: *mut MpStatus,
) -> MpStatus {
    const WHAT: &str = "on_bundles";
    with_instance_host::<T>(instance, WHAT, |c, host| {
        if count == 0 {
            return Ok(MP_OK);
        }
        if statuses.is_null() {
            return Err(PluginError::invalid("on_bundles: NULL statuses"));
        }
        // SAFETY: the host passes `count` statuses, owned by it, for the call.
        let statuses = unsafe { core::slice::from_raw_parts_mut(statuses, count) };
        let (index, views) =
            unsafe { bundle_views(bundles, count, |i, e| statuses[i] = report(host, WHAT, e)) }?;
        if views.is_empty() {
            return Ok(MP_OK);
        }
        let results = c.on_bundles(&views)?;
        if results.len() != views.len() {
            return Err(PluginError::failed(format!(
                "on_bundles returned {} results for {} bundles",
                results.len(),
                views.len()
            )));
        }
        for (i, r) in index.into_iter().zip(results) {
            statuses[i] = match r {
                Ok(()) => MP_OK,
                Err(e) => report(host, WHAT, e),
            };
        }
        Ok(MP_OK)
    })
}

unsafe extern "C" fn prepare_bundles<T: ConsensusPlugin>(
    instance: *mut c_void,
    bundles: *const *const MpBundleInfo,
    count: usize,
) -> MpStatus {
    const WHAT: &str = "prepare_bundles";
    with_preparer::<T>(instance, WHAT, |p, _host| {
        // Unreadable tables are skipped: their later call refuses them.
        let (_, views) = unsafe { bundle_views(bundles, count, |_, _| {}) }?;
        if !views.is_empty() {
            p.prepare_bundles(&views)?;
        }
        Ok(MP_OK)
    })
}

unsafe extern "C" fn on_control<T: ConsensusPlugin>(
    instance: *mut c_void,
    method: MpStr,
    body: MpBytes,
    reply: *const MpBytesSink,
) -> MpStatus {
    with_instance::<T>(instance, "on_control", |c| {
        let method = unsafe { method.to_str() }.map_err(|_| PluginError::invalid("method is not UTF-8"))?;
        let sink =
            unsafe { read_sized(reply) }.map_err(|e| PluginError::invalid(format!("reply sink: {e}")))?;
        c.on_control(method, unsafe { body.as_slice() }, &mut Reply { target: ReplyTarget::Sink(&sink) })
            .map(|()| MP_OK)
    })
}

unsafe extern "C" fn on_timer<T: ConsensusPlugin>(instance: *mut c_void, timer_id: u64) -> MpStatus {
    with_instance::<T>(instance, "on_timer", |c| c.on_timer(timer_id).map(|()| MP_OK))
}

unsafe extern "C" fn on_fd<T: ConsensusPlugin>(instance: *mut c_void, fd: i32, events: u32) -> MpStatus {
    with_instance::<T>(instance, "on_fd", |c| {
        c.on_fd(fd, events).map(|s| if s == FdState::More { MP_OK } else { MP_ERR_AGAIN })
    })
}
