//! A small `HostServices` for driving a routing plugin through the real
//! plugin host (`meshpay-host`) and the C ABI: a virtual clock the test
//! advances, recorded logs and timers. Control messages and other requests
//! come out of the instance as `HostAction`s (`take_actions`).

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use meshpay_host::{HostError, HostServices, InstanceId, InstanceLabel, Level};

/// A node key whose hex endpoint is easy to tell apart in failures.
pub fn key(byte: u8) -> [u8; 32] {
    [byte; 32]
}

/// `dtn://<hex key>/`, as the daemon names nodes.
pub fn endpoint(key: &[u8; 32]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("dtn://{hex}/")
}

pub struct Services {
    key: [u8; 32],
    clock: AtomicU64,
    logs: Mutex<Vec<(Level, String)>>,
    /// (instance, timer id) → due time.
    timers: Mutex<BTreeMap<(u64, u64), u64>>,
}

impl Services {
    pub fn new(key: [u8; 32]) -> Arc<Services> {
        Arc::new(Services {
            key,
            clock: AtomicU64::new(0),
            logs: Mutex::new(Vec::new()),
            timers: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn endpoint(&self) -> String {
        endpoint(&self.key)
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.lock().unwrap().clone()
    }

    /// The timer ids of `instance` that are due now, disarmed (the caller
    /// fires them).
    pub fn take_due(&self, instance: InstanceId) -> Vec<u64> {
        let now = self.now();
        let mut timers = self.timers.lock().unwrap();
        let due: Vec<(u64, u64)> =
            timers.iter().filter(|&(&(i, _), &at)| i == instance.0 && at <= now).map(|(&k, _)| k).collect();
        due.iter().map(|k| timers.remove(k).map(|_| k.1).unwrap()).collect()
    }

    /// When `instance`'s timer `id` is due, if armed.
    pub fn timer(&self, instance: InstanceId, id: u64) -> Option<u64> {
        self.timers.lock().unwrap().get(&(instance.0, id)).copied()
    }
}

impl HostServices for Services {
    fn log(&self, _instance: &InstanceLabel, level: Level, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_owned()));
    }
    fn now_ms(&self) -> u64 {
        self.now()
    }
    fn node_key(&self) -> [u8; 32] {
        self.key
    }
    fn node_endpoint(&self) -> String {
        self.endpoint()
    }
    fn sign(&self, _message: &[u8]) -> [u8; 64] {
        [0; 64]
    }
    fn set_timer(&self, instance: InstanceId, timer_id: u64, delay_ms: u64) -> Result<(), HostError> {
        let due = self.now() + delay_ms;
        self.timers.lock().unwrap().insert((instance.0, timer_id), due);
        Ok(())
    }
    fn cancel_timer(&self, instance: InstanceId, timer_id: u64) -> bool {
        self.timers.lock().unwrap().remove(&(instance.0, timer_id)).is_some()
    }
    fn watch_fd(&self, _instance: InstanceId, _fd: RawFd, _events: u32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn unwatch_fd(&self, _instance: InstanceId, _fd: RawFd) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
}
