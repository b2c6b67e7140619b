//! What the engine's integration tests share: a routing plugin that floods
//! (written here so the tests do not depend on the plugin crates), loaded
//! through a built-in descriptor, and host services that keep the plugins'
//! log lines.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::Mutex;

use meshpay_abi::sdk::{Forwarder, Host, PluginError, RoutingHost, RoutingPlugin};
use meshpay_abi::{BundleInfo, PeerInfo};
use meshpay_host::{HostError, HostServices, InstanceId, InstanceLabel, Level};

/// Routing: every bundle to every neighbour.
pub struct Flood;

impl RoutingPlugin for Flood {
    fn create(_: Host, _: RoutingHost, _: &[u8]) -> Result<Self, PluginError> {
        Ok(Flood)
    }
    fn on_contact(&mut self, _: &PeerInfo<'_>, _: u32) -> Result<(), PluginError> {
        Ok(())
    }
    fn decide(
        &mut self,
        _: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
    ) -> Result<(), PluginError> {
        for i in 0..peers.len() {
            out.forward(i, 1)?;
        }
        Ok(())
    }
}

meshpay_abi::meshpay_plugin! {
    pub fn flood_entry;
    id: "org.meshpay.test.flood",
    name: "flood",
    version: "0",
    vendor: "tests",
    description: "",
    routing: Flood,
}

/// Host services of one test node: its key, no timers or fds (the tests
/// drive time through the engine's `Clock`), and the plugins' log lines.
pub struct Services {
    pub key: [u8; 32],
    pub logs: Mutex<Vec<String>>,
}

impl Services {
    pub fn new(key: [u8; 32]) -> Services {
        Services { key, logs: Mutex::default() }
    }
}

impl HostServices for Services {
    fn log(&self, _: &InstanceLabel, _: Level, message: &str) {
        self.logs.lock().unwrap().push(message.to_owned());
    }
    fn now_ms(&self) -> u64 {
        0
    }
    fn node_key(&self) -> [u8; 32] {
        self.key
    }
    fn node_endpoint(&self) -> String {
        format!("dtn://{}/", self.key.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
    fn sign(&self, _: &[u8]) -> [u8; 64] {
        [0; 64]
    }
    fn set_timer(&self, _: InstanceId, _: u64, _: u64) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn cancel_timer(&self, _: InstanceId, _: u64) -> bool {
        false
    }
    fn watch_fd(&self, _: InstanceId, _: i32, _: u32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn unwatch_fd(&self, _: InstanceId, _: i32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
}
