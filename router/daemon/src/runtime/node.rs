//! The node: plugin instances, the store, the engine, and the glue between
//! them. Runs on the daemon's one event-loop thread; every plugin call and
//! every store transaction happens here.
//!
//! Each turn of the loop is one store batch: events go into the engine, the
//! batch commits (fsync), and only then do the frames the engine queued go
//! out. An acknowledgement therefore never precedes what it acknowledges.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use meshpay_abi::{MP_LINK_DOWN, MP_LINK_UP, MP_LINK_UPDATE};
use meshpay_engine::{Action, Clock, Engine, EngineConfig, Event, LinkId, Note, RateLimit, Submit};
use meshpay_host::{
    CallError, FdState, HostServices, InstanceId, InstanceState, Plugin, Transport, TransportEvents,
};
use meshpay_store::{Batch, Store, StoreConfig, StoreError};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::builtins;
use crate::config::{Config, PluginRef, PluginSection};
use crate::control::Reply;
use crate::identity::{Identity, did_key, encode_hex};
use crate::runtime::services::Services;
use crate::runtime::transport_queue::{ChannelEvents, TransportMsg};

/// How many `on_fd` calls one readiness gets before others have a turn.
const FD_BUDGET: usize = 64;
/// Longest a `recv` may wait.
const MAX_RECV_WAIT_MS: u64 = 60_000;
/// Most payload bytes one `recv` reply carries (beyond its first item): what
/// a request may carry, so a reply is no larger than the largest request.
const MAX_RECV_BYTES: usize = crate::control::MAX_ATTACHED;

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

/// What a `recv` hands over: its items and, in binary mode, their
/// payloads as attachments.
struct Delivered {
    items: Vec<Value>,
    data: Vec<Vec<u8>>,
}

impl Delivered {
    fn into_reply(self) -> Reply {
        Reply::ok_with(json!({ "items": self.items }), self.data)
    }
}

/// A `recv` waiting for a payload.
struct RecvWaiter {
    max: usize,
    /// Payloads as attachments rather than base64.
    binary: bool,
    deadline_ms: u64,
    reply: oneshot::Sender<Reply>,
}

pub struct Node {
    services: Arc<Services>,
    identity: Arc<Identity>,
    name: String,
    store: Store,
    engine: Engine,
    slots: Vec<TransportSlot>,
    by_instance: BTreeMap<InstanceId, usize>,
    events: Arc<ChannelEvents>,
    /// fds whose plugin said "more" after its budget ran out.
    pending_fds: Vec<(InstanceId, RawFd, u32)>,
    waiters: HashMap<String, Vec<RecvWaiter>>,
    state_dir: String,
    /// Store failures (disk full): the batch was aborted; reported in status.
    store_errors: u64,
    /// Store batches committed (each one fsync): frames per commit is what
    /// group commit achieves.
    store_commits: u64,
    last_store_error: Option<String>,
    /// The 802.11s interface, if the config has one.
    mesh: Option<super::mesh::Mesh>,
    /// Link quality last told to the engine, per link.
    mesh_quality: HashMap<LinkId, (u32, Option<i32>)>,
    next_mesh_poll_ms: u64,
    /// Why the configured consensus plugin is not running, if it is not.
    consensus_failure: Option<String>,
}

/// Why the node could not start.
pub type StartError = anyhow::Error;

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Node {
    /// Opens the store, creates the routing plugin and the engine.
    pub fn new(
        services: Arc<Services>,
        identity: Arc<Identity>,
        name: String,
        events: Arc<ChannelEvents>,
        config: &Config,
        state_dir: &Path,
    ) -> Result<Node, StartError> {
        let st = &config.store;
        let quota = st.quota_mb << 20;
        let store_cfg = StoreConfig {
            quota_bytes: quota,
            max_bundle_bytes: st.max_bundle_kb << 10,
            map_bytes: st.map_mb.map(|m| m << 20).unwrap_or_else(|| meshpay_store::default_map_bytes(quota)),
        };
        let db = state_dir.join("db");
        let store = Store::open(&db, store_cfg)
            .map_err(|e| anyhow::anyhow!("cannot open the store in {}: {e}", db.display()))?;
        let (held_bytes, held) = store.usage()?;
        tracing::info!(
            "store {}: {held} bundles, {held_bytes} bytes held (quota {} MiB)",
            db.display(),
            st.quota_mb
        );

        let section = config.routing_section();
        let plugin = load_plugin(&section.plugin_ref(&config.plugin_dir()))
            .map_err(|e| anyhow::anyhow!("routing plugin: {e}"))?;
        let routing_services: Arc<dyn HostServices> = services.clone();
        let routing_cfg = section.config_json(state_dir).map_err(|e| anyhow::anyhow!("routing: {e}"))?;
        let routing = plugin
            .create_routing(section.name.as_deref().unwrap_or("routing"), &routing_cfg, routing_services)
            .map_err(|e| anyhow::anyhow!("routing plugin {}: {e}", plugin.descriptor().id))?;
        tracing::info!("routing: {} {}", plugin.descriptor().id, plugin.descriptor().version);

        let b = &config.bundles;
        let limits = meshpay_bundle::Limits {
            max_bundle_bytes: (st.max_bundle_kb << 10) as usize,
            ..meshpay_bundle::Limits::default()
        };
        let engine_cfg = EngineConfig {
            limits,
            default_lifetime_ms: b.default_lifetime_s * 1000,
            hop_limit: b.hop_limit,
            window: b.window,
            retransmit_ms: b.retransmit_ms,
            peer_rate: RateLimit {
                bundles_per_s: b.peer_rate_bundles_per_s,
                bytes_per_s: b.peer_rate_mb_per_s * 1e6,
                burst_s: 1.0,
            },
            peer_quota_bytes: b.peer_quota_mb << 20,
            ..EngineConfig::default()
        };
        let engine = Engine::new(engine_cfg, identity.public_key(), routing);
        let mut node = Node {
            services,
            identity,
            name,
            store,
            engine,
            slots: Vec::new(),
            by_instance: BTreeMap::new(),
            events,
            pending_fds: Vec::new(),
            waiters: HashMap::new(),
            state_dir: state_dir.display().to_string(),
            store_errors: 0,
            store_commits: 0,
            last_store_error: None,
            mesh: None,
            mesh_quality: HashMap::new(),
            next_mesh_poll_ms: 0,
            consensus_failure: None,
        };
        node.with_batch(|engine, clock, batch| engine.load(clock, batch));
        if let Some(section) = &config.consensus {
            node.create_consensus(section, config, state_dir);
        }
        Ok(node)
    }

    /// Loads and creates the consensus plugin inside one store batch (its
    /// tables are created and checked in the same transaction), then hands
    /// it to the engine. A failure leaves the node running without
    /// payments, with the reason logged and in `status`.
    fn create_consensus(&mut self, section: &PluginSection, config: &Config, state_dir: &Path) {
        let name = section.name.as_deref().unwrap_or("consensus");
        if !section.enabled {
            tracing::info!("consensus \"{name}\" is disabled in the config");
            return;
        }
        let fail = |node: &mut Node, reason: String| {
            tracing::error!("consensus \"{name}\": {reason}; this node runs without its consensus plugin");
            node.consensus_failure = Some(reason);
        };
        let plugin = match load_plugin(&section.plugin_ref(&config.plugin_dir())) {
            Ok(p) => p,
            Err(e) => return fail(self, e),
        };
        let cfg = match section.config_json(state_dir) {
            Ok(c) => c,
            Err(e) => return fail(self, e),
        };
        let id = plugin.descriptor().id.clone();
        let services: Arc<dyn HostServices> = self.services.clone();
        let created = self.store.batch().and_then(|mut batch| {
            let r = {
                let mut call = batch.plugin_call(&id);
                let r = plugin.create_consensus(name, &cfg, services, &mut call);
                call.finish(r.is_ok())?;
                r
            };
            if r.is_ok() {
                batch.commit()?;
            }
            Ok(r)
        });
        match created {
            Ok(Ok(instance)) => {
                tracing::info!("consensus: {id} {}", plugin.descriptor().version);
                self.engine.set_consensus(instance);
            }
            Ok(Err(e)) => {
                let reason = create_failure(&self.services, "consensus", name, &e);
                fail(self, format!("{id}: {reason}"))
            }
            Err(e) => fail(self, format!("store: {e}")),
        }
    }

    fn clock(&self) -> Clock {
        Clock { mono_ms: self.services.uptime_ms(), unix_ms: unix_ms() }
    }

    /// Runs `f` in one store batch, commits, then carries out what the
    /// engine asked for. A store failure aborts the batch: nothing in it
    /// happened and none of its frames go out.
    fn with_batch<T>(
        &mut self,
        f: impl FnOnce(&mut Engine, Clock, &mut Batch<'_>) -> Result<T, StoreError>,
    ) -> Option<T> {
        let r = self
            .try_batch(|engine, clock, batch| f(engine, clock, batch).map(Ok::<T, std::convert::Infallible>));
        r.map(|r| match r {
            Ok(v) => v,
            Err(never) => match never {},
        })
    }

    /// Like `with_batch`, but the closure may also refuse (`Ok(Err(..))`):
    /// the batch is then abandoned, nothing in it happened, and the refusal
    /// is returned.
    fn try_batch<T, E>(
        &mut self,
        f: impl FnOnce(&mut Engine, Clock, &mut Batch<'_>) -> Result<Result<T, E>, StoreError>,
    ) -> Option<Result<T, E>> {
        let clock = self.clock();
        let result = match self.store.batch() {
            Ok(mut batch) => match f(&mut self.engine, clock, &mut batch) {
                Ok(Ok(v)) => batch.commit().map(|()| Ok(v)),
                // Dropping the batch aborts it.
                Ok(Err(refused)) => Ok(Err(refused)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(Ok(v)) => {
                self.store_commits += 1;
                self.run_actions();
                Some(Ok(v))
            }
            Ok(Err(refused)) => {
                while self.engine.poll_action().is_some() {}
                Some(Err(refused))
            }
            Err(e) => {
                self.store_failed(e);
                None
            }
        }
    }

    fn store_failed(&mut self, e: StoreError) {
        self.store_errors += 1;
        tracing::error!("store: {e}; the batch was aborted and nothing in it was acknowledged");
        self.last_store_error = Some(e.to_string());
        // Drop what the aborted batch queued.
        while self.engine.poll_action().is_some() {}
    }

    /// Takes the mesh interface (set up before the transports start).
    pub fn set_mesh(&mut self, mesh: super::mesh::Mesh) {
        self.mesh = Some(mesh);
    }

    pub fn mesh(&self) -> Option<&super::mesh::Mesh> {
        self.mesh.as_ref()
    }

    /// Re-reads the mesh's peers and paths, and tells the engine about link
    /// quality changes of neighbours reached over it.
    pub fn poll_mesh(&mut self) {
        let Some(mesh) = self.mesh.as_mut() else { return };
        mesh.poll();
        self.next_mesh_poll_ms = self.services.uptime_ms() + mesh.poll_ms();
        let mut updates = Vec::new();
        for n in self.engine.neighbours() {
            let Some(q) = mesh.quality(&n.link.peer) else { continue };
            if self.mesh_quality.get(&n.link) != Some(&q) {
                self.mesh_quality.insert(n.link.clone(), q);
                updates.push((n.link, q));
            }
        }
        let live: std::collections::HashSet<LinkId> =
            self.engine.neighbours().into_iter().map(|n| n.link).collect();
        self.mesh_quality.retain(|l, _| live.contains(l));
        if updates.is_empty() {
            return;
        }
        self.with_batch(|engine, clock, batch| {
            for (link, (metric, signal_dbm)) in updates {
                engine.handle(clock, batch, Event::LinkUpdate { link, metric: Some(metric), signal_dbm })?;
            }
            Ok(())
        });
    }

    /// When the mesh is due to be polled again.
    pub fn next_mesh_poll(&self) -> Option<u64> {
        self.mesh.as_ref().map(|_| self.next_mesh_poll_ms)
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
                Ok(plugin) => 'create: {
                    let cfg = match section.config_json(state_dir) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!("transport \"{name}\": {e}; this transport is disabled");
                            slot.failure = Some(e);
                            slot.plugin = Some(plugin);
                            break 'create;
                        }
                    };
                    let services: Arc<dyn HostServices> = self.services.clone();
                    let events: Arc<dyn TransportEvents> = self.events.clone();
                    match plugin.create_transport(&name, &cfg, services, events) {
                        Ok(instance) => {
                            self.by_instance.insert(instance.id(), self.slots.len());
                            slot.instance = Some(instance);
                        }
                        Err(e) => {
                            let reason = create_failure(&self.services, "transport", &name, &e);
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
                if *t.state() == InstanceState::Active
                    && let Err(e) = t.stop()
                {
                    tracing::warn!("{}: stop failed: {e}", t.label());
                }
                self.services.forget_instance(t.id());
                drop(t);
            }
        }
        for (_, ws) in self.waiters.drain() {
            for w in ws {
                let _ = w.reply.send(Reply::err("the node is shutting down"));
            }
        }
        if let Some(mesh) = self.mesh.as_mut() {
            mesh.shutdown();
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

    /// Messages from transports, handled in one batch.
    pub fn on_transport_msgs(&mut self, msgs: Vec<TransportMsg>) {
        for msg in &msgs {
            if let TransportMsg::Frame { instance, .. } = msg
                && let Some(slot) = self.slot(*instance)
            {
                slot.stats.frames_in += 1;
            }
        }
        let mut msgs = msgs;
        self.with_batch(|engine, clock, batch| {
            // One `handle_batch`: the consensus bundles among the frames
            // reach the plugin together, in one call (ABI 1.1).
            let events = msgs.iter_mut().filter_map(|msg| {
                let event = match msg {
                    TransportMsg::Frame { instance, peer, data } => {
                        let link = LinkId { transport: instance.0, peer: std::mem::take(peer) };
                        return Some(Event::Frame { link, data: &data[..] });
                    }
                    TransportMsg::Link { instance, kind, peer, metric, signal_dbm } => {
                        let link = LinkId { transport: instance.0, peer: std::mem::take(peer) };
                        let (metric, signal_dbm) = (*metric, *signal_dbm);
                        match *kind {
                            MP_LINK_UP => Event::LinkUp { link, metric, signal_dbm },
                            MP_LINK_DOWN => Event::LinkDown { link },
                            MP_LINK_UPDATE => Event::LinkUpdate { link, metric, signal_dbm },
                            _ => return None,
                        }
                    }
                };
                match &event {
                    Event::LinkUp { link, .. } => {
                        tracing::info!("link up: {} (transport {})", link.peer, link.transport)
                    }
                    Event::LinkDown { link } => {
                        tracing::info!("link down: {} (transport {})", link.peer, link.transport)
                    }
                    _ => {}
                }
                Some(event)
            });
            engine.handle_batch(clock, batch, events)
        });
    }

    /// Carries out what the engine asked for (after its batch committed).
    fn run_actions(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Send { link, frame } => {
                    let id = InstanceId(link.transport);
                    let Some(slot) = self.slot(id) else { continue };
                    let Some(t) = slot.instance.as_mut() else { continue };
                    let result = t.send(&link.peer, &frame);
                    match &result {
                        Ok(()) => slot.stats.frames_out += 1,
                        // Lost frames are recovered by the engine's
                        // retransmission and next summary exchange.
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
                Action::Deliverable { service } => self.wake_waiters(&service),
                Action::Note(note) => log_note(&note),
            }
        }
    }

    /// Fires due plugin timers and engine timeouts.
    pub fn fire_timers(&mut self) {
        let now = self.services.uptime_ms();
        for (id, timer) in self.services.pop_due(now) {
            if let Some(t) = self.transport(id) {
                if let Err(e) = t.on_timer(timer) {
                    self.after_error(id, "on_timer", &e);
                }
            } else {
                self.with_batch(|engine, clock, batch| engine.plugin_timer(clock, batch, id, timer));
            }
        }
        if self.engine.next_timeout().is_some_and(|t| t <= now) {
            self.with_batch(|engine, clock, batch| engine.handle_timeout(clock, batch));
        }
        if self.next_mesh_poll().is_some_and(|t| t <= now) {
            self.poll_mesh();
        }
        self.expire_waiters(now);
    }

    /// The earliest time the loop must wake for the engine or a `recv`.
    pub fn next_deadline(&self) -> Option<u64> {
        let waiter = self.waiters.values().flatten().map(|w| w.deadline_ms).min();
        [self.engine.next_timeout(), waiter, self.next_mesh_poll()].into_iter().flatten().min()
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

    /// A control request with its raw attachments (payloads, for `send`).
    /// `recv` may park the reply until a payload arrives.
    pub fn control(
        &mut self,
        method: &str,
        params: &Value,
        data: Vec<Vec<u8>>,
        reply: oneshot::Sender<Reply>,
    ) {
        if !data.is_empty() && method != "send" {
            let _ = reply.send(Reply::err(format!("{method}: takes no attachments (only `send` does)")));
            return;
        }
        let answer = match method {
            "status" => Ok(self.status_with_consensus()),
            "consensus" => self.control_consensus(params),
            "send" => self.control_send(params, data),
            "recv" => return self.control_recv(params, reply),
            "ack" => self.control_ack(params),
            "bundles" => self.control_bundles(),
            "mesh" => match &self.mesh {
                Some(m) => Ok(m.status()),
                None => Err("this node has no [mesh] in its config".into()),
            },
            other => Err(format!(
                "unknown method `{other}` (methods: status, send, recv, ack, bundles, mesh, consensus)"
            )),
        };
        let _ = reply.send(match answer {
            Ok(v) => Reply::ok(v),
            Err(e) => Reply::err(e),
        });
    }

    /// `consensus`: `{"method": NAME, "body": JSON}` (or `"raw": TEXT`) for the consensus
    /// plugin, run inside one store batch (its writes commit before the
    /// reply, and what it emits goes out after). A refusal carries the
    /// plugin's reason.
    fn control_consensus(&mut self, p: &Value) -> Result<Value, String> {
        let method =
            p["method"].as_str().ok_or("consensus: `method` (the plugin's method name) is required")?;
        // `raw`: the body's JSON text exactly as the caller wrote it (so an
        // out-of-range integer reaches the plugin's strict parser as
        // written, not as a float).
        let body = match (&p["body"], &p["raw"]) {
            (_, Value::String(raw)) => raw.as_bytes().to_vec(),
            (Value::Null, _) => b"{}".to_vec(),
            (v, _) => serde_json::to_vec(v).map_err(|e| e.to_string())?,
        };
        if self.engine.consensus().is_none() {
            return Err(match &self.consensus_failure {
                Some(r) => format!("the consensus plugin is not running: {r}"),
                None => "this node runs no consensus plugin (no [consensus] section in its config)".into(),
            });
        }
        let r = self.try_batch(|engine, clock, batch| engine.consensus_control(clock, batch, method, &body));
        match r {
            None => Err(format!(
                "consensus {method}: the store failed ({}); nothing was changed",
                self.last_store_error.as_deref().unwrap_or("unknown error")
            )),
            Some(Ok(reply)) => serde_json::from_slice(&reply)
                .map_err(|e| format!("consensus {method}: the plugin's reply is not JSON: {e}")),
            Some(Err(refusal)) => Err(match serde_json::from_str::<Value>(&refusal) {
                Ok(v) if v["error"]["message"].is_string() => format!(
                    "{} ({})",
                    v["error"]["message"].as_str().unwrap_or(""),
                    v["error"]["reason"].as_str().unwrap_or("refused")
                ),
                _ => format!("consensus {method}: {refusal}"),
            }),
        }
    }

    /// `status`, with the consensus plugin's own status (role, committee,
    /// double-spend attempts) when it runs.
    fn status_with_consensus(&mut self) -> Value {
        let mut status = self.status();
        if self.engine.consensus().is_some() {
            let own = self.control_consensus(&json!({"method": "status"}));
            if let Some(c) = status["consensus"].as_object_mut() {
                match own {
                    Ok(v) => {
                        c.insert("status".into(), v);
                    }
                    Err(e) => {
                        c.insert("status_error".into(), Value::String(e));
                    }
                }
            }
        } else if let Some(reason) = &self.consensus_failure {
            status["consensus"] = json!({"state": "disabled", "reason": reason});
        }
        status
    }

    /// `send`: one payload (`payload`) or many (`payloads`, submitted in one
    /// store batch: one fsync for all), each base64; or the request's raw
    /// attachments, one payload each (then the reply lists `ids`).
    fn control_send(&mut self, p: &Value, data: Vec<Vec<u8>>) -> Result<Value, String> {
        let destination =
            p["destination"].as_str().ok_or("send: `destination` (an endpoint URI) is required")?;
        let service = p["service"].as_str().unwrap_or("app");
        let decode = |v: &Value, what: &str| -> Result<Vec<u8>, String> {
            b64()
                .decode(v.as_str().ok_or(format!("send: `{what}` must be base64 text"))?)
                .map_err(|e| format!("send: `{what}` is not base64: {e}"))
        };
        let attached = !data.is_empty();
        let payloads: Vec<Vec<u8>> = match (&p["payload"], &p["payloads"]) {
            (Value::Null, Value::Null) if attached => data,
            _ if attached => {
                return Err("send: give the payloads either as attachments or in base64, not both".into());
            }
            (Value::Null, Value::Array(list)) if !list.is_empty() && list.len() <= 10_000 => {
                list.iter().map(|v| decode(v, "payloads[]")).collect::<Result<_, _>>()?
            }
            (Value::Null, Value::Array(_)) => {
                return Err("send: `payloads` must hold 1 to 10000 payloads".into());
            }
            (v, Value::Null) if !v.is_null() => vec![decode(v, "payload")?],
            _ => return Err("send: give either `payload` or `payloads` (base64), or attachments".into()),
        };
        let lifetime_ms = match p.get("lifetime_s") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64().filter(|&s| s > 0).ok_or("send: `lifetime_s` must be a positive integer")? * 1000,
            ),
        };
        let priority = match p["priority"].as_str().unwrap_or("normal") {
            "bulk" => 0,
            "normal" => 1,
            "expedited" => 2,
            other => return Err(format!("send: `priority` `{other}` is not bulk, normal or expedited")),
        };
        // All or nothing: one refusal abandons the whole batch.
        let ids = self.try_batch(|engine, clock, batch| {
            let mut ids = Vec::with_capacity(payloads.len());
            for payload in &payloads {
                let submit = Submit { destination, source_service: service, payload, lifetime_ms, priority };
                match engine.submit(clock, batch, submit) {
                    Ok(id) => ids.push(id),
                    Err(meshpay_engine::SubmitError::Store(e)) => return Err(e),
                    Err(e) => return Ok(Err(e.to_string())),
                }
            }
            Ok(Ok(ids))
        });
        match ids {
            Some(Ok(ids)) if p["payloads"].is_null() && !attached => Ok(json!({ "id": encode_hex(&ids[0]) })),
            Some(Ok(ids)) => Ok(json!({ "ids": ids.iter().map(|i| encode_hex(i)).collect::<Vec<_>>() })),
            Some(Err(e)) => Err(format!("send: {e} (nothing was sent)")),
            None => {
                Err(format!("send: the store failed: {}", self.last_store_error.clone().unwrap_or_default()))
            }
        }
    }

    /// Up to `max` payloads waiting for `service`, as `recv`'s reply: each
    /// item's payload in base64, or (`binary`) as the reply's attachments in
    /// item order, the item saying its `payload_len`. At most
    /// [`MAX_RECV_BYTES`] of payloads per reply (but always one): the reply
    /// is built in memory, and the client asks again for the rest.
    fn deliveries(&mut self, service: &str, max: usize, binary: bool) -> Result<Delivered, String> {
        let mut items = Vec::new();
        let mut data = Vec::new();
        self.with_batch(|_, _, batch| {
            for d in batch.deliveries(service, max, MAX_RECV_BYTES)? {
                let mut item = json!({
                    "seq": d.seq,
                    "id": encode_hex(&d.id),
                    "source": d.source,
                    "received_unix_ms": d.received_unix_ms,
                });
                if binary {
                    item["payload_len"] = json!(d.payload.len());
                    data.push(d.payload);
                } else {
                    item["payload"] = json!(b64().encode(&d.payload));
                }
                items.push(item);
            }
            Ok(())
        })
        .ok_or("the store failed")?;
        Ok(Delivered { items, data })
    }

    fn control_recv(&mut self, p: &Value, reply: oneshot::Sender<Reply>) {
        let Some(service) = p["service"].as_str().filter(|s| !s.is_empty()) else {
            let _ = reply.send(Reply::err("recv: `service` is required"));
            return;
        };
        let max = p["max"].as_u64().unwrap_or(64).clamp(1, 1024) as usize;
        let wait_ms = p["wait_ms"].as_u64().unwrap_or(0).min(MAX_RECV_WAIT_MS);
        let binary = p["binary"].as_bool().unwrap_or(false);
        match self.deliveries(service, max, binary) {
            Ok(d) if d.items.is_empty() && wait_ms > 0 => {
                let deadline_ms = self.services.uptime_ms() + wait_ms;
                self.waiters.entry(service.to_owned()).or_default().push(RecvWaiter {
                    max,
                    binary,
                    deadline_ms,
                    reply,
                });
            }
            Ok(d) => {
                let _ = reply.send(d.into_reply());
            }
            Err(e) => {
                let _ = reply.send(Reply::err(e));
            }
        }
    }

    fn wake_waiters(&mut self, service: &str) {
        let Some(waiters) = self.waiters.remove(service) else { return };
        for w in waiters {
            let answer =
                self.deliveries(service, w.max, w.binary).map_or_else(Reply::err, Delivered::into_reply);
            let _ = w.reply.send(answer);
        }
    }

    fn expire_waiters(&mut self, now: u64) {
        for ws in self.waiters.values_mut() {
            let (due, keep): (Vec<_>, Vec<_>) = ws.drain(..).partition(|w| w.deadline_ms <= now);
            *ws = keep;
            for w in due {
                let _ = w.reply.send(Reply::ok(json!({ "items": [] })));
            }
        }
        self.waiters.retain(|_, ws| !ws.is_empty());
    }

    fn control_ack(&mut self, p: &Value) -> Result<Value, String> {
        let service = p["service"].as_str().ok_or("ack: `service` is required")?.to_owned();
        let seq = p["seq"].as_u64().ok_or("ack: `seq` is required")?;
        let removed =
            self.with_batch(|_, _, batch| batch.ack_deliveries(&service, seq)).ok_or("the store failed")?;
        Ok(json!({ "removed": removed }))
    }

    fn control_bundles(&mut self) -> Result<Value, String> {
        let now = unix_ms();
        let list = self.store.list().map_err(|e| e.to_string())?;
        let items: Vec<Value> = list
            .iter()
            .map(|m| {
                json!({
                    "id": encode_hex(&m.id),
                    "source": m.source,
                    "destination": m.destination,
                    "size": m.size,
                    "priority": m.priority,
                    "age_s": now.saturating_sub(m.received_unix_ms) as f64 / 1000.0,
                    "expires_in_s": m.expires_unix_ms.saturating_sub(now) as f64 / 1000.0,
                    "copies": (m.copies != u32::MAX).then_some(m.copies),
                    "local": m.local,
                })
            })
            .collect();
        Ok(json!({ "bundles": items }))
    }

    fn status(&self) -> Value {
        let key = self.identity.public_key();
        let c = self.engine.counters();
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
        let routing = self.engine.routing().plugin().clone();
        let consensus = self.engine.consensus().map(|c| c.plugin().clone());
        let all = self.slots.iter().filter_map(|s| s.plugin.clone()).chain([routing]).chain(consensus);
        for p in all {
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
        let instance_state = |s: &InstanceState| match s {
            InstanceState::Active => json!({"state": "active"}),
            InstanceState::Disabled { reason } => json!({"state": "disabled", "reason": reason}),
        };
        let now = self.services.uptime_ms();
        let neighbours: Vec<Value> = self
            .engine
            .neighbours()
            .iter()
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
                    "queued": n.queued,
                    "in_flight": n.in_flight,
                })
            })
            .collect();
        let (held_bytes, held) = self.store.usage().unwrap_or((0, 0));
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
            "routing": instance_state(self.engine.routing().state()),
            "mesh": self.mesh.as_ref().map(|m| json!({
                "interface": m.interface(),
                "stations": m.status()["stations"].as_array().map_or(0, Vec::len),
            })),
            "consensus": self.engine.consensus().map(|c| instance_state(c.state())),
            "neighbours": neighbours,
            "store": {
                "bundles": held,
                "bytes": held_bytes,
                "quota_bytes": self.store.config().quota_bytes,
                "errors": self.store_errors,
                "commits": self.store_commits,
                // Ids held or seen and not expired: the in-memory index
                // (about 20 to 40 bytes each).
                "known_ids": self.store.known_ids(),
                "last_error": self.last_store_error,
            },
            "counters": {
                "frames_in": c.frames_in,
                "frames_out": c.frames_out,
                "frames_malformed": c.frames_malformed,
                "frames_unknown_link": c.frames_unknown_link,
                "frames_dropped_queue_full": self.events.dropped.load(Ordering::Relaxed),
                "bundles_received": c.bundles_received,
                "bundles_stored": c.bundles_stored,
                "bundles_duplicate": c.bundles_duplicate,
                "bundles_delivered": c.bundles_delivered,
                "bundles_sent": c.bundles_sent,
                "bundles_acked": c.bundles_acked,
                "bundles_refused": c.bundles_refused,
                "bundles_rate_limited": c.bundles_rate_limited,
                "bundles_expired": c.bundles_expired,
                "bundles_evicted": c.bundles_evicted,
                "retransmits": c.retransmits,
                "local_submitted": c.local_submitted,
                "consensus_refused": c.consensus_refused,
            },
        })
    }
}

fn log_note(note: &Note) {
    match note {
        Note::BundleStored { id, from, evicted } => tracing::debug!(
            "bundle {} stored (from {}, {evicted} evicted)",
            encode_hex(id),
            from.map(|k| encode_hex(&k)).unwrap_or_else(|| "this node".into())
        ),
        Note::BundleDelivered { id, service } => {
            tracing::info!("bundle {} delivered to {service}", encode_hex(id))
        }
        Note::BundleRefused { id, reason } => tracing::debug!(
            "bundle {} refused: {reason}",
            id.map(|i| encode_hex(&i)).unwrap_or_else(|| "?".into())
        ),
        Note::ConsensusRefused { id, reason } => {
            tracing::warn!("bundle {} refused by the consensus plugin: {reason}", encode_hex(id))
        }
        Note::PluginFailed { what, error } => tracing::error!("{what}: {error}"),
    }
}

/// Loads a plugin by reference; the error is an operator-facing message.
/// Why creating instance `name` of `kind` failed: the call's error and the
/// plugin's own last warning (a status code alone says little).
fn create_failure(services: &Services, kind: &'static str, name: &str, e: &CallError) -> String {
    match e {
        CallError::Panicked { what } => format!("panicked in {what}"),
        other => match services.last_problem(kind, name) {
            Some(why) => format!("create failed ({other}): {why}"),
            None => format!("create failed: {other}"),
        },
    }
}

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
