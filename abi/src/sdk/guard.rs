//! Errors and the panic guard around every SDK entry point.

use core::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::ffi::*;
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
pub(crate) struct Instance<P> {
    pub(crate) plugin: P,
    pub(crate) host: Host,
    /// Set after a panic: the plugin's state may be broken, so the instance
    /// refuses every further call (the host disables it anyway).
    poisoned: bool,
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
    if out.is_null() {
        return MP_ERR_INVALID;
    }
    let log_host = host;
    guard(Some(&log_host), what, || match make(host) {
        Ok(plugin) => {
            let boxed = Box::new(Instance { plugin, host, poisoned: false });
            // SAFETY: checked non-null above; the host owns the slot.
            unsafe { *out = Box::into_raw(boxed) as *mut c_void };
            MP_OK
        }
        Err(e) => report(&log_host, what, e),
    })
}

fn report(host: &Host, what: &str, e: PluginError) -> MpStatus {
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
    if instance.is_null() {
        return MP_ERR_INVALID;
    }
    // SAFETY: the host passes back the pointer `create` gave it, and never
    // calls one instance from two threads at once.
    let inst = unsafe { &mut *(instance as *mut Instance<P>) };
    if inst.poisoned {
        return MP_ERR_PANIC;
    }
    let plugin = &mut inst.plugin;
    match catch_unwind(AssertUnwindSafe(|| f(plugin))) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => report(&inst.host, what, e),
        Err(payload) => {
            inst.poisoned = true;
            inst.host.log(Level::Error, &format!("panic in {what}: {}", panic_message(&*payload)));
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
