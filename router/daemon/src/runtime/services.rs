//! The daemon's implementation of the host services: clock, node key,
//! logging, timers, and fd readiness through tokio's `AsyncFd`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use meshpay_abi::{MP_FD_READABLE, MP_FD_WRITABLE};
use meshpay_host::{HostError, HostServices, InstanceId, InstanceLabel, Level};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::identity::Identity;

/// Timers, keyed by (instance, timer id); a re-armed timer replaces the old
/// one (stale heap entries are skipped by sequence number).
#[derive(Default)]
pub struct Timers {
    armed: HashMap<(InstanceId, u64), (u64, u64)>,
    heap: BinaryHeap<Reverse<(u64, u64, InstanceId, u64)>>,
    seq: u64,
}

impl Timers {
    fn set(&mut self, instance: InstanceId, timer: u64, deadline: u64) {
        self.seq += 1;
        self.armed.insert((instance, timer), (deadline, self.seq));
        self.heap.push(Reverse((deadline, self.seq, instance, timer)));
    }

    fn cancel(&mut self, instance: InstanceId, timer: u64) -> bool {
        self.armed.remove(&(instance, timer)).is_some()
    }

    fn is_current(&self, seq: u64, instance: InstanceId, timer: u64) -> bool {
        self.armed.get(&(instance, timer)).is_some_and(|&(_, s)| s == seq)
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<u64> {
        while let Some(Reverse((deadline, seq, inst, timer))) = self.heap.peek().copied() {
            if self.is_current(seq, inst, timer) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the timers due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Vec<(InstanceId, u64)> {
        let mut due = Vec::new();
        while let Some(Reverse((deadline, seq, inst, timer))) = self.heap.peek().copied() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            if self.is_current(seq, inst, timer) {
                self.armed.remove(&(inst, timer));
                due.push((inst, timer));
            }
        }
        due
    }

    fn remove_instance(&mut self, instance: InstanceId) {
        self.armed.retain(|(i, _), _| *i != instance);
    }
}

/// An fd a plugin owns and asked us to watch. The plugin promises (ABI) to
/// unwatch it before closing it, which is what `AsyncFd::register` requires.
struct PluginFd(RawFd);

impl AsRawFd for PluginFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

struct Watched {
    fd: AsyncFd<PluginFd>,
    events: u32,
}

/// Watched fds; polled by the node loop, changed synchronously by plugin
/// calls (so an unwatched fd is deregistered before the plugin closes it).
#[derive(Default)]
pub struct FdRegistry {
    watched: HashMap<(InstanceId, RawFd), Watched>,
}

impl FdRegistry {
    /// Readiness of every watched fd; readiness is cleared before it is
    /// reported, and the plugin then reads until EAGAIN, so no edge is lost.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Vec<(InstanceId, RawFd, u32)>> {
        let mut ready = Vec::new();
        for (&(inst, raw), w) in &self.watched {
            let mut events = 0;
            if w.events & MP_FD_READABLE != 0
                && let Poll::Ready(r) = w.fd.poll_read_ready(cx)
            {
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                events |= MP_FD_READABLE;
            }
            if w.events & MP_FD_WRITABLE != 0
                && let Poll::Ready(r) = w.fd.poll_write_ready(cx)
            {
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                events |= MP_FD_WRITABLE;
            }
            if events != 0 {
                ready.push((inst, raw, events));
            }
        }
        if ready.is_empty() { Poll::Pending } else { Poll::Ready(ready) }
    }
}

/// The host services of this daemon, shared by all plugin instances.
pub struct Services {
    started: Instant,
    identity: Arc<Identity>,
    node_name: String,
    pub timers: Mutex<Timers>,
    pub fds: Mutex<FdRegistry>,
    /// The last warning or error each instance logged, by (kind, name):
    /// why a `create` failed, for `status` (the status code alone says
    /// little).
    last_problem: Mutex<std::collections::HashMap<(&'static str, String), String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Services {
    /// The last warning or error instance `name` of `kind` logged.
    pub fn last_problem(&self, kind: &'static str, name: &str) -> Option<String> {
        lock(&self.last_problem).get(&(kind, name.to_owned())).cloned()
    }

    pub fn new(identity: Arc<Identity>, node_name: String) -> Services {
        Services {
            started: Instant::now(),
            identity,
            node_name,
            timers: Mutex::new(Timers::default()),
            fds: Mutex::new(FdRegistry::default()),
            last_problem: Mutex::new(Default::default()),
        }
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Forgets every timer and fd of an instance that is gone or disabled.
    pub fn forget_instance(&self, instance: InstanceId) {
        lock(&self.timers).remove_instance(instance);
        lock(&self.fds).watched.retain(|(i, _), _| *i != instance);
    }

    pub fn next_deadline(&self) -> Option<u64> {
        lock(&self.timers).next_deadline()
    }

    pub fn pop_due(&self, now: u64) -> Vec<(InstanceId, u64)> {
        lock(&self.timers).pop_due(now)
    }
}

impl HostServices for Services {
    fn log(&self, instance: &InstanceLabel, level: Level, message: &str) {
        let node = &self.node_name;
        if matches!(level, Level::Error | Level::Warn) {
            lock(&self.last_problem).insert((instance.kind, instance.name.clone()), message.to_owned());
        }
        match level {
            Level::Error => tracing::error!(target: "meshpay::plugin", %node, "{instance}: {message}"),
            Level::Warn => tracing::warn!(target: "meshpay::plugin", %node, "{instance}: {message}"),
            Level::Info => tracing::info!(target: "meshpay::plugin", %node, "{instance}: {message}"),
            Level::Debug => tracing::debug!(target: "meshpay::plugin", %node, "{instance}: {message}"),
            Level::Trace => tracing::trace!(target: "meshpay::plugin", %node, "{instance}: {message}"),
        }
    }

    fn now_ms(&self) -> u64 {
        self.uptime_ms()
    }

    fn node_key(&self) -> [u8; 32] {
        self.identity.public_key()
    }

    fn node_endpoint(&self) -> String {
        self.identity.endpoint()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.identity.sign(message)
    }

    fn set_timer(&self, instance: InstanceId, timer_id: u64, delay_ms: u64) -> Result<(), HostError> {
        let deadline = self.uptime_ms().saturating_add(delay_ms);
        lock(&self.timers).set(instance, timer_id, deadline);
        Ok(())
    }

    fn cancel_timer(&self, instance: InstanceId, timer_id: u64) -> bool {
        lock(&self.timers).cancel(instance, timer_id)
    }

    fn watch_fd(&self, instance: InstanceId, fd: RawFd, events: u32) -> Result<(), HostError> {
        let interest = match (events & MP_FD_READABLE != 0, events & MP_FD_WRITABLE != 0) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, true) => Interest::WRITABLE,
            (false, false) => return Err(HostError::Invalid),
        };
        let mut fds = lock(&self.fds);
        // Re-watching changes the interest: drop the old registration first.
        fds.watched.remove(&(instance, fd));
        // SAFETY: the plugin owns `fd` and must unwatch it before closing it
        // (ABI rule); unwatch drops this registration synchronously.
        let afd = unsafe { AsyncFd::register_with_interest(PluginFd(fd), interest) }.map_err(|e| {
            tracing::warn!("cannot watch fd {fd}: {e}");
            HostError::Invalid
        })?;
        fds.watched.insert((instance, fd), Watched { fd: afd, events });
        Ok(())
    }

    fn unwatch_fd(&self, instance: InstanceId, fd: RawFd) -> Result<(), HostError> {
        match lock(&self.fds).watched.remove(&(instance, fd)) {
            Some(_) => Ok(()),
            None => Err(HostError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_order_and_rearming_replaces() {
        let mut t = Timers::default();
        let (a, b) = (InstanceId(1), InstanceId(2));
        t.set(a, 1, 100);
        t.set(b, 1, 50);
        t.set(a, 1, 30); // re-armed earlier: the 100 entry is stale
        t.set(a, 2, 70);
        assert!(t.cancel(a, 2));
        assert!(!t.cancel(a, 2));
        assert_eq!(t.next_deadline(), Some(30));
        assert_eq!(t.pop_due(60), vec![(a, 1), (b, 1)]);
        assert_eq!(t.pop_due(1000), vec![]);
        assert_eq!(t.next_deadline(), None);
    }
}
