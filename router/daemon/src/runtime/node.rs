//! The node: plugin instances, the engine, and the glue between them. Runs
//! on the daemon's one event-loop thread; every plugin call happens here.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meshpay_abi::{LinkEvent, MP_LINK_DOWN, MP_LINK_UP};
use meshpay_engine::{Action, Engine, Event, LinkId};
use meshpay_host::{
    CallError, FdState, HostError, InstanceId, InstanceState, Plugin, Transport, TransportEvents,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::builtins;
use crate::config::{Config, PluginRef};
use crate::identity::{Identity, did_key, encode_hex};
use crate::runtime::services::Services;

/// Capacity of the queue from transports to the node loop (frames).
pub const FRAME_QUEUE: usize = 8192;
/// How many `on_fd` calls one readiness gets before others have a turn.
const FD_BUDGET: usize = 64;

/// A message from a transport instance to the node loop.
#[derive(Debug)]
pub enum TransportMsg {
    Frame { instance: InstanceId, peer: String, data: Vec<u8> },
    Link { instance: InstanceId, kind: u32, peer: String },
}

/// Transports' thread-safe delivery path: bounded for frames (drops are
/// counted), unbounded for the rare link events (a lost LINK_DOWN would
/// leave a ghost neighbour).
pub struct ChannelEvents {
    pub frames: mpsc::Sender<TransportMsg>,
    pub links: mpsc::UnboundedSender<TransportMsg>,
    pub dropped: AtomicU64,
}

impl TransportEvents for ChannelEvents {
    fn deliver(&self, instance: InstanceId, peer: &str, frame: &[u8]) -> Result<(), HostError> {
        let msg = TransportMsg::Frame { instance, peer: peer.to_owned(), data: frame.to_vec() };
        self.frames.try_send(msg).map_err(|_| {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            HostError::Full
        })
    }

    fn link_event(&self, instance: InstanceId, event: &LinkEvent<'_>) -> Result<(), HostError> {
        let msg = TransportMsg::Link { instance, kind: event.kind, peer: event.peer.to_owned() };
        self.links.send(msg).map_err(|_| HostError::Failed)
    }
}

#[derive(Default, Clone, Copy)]
struct TransportStats {
    frames_in: u64,
    frames_out: u64,
    send_busy: u64,
    send_failed: u64,
}

/// One configured transport: its instance once created, or why not.
struct TransportSlot {
    name: String,
    plugin_ref: String,
    plugin: Option<Arc<Plugin>>,
    instance: Option<Box<dyn Transport>>,
    /// Why the slot has no working instance (load or create failure).
    failure: Option<String>,
    stats: TransportStats,
}

impl TransportSlot {
    fn state(&self) -> InstanceState {
        match (&self.instance, &self.failure) {
            (Some(i), _) => i.state().clone(),
            (None, Some(reason)) => InstanceState::Disabled { reason: reason.clone() },
            (None, None) => InstanceState::Disabled { reason: "not created".into() },
        }
    }
}

pub struct Node {
    services: Arc<Services>,
    identity: Arc<Identity>,
    name: String,
    engine: Engine,
    slots: Vec<TransportSlot>,
    by_instance: BTreeMap<InstanceId, usize>,
    events: Arc<ChannelEvents>,
    /// fds whose plugin said "more" after its budget ran out.
    pending_fds: Vec<(InstanceId, RawFd, u32)>,
    state_dir: String,
}

impl Node {
    pub fn new(
        services: Arc<Services>,
        identity: Arc<Identity>,
        name: String,
        events: Arc<ChannelEvents>,
        state_dir: &Path,
    ) -> Node {
        let engine = Engine::new(identity.public_key());
        Node {
            services,
            identity,
            name,
            engine,
            slots: Vec::new(),
            by_instance: BTreeMap::new(),
            events,
            pending_fds: Vec::new(),
            state_dir: state_dir.display().to_string(),
        }
    }

    /// Loads and creates every enabled transport. Failures disable that
    /// transport with a logged reason; the node runs on with the others.
    pub fn create_transports(&mut self, config: &Config, state_dir: &Path) {
        let plugin_dir = config.plugin_dir();
        for (i, section) in config.transports.iter().enumerate() {
            let name = config.transport_name(i);
            if !section.enabled {
                tracing::info!("transport \"{name}\" is disabled in the config");
                continue;
            }
            let mut slot = TransportSlot {
                name: name.clone(),
                plugin_ref: section.plugin.clone(),
                plugin: None,
                instance: None,
                failure: None,
                stats: TransportStats::default(),
            };
            match load_plugin(&section.plugin_ref(&plugin_dir)) {
                Err(e) => {
                    tracing::error!("transport \"{name}\": {e}; this transport is disabled");
                    slot.failure = Some(e);
                }
                Ok(plugin) => {
                    let cfg = section.config_json(state_dir);
                    let services: Arc<dyn meshpay_host::HostServices> = self.services.clone();
                    let events: Arc<dyn TransportEvents> = self.events.clone();
                    match plugin.create_transport(&name, &cfg, services, events) {
                        Ok(instance) => {
                            self.by_instance.insert(instance.id(), self.slots.len());
                            slot.instance = Some(instance);
                        }
                        Err(e) => {
                            let reason = match &e {
                                CallError::Panicked { what } => format!("panicked in {what}"),
                                other => format!("create failed: {other}"),
                            };
                            tracing::error!(
                                "transport \"{name}\" ({}): {reason}; this transport is disabled",
                                plugin.descriptor().id
                            );
                            slot.failure = Some(reason);
                        }
                    }
                    slot.plugin = Some(plugin);
                }
            }
            self.slots.push(slot);
        }
    }

    /// Starts every created transport.
    pub fn start_transports(&mut self) {
        for i in 0..self.slots.len() {
            let Some(t) = self.slots[i].instance.as_mut() else { continue };
            match t.start() {
                Ok(()) => tracing::info!("{} started ({:?} mode)", t.label(), t.mode()),
                Err(e) => {
                    let id = t.id();
                    if !matches!(e, CallError::Panicked { .. }) {
                        t.disable(format!("start failed: {e}"));
                    }
                    tracing::error!("{}: start failed: {e}", t.label());
                    self.services.forget_instance(id);
                }
            }
        }
    }

    /// Stops and destroys every transport (clean shutdown).
    pub fn shutdown(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut t) = slot.instance.take() {
                if *t.state() == InstanceState::Active {
                    if let Err(e) = t.stop() {
                        tracing::warn!("{}: stop failed: {e}", t.label());
                    }
                }
                self.services.forget_instance(t.id());
                drop(t);
            }
        }
    }

    fn slot(&mut self, id: InstanceId) -> Option<&mut TransportSlot> {
        self.slots.get_mut(*self.by_instance.get(&id)?)
    }

    fn transport(&mut self, id: InstanceId) -> Option<&mut Box<dyn Transport>> {
        self.slot(id)?.instance.as_mut()
    }

    /// After a failed call: a panic has already quarantined the instance;
    /// forget its timers and fds so nothing calls it again.
    fn after_error(&mut self, id: InstanceId, what: &str, e: &CallError) {
        match e {
            CallError::Panicked { .. } | CallError::Disabled { .. } => self.services.forget_instance(id),
            CallError::Again => {}
            _ => tracing::debug!("transport instance {id:?}: {what}: {e}"),
        }
    }

    /// A message from a transport.
    pub fn on_transport_msg(&mut self, msg: TransportMsg) {
        let now = self.services.uptime_ms();
        match msg {
            TransportMsg::Frame { instance, peer, data } => {
                if let Some(slot) = self.slot(instance) {
                    slot.stats.frames_in += 1;
                }
                self.engine
                    .handle(now, Event::Frame { link: LinkId { transport: instance.0, peer }, data: &data });
            }
            TransportMsg::Link { instance, kind, peer } => {
                let link = LinkId { transport: instance.0, peer };
                match kind {
                    MP_LINK_UP => {
                        tracing::info!("link up: {} via transport {:?}", link.peer, instance);
                        self.engine.handle(now, Event::LinkUp { link });
                    }
                    MP_LINK_DOWN => {
                        tracing::info!("link down: {} via transport {:?}", link.peer, instance);
                        self.engine.handle(now, Event::LinkDown { link });
                    }
                    _ => {}
                }
            }
        }
        self.run_actions();
    }

    /// Carries out what the engine asked for.
    pub fn run_actions(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Send { link, frame } => {
                    let id = InstanceId(link.transport);
                    let Some(slot) = self.slot(id) else { continue };
                    let Some(t) = slot.instance.as_mut() else { continue };
                    let result = t.send(&link.peer, &frame);
                    match &result {
                        Ok(()) => slot.stats.frames_out += 1,
                        Err(CallError::Again) => slot.stats.send_busy += 1,
                        Err(_) => slot.stats.send_failed += 1,
                    }
                    if let Err(e) = result {
                        self.after_error(id, "send", &e);
                    }
                }
                Action::NeighbourUp { link, node_key } => {
                    tracing::info!("neighbour {} up on {}", encode_hex(&node_key), link.peer)
                }
                Action::NeighbourDown { link, node_key } => {
                    tracing::info!("neighbour {} down on {}", encode_hex(&node_key), link.peer)
                }
            }
        }
    }

    /// Fires due timers.
    pub fn fire_timers(&mut self) {
        let now = self.services.uptime_ms();
        for (id, timer) in self.services.pop_due(now) {
            let Some(t) = self.transport(id) else { continue };
            if let Err(e) = t.on_timer(timer) {
                self.after_error(id, "on_timer", &e);
            }
        }
    }

    /// Calls `on_fd` for ready fds, each until drained or out of budget.
    pub fn on_fds_ready(&mut self, ready: Vec<(InstanceId, RawFd, u32)>) {
        for (id, fd, events) in ready {
            let mut drained = false;
            for _ in 0..FD_BUDGET {
                let Some(t) = self.transport(id) else {
                    drained = true;
                    break;
                };
                match t.on_fd(fd, events) {
                    Ok(FdState::Drained) => {
                        drained = true;
                        break;
                    }
                    Ok(FdState::More) => {}
                    Err(e) => {
                        self.after_error(id, "on_fd", &e);
                        drained = true;
                        break;
                    }
                }
            }
            if !drained {
                self.pending_fds.push((id, fd, events));
            }
        }
    }

    /// Fds that still have work, to run before waiting again.
    pub fn take_pending_fds(&mut self) -> Vec<(InstanceId, RawFd, u32)> {
        std::mem::take(&mut self.pending_fds)
    }

    pub fn has_pending_fds(&self) -> bool {
        !self.pending_fds.is_empty()
    }

    /// A control request.
    pub fn control(&mut self, method: &str, _params: &Value) -> Result<Value, String> {
        match method {
            "status" => Ok(self.status()),
            other => Err(format!("unknown method `{other}` (try `status`)")),
        }
    }

    fn status(&self) -> Value {
        let key = self.identity.public_key();
        let counters = self.engine.counters();
        let transports: Vec<Value> = self
            .slots
            .iter()
            .map(|s| {
                let (state, reason) = match s.state() {
                    InstanceState::Active => ("active", None),
                    InstanceState::Disabled { reason } => ("disabled", Some(reason)),
                };
                let d = s.plugin.as_ref().map(|p| p.descriptor());
                json!({
                    "name": s.name,
                    "plugin": d.map(|d| d.id.clone()).unwrap_or_else(|| s.plugin_ref.clone()),
                    "mode": s.instance.as_ref().map(|i| format!("{:?}", i.mode())),
                    "state": state,
                    "reason": reason,
                    "frames_in": s.stats.frames_in,
                    "frames_out": s.stats.frames_out,
                    "send_busy": s.stats.send_busy,
                    "send_failed": s.stats.send_failed,
                })
            })
            .collect();
        let mut plugins: Vec<Value> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for p in self.slots.iter().filter_map(|s| s.plugin.as_ref()) {
            let d = p.descriptor();
            if seen.insert(d.id.clone()) {
                plugins.push(json!({
                    "id": d.id,
                    "name": d.name,
                    "version": d.version,
                    "vendor": d.vendor,
                    "abi": d.abi.to_string(),
                    "kinds": meshpay_host::kind_names(d.kinds),
                    "source": p.path().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in".into()),
                }));
            }
        }
        let now = self.services.uptime_ms();
        let neighbours: Vec<Value> = self
            .engine
            .neighbours()
            .map(|n| {
                let transport = self
                    .by_instance
                    .get(&InstanceId(n.link.transport))
                    .map(|&i| self.slots[i].name.clone())
                    .unwrap_or_default();
                json!({
                    "node": encode_hex(&n.node_key),
                    "did": did_key(&n.node_key),
                    "transport": transport,
                    "peer": n.link.peer,
                    "for_s": now.saturating_sub(n.since_ms) as f64 / 1000.0,
                })
            })
            .collect();
        json!({
            "node": {
                "name": self.name,
                "id": encode_hex(&key),
                "did": did_key(&key),
                "endpoint": self.identity.endpoint(),
                "state_dir": self.state_dir,
            },
            "version": env!("CARGO_PKG_VERSION"),
            "abi": meshpay_abi::ABI_VERSION.to_string(),
            "uptime_s": now as f64 / 1000.0,
            "plugins": plugins,
            "transports": transports,
            "neighbours": neighbours,
            "counters": {
                "frames_in": counters.frames_in,
                "frames_out": counters.frames_out,
                "frames_malformed": counters.frames_malformed,
                "frames_unknown_link": counters.frames_unknown_link,
                "frames_dropped_queue_full": self.events.dropped.load(Ordering::Relaxed),
            },
        })
    }
}

/// Loads a plugin by reference; the error is an operator-facing message.
pub fn load_plugin(r: &PluginRef) -> Result<Arc<Plugin>, String> {
    match r {
        PluginRef::Builtin(id) => match builtins::find(id) {
            Some(entry) => Plugin::builtin(entry).map_err(|e| e.to_string()),
            None => Err(format!(
                "no built-in plugin `{id}` (built-ins: {}); to load a library, give a path or a file name ending in .so",
                builtins::BUILTINS.iter().map(|(i, _)| *i).collect::<Vec<_>>().join(", ")
            )),
        },
        PluginRef::Library(path) => Plugin::load(path).map_err(|e| e.to_string()),
    }
}
