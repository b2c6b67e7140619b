//! The plugin's view of [`MpHost`]: the services every instance gets.

use std::os::fd::RawFd;

use crate::ffi::*;
use crate::sdk::PluginError;
use crate::views::{OutBundle, SignedMessage};
use crate::{read_sized, table_size};

/// Log levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Error = MP_LOG_ERROR,
    Warn = MP_LOG_WARN,
    Info = MP_LOG_INFO,
    Debug = MP_LOG_DEBUG,
    Trace = MP_LOG_TRACE,
}

/// The host services of one plugin instance, copied from the host's table
/// with its `struct_size` honoured (functions an older host lacks read as
/// absent and return `MP_ERR_UNSUPPORTED`).
///
/// `Send + Sync` so an OWN_THREAD plugin can log and sign from its own
/// threads; the functions documented "host thread" in the header must still
/// only be called from inside a call the host made.
#[derive(Clone, Copy)]
pub struct Host {
    table: MpHost,
}

// SAFETY: the host guarantees the table and `ctx` stay valid until `destroy`
// returns, and documents which functions are thread-safe.
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

impl core::fmt::Debug for Host {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Host").field("abi", &self.table.abi).finish()
    }
}

fn unsupported(what: &str) -> PluginError {
    PluginError::unsupported(format!("the host does not provide {what}"))
}

impl Host {
    /// # Safety
    /// `raw` must be the host table passed to `create`.
    pub unsafe fn from_raw(raw: *const MpHost) -> Result<Host, PluginError> {
        let table =
            unsafe { read_sized(raw) }.map_err(|e| PluginError::invalid(format!("host table: {e}")))?;
        Ok(Host { table })
    }

    /// The ABI version the host implements.
    pub fn abi(&self) -> MpVersion {
        self.table.abi
    }

    /// Thread-safe.
    pub fn log(&self, level: Level, message: &str) {
        if let Some(log) = self.table.log {
            // SAFETY: valid host function and borrowed string.
            unsafe { log(self.table.ctx, level as i32, MpStr::new(message)) }
        }
    }

    /// Thread-safe. The host's monotonic clock in ms (0 if it has none).
    pub fn now_ms(&self) -> u64 {
        match self.table.now_ms {
            Some(now) => unsafe { now(self.table.ctx) },
            None => 0,
        }
    }

    /// Host thread. Arms `timer_id` to fire `on_timer` once after `delay_ms`.
    pub fn set_timer(&self, timer_id: u64, delay_ms: u64) -> Result<(), PluginError> {
        let f = self.table.set_timer.ok_or_else(|| unsupported("timers"))?;
        PluginError::check(unsafe { f(self.table.ctx, timer_id, delay_ms) }, "set_timer")
    }

    /// Host thread. Returns whether the timer was armed.
    pub fn cancel_timer(&self, timer_id: u64) -> bool {
        match self.table.cancel_timer {
            Some(f) => unsafe { f(self.table.ctx, timer_id) == MP_OK },
            None => false,
        }
    }

    /// Thread-safe. This node's Ed25519 public key.
    pub fn node_key(&self) -> Result<[u8; 32], PluginError> {
        let f = self.table.node_key.ok_or_else(|| unsupported("node_key"))?;
        let mut key = [0u8; 32];
        PluginError::check(unsafe { f(self.table.ctx, key.as_mut_ptr()) }, "node_key")?;
        Ok(key)
    }

    /// Thread-safe. This node's endpoint URI.
    pub fn node_endpoint(&self) -> Result<String, PluginError> {
        let f = self.table.node_endpoint.ok_or_else(|| unsupported("node_endpoint"))?;
        let s = unsafe { f(self.table.ctx) };
        unsafe { s.to_str() }
            .map(str::to_owned)
            .map_err(|_| PluginError::invalid("node endpoint is not UTF-8"))
    }

    /// Thread-safe. Signs with the node key, which never leaves the host.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], PluginError> {
        let f = self.table.sign.ok_or_else(|| unsupported("signing"))?;
        let mut sig = [0u8; 64];
        PluginError::check(unsafe { f(self.table.ctx, MpBytes::new(message), sig.as_mut_ptr()) }, "sign")?;
        Ok(sig)
    }

    /// Thread-safe. Strict Ed25519 verification.
    pub fn verify(&self, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
        match self.table.verify {
            Some(f) => unsafe {
                f(self.table.ctx, public_key.as_ptr(), MpBytes::new(message), signature.as_ptr()) == MP_OK
            },
            None => false,
        }
    }

    /// Thread-safe. Batch verification; on failure, the index of the first
    /// bad signature if the host found it.
    pub fn verify_batch(&self, items: &[SignedMessage<'_>]) -> Result<(), Option<usize>> {
        let Some(f) = self.table.verify_batch else {
            // Fall back to single checks, which every host has.
            return match items.iter().position(|m| !self.verify(m.public_key, m.message, m.signature)) {
                Some(i) => Err(Some(i)),
                None => Ok(()),
            };
        };
        let raw: Vec<MpSignedMessage> = items.iter().map(SignedMessage::as_raw).collect();
        let mut bad = usize::MAX;
        match unsafe { f(self.table.ctx, raw.as_ptr(), raw.len(), &mut bad) } {
            MP_OK => Ok(()),
            _ => Err((bad < items.len()).then_some(bad)),
        }
    }

    /// Host thread. Creates, stores and routes a bundle from this node.
    pub fn emit_bundle(&self, bundle: &OutBundle<'_>) -> Result<(), PluginError> {
        let f = self.table.emit_bundle.ok_or_else(|| unsupported("emit_bundle"))?;
        let raw = bundle.as_raw();
        debug_assert_eq!(raw.struct_size, table_size::<MpOutBundle>());
        PluginError::check(unsafe { f(self.table.ctx, &raw) }, "emit_bundle")
    }

    /// Host thread. Level-triggered readiness for `fd` through `on_fd`.
    pub fn watch_fd(&self, fd: RawFd, events: u32) -> Result<(), PluginError> {
        let f = self.table.watch_fd.ok_or_else(|| unsupported("watch_fd"))?;
        PluginError::check(unsafe { f(self.table.ctx, fd, events) }, "watch_fd")
    }

    /// Host thread.
    pub fn unwatch_fd(&self, fd: RawFd) -> Result<(), PluginError> {
        let f = self.table.unwatch_fd.ok_or_else(|| unsupported("unwatch_fd"))?;
        PluginError::check(unsafe { f(self.table.ctx, fd) }, "unwatch_fd")
    }

    /// Thread-safe. A host extension table by id, or NULL.
    pub fn extension(&self, id: &str) -> *const core::ffi::c_void {
        match self.table.get_extension {
            Some(f) => unsafe { f(self.table.ctx, MpStr::new(id)) },
            None => core::ptr::null(),
        }
    }
}
