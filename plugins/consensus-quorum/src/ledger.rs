//! The ledger tables: record encodings, applying certificates, and the
//! conservation invariant.
//!
//! Layout (keys are big-endian so scans run in numeric order):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | ASCII name | see [`meta`] |
//! | `accounts` | account \[32\] | [`Account`] |
//! | `certs` | account \[32\] · sequence u64 | order hash \[32\] · certificate |
//! | `waiting` | account \[32\] · sequence u64 | order hash \[32\] · certificate |
//! | `received` | recipient \[32\] · sender \[32\] · sequence u64 | amount u64 · order hash \[32\] |
//! | `withdrawals` | order hash \[32\] | [`Lock`] |
//! | `deadlines` | deadline u64 · order hash \[32\] | empty |
//! | `history` | counter u64 | [`Event`] |
//! | `evidence` | account \[32\] · sequence u64 · attempted order hash \[32\] | [`Evidence`] |
//!
//! Money is conserved: every change of a balance is matched in the same
//! call by the opposite change of another balance or of a withdrawal lock.
//! [`audit`] checks `Σ balances + Σ locked + Σ settled == genesis total`.
//!
//! Balances are `i128`: a certificate is final, so an authority applies it
//! even if its own view of the sender's balance is short (it may not have
//! seen a credit yet, which arrives later over the mesh). The vote, not the
//! application, is where balances are checked (as in FastPay).

use meshpay_abi::sdk::PluginError;

use crate::config::Committee;
use crate::env::{ReadTables, TableId, Tables};
use crate::error::{Error, Reason, refuse};
use crate::keys::{Hash, Key};
use crate::wire::{Certificate, OrderKind, WireError};

/// Keys of the `meta` table.
pub mod meta {
    /// The committee hash this ledger was created for.
    pub const COMMITTEE: &[u8] = b"committee";
    /// The total supply at genesis (u64).
    pub const GENESIS_TOTAL: &[u8] = b"genesis_total";
    /// The ledger clock (u64 ms): time this node has run, persisted, so
    /// withdrawal deadlines survive restarts (the host clock does not).
    pub const CLOCK: &[u8] = b"clock";
    /// Next `history` key (u64).
    pub const HISTORY_NEXT: &[u8] = b"history_next";
    /// Last heartbeat sequence number sent (u64).
    pub const HEARTBEAT_SEQ: &[u8] = b"heartbeat_seq";
    /// Counters: `n.<name>` (u64).
    pub const COUNTER_PREFIX: &[u8] = b"n.";
}

/// Persistent counters (in `meta` under `n.<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    OrdersSigned,
    VotesResent,
    CertificatesApplied,
    CertificatesWaiting,
    DoubleSpendAttempts,
    ConflictingCertificates,
    WithdrawalsLocked,
    LocksExpired,
    LocksSettled,
}

impl Counter {
    pub const ALL: [Counter; 9] = [
        Counter::OrdersSigned,
        Counter::VotesResent,
        Counter::CertificatesApplied,
        Counter::CertificatesWaiting,
        Counter::DoubleSpendAttempts,
        Counter::ConflictingCertificates,
        Counter::WithdrawalsLocked,
        Counter::LocksExpired,
        Counter::LocksSettled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::OrdersSigned => "orders_signed",
            Counter::VotesResent => "votes_resent",
            Counter::CertificatesApplied => "certificates_applied",
            Counter::CertificatesWaiting => "certificates_waiting",
            Counter::DoubleSpendAttempts => "double_spend_attempts",
            Counter::ConflictingCertificates => "conflicting_certificates",
            Counter::WithdrawalsLocked => "withdrawals_locked",
            Counter::LocksExpired => "locks_expired",
            Counter::LocksSettled => "locks_settled",
        }
    }

    fn key(self) -> Vec<u8> {
        [meta::COUNTER_PREFIX, self.name().as_bytes()].concat()
    }
}

fn damaged(what: &str) -> PluginError {
    PluginError::failed(format!("damaged ledger record: {what}"))
}

/// A bounds-checked reader for stored records.
struct Rec<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Rec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PluginError> {
        if self.buf.len() < n {
            return Err(damaged(self.what));
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PluginError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, PluginError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, PluginError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn rest(self) -> &'a [u8] {
        self.buf
    }
}

/// Reads a u64 from `meta` (0 if absent).
pub fn read_u64(t: &dyn ReadTables, key: &[u8]) -> Result<u64, PluginError> {
    match t.get(TableId::Meta, key)? {
        Some(v) => Rec { buf: &v, what: "meta u64" }.u64(),
        None => Ok(0),
    }
}

pub fn write_u64(t: &dyn Tables, key: &[u8], v: u64) -> Result<(), PluginError> {
    t.put(TableId::Meta, key, &v.to_be_bytes())
}

pub fn counter(t: &dyn ReadTables, c: Counter) -> Result<u64, PluginError> {
    read_u64(t, &c.key())
}

pub fn bump(t: &dyn Tables, c: Counter, by: i64) -> Result<(), PluginError> {
    let key = c.key();
    let v = read_u64(t, &key)?;
    write_u64(t, &key, v.saturating_add_signed(by))
}

/// The ledger clock (ms this node has run, persisted).
pub fn clock(t: &dyn ReadTables) -> Result<u64, PluginError> {
    read_u64(t, meta::CLOCK)
}

/// An account: `version 1 | balance i128 | next sequence u64 | lock flag u8 [| order hash [32]]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: i128,
    /// The sequence number the account's next order must carry.
    pub next_sequence: u64,
    /// The order this authority signed for slot `next_sequence`, if any:
    /// written before the vote leaves, released when a certificate for the
    /// slot is applied.
    pub lock: Option<Hash>,
}

impl Account {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 16 + 8 + 1 + 32);
        v.push(1);
        v.extend_from_slice(&self.balance.to_be_bytes());
        v.extend_from_slice(&self.next_sequence.to_be_bytes());
        match &self.lock {
            Some(h) => {
                v.push(1);
                v.extend_from_slice(h);
            }
            None => v.push(0),
        }
        v
    }

    pub fn decode(b: &[u8]) -> Result<Account, PluginError> {
        let mut r = Rec { buf: b, what: "account" };
        if r.u8()? != 1 {
            return Err(damaged("account version"));
        }
        let balance = i128::from_be_bytes(r.array()?);
        let next_sequence = r.u64()?;
        let lock = match r.u8()? {
            0 => None,
            1 => Some(r.array()?),
            _ => return Err(damaged("account lock flag")),
        };
        Ok(Account { balance, next_sequence, lock })
    }
}

pub fn load_account(t: &dyn ReadTables, key: &Key) -> Result<Option<Account>, PluginError> {
    t.get(TableId::Accounts, key)?.map(|v| Account::decode(&v)).transpose()
}

pub fn store_account(t: &dyn Tables, key: &Key, a: &Account) -> Result<(), PluginError> {
    t.put(TableId::Accounts, key, &a.encode())
}

/// `account · sequence`, the key of `certs`, `waiting` (and a prefix of `evidence`).
pub fn slot_key(account: &Key, sequence: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(account);
    k[32..].copy_from_slice(&sequence.to_be_bytes());
    k
}

/// A stored certificate with its order hash (`certs`, `waiting`).
pub fn encode_stored_cert(order_hash: &Hash, cert: &Certificate) -> Vec<u8> {
    let mut v = Vec::with_capacity(32 + cert.buffer_len());
    v.extend_from_slice(order_hash);
    cert.emit(&mut v);
    v
}

pub fn decode_stored_cert(b: &[u8]) -> Result<(Hash, Certificate), PluginError> {
    let mut r = Rec { buf: b, what: "stored certificate" };
    let h = r.array()?;
    let c =
        Certificate::from_bytes(r.rest()).map_err(|e: WireError| damaged(&format!("certificate: {e}")))?;
    Ok((h, c))
}

/// The certificate applied for (account, sequence), if any.
pub fn certificate_at(
    t: &dyn ReadTables,
    account: &Key,
    sequence: u64,
) -> Result<Option<(Hash, Certificate)>, PluginError> {
    t.get(TableId::Certs, &slot_key(account, sequence))?.map(|v| decode_stored_cert(&v)).transpose()
}

/// Only the order hash of the certificate at (account, sequence): the cheap
/// replay check.
pub fn certificate_hash_at(
    t: &dyn ReadTables,
    account: &Key,
    sequence: u64,
) -> Result<Option<Hash>, PluginError> {
    match t.get(TableId::Certs, &slot_key(account, sequence))? {
        Some(v) => Ok(Some(Rec { buf: &v, what: "stored certificate" }.array()?)),
        None => Ok(None),
    }
}

/// State of a withdrawal lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockState {
    /// Funds held for the gateway.
    Locked = 0,
    /// The gateway claimed them: they left the system.
    Settled = 1,
    /// Unclaimed at the deadline: they went back to the sender.
    Expired = 2,
}

/// A withdrawal lock: `version 1 | sender [32] | sequence u64 | amount u64 |
/// gateway \[32\] | deadline u64 | state u8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    pub sender: Key,
    pub sequence: u64,
    pub amount: u64,
    pub gateway: Key,
    /// On this node's ledger clock; `u64::MAX` where locks never expire
    /// (the views of clients and gateways, which cannot see expiries).
    pub deadline: u64,
    pub state: LockState,
}

impl Lock {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 32 + 8 + 8 + 32 + 8 + 1);
        v.push(1);
        v.extend_from_slice(&self.sender);
        v.extend_from_slice(&self.sequence.to_be_bytes());
        v.extend_from_slice(&self.amount.to_be_bytes());
        v.extend_from_slice(&self.gateway);
        v.extend_from_slice(&self.deadline.to_be_bytes());
        v.push(self.state as u8);
        v
    }

    pub fn decode(b: &[u8]) -> Result<Lock, PluginError> {
        let mut r = Rec { buf: b, what: "withdrawal lock" };
        if r.u8()? != 1 {
            return Err(damaged("lock version"));
        }
        Ok(Lock {
            sender: r.array()?,
            sequence: r.u64()?,
            amount: r.u64()?,
            gateway: r.array()?,
            deadline: r.u64()?,
            state: match r.u8()? {
                0 => LockState::Locked,
                1 => LockState::Settled,
                2 => LockState::Expired,
                _ => return Err(damaged("lock state")),
            },
        })
    }
}

pub fn load_lock(t: &dyn ReadTables, order_hash: &Hash) -> Result<Option<Lock>, PluginError> {
    t.get(TableId::Withdrawals, order_hash)?.map(|v| Lock::decode(&v)).transpose()
}

pub fn deadline_key(deadline: u64, order_hash: &Hash) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&deadline.to_be_bytes());
    k[8..].copy_from_slice(order_hash);
    k
}

/// What the history records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    CertificateApplied = 1,
    CertificateWaiting = 2,
    DoubleSpendAttempt = 3,
    ConflictingCertificate = 4,
    LockExpired = 5,
    LockSettled = 6,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::CertificateApplied => "certificate_applied",
            EventKind::CertificateWaiting => "certificate_waiting",
            EventKind::DoubleSpendAttempt => "double_spend_attempt",
            EventKind::ConflictingCertificate => "conflicting_certificate",
            EventKind::LockExpired => "lock_expired",
            EventKind::LockSettled => "lock_settled",
        }
    }
    fn from_u8(b: u8) -> Option<EventKind> {
        Some(match b {
            1 => EventKind::CertificateApplied,
            2 => EventKind::CertificateWaiting,
            3 => EventKind::DoubleSpendAttempt,
            4 => EventKind::ConflictingCertificate,
            5 => EventKind::LockExpired,
            6 => EventKind::LockSettled,
            _ => return None,
        })
    }
}

/// One history entry: `kind u8 | clock u64 | order hash [32] | account [32] | sequence u64 | amount u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// Ledger clock when it happened.
    pub clock: u64,
    pub order_hash: Hash,
    pub account: Key,
    pub sequence: u64,
    pub amount: u64,
}

impl Event {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 8 + 32 + 32 + 16);
        v.push(self.kind as u8);
        v.extend_from_slice(&self.clock.to_be_bytes());
        v.extend_from_slice(&self.order_hash);
        v.extend_from_slice(&self.account);
        v.extend_from_slice(&self.sequence.to_be_bytes());
        v.extend_from_slice(&self.amount.to_be_bytes());
        v
    }
    pub fn decode(b: &[u8]) -> Result<Event, PluginError> {
        let mut r = Rec { buf: b, what: "history event" };
        Ok(Event {
            kind: EventKind::from_u8(r.u8()?).ok_or_else(|| damaged("history event kind"))?,
            clock: r.u64()?,
            order_hash: r.array()?,
            account: r.array()?,
            sequence: r.u64()?,
            amount: r.u64()?,
        })
    }
}

/// Appends to the history.
pub fn record(t: &dyn Tables, e: &Event) -> Result<(), PluginError> {
    let n = read_u64(t, meta::HISTORY_NEXT)?;
    t.put(TableId::History, &n.to_be_bytes(), &e.encode())?;
    write_u64(t, meta::HISTORY_NEXT, n + 1)
}

/// Proof of an attempted double spend: `locked order hash [32] | clock u64 |
/// the attempted order, signed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub locked: Hash,
    pub clock: u64,
    pub attempted: crate::wire::Order,
}

impl Evidence {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40 + self.attempted.buffer_len());
        v.extend_from_slice(&self.locked);
        v.extend_from_slice(&self.clock.to_be_bytes());
        self.attempted.emit(&mut v);
        v
    }

    pub fn decode(b: &[u8]) -> Result<Evidence, PluginError> {
        let mut r = Rec { buf: b, what: "double-spend evidence" };
        let locked = r.array()?;
        let clock = r.u64()?;
        let attempted = crate::wire::Order::from_bytes(r.rest())
            .map_err(|e| damaged(&format!("double-spend evidence: {e}")))?;
        Ok(Evidence { locked, clock, attempted })
    }
}

/// The `evidence` key: account, sequence, attempted order hash.
pub fn evidence_key(account: &Key, sequence: u64, attempted: &Hash) -> Vec<u8> {
    [&slot_key(account, sequence)[..], attempted].concat()
}

/// Writes the genesis accounts and the committee hash into a fresh ledger,
/// or checks that an existing one belongs to `committee`.
pub fn init(t: &dyn Tables, committee: &Committee) -> Result<(), PluginError> {
    match t.get(TableId::Meta, meta::COMMITTEE)? {
        Some(h) if h == committee.hash() => Ok(()),
        Some(h) => Err(PluginError::invalid(format!(
            "this node's ledger belongs to committee {}, but the configuration describes committee {}: \
             a ledger cannot change committees (use a new state directory, or restore the committee file)",
            crate::keys::hex(&h),
            crate::keys::hex(committee.hash())
        ))),
        None => {
            for (account, balance) in committee.genesis() {
                let a = Account { balance: i128::from(balance), next_sequence: 0, lock: None };
                store_account(t, account, &a)?;
            }
            t.put(TableId::Meta, meta::COMMITTEE, committee.hash())?;
            write_u64(t, meta::GENESIS_TOTAL, committee.genesis_total())
        }
    }
}

/// How a certificate is applied on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Authorities: strictly in sequence order; a certificate ahead of the
    /// account's sequence number waits in `waiting` for the missing ones.
    /// Withdrawal locks get a deadline `expiry_ms` after application.
    Strict,
    /// Clients and gateways, whose view holds only the certificates they
    /// see: each applied once, in any order (the next sequence number is
    /// one past the highest applied); locks never expire.
    View,
}

/// What applying a certificate did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Applied, with this many waiting successors applied after it.
    Applied { chained: u32 },
    /// Stored until the earlier sequence numbers are applied.
    Waiting,
    /// Already applied: nothing changed.
    Replay,
    /// Another certificate is applied for this slot. Impossible with at
    /// most a third of Byzantine weight; recorded as evidence.
    Conflict { applied: Hash },
}

/// Applies a *verified* certificate exactly once.
pub fn apply(t: &dyn Tables, cert: &Certificate, order_hash: &Hash, mode: Mode) -> Result<Applied, Error> {
    let body = &cert.order.body;
    if let Some(existing) = certificate_hash_at(t, &body.sender, body.sequence)? {
        if existing == *order_hash {
            return Ok(Applied::Replay);
        }
        bump(t, Counter::ConflictingCertificates, 1)?;
        record(
            t,
            &Event {
                kind: EventKind::ConflictingCertificate,
                clock: clock(t)?,
                order_hash: *order_hash,
                account: body.sender,
                sequence: body.sequence,
                amount: body.amount,
            },
        )?;
        return Ok(Applied::Conflict { applied: existing });
    }
    let account = load_account(t, &body.sender)?.unwrap_or_default();
    if mode == Mode::Strict && body.sequence > account.next_sequence {
        let key = slot_key(&body.sender, body.sequence);
        if t.get(TableId::Waiting, &key)?.is_none() {
            t.put(TableId::Waiting, &key, &encode_stored_cert(order_hash, cert))?;
            bump(t, Counter::CertificatesWaiting, 1)?;
            record(
                t,
                &Event {
                    kind: EventKind::CertificateWaiting,
                    clock: clock(t)?,
                    order_hash: *order_hash,
                    account: body.sender,
                    sequence: body.sequence,
                    amount: body.amount,
                },
            )?;
        }
        return Ok(Applied::Waiting);
    }
    apply_now(t, cert, order_hash, mode)?;
    // Successors that were waiting for this one.
    let mut chained = 0;
    if mode == Mode::Strict {
        let mut next = body.sequence + 1;
        while let Some(v) = t.get(TableId::Waiting, &slot_key(&body.sender, next))? {
            let (h, c) = decode_stored_cert(&v)?;
            t.delete(TableId::Waiting, &slot_key(&body.sender, next))?;
            bump(t, Counter::CertificatesWaiting, -1)?;
            if certificate_hash_at(t, &body.sender, next)?.is_none() {
                apply_now(t, &c, &h, mode)?;
                chained += 1;
            }
            next += 1;
        }
    }
    Ok(Applied::Applied { chained })
}

/// Moves the money of one certificate: debit the sender, credit the
/// recipient (or create the withdrawal lock), advance the sequence number,
/// release the order lock, store the certificate.
fn apply_now(t: &dyn Tables, cert: &Certificate, order_hash: &Hash, mode: Mode) -> Result<(), Error> {
    let body = &cert.order.body;
    let amount = i128::from(body.amount);
    let now = clock(t)?;
    let mut sender = load_account(t, &body.sender)?.unwrap_or_default();
    sender.balance = match sender.balance.checked_sub(amount) {
        Some(b) => b,
        None => return refuse(Reason::Overflow, "the sender's balance would overflow"),
    };
    if body.sequence >= sender.next_sequence {
        sender.next_sequence = match body.sequence.checked_add(1) {
            Some(n) => n,
            None => return refuse(Reason::Overflow, "sequence number u64::MAX cannot be used"),
        };
        sender.lock = None;
    }
    store_account(t, &body.sender, &sender)?;
    match &body.kind {
        OrderKind::Transfer { recipient } => {
            // Loaded after the sender is stored: a payment to oneself.
            let mut r = load_account(t, recipient)?.unwrap_or_default();
            r.balance = match r.balance.checked_add(amount) {
                Some(b) => b,
                None => return refuse(Reason::Overflow, "the recipient's balance would overflow"),
            };
            store_account(t, recipient, &r)?;
            let mut key = Vec::with_capacity(72);
            key.extend_from_slice(recipient);
            key.extend_from_slice(&slot_key(&body.sender, body.sequence));
            let mut v = Vec::with_capacity(40);
            v.extend_from_slice(&body.amount.to_be_bytes());
            v.extend_from_slice(order_hash);
            t.put(TableId::Received, &key, &v)?;
        }
        OrderKind::Withdrawal { gateway, expiry_ms, .. } => {
            let deadline = match mode {
                Mode::Strict => now.saturating_add(*expiry_ms),
                Mode::View => u64::MAX,
            };
            let lock = Lock {
                sender: body.sender,
                sequence: body.sequence,
                amount: body.amount,
                gateway: *gateway,
                deadline,
                state: LockState::Locked,
            };
            t.put(TableId::Withdrawals, order_hash, &lock.encode())?;
            if mode == Mode::Strict {
                t.put(TableId::Deadlines, &deadline_key(deadline, order_hash), &[])?;
            }
            bump(t, Counter::WithdrawalsLocked, 1)?;
        }
    }
    t.put(TableId::Certs, &slot_key(&body.sender, body.sequence), &encode_stored_cert(order_hash, cert))?;
    bump(t, Counter::CertificatesApplied, 1)?;
    record(
        t,
        &Event {
            kind: EventKind::CertificateApplied,
            clock: now,
            order_hash: *order_hash,
            account: body.sender,
            sequence: body.sequence,
            amount: body.amount,
        },
    )?;
    Ok(())
}

/// Changes a lock's state, moving its money: `Locked → Settled` (it leaves
/// the system), `Locked → Expired` (back to the sender), `Expired → Settled`
/// (a quorum acknowledged the gateway's claim after this node let the lock
/// expire: the sender pays it back).
pub fn transition(t: &dyn Tables, order_hash: &Hash, to: LockState) -> Result<Option<Lock>, Error> {
    let Some(mut lock) = load_lock(t, order_hash)? else { return Ok(None) };
    let amount = i128::from(lock.amount);
    let delta = match (lock.state, to) {
        (LockState::Locked, LockState::Settled) => 0,
        (LockState::Locked, LockState::Expired) => amount,
        (LockState::Expired, LockState::Settled) => -amount,
        _ => return Ok(Some(lock)),
    };
    if delta != 0 {
        let mut a = load_account(t, &lock.sender)?.unwrap_or_default();
        a.balance = match a.balance.checked_add(delta) {
            Some(b) => b,
            None => return refuse(Reason::Overflow, "balance overflow moving a withdrawal lock"),
        };
        store_account(t, &lock.sender, &a)?;
    }
    if lock.state == LockState::Locked && lock.deadline != u64::MAX {
        t.delete(TableId::Deadlines, &deadline_key(lock.deadline, order_hash))?;
    }
    lock.state = to;
    t.put(TableId::Withdrawals, order_hash, &lock.encode())?;
    let (kind, counter) = match to {
        LockState::Settled => (EventKind::LockSettled, Counter::LocksSettled),
        _ => (EventKind::LockExpired, Counter::LocksExpired),
    };
    bump(t, counter, 1)?;
    record(
        t,
        &Event {
            kind,
            clock: clock(t)?,
            order_hash: *order_hash,
            account: lock.sender,
            sequence: lock.sequence,
            amount: lock.amount,
        },
    )?;
    Ok(Some(lock))
}

/// Expires every lock whose deadline passed on the ledger clock.
pub fn expire_locks(t: &dyn Tables, now: u64) -> Result<Vec<Hash>, Error> {
    let mut due = Vec::new();
    t.scan(TableId::Deadlines, &[], &mut |k, _| {
        if k.len() != 40 || u64::from_be_bytes(k[..8].try_into().unwrap_or([0xff; 8])) > now {
            return false;
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&k[8..]);
        due.push(h);
        true
    })?;
    for h in &due {
        transition(t, h, LockState::Expired)?;
    }
    Ok(due)
}

/// The conservation check's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Audit {
    pub accounts: u64,
    /// Σ balances (may include negative ones, see the module docs).
    pub balances: i128,
    /// Σ amounts of locks in state `Locked`.
    pub locked: i128,
    /// Σ amounts of locks in state `Settled` (paid out by gateways).
    pub settled: i128,
    pub genesis_total: i128,
    /// Accounts whose balance is negative: on an authority, a sender whose
    /// incoming payment this node has not seen yet (see the module docs).
    pub negative_balances: u64,
}

impl Audit {
    /// `Σ balances + Σ locked + Σ settled == genesis total`.
    pub fn conserved(&self) -> bool {
        self.balances + self.locked + self.settled == self.genesis_total
    }
}

/// Recomputes the money in the tables: the conservation invariant.
pub fn audit(t: &dyn ReadTables) -> Result<Audit, PluginError> {
    let mut a = Audit {
        accounts: 0,
        balances: 0,
        locked: 0,
        settled: 0,
        genesis_total: i128::from(read_u64(t, meta::GENESIS_TOTAL)?),
        negative_balances: 0,
    };
    let mut bad = None;
    t.scan(TableId::Accounts, &[], &mut |_, v| match Account::decode(v) {
        Ok(acc) => {
            a.accounts += 1;
            a.balances += acc.balance;
            a.negative_balances += u64::from(acc.balance < 0);
            true
        }
        Err(e) => {
            bad = Some(e);
            false
        }
    })?;
    t.scan(TableId::Withdrawals, &[], &mut |_, v| match Lock::decode(v) {
        Ok(l) => {
            match l.state {
                LockState::Locked => a.locked += i128::from(l.amount),
                LockState::Settled => a.settled += i128::from(l.amount),
                LockState::Expired => {}
            }
            true
        }
        Err(e) => {
            bad = Some(e);
            false
        }
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_damage() {
        let a = Account { balance: -5, next_sequence: 9, lock: Some([3; 32]) };
        assert_eq!(Account::decode(&a.encode()).unwrap(), a);
        let b = Account { balance: i128::MAX, next_sequence: 0, lock: None };
        assert_eq!(Account::decode(&b.encode()).unwrap(), b);
        assert!(Account::decode(&a.encode()[..20]).is_err());
        let l = Lock {
            sender: [1; 32],
            sequence: 2,
            amount: 3,
            gateway: [4; 32],
            deadline: 5,
            state: LockState::Expired,
        };
        assert_eq!(Lock::decode(&l.encode()).unwrap(), l);
        let e = Event {
            kind: EventKind::LockSettled,
            clock: 1,
            order_hash: [2; 32],
            account: [3; 32],
            sequence: 4,
            amount: 5,
        };
        assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        let mut bad = e.encode();
        bad[0] = 99;
        assert!(Event::decode(&bad).is_err());
    }
}
