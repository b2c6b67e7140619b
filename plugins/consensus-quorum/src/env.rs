//! What the protocol core needs from its surroundings: the ledger tables and
//! the node's services (clock, node-key signatures, verification, bundles,
//! log). The plugin implements it over the SDK ([`SdkEnv`]); anything else
//! (a benchmark driving the core directly, a test) can implement it too.
//! The core itself never touches the ABI: it is sans-IO.

use meshpay_abi::sdk::{ConsensusHost, Host, Level, PluginError, Table};
use meshpay_abi::{OutBundle, SignedMessage};

use crate::keys::{Hash, Sig};

/// The plugin's tables (see `README.md` and [`crate::ledger`] for layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TableId {
    /// Committee hash, counters, ledger clock, history cursor.
    Meta,
    /// Account → balance, next sequence number, pending order lock.
    Accounts,
    /// (account, sequence) → applied certificate.
    Certs,
    /// (account, sequence) → certificate ahead of the account's sequence number.
    Waiting,
    /// (recipient, sender, sequence) → amount: payments received.
    Received,
    /// Order hash → withdrawal lock.
    Withdrawals,
    /// (deadline, order hash) → (): locks still running, by deadline.
    Deadlines,
    /// Counter → event: append-only history.
    History,
    /// (account, sequence, attempted order hash) → double-spend evidence.
    Evidence,
    /// Order hash → a client's pending order.
    Pending,
    /// (order hash, authority) → vote signature a client gathered.
    Votes,
    /// Order hash → a gateway's withdrawal awaiting settlement.
    Gateway,
    /// (order hash, authority) → settlement acknowledgement a gateway gathered.
    Acks,
}

impl TableId {
    pub const ALL: [TableId; 13] = [
        TableId::Meta,
        TableId::Accounts,
        TableId::Certs,
        TableId::Waiting,
        TableId::Received,
        TableId::Withdrawals,
        TableId::Deadlines,
        TableId::History,
        TableId::Evidence,
        TableId::Pending,
        TableId::Votes,
        TableId::Gateway,
        TableId::Acks,
    ];

    /// The LMDB table name (private to the plugin id).
    pub fn name(self) -> &'static str {
        match self {
            TableId::Meta => "meta",
            TableId::Accounts => "accounts",
            TableId::Certs => "certs",
            TableId::Waiting => "waiting",
            TableId::Received => "received",
            TableId::Withdrawals => "withdrawals",
            TableId::Deadlines => "deadlines",
            TableId::History => "history",
            TableId::Evidence => "evidence",
            TableId::Pending => "pending",
            TableId::Votes => "votes",
            TableId::Gateway => "gateway",
            TableId::Acks => "acks",
        }
    }
}

/// Read access to the tables: enough for audits ([`crate::ledger::audit`]).
pub trait ReadTables {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>, PluginError>;
    /// Visits entries with key >= `start` in key order while `visit` returns true.
    fn scan(
        &self,
        t: TableId,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), PluginError>;
}

/// The key `a` | hash: marks an entry of `pending` (a client's order) or
/// `gateway` (a withdrawal) as still active, so ticks visit only those.
pub fn active_key(h: &Hash) -> Vec<u8> {
    [&b"a"[..], h].concat()
}

/// The hashes marked active in table `t` (see [`active_key`]), in key order.
pub fn active_hashes(env: &dyn ReadTables, t: TableId) -> Result<Vec<Hash>, PluginError> {
    let mut active = Vec::new();
    env.scan(t, b"a", &mut |k, _| {
        let Some((b'a', rest)) = k.split_first() else { return false };
        let Ok(h) = Hash::try_from(rest) else { return false };
        active.push(h);
        true
    })?;
    Ok(active)
}

/// The tables, read and write. Writes happen inside the host's transaction
/// for the current call and are rolled back if the call fails.
pub trait Tables: ReadTables {
    fn put(&self, t: TableId, key: &[u8], value: &[u8]) -> Result<(), PluginError>;
    fn delete(&self, t: TableId, key: &[u8]) -> Result<bool, PluginError>;
}

/// A bundle to emit.
#[derive(Clone, Copy, Debug)]
pub struct Emit<'a> {
    pub destination: &'a str,
    pub payload: &'a [u8],
    /// 0 bulk, 1 normal, 2 expedited.
    pub priority: u32,
    pub lifetime_ms: u64,
}

/// Signatures: the node services the ABI marks thread-safe, so a batch of
/// work can spread them over threads ([`crate::batch`]).
pub trait Crypto {
    /// Signs with the node key (which never enters the plugin).
    fn sign(&self, message: &[u8]) -> Result<Sig, PluginError>;
    /// Strict single verification.
    fn verify(&self, key: &[u8; 32], message: &[u8], signature: &Sig) -> bool;
    /// Batch verification; on failure the index of the first bad item if known.
    fn verify_batch(&self, items: &[SignedMessage<'_>]) -> Result<(), Option<usize>>;
}

/// The node's services.
pub trait Node: Crypto {
    /// Monotonic milliseconds of the host clock (restarts at each start).
    fn now_ms(&self) -> u64;
    /// Emits a bundle; committed with the call's writes, sent after the commit.
    fn emit(&self, bundle: &Emit<'_>) -> Result<(), PluginError>;
    fn log(&self, level: Level, message: &str);
}

/// Both, as the core's handlers take them.
pub trait Env: Tables + Node {}
impl<T: Tables + Node> Env for T {}

/// The plugin's service name under a node endpoint.
pub const SERVICE: &str = "quorum";

/// The SDK-backed environment: the host's tables and services.
#[derive(Clone, Copy)]
pub struct SdkEnv {
    pub host: Host,
    pub consensus: ConsensusHost,
    tables: [Table; TableId::ALL.len()],
}

impl SdkEnv {
    /// Opens every table (only valid inside `create` or a call).
    pub fn open(host: Host, consensus: ConsensusHost) -> Result<SdkEnv, PluginError> {
        let mut tables = [Table(0); TableId::ALL.len()];
        for t in TableId::ALL {
            tables[t as usize] = consensus.open(t.name())?;
        }
        Ok(SdkEnv { host, consensus, tables })
    }

    fn table(&self, t: TableId) -> Table {
        self.tables[t as usize]
    }
}

impl ReadTables for SdkEnv {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>, PluginError> {
        self.consensus.get(self.table(t), key)
    }
    fn scan(
        &self,
        t: TableId,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), PluginError> {
        // LMDB refuses a zero-length key as a cursor position
        // (MDB_BAD_VALSIZE), and keys are never empty: `[0]` is the
        // smallest start that covers every key.
        let start = if start.is_empty() { &[0u8][..] } else { start };
        self.consensus.scan(self.table(t), start, visit)
    }
}

impl Tables for SdkEnv {
    fn put(&self, t: TableId, key: &[u8], value: &[u8]) -> Result<(), PluginError> {
        self.consensus.put(self.table(t), key, value)
    }
    fn delete(&self, t: TableId, key: &[u8]) -> Result<bool, PluginError> {
        self.consensus.delete(self.table(t), key)
    }
}

impl Crypto for Host {
    fn sign(&self, message: &[u8]) -> Result<Sig, PluginError> {
        Host::sign(self, message)
    }
    fn verify(&self, key: &[u8; 32], message: &[u8], signature: &Sig) -> bool {
        Host::verify(self, key, message, signature)
    }
    fn verify_batch(&self, items: &[SignedMessage<'_>]) -> Result<(), Option<usize>> {
        Host::verify_batch(self, items)
    }
}

impl Crypto for SdkEnv {
    fn sign(&self, message: &[u8]) -> Result<Sig, PluginError> {
        self.host.sign(message)
    }
    fn verify(&self, key: &[u8; 32], message: &[u8], signature: &Sig) -> bool {
        self.host.verify(key, message, signature)
    }
    fn verify_batch(&self, items: &[SignedMessage<'_>]) -> Result<(), Option<usize>> {
        self.host.verify_batch(items)
    }
}

impl Node for SdkEnv {
    fn now_ms(&self) -> u64 {
        self.host.now_ms()
    }
    fn emit(&self, b: &Emit<'_>) -> Result<(), PluginError> {
        self.host.emit_bundle(&OutBundle {
            destination: b.destination,
            source_service: SERVICE,
            payload: b.payload,
            priority: b.priority,
            lifetime_ms: b.lifetime_ms,
        })
    }
    fn log(&self, level: Level, message: &str) {
        self.host.log(level, message)
    }
}
