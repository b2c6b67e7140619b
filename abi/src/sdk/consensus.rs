//! Consensus plugins: validate bundles against the ledger, answer local
//! requests, keep their state in host-provided LMDB tables.

use core::ffi::c_void;
use core::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::ffi::*;
use crate::sdk::guard::{create_instance, destroy_instance, with_instance};
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

/// A consensus plugin.
pub trait ConsensusPlugin: Sized + Send + 'static {
    fn create(host: Host, consensus: ConsensusHost, config: &[u8]) -> Result<Self, PluginError>;
    /// A bundle for a subscribed endpoint. `PluginError::invalid` refuses it.
    fn on_bundle(&mut self, bundle: &BundleInfo<'_>) -> Result<(), PluginError>;
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
    create_instance(host, instance_out, "create", |host| {
        let consensus = unsafe { ConsensusHost::from_raw(consensus_host) }?;
        T::create(host, consensus, unsafe { config.as_slice() })
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
