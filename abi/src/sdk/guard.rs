//! Errors and the panic guard around every SDK entry point.

use core::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::ffi::*;
use crate::sdk::consensus::BundlePreparer;
use crate::sdk::host::{Host, Level};

/// An error a plugin returns: a status code for the host and a message that
/// the SDK writes to the host's log (at `level`) before returning the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    pub status: MpStatus,
    pub message: String,
    /// Log level of the message: `Error` by default, `Debug` for
    /// `MP_ERR_AGAIN`. Lower it with [`PluginError::at`] for failures that
    /// are expected (a peer that went away).
    pub level: Level,
}

impl PluginError {
    pub fn new(status: MpStatus, message: impl Into<String>) -> Self {
        let level = if status == MP_ERR_AGAIN { Level::Debug } else { Level::Error };
        PluginError { status, message: message.into(), level }
    }
    /// The same error, logged at `level`.
    pub fn at(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
    /// `MP_ERR_FAILED`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(MP_ERR_FAILED, message)
    }
    /// `MP_ERR_INVALID`: bad configuration or a refused input.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(MP_ERR_INVALID, message)
    }
    /// `MP_ERR_UNSUPPORTED`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(MP_ERR_UNSUPPORTED, message)
    }
    /// `MP_ERR_AGAIN`, silent: not worth a log line.
    pub fn again() -> Self {
        Self::new(MP_ERR_AGAIN, "")
    }
    /// `MP_ERR_FULL`.
    pub fn full(message: impl Into<String>) -> Self {
        Self::new(MP_ERR_FULL, message)
    }
    /// Turns a host status into a result.
    pub fn check(status: MpStatus, what: &str) -> Result<(), PluginError> {
        if status == MP_OK {
            Ok(())
        } else {
            Err(PluginError::new(status, format!("{what}: {}", crate::status_name(status))))
        }
    }
}

impl core::fmt::Display for PluginError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.message, crate::status_name(self.status))
    }
}

impl std::error::Error for PluginError {}

/// What the SDK allocates behind the opaque instance pointer.
///
/// Calls on the host thread borrow `plugin` mutably; a thread-safe entry
/// point (`prepare_bundles`) may run at the same time on another thread and
/// reads `host`, `poisoned` and `preparer`. So no code ever makes a
/// reference to a whole `Instance` while the instance is live: each entry
/// point borrows only the fields it uses, through the raw pointer, and the
/// fields other threads read are never written after `create` (or are
/// atomic).
pub(crate) struct Instance<P> {
    plugin: P,
    host: Host,
    /// Set after a panic: the plugin's state may be broken, so the instance
    /// refuses every further call (the host disables it anyway).
    poisoned: AtomicBool,
    /// What `prepare_bundles` runs (consensus plugins, ABI 1.1); fixed at
    /// create.
    preparer: Option<Arc<dyn BundlePreparer>>,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}

/// Runs `f` with panics caught; for code that has no instance yet.
pub(crate) fn guard(host: Option<&Host>, what: &str, f: impl FnOnce() -> MpStatus) -> MpStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(status) => status,
        Err(payload) => {
            if let Some(host) = host {
                host.log(Level::Error, &format!("panic in {what}: {}", panic_message(&*payload)));
            }
            MP_ERR_PANIC
        }
    }
}

/// Boxes a new instance and writes its pointer to `out`.
pub(crate) fn create_instance<P>(
    host: Host,
    out: *mut *mut c_void,
    what: &str,
    make: impl FnOnce(Host) -> Result<P, PluginError>,
) -> MpStatus {
    create_instance_with(host, out, what, |host| make(host).map(|p| (p, None)))
}

/// As [`create_instance`], with the instance's [`BundlePreparer`].
pub(crate) fn create_instance_with<P>(
    host: Host,
    out: *mut *mut c_void,
    what: &str,
    make: impl FnOnce(Host) -> Result<(P, Option<Arc<dyn BundlePreparer>>), PluginError>,
) -> MpStatus {
    if out.is_null() {
        return MP_ERR_INVALID;
    }
    let log_host = host;
    guard(Some(&log_host), what, || match make(host) {
        Ok((plugin, preparer)) => {
            let boxed = Box::new(Instance { plugin, host, poisoned: AtomicBool::new(false), preparer });
            // SAFETY: checked non-null above; the host owns the slot.
            unsafe { *out = Box::into_raw(boxed) as *mut c_void };
            MP_OK
        }
        Err(e) => report(&log_host, what, e),
    })
}

/// Logs an error (of a call, or of one item of a batched call) and returns
/// its status, never `MP_OK`.
pub(crate) fn report(host: &Host, what: &str, e: PluginError) -> MpStatus {
    if !e.message.is_empty() {
        host.log(e.level, &format!("{what}: {}", e.message));
    }
    if e.status == MP_OK { MP_ERR_FAILED } else { e.status }
}

/// Calls into an instance with the panic guard; maps `Err` to its status.
pub(crate) fn with_instance<P>(
    instance: *mut c_void,
    what: &str,
    f: impl FnOnce(&mut P) -> Result<MpStatus, PluginError>,
) -> MpStatus {
    with_instance_host(instance, what, |p, _| f(p))
}

/// As [`with_instance`], also lending the instance's host (to log).
pub(crate) fn with_instance_host<P>(
    instance: *mut c_void,
    what: &str,
    f: impl FnOnce(&mut P, &Host) -> Result<MpStatus, PluginError>,
) -> MpStatus {
    if instance.is_null() {
        return MP_ERR_INVALID;
    }
    let inst = instance as *mut Instance<P>;
    // SAFETY: the host passes back the pointer `create` gave it and calls
    // the instance from one thread at a time (this function is not used by
    // thread-safe entry points), so `plugin` is borrowed by nobody else;
    // the other fields are only read (see `Instance`).
    let (plugin, host, poisoned) =
        unsafe { (&mut *core::ptr::addr_of_mut!((*inst).plugin), &(*inst).host, &(*inst).poisoned) };
    if poisoned.load(Ordering::Acquire) {
        return MP_ERR_PANIC;
    }
    match catch_unwind(AssertUnwindSafe(|| f(plugin, host))) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => report(host, what, e),
        Err(payload) => {
            poisoned.store(true, Ordering::Release);
            host.log(Level::Error, &format!("panic in {what}: {}", panic_message(&*payload)));
            MP_ERR_PANIC
        }
    }
}

/// Runs a thread-safe entry point: `f` gets the instance's preparer (the
/// call is a no-op without one) and its host, never the plugin itself,
/// which a call on the host thread may be using meanwhile.
pub(crate) fn with_preparer<P>(
    instance: *mut c_void,
    what: &str,
    f: impl FnOnce(&dyn BundlePreparer, &Host) -> Result<MpStatus, PluginError>,
) -> MpStatus {
    if instance.is_null() {
        return MP_ERR_INVALID;
    }
    let inst = instance as *const Instance<P>;
    // SAFETY: the instance lives until `destroy`, which the host never calls
    // while a thread-safe call runs; these fields are never written after
    // create (`poisoned` is atomic) and `plugin` is not touched.
    let (preparer, host, poisoned) = unsafe { (&(*inst).preparer, &(*inst).host, &(*inst).poisoned) };
    if poisoned.load(Ordering::Acquire) {
        return MP_ERR_PANIC;
    }
    let Some(preparer) = preparer else { return MP_OK };
    match catch_unwind(AssertUnwindSafe(|| f(preparer.as_ref(), host))) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => report(host, what, e),
        Err(payload) => {
            poisoned.store(true, Ordering::Release);
            host.log(Level::Error, &format!("panic in {what}: {}", panic_message(&*payload)));
            MP_ERR_PANIC
        }
    }
}

/// Frees an instance; a panic in `Drop` is caught and logged.
pub(crate) fn destroy_instance<P>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: the pointer came from `create_instance` and is destroyed once.
    let boxed = unsafe { Box::from_raw(instance as *mut Instance<P>) };
    let host = boxed.host;
    guard(Some(&host), "destroy", move || {
        drop(boxed);
        MP_OK
    });
}
