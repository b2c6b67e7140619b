//! Shared pieces of the meshpay benchmarks.
//!
//! The `abi` area compares a call into a plugin through the C ABI (the
//! `Box<dyn meshpay_host::Transport>` / `Box<dyn meshpay_host::Routing>` that
//! [`Plugin::builtin`] produces, the same descriptor and vtable path a `.so`
//! takes) with a call into the *same plugin struct* through a plain Rust
//! trait object ([`DirectSend`], [`DirectDecide`]). The difference is what
//! the ABI costs per call.
//!
//! Everything here is deliberately trivial: a [`HostServices`] with no-op
//! timers and fds and a fixed Ed25519 key, a [`TransportEvents`] that counts,
//! a transport whose `send` adds the frame length to a counter, and a routing
//! plugin whose `decide` forwards to every peer.

use std::hint::black_box;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signer, SigningKey};
use meshpay_abi::sdk::{
    Forwarder, Host, Level, PluginError, RoutingHost, RoutingPlugin, TransportHost, TransportMode,
    TransportPlugin,
};
use meshpay_abi::{BundleInfo, LinkEvent, MP_COPIES_UNLIMITED, PeerInfo};
use meshpay_host::{
    HostError, HostServices, InstanceId, InstanceLabel, Plugin, Routing, Transport, TransportEvents,
};

// ------------------------------------------------------------------ host side

/// A host with nothing behind it: timers and fds are accepted and never fire,
/// the clock stands still, signatures use a fixed key. Log lines are kept
/// (they are only written outside the measured loops, and the bench reads the
/// plugins' counters back from them).
pub struct BenchServices {
    key: SigningKey,
    logs: Mutex<Vec<String>>,
}

impl BenchServices {
    /// The fixed node key's seed.
    pub const KEY_SEED: [u8; 32] = [7; 32];

    pub fn new() -> Arc<BenchServices> {
        Arc::new(BenchServices { key: SigningKey::from_bytes(&Self::KEY_SEED), logs: Mutex::new(Vec::new()) })
    }

    /// Every line logged so far, as `level message`.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl HostServices for BenchServices {
    fn log(&self, _instance: &InstanceLabel, level: Level, message: &str) {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{level:?} {message}"));
    }
    fn now_ms(&self) -> u64 {
        0
    }
    fn node_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    fn node_endpoint(&self) -> String {
        "dtn://bench.meshpay/".to_owned()
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
    fn set_timer(&self, _: InstanceId, _: u64, _: u64) -> Result<(), HostError> {
        Ok(())
    }
    fn cancel_timer(&self, _: InstanceId, _: u64) -> bool {
        false
    }
    fn watch_fd(&self, _: InstanceId, _: RawFd, _: u32) -> Result<(), HostError> {
        Ok(())
    }
    fn unwatch_fd(&self, _: InstanceId, _: RawFd) -> Result<(), HostError> {
        Ok(())
    }
}

/// Counts what transports hand to the router.
#[derive(Default)]
pub struct CountingEvents {
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub link_events: AtomicU64,
}

impl TransportEvents for CountingEvents {
    fn deliver(&self, _: InstanceId, _peer: &str, frame: &[u8]) -> Result<(), HostError> {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn link_event(&self, _: InstanceId, _event: &LinkEvent<'_>) -> Result<(), HostError> {
        self.link_events.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// -------------------------------------------------------- the direct baseline

/// The baseline: the same `send` as a plain Rust trait object, no ABI.
pub trait DirectSend {
    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), PluginError>;
    /// `(frames, bytes)` sent so far.
    fn sent(&self) -> (u64, u64);
}

/// The baseline: the same `decide` as a plain Rust trait object, writing to
/// the same `(peer index, copies)` list [`Routing::decide`] fills.
pub trait DirectDecide {
    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Vec<(usize, u32)>,
    ) -> Result<(), PluginError>;
}

/// Where the shared `decide` code writes: the SDK's [`Forwarder`] (ABI path)
/// or a plain `Vec` (direct path).
trait ForwardTo {
    fn forward_to(&mut self, peer_index: usize, copies: u32) -> Result<(), PluginError>;
}

impl ForwardTo for Forwarder<'_> {
    #[inline]
    fn forward_to(&mut self, peer_index: usize, copies: u32) -> Result<(), PluginError> {
        self.forward(peer_index, copies)
    }
}

impl ForwardTo for Vec<(usize, u32)> {
    #[inline]
    fn forward_to(&mut self, peer_index: usize, copies: u32) -> Result<(), PluginError> {
        self.push((peer_index, copies));
        Ok(())
    }
}

// ------------------------------------------------------------------- plugins

/// A transport whose `send` only counts: the smallest body a real call can
/// have, so the measured time is the call path itself.
#[derive(Default)]
pub struct BenchTransport {
    host: Option<Host>,
    frames: u64,
    bytes: u64,
}

impl BenchTransport {
    #[inline]
    fn record(&mut self, _peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        self.frames += 1;
        self.bytes += frame.len() as u64;
        Ok(())
    }
}

impl TransportPlugin for BenchTransport {
    const MODE: TransportMode = TransportMode::PollFd;

    fn create(host: Host, _link: TransportHost, _config: &[u8]) -> Result<Self, PluginError> {
        Ok(BenchTransport { host: Some(host), frames: 0, bytes: 0 })
    }
    fn start(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
    /// Reports the counters through the host log, so the bench can check
    /// that every measured call did its work.
    fn stop(&mut self) -> Result<(), PluginError> {
        if let Some(host) = &self.host {
            host.log(Level::Info, &format!("sent {} frames {} bytes", self.frames, self.bytes));
        }
        Ok(())
    }
    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        self.record(peer, frame)
    }
}

impl DirectSend for BenchTransport {
    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        self.record(peer, frame)
    }
    fn sent(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }
}

/// A routing plugin that forwards every bundle to every peer (epidemic
/// routing without the "does the peer already have it" check).
#[derive(Default)]
pub struct BenchRouting;

impl BenchRouting {
    #[inline]
    fn decide_into(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut impl ForwardTo,
    ) -> Result<(), PluginError> {
        let copies = if bundle.copies == MP_COPIES_UNLIMITED { MP_COPIES_UNLIMITED } else { 1 };
        for index in 0..peers.len() {
            out.forward_to(index, copies)?;
        }
        Ok(())
    }
}

impl RoutingPlugin for BenchRouting {
    fn create(_host: Host, _routing: RoutingHost, _config: &[u8]) -> Result<Self, PluginError> {
        Ok(BenchRouting)
    }
    fn on_contact(&mut self, _peer: &PeerInfo<'_>, _kind: u32) -> Result<(), PluginError> {
        Ok(())
    }
    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
    ) -> Result<(), PluginError> {
        self.decide_into(bundle, peers, out)
    }
}

impl DirectDecide for BenchRouting {
    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Vec<(usize, u32)>,
    ) -> Result<(), PluginError> {
        self.decide_into(bundle, peers, out)
    }
}

meshpay_abi::meshpay_plugin! {
    /// The bench transport's descriptor.
    pub fn bench_transport_entry;
    id: "org.meshpay.bench.transport",
    name: "Bench transport",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "Counts frames; for measuring the ABI call path",
    transport: BenchTransport,
}

meshpay_abi::meshpay_plugin! {
    /// The bench routing plugin's descriptor.
    pub fn bench_routing_entry;
    id: "org.meshpay.bench.routing",
    name: "Bench routing",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "Forwards every bundle to every peer; for measuring the ABI call path",
    routing: BenchRouting,
}

// ------------------------------------------------------------------ fixtures

/// A transport peer address as a UDP/IPv6 link-local transport names it.
pub const PEER: &str = "[fe80::1%mesh0]:4556";
/// Frame length: a typical 802.11s mesh MTU-sized frame. `send` does not
/// copy it, so the length only matters to the counter.
pub const FRAME_LEN: usize = 1200;

pub fn frame() -> Vec<u8> {
    (0..FRAME_LEN).map(|i| i as u8).collect()
}

/// The bundle `decide` is asked about.
pub fn bundle() -> BundleInfo<'static> {
    BundleInfo {
        id: &[0x5a; 32],
        source: "dtn://src.meshpay/wallet",
        destination: "dtn://~authorities/quorum",
        priority: 1,
        created_ms: 800_000_000_000,
        lifetime_ms: 86_400_000,
        age_ms: 1_500,
        payload_len: 512,
        hop_count: 2,
        copies: MP_COPIES_UNLIMITED,
        payload: &[],
    }
}

/// Three neighbours in contact.
pub fn peers() -> [PeerInfo<'static>; 3] {
    [
        PeerInfo { node: "dtn://node-a.meshpay/", link_metric: Some(5_500), signal_dbm: Some(-48) },
        PeerInfo { node: "dtn://node-b.meshpay/", link_metric: Some(8_193), signal_dbm: Some(-67) },
        PeerInfo { node: "dtn://node-c.meshpay/", link_metric: None, signal_dbm: None },
    ]
}

// ------------------------------------------------------------ the contenders

/// The bench transport through the C ABI, started. Goes through
/// [`Plugin::builtin`]: the same validation and vtable copy as a `.so`.
pub fn abi_transport(services: Arc<BenchServices>) -> Box<dyn Transport> {
    let plugin = Plugin::builtin(bench_transport_entry).expect("bench transport descriptor is valid");
    let mut t = plugin
        .create_transport("bench0", b"{}", services, Arc::new(CountingEvents::default()))
        .expect("bench transport creates");
    t.start().expect("bench transport starts");
    t
}

/// The same plugin struct as a plain trait object. `black_box` hides the
/// concrete type, so the compiler cannot devirtualise the call.
pub fn direct_transport() -> Box<dyn DirectSend> {
    black_box(Box::new(BenchTransport::default()) as Box<dyn DirectSend>)
}

/// The bench routing plugin through the C ABI.
pub fn abi_routing(services: Arc<BenchServices>) -> Box<dyn Routing> {
    let plugin = Plugin::builtin(bench_routing_entry).expect("bench routing descriptor is valid");
    plugin.create_routing("bench-routing", b"{}", services).expect("bench routing creates")
}

/// The same routing struct as a plain trait object.
pub fn direct_routing() -> Box<dyn DirectDecide> {
    black_box(Box::new(BenchRouting) as Box<dyn DirectDecide>)
}

/// Stops an ABI transport and returns the `(frames, bytes)` it logged.
pub fn stop_and_count(t: &mut dyn Transport, services: &BenchServices) -> Option<(u64, u64)> {
    t.stop().ok()?;
    let line = services.logs().into_iter().rev().find(|l| l.contains("sent "))?;
    let mut words = line.split_whitespace().skip_while(|w| *w != "sent").skip(1);
    let frames = words.next()?.parse().ok()?;
    let bytes = words.nth(1)?.parse().ok()?;
    Some((frames, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_and_direct_paths_do_the_same_work() {
        let services = BenchServices::new();
        let frame = frame();
        let mut abi = abi_transport(services.clone());
        let mut direct = direct_transport();
        for _ in 0..10 {
            abi.send(PEER, &frame).unwrap();
            direct.send(PEER, &frame).unwrap();
        }
        let expected = (10, 10 * FRAME_LEN as u64);
        assert_eq!(stop_and_count(&mut *abi, &services), Some(expected));
        assert_eq!(direct.sent(), expected);

        let (bundle, peers) = (bundle(), peers());
        let (mut via_abi, mut via_direct) = (Vec::new(), Vec::new());
        abi_routing(services.clone()).decide(&bundle, &peers, &mut via_abi).unwrap();
        direct_routing().decide(&bundle, &peers, &mut via_direct).unwrap();
        let all: Vec<_> = (0..3).map(|i| (i, MP_COPIES_UNLIMITED)).collect();
        assert_eq!(via_abi, all);
        assert_eq!(via_direct, all);
    }

    #[test]
    fn services_sign_with_the_fixed_key() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let s = BenchServices::new();
        let key = VerifyingKey::from_bytes(&s.node_key()).unwrap();
        let sig = s.sign(b"bench");
        assert!(key.verify(b"bench", &Signature::from_bytes(&sig)).is_ok());
    }
}
