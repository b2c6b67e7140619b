//! A tiny payment network for tests: several instances of the plugin, each
//! created through the real plugin host (`meshpay-host`, the C ABI) with its
//! own LMDB store (`meshpay-store`) in a temporary directory, every call run
//! inside `store.batch()` + `batch.plugin_call(id)` and committed as the
//! router does. A small `HostServices` gives each node its own Ed25519 node
//! key (real signatures), a shared virtual clock and timers.
//!
//! The network itself is a fake beside the real engine: emitted bundles
//! (`HostAction::EmitBundle`) are queued as one delivery per subscribed
//! node, and the test decides what is delivered when, twice, or never.
//! A node may be *Byzantine*: a committee member without the plugin that
//! votes for every order it sees.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signer, SigningKey};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED};
use meshpay_consensus_quorum::config::Committee;
use meshpay_consensus_quorum::control::OrderJson;
use meshpay_consensus_quorum::env::TableId;
use meshpay_consensus_quorum::keys::{Key, hex};
use meshpay_consensus_quorum::wire::{self, Body, Certificate, Message, Order, OrderBody, OrderKind};
use meshpay_consensus_quorum::{PLUGIN_ID, plugin_entry};
use meshpay_host::{
    Consensus, HostAction, HostError, HostServices, InstanceId, InstanceLabel, KvStore, Level, Plugin,
};
use meshpay_store::{Store, StoreConfig};
use serde_json::{Value, json};

pub const GROUP: &str = "dtn://~authorities/quorum";

pub struct Services {
    key: SigningKey,
    clock: Arc<AtomicU64>,
    logs: Mutex<Vec<(Level, String)>>,
    /// (instance, timer id) → due time.
    timers: Mutex<BTreeMap<(u64, u64), u64>>,
}

impl Services {
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.lock().unwrap().clone()
    }
    pub fn last_log(&self) -> String {
        self.logs.lock().unwrap().last().map(|(l, m)| format!("{l:?} {m}")).unwrap_or_default()
    }
    fn due(&self, instance: InstanceId, now: u64) -> Vec<u64> {
        let mut t = self.timers.lock().unwrap();
        let due: Vec<(u64, u64)> =
            t.iter().filter(|&(&(i, _), &at)| i == instance.0 && at <= now).map(|(&k, _)| k).collect();
        due.iter().map(|k| t.remove(k).map(|_| k.1).unwrap()).collect()
    }
    fn next_due(&self) -> Option<u64> {
        self.timers.lock().unwrap().values().min().copied()
    }
}

impl HostServices for Services {
    fn log(&self, _instance: &InstanceLabel, level: Level, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_owned()));
    }
    fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }
    fn node_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    fn node_endpoint(&self) -> String {
        format!("dtn://{}/", hex(&self.node_key()))
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
    fn set_timer(&self, instance: InstanceId, timer_id: u64, delay_ms: u64) -> Result<(), HostError> {
        let due = self.now_ms() + delay_ms;
        self.timers.lock().unwrap().insert((instance.0, timer_id), due);
        Ok(())
    }
    fn cancel_timer(&self, instance: InstanceId, timer_id: u64) -> bool {
        self.timers.lock().unwrap().remove(&(instance.0, timer_id)).is_some()
    }
    fn watch_fd(&self, _: InstanceId, _: RawFd, _: u32) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    fn unwatch_fd(&self, _: InstanceId, _: RawFd) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Authority,
    Client,
    Gateway,
    Relay,
    /// A committee member that votes for everything (no plugin).
    Byzantine,
}

impl Kind {
    fn role(self) -> &'static str {
        match self {
            Kind::Authority | Kind::Byzantine => "authority",
            Kind::Client => "client",
            Kind::Gateway => "gateway",
            Kind::Relay => "relay",
        }
    }
    pub fn in_committee(self) -> bool {
        matches!(self, Kind::Authority | Kind::Byzantine)
    }
}

pub struct Node {
    pub kind: Kind,
    pub signing: SigningKey,
    pub key: Key,
    pub services: Arc<Services>,
    pub plugin: Option<Box<dyn Consensus>>,
    pub store: Option<Store>,
    pub subscriptions: BTreeSet<String>,
    pub config: Vec<u8>,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub fn endpoint(&self) -> String {
        format!("dtn://{}/quorum", hex(&self.key))
    }
}

/// One bundle on its way to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub to: usize,
    pub source: String,
    pub destination: String,
    pub payload: Vec<u8>,
}

impl Delivery {
    /// The bundle as a consensus plugin is handed it, with bundle id `id`.
    pub fn info<'a>(&'a self, id: &'a [u8]) -> BundleInfo<'a> {
        BundleInfo {
            id,
            source: &self.source,
            destination: &self.destination,
            priority: 2,
            created_ms: 0,
            lifetime_ms: 3_600_000,
            age_ms: 0,
            payload_len: self.payload.len() as u64,
            hop_count: 1,
            copies: MP_COPIES_UNLIMITED,
            payload: &self.payload,
        }
    }

    pub fn message(&self) -> Option<Message> {
        Message::parse(&self.payload).ok()
    }
    pub fn kind(&self) -> &'static str {
        self.message().map_or("garbage", |m| m.body.message_type().name())
    }
}

pub struct Net {
    pub nodes: Vec<Node>,
    pub clock: Arc<AtomicU64>,
    pub queue: VecDeque<Delivery>,
    /// Every delivery ever queued, for replays.
    pub sent: Vec<Delivery>,
    pub wallets: Vec<SigningKey>,
    pub committee: Committee,
    pub committee_json: Value,
    /// Every certificate that travelled in a confirmation.
    pub certificates: Vec<Certificate>,
    pub extra_config: Value,
    next_id: u64,
}

pub fn node_signing_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 1; 32])
}

pub fn wallet_key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[i as u8 + 101; 32])
}

pub fn small_store() -> StoreConfig {
    StoreConfig { quota_bytes: 1 << 20, max_bundle_bytes: 1 << 16, map_bytes: 32 << 20 }
}

impl Net {
    /// A network of `kinds`; `wallets` accounts with `balance` each in
    /// genesis. `extra` is merged into every node's config.
    pub fn new(kinds: &[Kind], wallets: usize, balance: u64) -> Net {
        Self::with_config(kinds, wallets, balance, json!({}))
    }

    pub fn with_config(kinds: &[Kind], wallets: usize, balance: u64, extra: Value) -> Net {
        let clock = Arc::new(AtomicU64::new(1_000));
        let signing: Vec<SigningKey> = (0..kinds.len()).map(node_signing_key).collect();
        let wallet_keys: Vec<SigningKey> = (0..wallets).map(wallet_key).collect();
        let authorities: Vec<Value> = kinds
            .iter()
            .zip(&signing)
            .filter(|(k, _)| k.in_committee())
            .map(|(_, s)| json!({"key": hex(&s.verifying_key().to_bytes()), "weight": 1}))
            .collect();
        let genesis: Vec<Value> = wallet_keys
            .iter()
            .map(|w| json!({"account": hex(&w.verifying_key().to_bytes()), "balance": balance}))
            .collect();
        let committee_json = json!({"authority": authorities, "genesis": genesis});
        let committee = Committee::new(
            &kinds
                .iter()
                .zip(&signing)
                .filter(|(k, _)| k.in_committee())
                .map(|(_, s)| (s.verifying_key().to_bytes(), 1))
                .collect::<Vec<_>>(),
            &wallet_keys.iter().map(|w| (w.verifying_key().to_bytes(), balance)).collect::<Vec<_>>(),
        )
        .unwrap();
        let mut net = Net {
            nodes: Vec::new(),
            clock: clock.clone(),
            queue: VecDeque::new(),
            sent: Vec::new(),
            wallets: wallet_keys,
            committee,
            committee_json,
            certificates: Vec::new(),
            extra_config: extra,
            next_id: 0,
        };
        for (i, kind) in kinds.iter().enumerate() {
            let services = Arc::new(Services {
                key: signing[i].clone(),
                clock: clock.clone(),
                logs: Mutex::new(Vec::new()),
                timers: Mutex::new(BTreeMap::new()),
            });
            let mut config = json!({"role": kind.role(), "committee": net.committee_json});
            if let (Some(c), Some(e)) = (config.as_object_mut(), net.extra_config.as_object()) {
                for (k, v) in e {
                    c.insert(k.clone(), v.clone());
                }
            }
            let key = signing[i].verifying_key().to_bytes();
            let node = Node {
                kind: *kind,
                signing: signing[i].clone(),
                key,
                services,
                plugin: None,
                store: None,
                subscriptions: BTreeSet::new(),
                config: serde_json::to_vec(&config).unwrap(),
                dir: tempfile::tempdir().unwrap(),
            };
            net.nodes.push(node);
            net.start(i).expect("the node starts");
        }
        net
    }

    pub fn hash(&self) -> [u8; 32] {
        *self.committee.hash()
    }

    /// Opens the node's store and creates its plugin instance (a restart if
    /// it ran before).
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        node.subscriptions.clear();
        // A new process: the old instance's timers are gone.
        node.services.timers.lock().unwrap().clear();
        if node.kind == Kind::Byzantine {
            node.subscriptions.insert(GROUP.into());
            node.subscriptions.insert(node.endpoint());
            return Ok(());
        }
        node.plugin = None;
        node.store = None;
        let store = Store::open(node.dir.path(), small_store()).map_err(|e| e.to_string())?;
        let plugin = Plugin::builtin(plugin_entry).map_err(|e| e.to_string())?;
        let mut instance = {
            let mut batch = store.batch().map_err(|e| e.to_string())?;
            let mut call = batch.plugin_call(PLUGIN_ID);
            let r = plugin.create_consensus("quorum", &node.config, node.services.clone(), &mut call);
            call.finish(r.is_ok()).map_err(|e| e.to_string())?;
            let instance = r.map_err(|e| format!("{e}: {}", node.services.last_log()))?;
            batch.commit().map_err(|e| e.to_string())?;
            instance
        };
        for a in instance.take_actions() {
            if let HostAction::Subscribe { endpoint } = a {
                node.subscriptions.insert(endpoint);
            }
        }
        node.plugin = Some(instance);
        node.store = Some(store);
        Ok(())
    }

    /// Kills a node: the plugin and the store go away without anything
    /// more being committed.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].plugin = None;
        self.nodes[i].store = None;
    }

    /// Runs one plugin call on node `i` in a batch; commits it unless
    /// `commit` is false (a crash before the commit). Returns the call's
    /// result and what it emitted.
    fn call<R>(
        &mut self,
        i: usize,
        commit: bool,
        f: impl FnOnce(&mut dyn Consensus, &mut dyn KvStore) -> Result<R, meshpay_host::CallError>,
    ) -> Result<R, String> {
        let node = &mut self.nodes[i];
        let store = node.store.as_ref().expect("the node is running");
        let plugin = node.plugin.as_mut().expect("the node is running");
        let mut batch = store.batch().map_err(|e| e.to_string())?;
        let r = {
            let mut call = batch.plugin_call(PLUGIN_ID);
            let r = f(plugin.as_mut(), &mut call);
            call.finish(r.is_ok()).map_err(|e| e.to_string())?;
            r
        };
        let actions = plugin.take_actions();
        if commit {
            batch.commit().map_err(|e| e.to_string())?;
        } else {
            drop(batch);
        }
        match r {
            Ok(v) => {
                if commit {
                    self.route(i, actions);
                }
                Ok(v)
            }
            Err(e) => Err(format!("{e}: {}", self.nodes[i].services.last_log())),
        }
    }

    /// Queues what node `from` emitted, one delivery per subscribed node.
    fn route(&mut self, from: usize, actions: Vec<HostAction>) {
        for a in actions {
            if let HostAction::EmitBundle { destination, source_service, payload, .. } = a {
                let source = format!("dtn://{}/{source_service}", hex(&self.nodes[from].key));
                self.push(source, destination, payload);
            }
        }
    }

    /// Queues a bundle for every node subscribed to `destination`.
    pub fn push(&mut self, source: String, destination: String, payload: Vec<u8>) {
        if let Ok(Message { body: Body::Confirmation(c), .. }) = Message::parse(&payload) {
            self.certificates.push(c);
        }
        self.next_id += 1;
        for (to, n) in self.nodes.iter().enumerate() {
            if n.subscriptions.contains(&destination) {
                let d = Delivery {
                    to,
                    source: source.clone(),
                    destination: destination.clone(),
                    payload: payload.clone(),
                };
                self.sent.push(d.clone());
                self.queue.push_back(d);
            }
        }
    }

    /// Delivers one bundle to its node; `Err` is the refusal (with the
    /// plugin's log line naming the reason).
    pub fn deliver(&mut self, d: &Delivery) -> Result<(), String> {
        self.deliver_with(d, true)
    }

    pub fn deliver_with(&mut self, d: &Delivery, commit: bool) -> Result<(), String> {
        if self.nodes[d.to].kind == Kind::Byzantine {
            self.byzantine(d);
            return Ok(());
        }
        if self.nodes[d.to].plugin.is_none() {
            return Err("node is down".into());
        }
        let id = d.payload.len().to_be_bytes();
        let info = d.info(&id);
        self.call(d.to, commit, |p, kv| p.on_bundle(kv, &info))
    }

    /// A Byzantine authority votes for every order it sees.
    fn byzantine(&mut self, d: &Delivery) {
        let Some(Message { body: Body::Order(o), .. }) = d.message() else { return };
        let h = o.body.hash(&self.hash());
        let node = &self.nodes[d.to];
        let vote = wire::Vote {
            order_hash: h,
            authority: node.key,
            signature: node.signing.sign(&wire::vote_message(&h)).to_bytes(),
        };
        let payload = Message { committee: self.hash(), body: Body::Vote(vote) }.to_bytes();
        let source = node.endpoint();
        self.push(source, d.source.clone(), payload);
    }

    /// Delivers everything queued (and what that emits) until the queue is
    /// empty; returns the refusals.
    pub fn run(&mut self) -> Vec<String> {
        self.run_where(|_| true)
    }

    /// Delivers queued bundles that `keep` accepts and drops the others.
    pub fn run_where(&mut self, mut keep: impl FnMut(&Delivery) -> bool) -> Vec<String> {
        let mut errors = Vec::new();
        let mut steps = 0;
        while let Some(d) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "the network does not settle");
            if keep(&d)
                && let Err(e) = self.deliver(&d)
            {
                errors.push(format!("{} to node {}: {e}", d.kind(), d.to));
            }
        }
        errors
    }

    /// Delivers queued bundles that `pick` accepts (and what they emit, if
    /// accepted too) and keeps the others queued.
    pub fn run_only(&mut self, mut pick: impl FnMut(&Delivery) -> bool) -> Vec<String> {
        let mut errors = Vec::new();
        while let Some(i) = self.queue.iter().position(&mut pick) {
            let d = self.queue.remove(i).unwrap();
            if let Err(e) = self.deliver(&d) {
                errors.push(format!("{} to node {}: {e}", d.kind(), d.to));
            }
        }
        errors
    }

    /// Advances the clock by `ms` in steps, firing due timers.
    pub fn advance(&mut self, ms: u64) {
        let end = self.clock.load(Ordering::SeqCst) + ms;
        loop {
            let next = self.nodes.iter().filter_map(|n| n.services.next_due()).min();
            match next {
                Some(t) if t <= end => {
                    self.clock.fetch_max(t, Ordering::SeqCst);
                    self.fire_timers();
                }
                _ => break,
            }
        }
        self.clock.store(end, Ordering::SeqCst);
        self.fire_timers();
    }

    fn fire_timers(&mut self) {
        let now = self.clock.load(Ordering::SeqCst);
        for i in 0..self.nodes.len() {
            let Some(p) = &self.nodes[i].plugin else { continue };
            let id = p.id();
            for t in self.nodes[i].services.due(id, now) {
                let _ = self.call(i, true, |p, kv| p.on_timer(kv, t));
            }
        }
    }

    /// A control request on node `i`.
    pub fn control(&mut self, i: usize, method: &str, body: Value) -> Result<Value, String> {
        let body = serde_json::to_vec(&body).unwrap();
        let reply = self.call(i, true, |p, kv| p.on_control(kv, method, &body))?;
        serde_json::from_slice(&reply).map_err(|e| format!("reply is not JSON: {e}"))
    }

    /// The node's status.
    pub fn status(&mut self, i: usize) -> Value {
        self.control(i, "status", json!({})).unwrap()
    }

    /// Runs the plugin's conservation audit on node `i` and checks it.
    pub fn audit(&mut self, i: usize) -> Value {
        let a = self.control(i, "audit", json!({})).unwrap();
        assert_eq!(a["conserved"], true, "node {i}: money not conserved: {a}");
        a
    }

    /// Every table of the node: (table, key) → value.
    pub fn dump(&self, i: usize) -> BTreeMap<(String, Vec<u8>), Vec<u8>> {
        let store = self.nodes[i].store.as_ref().expect("running");
        let mut out = BTreeMap::new();
        let mut batch = store.batch().unwrap();
        let mut call = batch.plugin_call(PLUGIN_ID);
        for t in TableId::ALL {
            let h = call.open(t.name()).unwrap();
            call.scan(h, &[0], &mut |k, v| {
                out.insert((t.name().to_owned(), k.to_vec()), v.to_vec());
                true
            })
            .unwrap();
        }
        call.finish(true).unwrap();
        out
    }

    /// Writes into a node's table directly (to damage a record).
    pub fn poke(&self, i: usize, table: TableId, key: &[u8], value: &[u8]) {
        let store = self.nodes[i].store.as_ref().expect("running");
        let mut batch = store.batch().unwrap();
        let mut call = batch.plugin_call(PLUGIN_ID);
        let h = call.open(table.name()).unwrap();
        call.put(h, key, value).unwrap();
        call.finish(true).unwrap();
        batch.commit().unwrap();
    }

    pub fn wallet(&self, w: usize) -> Key {
        self.wallets[w].verifying_key().to_bytes()
    }

    /// A transfer signed by wallet `w`.
    pub fn transfer(&self, w: usize, recipient: Key, amount: u64, sequence: u64) -> Order {
        let body =
            OrderBody { sender: self.wallet(w), sequence, amount, kind: OrderKind::Transfer { recipient } };
        self.sign(w, body)
    }

    pub fn sign(&self, w: usize, body: OrderBody) -> Order {
        let signature = self.wallets[w].sign(&body.signing_message(&self.hash())).to_bytes();
        Order { body, signature }
    }

    /// `submit_transfer` on node `client` (recipient's home node optional).
    pub fn submit(&mut self, client: usize, order: &Order, home: Option<usize>) -> Result<String, String> {
        let mut o = OrderJson::of(order, &self.hash());
        if let (Some(h), Some(r)) = (home, order.body.recipient()) {
            o["recipient"] = json!(format!("{}@{}", hex(r), hex(&self.nodes[h].key)));
        }
        let method = if order.body.is_withdrawal() { "submit_withdrawal" } else { "submit_transfer" };
        let v = self.control(client, method, json!({"order": o}))?;
        Ok(v["order_hash"].as_str().unwrap().to_owned())
    }

    pub fn balance(&mut self, i: usize, account: &Key) -> (i64, u64) {
        let v = self.control(i, "balance", json!({"account": hex(account)})).unwrap();
        (v["balance"].as_i64().unwrap(), v["next_sequence"].as_u64().unwrap())
    }

    pub fn authorities(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].kind == Kind::Authority).collect()
    }

    /// At most one certificate per (account, sequence) on the wire.
    pub fn assert_no_double_certificates(&self) {
        let mut slots: BTreeMap<(Key, u64), BTreeSet<[u8; 32]>> = BTreeMap::new();
        for c in &self.certificates {
            let b = &c.order.body;
            slots.entry((b.sender, b.sequence)).or_default().insert(b.hash(&self.hash()));
        }
        for ((a, s), hashes) in slots {
            assert!(
                hashes.len() <= 1,
                "account {} sequence {s}: {} different certificates",
                hex(&a),
                hashes.len()
            );
        }
    }
}
