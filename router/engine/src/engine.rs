//! The engine: store-carry-forward of bundles between neighbours.
//!
//! Every entry point takes the driver's [`Clock`] and the store [`Batch`]
//! the driver opened for this batch of events. The engine never commits: the
//! driver commits the batch and only then carries out the queued
//! [`Action::Send`]s, so an acknowledgement never leaves before what it
//! acknowledges is on disk.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, MP_LINK_DOWN, MP_LINK_UP, MP_LINK_UPDATE, PeerInfo};
use meshpay_bundle::{BundleView, Eid, EidRef, Limits};
use meshpay_host::{CallError, Consensus, HostAction, InstanceId, Routing};
use meshpay_store::{Batch, BundleMeta, Insert, StoreError};

use crate::frame::{AckStatus, Acks, Frame, FrameRepr, MAX_ACKS_PER_FRAME, MAX_SUMMARY_IDS, id_prefix};
use crate::peer::{Id, InFlight, Neighbour, Queued, TokenBucket};

/// One link: a transport instance and a peer address on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId {
    /// The transport instance (the host's instance id).
    pub transport: u64,
    /// The transport's own peer address.
    pub peer: String,
}

/// The driver's two clocks: monotonic for timers, wall for bundle expiry
/// (the wall clock need not agree with other nodes': bundles carry their
/// age, RFC 9171 §4.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub mono_ms: u64,
    pub unix_ms: u64,
}

/// What the engine is told.
#[derive(Debug)]
pub enum Event<'a> {
    LinkUp { link: LinkId, metric: Option<u32>, signal_dbm: Option<i32> },
    LinkUpdate { link: LinkId, metric: Option<u32>, signal_dbm: Option<i32> },
    LinkDown { link: LinkId },
    Frame { link: LinkId, data: &'a [u8] },
}

/// Something worth a log line or a metric, reported as it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    BundleStored { id: Id, from: Option<[u8; 32]>, evicted: usize },
    BundleDelivered { id: Id, service: String },
    BundleRefused { id: Option<Id>, reason: String },
    ConsensusRefused { id: Id, reason: String },
    PluginFailed { what: String, error: String },
}

/// What the engine asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `frame` on `link` (after committing the batch).
    Send {
        link: LinkId,
        frame: Vec<u8>,
    },
    NeighbourUp {
        link: LinkId,
        node_key: [u8; 32],
    },
    NeighbourDown {
        link: LinkId,
        node_key: [u8; 32],
    },
    /// A payload was queued for the local application reading `service`.
    Deliverable {
        service: String,
    },
    Note(Note),
}

/// Inbound limits per neighbour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub bundles_per_s: f64,
    pub bytes_per_s: f64,
    /// Seconds of burst the buckets hold.
    pub burst_s: f64,
}

/// Engine settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub limits: Limits,
    /// Lifetime of bundles created here unless the caller says otherwise.
    pub default_lifetime_ms: u64,
    pub hop_limit: u32,
    /// Bundles in flight (sent, not acknowledged) per neighbour.
    pub window: usize,
    pub retransmit_ms: u64,
    pub max_retries: u32,
    /// Wait after a neighbour answered "later".
    pub later_backoff_ms: u64,
    pub peer_rate: RateLimit,
    /// Most bytes this node holds that came from one neighbour.
    pub peer_quota_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            default_lifetime_ms: 24 * 3600 * 1000,
            hop_limit: 32,
            window: 64,
            retransmit_ms: 2000,
            max_retries: 5,
            later_backoff_ms: 1000,
            peer_rate: RateLimit { bundles_per_s: 100_000.0, bytes_per_s: 1e9, burst_s: 1.0 },
            peer_quota_bytes: 64 << 20,
        }
    }
}

/// Frame and bundle counters, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_malformed: u64,
    pub frames_unknown_link: u64,
    pub bundles_received: u64,
    pub bundles_stored: u64,
    pub bundles_duplicate: u64,
    pub bundles_delivered: u64,
    pub bundles_sent: u64,
    pub bundles_acked: u64,
    pub bundles_refused: u64,
    pub bundles_rate_limited: u64,
    pub bundles_expired: u64,
    pub bundles_evicted: u64,
    pub retransmits: u64,
    pub local_submitted: u64,
    pub consensus_refused: u64,
}

/// A neighbour as shown in status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighbourStatus {
    pub node_key: [u8; 32],
    pub link: LinkId,
    pub since_ms: u64,
    pub metric: Option<u32>,
    pub queued: usize,
    pub in_flight: usize,
}

/// A bundle the local application asks the node to send.
#[derive(Clone, Debug)]
pub struct Submit<'a> {
    pub destination: &'a str,
    /// Service under this node's endpoint the bundle comes from.
    pub source_service: &'a str,
    pub payload: &'a [u8],
    /// `None`: the configured default.
    pub lifetime_ms: Option<u64>,
    pub priority: u8,
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("bad destination `{0}`: {1}")]
    Destination(String, String),
    #[error("payload of {0} bytes is larger than the {1}-byte bundle limit")]
    TooLarge(usize, u64),
    #[error("the store is full: nothing could be evicted to make room")]
    Full,
    #[error("bundle: {0}")]
    Bundle(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct ConsensusSlot {
    plugin: Box<dyn Consensus>,
    subscriptions: HashSet<String>,
}

/// A bundle for the consensus plugin, held (payload copied) until the end
/// of [`Engine::handle_batch`], where all of a batch go to the plugin in
/// one `on_bundles` call.
struct PendingConsensus {
    id: Id,
    source: String,
    destination: String,
    priority: u32,
    created_ms: u64,
    lifetime_ms: u64,
    age_ms: u64,
    hop_count: u32,
    copies: u32,
    payload: Vec<u8>,
}

impl PendingConsensus {
    fn new(view: &BundleView<'_>, meta: &BundleMeta) -> PendingConsensus {
        let info = consensus_info(view, meta);
        PendingConsensus {
            id: meta.id,
            source: meta.source.clone(),
            destination: meta.destination.clone(),
            priority: info.priority,
            created_ms: info.created_ms,
            lifetime_ms: info.lifetime_ms,
            age_ms: info.age_ms,
            hop_count: info.hop_count,
            copies: info.copies,
            payload: info.payload.to_vec(),
        }
    }

    fn info(&self) -> BundleInfo<'_> {
        BundleInfo {
            id: &self.id,
            source: &self.source,
            destination: &self.destination,
            priority: self.priority,
            created_ms: self.created_ms,
            lifetime_ms: self.lifetime_ms,
            age_ms: self.age_ms,
            payload_len: self.payload.len() as u64,
            hop_count: self.hop_count,
            copies: self.copies,
            payload: &self.payload,
        }
    }
}

/// How the consensus plugin sees a bundle delivered to it: payload included.
fn consensus_info<'v>(view: &BundleView<'v>, meta: &'v BundleMeta) -> BundleInfo<'v> {
    BundleInfo {
        id: &meta.id,
        source: &meta.source,
        destination: &meta.destination,
        priority: u32::from(meta.priority),
        created_ms: view.creation().dtn_time_ms,
        lifetime_ms: view.lifetime_ms(),
        age_ms: view.age_ms().unwrap_or(0),
        payload_len: view.payload().len() as u64,
        hop_count: view.hop_count().map_or(0, |h| h.count as u32),
        copies: meta.copies,
        payload: view.payload(),
    }
}

/// How long a bundle delivered to its destination may stay in the store
/// when no batch that writes comes along to remove it.
///
/// Why removal waits at all: a batch that only removes bundles would
/// otherwise commit with two disk flushes for nothing anyone waits on (a
/// removal lost in a crash only brings back a bundle that the next hop
/// refuses as a duplicate). At the source of a stream, acknowledgements are
/// most of the batches: the relay bench counted 250 such commits a second
/// at node A, each with its flushes on the disk the other stores share.
const DELIVERED_DROP_DELAY_MS: u64 = 500;
/// Delivered bundles removed at once, at most, before a batch is made to
/// write for them.
const DELIVERED_DROP_MAX: usize = 4096;

/// The sans-IO node core.
pub struct Engine {
    cfg: EngineConfig,
    node_key: [u8; 32],
    endpoint: String,
    eid: Eid,
    routing: Box<dyn Routing>,
    consensus: Option<ConsensusSlot>,
    /// Inside [`Engine::handle_batch`]: the consensus bundles waiting for
    /// its end (ABI 1.1 plugins only).
    consensus_queue: Option<Vec<PendingConsensus>>,
    links: BTreeMap<LinkId, Option<[u8; 32]>>,
    /// When this node last sent a HELLO on a link: HELLOs are re-sent on
    /// links not yet identified (a lost HELLO must not leave a link up
    /// without a neighbour), and answers to repeated HELLOs are paced.
    hello_sent: HashMap<LinkId, u64>,
    neighbours: BTreeMap<[u8; 32], Neighbour>,
    /// Copies of a bundle promised to neighbours (queued or in flight).
    reserved: foldhash::HashMap<Id, u32>,
    actions: VecDeque<Action>,
    /// Some neighbour has acknowledgements queued (`Neighbour::acks_due`).
    acks_due: bool,
    /// Bundles delivered to their destination node, still in the store:
    /// removed with the next batch that writes anyway (see
    /// [`Engine::drop_delivered`]), and when the first has waited
    /// `DELIVERED_DROP_DELAY_MS` (the monotonic deadline here).
    /// (Their metadata as read when acknowledged: the store checks that the
    /// bundle is still held under it before removing it.)
    delivered: foldhash::HashMap<Id, BundleMeta>,
    delivered_deadline_ms: Option<u64>,
    /// This batch stored or delivered a bundle: it commits with an fsync
    /// anyway, so the delivered bundles' removal rides along.
    batch_writes: bool,
    counters: Counters,
    next_expiry_unix: Option<u64>,
    /// `unix_ms - mono_ms` at the last event, to turn expiry times into
    /// monotonic deadlines.
    unix_offset: i64,
    sequence: u64,
}

fn endpoint_of(key: &[u8; 32]) -> String {
    Eid::for_node_key(key).view().to_text()
}

fn bundle_info<'m>(m: &'m BundleMeta, copies: u32) -> BundleInfo<'m> {
    BundleInfo {
        id: &m.id,
        source: &m.source,
        destination: &m.destination,
        priority: u32::from(m.priority),
        created_ms: 0,
        lifetime_ms: m.expires_unix_ms.saturating_sub(m.received_unix_ms),
        age_ms: 0,
        payload_len: u64::from(m.size),
        hop_count: 0,
        copies,
        payload: &[],
    }
}

impl Engine {
    /// An engine for node `node_key` with its routing plugin instance.
    pub fn new(cfg: EngineConfig, node_key: [u8; 32], routing: Box<dyn Routing>) -> Engine {
        let endpoint = endpoint_of(&node_key);
        let eid = endpoint.parse().expect("a node endpoint is a valid EID");
        Engine {
            cfg,
            node_key,
            endpoint,
            eid,
            routing,
            consensus: None,
            consensus_queue: None,
            links: BTreeMap::new(),
            hello_sent: HashMap::new(),
            neighbours: BTreeMap::new(),
            reserved: Default::default(),
            actions: VecDeque::new(),
            acks_due: false,
            delivered: Default::default(),
            delivered_deadline_ms: None,
            batch_writes: false,
            counters: Counters::default(),
            next_expiry_unix: None,
            unix_offset: 0,
            sequence: 0,
        }
    }

    /// This node's endpoint, `dtn://<hex key>/`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn routing(&self) -> &dyn Routing {
        self.routing.as_ref()
    }

    pub fn consensus(&self) -> Option<&dyn Consensus> {
        self.consensus.as_ref().map(|c| c.plugin.as_ref())
    }

    /// Installs the consensus plugin instance (created by the driver inside
    /// a batch, so its `kv_open` calls could run), applying the
    /// subscriptions it asked for.
    pub fn set_consensus(&mut self, mut plugin: Box<dyn Consensus>) {
        let mut subscriptions = HashSet::new();
        for a in plugin.take_actions() {
            if let HostAction::Subscribe { endpoint } = a {
                subscriptions.insert(endpoint);
            }
        }
        self.consensus = Some(ConsensusSlot { plugin, subscriptions });
    }

    /// Reads what the engine needs from the store after a (re)start.
    pub fn load(&mut self, clock: Clock, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        self.tick_clock(clock);
        self.next_expiry_unix = batch.next_expiry()?;
        Ok(())
    }

    fn tick_clock(&mut self, clock: Clock) {
        self.unix_offset = clock.unix_ms as i64 - clock.mono_ms as i64;
    }

    /// Feeds one event.
    pub fn handle(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        event: Event<'_>,
    ) -> Result<(), StoreError> {
        self.tick_clock(clock);
        // Alone, not inside `handle_batch`: this call is the whole batch.
        let alone = self.consensus_queue.is_none();
        if alone {
            self.batch_writes = false;
        }
        match event {
            Event::LinkUp { link, .. } => {
                self.links.entry(link.clone()).or_insert(None);
                self.send_hello(clock, link);
            }
            Event::LinkUpdate { link, metric, signal_dbm } => {
                if let Some(Some(key)) = self.links.get(&link).copied()
                    && let Some(n) = self.neighbours.get_mut(&key)
                {
                    n.metric = metric;
                    n.signal = signal_dbm;
                    let peer = PeerInfo { node: &n.endpoint, link_metric: metric, signal_dbm };
                    let r = self.routing.on_contact(&peer, MP_LINK_UPDATE);
                    self.after_routing_call("on_contact", r);
                }
            }
            Event::LinkDown { link } => self.link_down(&link),
            Event::Frame { link, data } => self.on_frame(clock, batch, link, data)?,
        }
        if alone {
            self.drop_delivered(clock, batch)?;
        }
        self.pump_all(clock, batch)
    }

    /// Feeds several events that share one store batch (the driver's
    /// batch of transport messages): as [`Engine::handle`] for each, except
    /// that bundles for a consensus plugin with `on_bundles` (ABI 1.1) reach
    /// it together at the end, in one `on_bundles` call in one plugin-call
    /// undo scope, instead of one call each, so it can spread their
    /// signature work over the cores. A 1.0 plugin gets its `on_bundle`
    /// calls as they arrive, exactly as with `handle`. On a store error the
    /// driver abandons the batch, and the held bundles with it.
    pub fn handle_batch<'e>(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        events: impl IntoIterator<Item = Event<'e>>,
    ) -> Result<(), StoreError> {
        self.consensus_queue = Some(Vec::new());
        self.batch_writes = false;
        let mut result = Ok(());
        for event in events {
            result = self.handle(clock, batch, event);
            if result.is_err() {
                break;
            }
        }
        let queued = self.consensus_queue.take().unwrap_or_default();
        result?;
        self.drop_delivered(clock, batch)?;
        if queued.is_empty() {
            return Ok(());
        }
        self.deliver_consensus_batch(clock, batch, queued)?;
        self.pump_all(clock, batch)
    }

    fn link_down(&mut self, link: &LinkId) {
        self.hello_sent.remove(link);
        let Some(Some(key)) = self.links.remove(link) else { return };
        let Some(n) = self.neighbours.get_mut(&key) else { return };
        n.links.retain(|l| l != link);
        if !n.links.is_empty() {
            return;
        }
        let n = self.neighbours.remove(&key).expect("present");
        for id in n.pending.iter() {
            let given = n.queue.iter().find(|q| &q.id == id).map(|q| q.copies).unwrap_or(0)
                + n.inflight.get(id).map_or(0, |f| f.copies);
            self.release(id, given);
        }
        let peer = PeerInfo { node: &n.endpoint, link_metric: n.metric, signal_dbm: n.signal };
        let r = self.routing.on_contact(&peer, MP_LINK_DOWN);
        self.after_routing_call("on_contact", r);
        self.actions.push_back(Action::NeighbourDown { link: link.clone(), node_key: key });
    }

    fn release(&mut self, id: &Id, copies: u32) {
        if let Some(r) = self.reserved.get_mut(id) {
            *r = r.saturating_sub(copies);
            if *r == 0 {
                self.reserved.remove(id);
            }
        }
    }

    fn on_frame(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        link: LinkId,
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.counters.frames_in += 1;
        let frame = match Frame::new_checked(data) {
            Ok(f) => f,
            Err(_) => {
                self.counters.frames_malformed += 1;
                return Ok(());
            }
        };
        let repr = match FrameRepr::parse(&frame) {
            Ok(r) => r,
            Err(_) => {
                self.counters.frames_malformed += 1;
                return Ok(());
            }
        };
        let Some(known) = self.links.get(&link).copied() else {
            self.counters.frames_unknown_link += 1;
            return Ok(());
        };
        if let FrameRepr::Hello { node_key } = repr {
            return self.on_hello(clock, batch, link, known, node_key);
        }
        // Everything else only from an identified neighbour.
        let Some(key) = known else {
            self.counters.frames_unknown_link += 1;
            return Ok(());
        };
        match repr {
            FrameRepr::Hello { .. } => unreachable!("handled above"),
            FrameRepr::Summary { more, prefixes } => {
                let n = self.neighbours.get_mut(&key).expect("identified links have neighbours");
                n.has.extend(prefixes);
                if !more && !n.summary_done {
                    n.summary_done = true;
                    self.offer_all_to(batch, &key)?;
                }
            }
            FrameRepr::Bundle { copies, bundle } => self.on_bundle(clock, batch, &key, copies, bundle)?,
            FrameRepr::Ack { acks } => {
                for (id, status) in acks.iter() {
                    self.on_ack(clock, batch, &key, id, status)?;
                }
            }
            FrameRepr::Control { data } => {
                let endpoint = self.neighbours[&key].endpoint.clone();
                let r = self.routing.on_control(&endpoint, data);
                // The plugin's view of this neighbour changed (PRoPHET's
                // predictabilities): what it declined before may go now.
                if self.after_routing_call("on_control", r) && self.neighbours[&key].summary_done {
                    self.offer_all_to(batch, &key)?;
                }
            }
        }
        Ok(())
    }

    fn on_hello(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        link: LinkId,
        known: Option<[u8; 32]>,
        node_key: [u8; 32],
    ) -> Result<(), StoreError> {
        if known == Some(node_key) {
            // The other side may not know us yet (our answer was lost): it
            // repeats its HELLO until it does. Answer, at most once per
            // retransmission interval, so two nodes never ping-pong.
            let due = self.hello_sent.get(&link).is_none_or(|&t| t + self.cfg.retransmit_ms <= clock.mono_ms);
            if due {
                self.send_hello(clock, link);
            }
            return Ok(());
        }
        if node_key == self.node_key {
            // Our own HELLO reflected (a loop on the link): ignore.
            return Ok(());
        }
        if known.is_some() {
            // Another node took over the address: the old one is gone.
            self.link_down(&link);
            self.links.insert(link.clone(), None);
        }
        self.links.insert(link.clone(), Some(node_key));
        // Answer, so the other side learns us even if our first HELLO was lost.
        self.send_hello(clock, link.clone());
        if let Some(n) = self.neighbours.get_mut(&node_key) {
            n.links.push(link);
            return Ok(());
        }
        let rate = self.cfg.peer_rate;
        let n = Neighbour {
            links: vec![link.clone()],
            endpoint: endpoint_of(&node_key),
            metric: None,
            signal: None,
            since_ms: clock.mono_ms,
            summary_done: false,
            has: Default::default(),
            acks_due: Vec::new(),
            queue: VecDeque::new(),
            pending: Default::default(),
            inflight: Default::default(),
            inbound: TokenBucket::new(rate.bundles_per_s, rate.bundles_per_s * rate.burst_s, clock.mono_ms),
            inbound_bytes: TokenBucket::new(rate.bytes_per_s, rate.bytes_per_s * rate.burst_s, clock.mono_ms),
            held_from: batch
                .held()?
                .iter()
                .filter(|m| m.from_peer == Some(node_key))
                .map(|m| u64::from(m.size))
                .sum(),
        };
        let endpoint = n.endpoint.clone();
        self.neighbours.insert(node_key, n);
        self.actions.push_back(Action::NeighbourUp { link: link.clone(), node_key });
        self.send_summary(batch, &link)?;
        let peer = PeerInfo { node: &endpoint, link_metric: None, signal_dbm: None };
        let r = self.routing.on_contact(&peer, MP_LINK_UP);
        self.after_routing_call("on_contact", r);
        Ok(())
    }

    fn send_summary(&mut self, batch: &mut Batch<'_>, link: &LinkId) -> Result<(), StoreError> {
        let prefixes: Vec<u64> = batch.held_ids()?.iter().map(id_prefix).collect();
        let mut chunks = prefixes.chunks(MAX_SUMMARY_IDS).peekable();
        if chunks.peek().is_none() {
            self.send(link.clone(), &FrameRepr::Summary { more: false, prefixes: Vec::new() });
        }
        while let Some(chunk) = chunks.next() {
            let more = chunks.peek().is_some();
            self.send(link.clone(), &FrameRepr::Summary { more, prefixes: chunk.to_vec() });
        }
        Ok(())
    }

    /// Queues an acknowledgement; they go out grouped, per neighbour
    /// ([`Engine::flush_acks`]).
    fn ack(&mut self, key: &[u8; 32], id: Id, status: AckStatus) {
        let Some(n) = self.neighbours.get_mut(key) else { return };
        Acks::push(&mut n.acks_due, &id, status);
        if n.acks_due.len() >= MAX_ACKS_PER_FRAME * Acks::ENTRY_LEN {
            self.flush_acks_to(key);
        } else {
            self.acks_due = true;
        }
    }

    /// Sends a neighbour's queued acknowledgements, up to
    /// `MAX_ACKS_PER_FRAME` in a frame.
    fn flush_acks_to(&mut self, key: &[u8; 32]) {
        let Some(n) = self.neighbours.get_mut(key) else { return };
        let due = std::mem::take(&mut n.acks_due);
        let link = n.link().clone();
        for chunk in due.chunks(MAX_ACKS_PER_FRAME * Acks::ENTRY_LEN) {
            let acks = Acks::new(chunk).expect("entries written by Acks::push");
            self.send(link.clone(), &FrameRepr::Ack { acks });
        }
    }

    /// Turns every queued acknowledgement into frames. Runs when the driver
    /// takes the actions, that is after the batch that stored what they
    /// acknowledge has committed (or to drop them with an aborted one).
    fn flush_acks(&mut self) {
        if !std::mem::take(&mut self.acks_due) {
            return;
        }
        let keys: Vec<[u8; 32]> =
            self.neighbours.iter().filter(|(_, n)| !n.acks_due.is_empty()).map(|(k, _)| *k).collect();
        for key in keys {
            self.flush_acks_to(&key);
        }
    }

    fn refuse(&mut self, key: &[u8; 32], id: Option<Id>, status: AckStatus, reason: String) {
        self.counters.bundles_refused += 1;
        if let Some(id) = id {
            self.ack(key, id, status);
        }
        self.actions.push_back(Action::Note(Note::BundleRefused { id, reason }));
    }

    fn on_bundle(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        key: &[u8; 32],
        copies: u32,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.counters.bundles_received += 1;
        // Cheap checks first: a flood costs little.
        let n = self.neighbours.get_mut(key).expect("identified");
        let rate_ok =
            n.inbound.take(1.0, clock.mono_ms) && n.inbound_bytes.take(bytes.len() as f64, clock.mono_ms);
        let over_quota = n.held_from + bytes.len() as u64 > self.cfg.peer_quota_bytes;
        let view = match BundleView::parse(bytes, &self.cfg.limits) {
            Ok(v) => v,
            Err(e) => {
                self.counters.frames_malformed += 1;
                // No id to acknowledge: the sender's retries will stop at
                // its retry limit.
                self.refuse(key, None, AckStatus::Refused, format!("malformed bundle: {e}"));
                return Ok(());
            }
        };
        let id = view.id().0;
        let n = self.neighbours.get_mut(key).expect("identified");
        n.has.insert(id_prefix(&id));
        if batch.is_known(&id)? {
            self.counters.bundles_duplicate += 1;
            self.ack(key, id, AckStatus::Duplicate);
            return Ok(());
        }
        if !rate_ok || over_quota {
            self.counters.bundles_rate_limited += 1;
            let why = if rate_ok { "the neighbour's share of the store is full" } else { "rate limit" };
            self.refuse(key, Some(id), AckStatus::Later, format!("{why}, neighbour {}", endpoint_of(key)));
            return Ok(());
        }
        let age = view.age_ms().unwrap_or(0);
        let lifetime = view.lifetime_ms();
        if age >= lifetime {
            self.refuse(key, Some(id), AckStatus::Refused, "expired on arrival".into());
            return Ok(());
        }
        if view.hop_count().is_some_and(|h| h.count > h.limit) {
            self.refuse(key, Some(id), AckStatus::Refused, "hop limit exceeded".into());
            return Ok(());
        }
        let meta = BundleMeta {
            id,
            source: view.source().to_text(),
            destination: view.destination().to_text(),
            priority: view.priority().code(),
            size: bytes.len() as u32,
            copies: if copies == 0 { 1 } else { copies },
            received_unix_ms: clock.unix_ms,
            expires_unix_ms: clock.unix_ms.saturating_add(lifetime - age),
            from_peer: Some(*key),
            local: false,
            seq: 0,
        };
        let status = self.accept(clock, batch, &view, meta, bytes)?;
        self.ack(key, id, status);
        Ok(())
    }

    /// A new bundle (received or local): deliver it here if it is for this
    /// node, store it if it travels on, and offer it to neighbours.
    fn accept(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        view: &BundleView<'_>,
        meta: BundleMeta,
        bytes: &[u8],
    ) -> Result<AckStatus, StoreError> {
        // This batch writes: the bundles already delivered leave now,
        // before they could make the quota evict live ones.
        self.batch_writes = true;
        self.drop_delivered(clock, batch)?;
        let destination = view.destination();
        let for_this_node = destination.is_singleton() && destination.node_endpoint() == self.eid;
        let subscribed =
            self.consensus.as_ref().is_some_and(|c| c.subscriptions.contains(meta.destination.as_str()));
        if subscribed {
            self.deliver_to_consensus(clock, batch, view, &meta)?;
        }
        if for_this_node {
            if !subscribed {
                let service = match destination {
                    EidRef::Dtn { demux, .. } => demux.to_string(),
                    _ => String::new(),
                };
                batch.enqueue_delivery(&service, &meta.id, &meta.source, clock.unix_ms, view.payload())?;
                self.counters.bundles_delivered += 1;
                self.actions
                    .push_back(Action::Note(Note::BundleDelivered { id: meta.id, service: service.clone() }));
                self.actions.push_back(Action::Deliverable { service });
            }
            batch.mark_seen(&meta.id, meta.expires_unix_ms)?;
            self.note_expiry(meta.expires_unix_ms);
            return Ok(AckStatus::Stored);
        }
        match batch.insert(&meta, bytes)? {
            Insert::Stored { evicted } => {
                self.counters.bundles_stored += 1;
                self.counters.bundles_evicted += evicted.len() as u64;
                for id in &evicted {
                    self.forget_everywhere(id);
                }
                if let Some(from) = meta.from_peer
                    && let Some(n) = self.neighbours.get_mut(&from)
                {
                    n.held_from += bytes.len() as u64;
                }
                self.note_expiry(meta.expires_unix_ms);
                self.actions.push_back(Action::Note(Note::BundleStored {
                    id: meta.id,
                    from: meta.from_peer,
                    evicted: evicted.len(),
                }));
                // (`meta` is what the store holds but for the sequence
                // number, which routing does not see: no need to read it back.)
                let candidates: Vec<[u8; 32]> = self.neighbours.keys().copied().collect();
                self.offer(batch, &meta, &candidates)?;
                Ok(AckStatus::Stored)
            }
            Insert::Duplicate => {
                self.counters.bundles_duplicate += 1;
                Ok(AckStatus::Duplicate)
            }
            Insert::TooLarge => {
                self.counters.bundles_refused += 1;
                Ok(AckStatus::Refused)
            }
            Insert::Full => {
                self.counters.bundles_refused += 1;
                Ok(AckStatus::Later)
            }
        }
    }

    /// A bundle for an endpoint the consensus plugin subscribed to. An
    /// ABI 1.0 plugin gets it now, in an `on_bundle` call of its own; a 1.1
    /// plugin inside [`Engine::handle_batch`] at the end of the batch, with
    /// the others, otherwise now, in an `on_bundles` call of one.
    fn deliver_to_consensus(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        view: &BundleView<'_>,
        meta: &BundleMeta,
    ) -> Result<(), StoreError> {
        let Some(slot) = self.consensus.as_ref() else { return Ok(()) };
        if !slot.plugin.has_on_bundles() {
            return self.deliver_one(clock, batch, meta.id, &consensus_info(view, meta));
        }
        let pending = PendingConsensus::new(view, meta);
        match &mut self.consensus_queue {
            Some(queue) => {
                queue.push(pending);
                Ok(())
            }
            None => self.deliver_consensus_batch(clock, batch, vec![pending]),
        }
    }

    /// One bundle, one `on_bundle` call in its own undo scope.
    fn deliver_one(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        id: Id,
        info: &BundleInfo<'_>,
    ) -> Result<(), StoreError> {
        let Some(slot) = self.consensus.as_mut() else { return Ok(()) };
        let plugin_id = slot.plugin.plugin().descriptor().id.clone();
        let result = {
            let mut call = batch.plugin_call(&plugin_id);
            let r = slot.plugin.on_bundle(&mut call, info);
            call.finish(r.is_ok())?;
            r
        };
        // What a refused call asked for is dropped with its writes.
        let actions = slot.plugin.take_actions();
        let ok = result.is_ok();
        self.consensus_outcome(id, info.destination, result, "consensus on_bundle");
        if ok {
            self.apply_consensus_actions(clock, batch, actions)?;
        }
        Ok(())
    }

    /// Bundles in one `on_bundles` call and one undo scope. When the call
    /// fails as a whole (not a panic) its writes are rolled back and each
    /// bundle gets an `on_bundle` call of its own, so one bundle (or a host
    /// failure it provoked) costs only itself.
    fn deliver_consensus_batch(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        items: Vec<PendingConsensus>,
    ) -> Result<(), StoreError> {
        let Some(slot) = self.consensus.as_mut() else { return Ok(()) };
        let plugin_id = slot.plugin.plugin().descriptor().id.clone();
        let result = {
            let infos: Vec<BundleInfo<'_>> = items.iter().map(PendingConsensus::info).collect();
            let mut call = batch.plugin_call(&plugin_id);
            let r = slot.plugin.on_bundles(&mut call, &infos);
            call.finish(r.is_ok())?;
            r
        };
        let actions = slot.plugin.take_actions();
        match result {
            Ok(results) => {
                for (p, r) in items.iter().zip(results) {
                    self.consensus_outcome(p.id, &p.destination, r, "consensus on_bundles");
                }
                self.apply_consensus_actions(clock, batch, actions)
            }
            Err(e @ (CallError::Panicked { .. } | CallError::Disabled { .. })) => {
                for p in &items {
                    self.consensus_outcome(p.id, &p.destination, Err(e.clone()), "consensus on_bundles");
                }
                Ok(())
            }
            Err(e) => {
                self.actions.push_back(Action::Note(Note::PluginFailed {
                    what: "consensus on_bundles".into(),
                    error: format!("{e}; delivering the {} bundles one by one", items.len()),
                }));
                for p in &items {
                    self.deliver_one(clock, batch, p.id, &p.info())?;
                }
                Ok(())
            }
        }
    }

    /// Counts and reports one bundle's result from the consensus plugin.
    fn consensus_outcome(&mut self, id: Id, destination: &str, r: Result<(), CallError>, what: &str) {
        match r {
            Ok(()) => {
                self.counters.bundles_delivered += 1;
                self.actions
                    .push_back(Action::Note(Note::BundleDelivered { id, service: destination.to_owned() }));
            }
            Err(e) => {
                // The bundle's writes were rolled back; what it asked for is dropped too.
                self.counters.consensus_refused += 1;
                let disabled = matches!(e, CallError::Panicked { .. } | CallError::Disabled { .. });
                let note = if disabled {
                    Note::PluginFailed { what: what.into(), error: e.to_string() }
                } else {
                    Note::ConsensusRefused { id, reason: e.to_string() }
                };
                self.actions.push_back(Action::Note(note));
            }
        }
    }

    fn apply_consensus_actions(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        actions: Vec<HostAction>,
    ) -> Result<(), StoreError> {
        for a in actions {
            match a {
                HostAction::Subscribe { endpoint } => {
                    if let Some(c) = self.consensus.as_mut() {
                        c.subscriptions.insert(endpoint);
                    }
                }
                HostAction::EmitBundle { destination, source_service, payload, priority, lifetime_ms } => {
                    let submit = Submit {
                        destination: &destination,
                        source_service: &source_service,
                        payload: &payload,
                        lifetime_ms: (lifetime_ms > 0).then_some(lifetime_ms),
                        priority: priority.min(2) as u8,
                    };
                    if let Err(e) = self.submit(clock, batch, submit) {
                        if let SubmitError::Store(e) = e {
                            return Err(e);
                        }
                        self.actions.push_back(Action::Note(Note::PluginFailed {
                            what: "consensus emit_bundle".into(),
                            error: e.to_string(),
                        }));
                    }
                }
                HostAction::SendControl { .. } => {}
            }
        }
        Ok(())
    }

    /// Creates a bundle from this node and sends it on its way.
    pub fn submit(&mut self, clock: Clock, batch: &mut Batch<'_>, s: Submit<'_>) -> Result<Id, SubmitError> {
        self.tick_clock(clock);
        let destination: Eid = s
            .destination
            .parse()
            .map_err(|e| SubmitError::Destination(s.destination.into(), format!("{e}")))?;
        let max = self.cfg.limits.max_bundle_bytes as u64;
        if s.payload.len() as u64 + 512 > max {
            return Err(SubmitError::TooLarge(s.payload.len(), max));
        }
        let source: Eid = format!("{}{}", self.endpoint, s.source_service)
            .parse()
            .map_err(|e| SubmitError::Bundle(format!("source service `{}`: {e}", s.source_service)))?;
        self.sequence += 1;
        let lifetime = s.lifetime_ms.unwrap_or(self.cfg.default_lifetime_ms);
        let bytes = crate::build::new_bundle(
            &source,
            &destination,
            s.payload,
            lifetime,
            clock.unix_ms,
            self.sequence,
            self.cfg.hop_limit,
            s.priority,
            &self.cfg.limits,
        )
        .map_err(SubmitError::Bundle)?;
        let view =
            // Just built here: its CRCs are right by construction.
            BundleView::parse_trusted(&bytes, &self.cfg.limits).map_err(|e| SubmitError::Bundle(e.to_string()))?;
        let id = view.id().0;
        let mut meta = BundleMeta {
            id,
            source: source.view().to_text(),
            destination: destination.view().to_text(),
            priority: s.priority,
            size: bytes.len() as u32,
            copies: MP_COPIES_UNLIMITED,
            received_unix_ms: clock.unix_ms,
            expires_unix_ms: clock.unix_ms.saturating_add(lifetime),
            from_peer: None,
            local: true,
            seq: 0,
        };
        meta.copies = self.routing.initial_copies(&bundle_info(&meta, MP_COPIES_UNLIMITED)).max(1);
        self.counters.local_submitted += 1;
        match self.accept(clock, batch, &view, meta, &bytes)? {
            AckStatus::Stored | AckStatus::Duplicate => {}
            AckStatus::Later => return Err(SubmitError::Full),
            AckStatus::Refused => return Err(SubmitError::TooLarge(s.payload.len(), max)),
        }
        self.pump_all(clock, batch)?;
        Ok(id)
    }

    /// Offers every held bundle to a neighbour whose summary just completed.
    fn offer_all_to(&mut self, batch: &mut Batch<'_>, key: &[u8; 32]) -> Result<(), StoreError> {
        for meta in batch.held()? {
            if !self.delivered.contains_key(&meta.id) {
                self.offer(batch, &meta, std::slice::from_ref(key))?;
            }
        }
        Ok(())
    }

    /// Asks the routing plugin which of `candidates` get `meta`, and queues it.
    fn offer(
        &mut self,
        batch: &mut Batch<'_>,
        meta: &BundleMeta,
        candidates: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let prefix = id_prefix(&meta.id);
        let eligible: Vec<[u8; 32]> = candidates
            .iter()
            .filter(|k| {
                self.neighbours.get(*k).is_some_and(|n| {
                    n.summary_done && !n.has.contains(&prefix) && !n.pending.contains(&meta.id)
                }) && meta.from_peer != Some(**k)
            })
            .copied()
            .collect();
        if eligible.is_empty() {
            return Ok(());
        }
        let counted = meta.copies != MP_COPIES_UNLIMITED;
        let available = if counted {
            meta.copies.saturating_sub(self.reserved.get(&meta.id).copied().unwrap_or(0))
        } else {
            MP_COPIES_UNLIMITED
        };
        if available == 0 {
            return Ok(());
        }
        let peers: Vec<PeerInfo<'_>> = eligible
            .iter()
            .map(|k| {
                let n = &self.neighbours[k];
                PeerInfo { node: &n.endpoint, link_metric: n.metric, signal_dbm: n.signal }
            })
            .collect();
        let mut out = Vec::new();
        let r = self.routing.decide(&bundle_info(meta, available), &peers, &mut out);
        drop(peers);
        if !self.after_routing_call("decide", r) {
            return Ok(());
        }
        let mut left = available;
        for (index, copies) in out {
            let Some(key) = eligible.get(index) else { continue };
            let give = if counted {
                let g = copies.min(left);
                if g == 0 {
                    continue;
                }
                left -= g;
                *self.reserved.entry(meta.id).or_insert(0) += g;
                g
            } else {
                MP_COPIES_UNLIMITED
            };
            let n = self.neighbours.get_mut(key).expect("eligible");
            n.pending.insert(meta.id);
            n.queue.push_back(Queued { id: meta.id, copies: give, not_before_ms: 0 });
        }
        let _ = batch;
        Ok(())
    }

    /// Sends queued bundles while windows allow.
    fn pump_all(&mut self, clock: Clock, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        let keys: Vec<[u8; 32]> = self.neighbours.keys().copied().collect();
        for key in keys {
            self.pump(clock, batch, &key)?;
        }
        Ok(())
    }

    fn pump(&mut self, clock: Clock, batch: &mut Batch<'_>, key: &[u8; 32]) -> Result<(), StoreError> {
        loop {
            let Some(n) = self.neighbours.get_mut(key) else { return Ok(()) };
            if n.inflight.len() >= self.cfg.window {
                return Ok(());
            }
            let Some(q) = n.queue.front().copied() else { return Ok(()) };
            if q.not_before_ms > clock.mono_ms {
                return Ok(());
            }
            n.queue.pop_front();
            match self.bundle_frame(clock, batch, &q.id, q.copies)? {
                Some(frame) => {
                    let n = self.neighbours.get_mut(key).expect("present");
                    n.inflight
                        .insert(q.id, InFlight { copies: q.copies, sent_ms: clock.mono_ms, retries: 0 });
                    let link = n.link().clone();
                    self.counters.bundles_sent += 1;
                    self.counters.frames_out += 1;
                    self.actions.push_back(Action::Send { link, frame });
                }
                None => {
                    let n = self.neighbours.get_mut(key).expect("present");
                    n.pending.remove(&q.id);
                    self.release(&q.id, q.copies);
                }
            }
        }
    }

    /// The BUNDLE frame for a held bundle: the bundle as the next hop gets
    /// it (hop count +1, age + time held here, previous node = this node).
    fn bundle_frame(
        &mut self,
        clock: Clock,
        batch: &Batch<'_>,
        id: &Id,
        copies: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((received_unix_ms, bytes)) = batch.bytes_and_received(id)? else { return Ok(None) };
        let held = clock.unix_ms.saturating_sub(received_unix_ms);
        // The frame header, then the bundle as the next hop gets it, written
        // straight into the frame (no intermediate copy of the payload).
        let mut frame = Vec::with_capacity(bytes.len() + 128);
        FrameRepr::Bundle { copies, bundle: &[] }.emit_into(&mut frame);
        // Checked when it arrived (or built here): its CRCs are not
        // recomputed, and travel on for the next hop to check.
        let forwarded = BundleView::parse_trusted(bytes, &self.cfg.limits)
            .and_then(|v| v.forward_into(&mut frame, held, &self.eid, &self.cfg.limits));
        match forwarded {
            Ok(()) => Ok(Some(frame)),
            Err(e) => {
                self.actions.push_back(Action::Note(Note::BundleRefused {
                    id: Some(*id),
                    reason: format!("cannot forward: {e}"),
                }));
                Ok(None)
            }
        }
    }

    fn on_ack(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        key: &[u8; 32],
        id: Id,
        status: AckStatus,
    ) -> Result<(), StoreError> {
        let n = self.neighbours.get_mut(key).expect("identified");
        let Some(f) = n.inflight.remove(&id) else { return Ok(()) };
        match status {
            AckStatus::Stored | AckStatus::Duplicate | AckStatus::Refused => {
                n.pending.remove(&id);
                n.has.insert(id_prefix(&id));
                self.counters.bundles_acked += 1;
                self.release(&id, f.copies);
                if let Some(meta) = batch.meta(&id)? {
                    if status == AckStatus::Stored && meta.copies != MP_COPIES_UNLIMITED {
                        batch.set_copies(&id, meta.copies.saturating_sub(f.copies).max(1))?;
                    }
                    // Delivered to its (singleton) destination node, the
                    // neighbour whose node endpoint is `dtn://<its key>/`:
                    // this copy has done its job.
                    if status != AckStatus::Refused
                        && EidRef::parse(&meta.destination)
                            .is_ok_and(|d| d.is_singleton() && d.node_key() == Some(*key))
                    {
                        self.forget_everywhere(&meta.id);
                        self.delivered.entry(meta.id).or_insert(meta);
                        self.delivered_deadline_ms.get_or_insert(clock.mono_ms + DELIVERED_DROP_DELAY_MS);
                    }
                }
            }
            AckStatus::Later => {
                n.queue.push_back(Queued {
                    id,
                    copies: f.copies,
                    not_before_ms: clock.mono_ms + self.cfg.later_backoff_ms,
                });
            }
        }
        Ok(())
    }

    /// Removes a held bundle, `meta` as read from the store.
    fn drop_bundle(&mut self, batch: &mut Batch<'_>, meta: &BundleMeta) -> Result<(), StoreError> {
        if batch.remove_held(meta)? {
            if let Some(from) = meta.from_peer
                && let Some(n) = self.neighbours.get_mut(&from)
            {
                n.held_from = n.held_from.saturating_sub(u64::from(meta.size));
            }
            self.forget_everywhere(&meta.id);
        }
        Ok(())
    }

    /// Removes the bundles delivered to their destination from the store,
    /// if this batch writes anyway, there are many, or the first has waited
    /// `DELIVERED_DROP_DELAY_MS`.
    fn drop_delivered(&mut self, clock: Clock, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        let due = self.delivered_deadline_ms.is_some_and(|t| t <= clock.mono_ms);
        if self.delivered.is_empty()
            || !(self.batch_writes || due || self.delivered.len() >= DELIVERED_DROP_MAX)
        {
            return Ok(());
        }
        for (_, meta) in std::mem::take(&mut self.delivered) {
            self.drop_bundle(batch, &meta)?;
        }
        self.delivered_deadline_ms = None;
        Ok(())
    }

    fn forget_everywhere(&mut self, id: &Id) {
        let prefix = id_prefix(id);
        for n in self.neighbours.values_mut() {
            n.forget(id);
            n.has.remove(&prefix);
        }
        self.reserved.remove(id);
    }

    fn note_expiry(&mut self, at: u64) {
        self.next_expiry_unix = Some(self.next_expiry_unix.map_or(at, |t| t.min(at)));
    }

    /// When the engine wants `handle_timeout` next, in monotonic ms.
    pub fn next_timeout(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |y| y.min(x)));
        for (link, key) in &self.links {
            if key.is_none() {
                at(self.hello_sent.get(link).map_or(0, |t| t + self.cfg.retransmit_ms));
            }
        }
        for n in self.neighbours.values() {
            if !n.summary_done {
                at(self.summary_deadline(n));
            }
            for f in n.inflight.values() {
                at(f.sent_ms + self.cfg.retransmit_ms);
            }
            if n.inflight.len() < self.cfg.window
                && let Some(q) = n.queue.front()
            {
                at(q.not_before_ms);
            }
        }
        if let Some(e) = self.next_expiry_unix {
            at((e as i64 - self.unix_offset).max(0) as u64);
        }
        if let Some(d) = self.delivered_deadline_ms {
            at(d);
        }
        t
    }

    fn send_hello(&mut self, clock: Clock, link: LinkId) {
        self.hello_sent.insert(link.clone(), clock.mono_ms);
        self.send(link, &FrameRepr::Hello { node_key: self.node_key });
    }

    /// How long a neighbour's summary may take before offers start without
    /// it (a lost SUMMARY frame only costs duplicates, which are refused
    /// cheaply, never a neighbour that gets nothing).
    fn summary_deadline(&self, n: &Neighbour) -> u64 {
        n.since_ms + 2 * self.cfg.retransmit_ms
    }

    /// Retransmits, gives up, expires bundles, and sends what is due.
    pub fn handle_timeout(&mut self, clock: Clock, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        self.tick_clock(clock);
        let unidentified: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(l, k)| {
                k.is_none()
                    && self.hello_sent.get(*l).is_none_or(|&t| t + self.cfg.retransmit_ms <= clock.mono_ms)
            })
            .map(|(l, _)| l.clone())
            .collect();
        for link in unidentified {
            self.send_hello(clock, link);
        }
        let late: Vec<[u8; 32]> = self
            .neighbours
            .iter()
            .filter(|(_, n)| !n.summary_done && self.summary_deadline(n) <= clock.mono_ms)
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            self.neighbours.get_mut(&key).expect("present").summary_done = true;
            self.offer_all_to(batch, &key)?;
        }
        let keys: Vec<[u8; 32]> = self.neighbours.keys().copied().collect();
        for key in &keys {
            let due: Vec<(Id, InFlight)> = self.neighbours[key]
                .inflight
                .iter()
                .filter(|(_, f)| f.sent_ms + self.cfg.retransmit_ms <= clock.mono_ms)
                .map(|(id, f)| (*id, *f))
                .collect();
            for (id, f) in due {
                if f.retries >= self.cfg.max_retries {
                    let n = self.neighbours.get_mut(key).expect("present");
                    n.inflight.remove(&id);
                    n.pending.remove(&id);
                    self.release(&id, f.copies);
                    continue;
                }
                match self.bundle_frame(clock, batch, &id, f.copies)? {
                    Some(frame) => {
                        let n = self.neighbours.get_mut(key).expect("present");
                        n.inflight
                            .insert(id, InFlight { sent_ms: clock.mono_ms, retries: f.retries + 1, ..f });
                        let link = n.link().clone();
                        self.counters.retransmits += 1;
                        self.counters.frames_out += 1;
                        self.actions.push_back(Action::Send { link, frame });
                    }
                    None => {
                        let n = self.neighbours.get_mut(key).expect("present");
                        n.inflight.remove(&id);
                        n.pending.remove(&id);
                        self.release(&id, f.copies);
                    }
                }
            }
        }
        self.batch_writes = false;
        self.drop_delivered(clock, batch)?;
        if self.next_expiry_unix.is_some_and(|t| t <= clock.unix_ms) {
            let expired = batch.expire(clock.unix_ms)?;
            self.counters.bundles_expired += expired.len() as u64;
            for id in &expired {
                self.forget_everywhere(id);
            }
            if !expired.is_empty() {
                self.recount_held_from(batch)?;
            }
            self.next_expiry_unix = batch.next_expiry()?;
        }
        self.compact();
        self.pump_all(clock, batch)
    }

    /// Gives back the room bursts left in the per-bundle collections once
    /// they have drained (on timeouts: at least every retransmission
    /// period while anything is in flight, and after the last delivery).
    fn compact(&mut self) {
        for n in self.neighbours.values_mut() {
            n.compact();
        }
        crate::peer::give_back_room!(self.reserved);
        crate::peer::give_back_room!(self.actions);
    }

    fn recount_held_from(&mut self, batch: &Batch<'_>) -> Result<(), StoreError> {
        let held = batch.held()?;
        for (key, n) in self.neighbours.iter_mut() {
            n.held_from = held.iter().filter(|m| m.from_peer == Some(*key)).map(|m| u64::from(m.size)).sum();
        }
        Ok(())
    }

    /// A timer of a plugin instance fired.
    pub fn plugin_timer(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        instance: InstanceId,
        timer_id: u64,
    ) -> Result<(), StoreError> {
        self.tick_clock(clock);
        if self.routing.id() == instance {
            let r = self.routing.on_timer(timer_id);
            self.after_routing_call("on_timer", r);
        } else if let Some(slot) = self.consensus.as_mut().filter(|c| c.plugin.id() == instance) {
            let plugin_id = slot.plugin.plugin().descriptor().id.clone();
            let r = {
                let mut call = batch.plugin_call(&plugin_id);
                let r = slot.plugin.on_timer(&mut call, timer_id);
                call.finish(r.is_ok())?;
                r
            };
            let actions = slot.plugin.take_actions();
            match r {
                Ok(()) => self.apply_consensus_actions(clock, batch, actions)?,
                Err(e) => self.actions.push_back(Action::Note(Note::PluginFailed {
                    what: "consensus on_timer".into(),
                    error: e.to_string(),
                })),
            }
        }
        self.pump_all(clock, batch)
    }

    /// A control API request for the consensus plugin; returns its JSON reply.
    pub fn consensus_control(
        &mut self,
        clock: Clock,
        batch: &mut Batch<'_>,
        method: &str,
        body: &[u8],
    ) -> Result<Result<Vec<u8>, String>, StoreError> {
        self.tick_clock(clock);
        let Some(slot) = self.consensus.as_mut() else {
            return Ok(Err("this node runs no consensus plugin".into()));
        };
        let plugin_id = slot.plugin.plugin().descriptor().id.clone();
        let r = {
            let mut call = batch.plugin_call(&plugin_id);
            let r = slot.plugin.on_control(&mut call, method, body);
            call.finish(r.is_ok())?;
            r
        };
        let actions = slot.plugin.take_actions();
        match r {
            Ok(reply) => {
                self.apply_consensus_actions(clock, batch, actions)?;
                self.pump_all(clock, batch)?;
                Ok(Ok(reply))
            }
            // The plugin's own explanation when it gave one.
            Err(CallError::Rejected { reply, .. }) => Ok(Err(String::from_utf8_lossy(&reply).into_owned())),
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    /// Handles a routing call's result and the control data it asked to send.
    /// Returns whether the call succeeded.
    fn after_routing_call(&mut self, what: &str, r: Result<(), CallError>) -> bool {
        for a in self.routing.take_actions() {
            if let HostAction::SendControl { peer, data } = a {
                let key = self.neighbours.iter().find(|(_, n)| n.endpoint == peer).map(|(k, _)| *k);
                if let Some(key) = key {
                    let link = self.neighbours[&key].link().clone();
                    self.send(link, &FrameRepr::Control { data: &data });
                }
            }
        }
        match r {
            Ok(()) => true,
            Err(e) => {
                self.actions.push_back(Action::Note(Note::PluginFailed {
                    what: format!("routing {what}"),
                    error: e.to_string(),
                }));
                false
            }
        }
    }

    fn send(&mut self, link: LinkId, repr: &FrameRepr<'_>) {
        self.counters.frames_out += 1;
        self.actions.push_back(Action::Send { link, frame: repr.to_vec() });
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.flush_acks();
        self.actions.pop_front()
    }

    /// Identified neighbours.
    pub fn neighbours(&self) -> Vec<NeighbourStatus> {
        self.neighbours
            .iter()
            .map(|(k, n)| NeighbourStatus {
                node_key: *k,
                link: n.link().clone(),
                since_ms: n.since_ms,
                metric: n.metric,
                queued: n.queue.len(),
                in_flight: n.inflight.len(),
            })
            .collect()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
