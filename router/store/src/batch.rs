//! A batch: one write transaction over the bundle store, the delivery queue
//! and the plugins' tables.

use std::cell::Cell;

use heed::RwTxn;

use crate::index::{Pending, prefix};
use crate::record::{BundleMeta, Delivery, Id, Reader};
use crate::{Store, StoreError, Table, seen};

pub(crate) const HELD_BYTES: &[u8] = b"held_bytes";
const NEXT_SEQ: &[u8] = b"next_seq";
/// Seen entries expiring at or before this are gone (`index.rs`).
pub(crate) const WATERMARK: &[u8] = b"seen_watermark";

pub(crate) fn read_u64(table: &Table, txn: &heed::RoTxn, key: &[u8]) -> Result<u64, StoreError> {
    match table.get(txn, key)? {
        Some(v) => Reader::new(v, "store counter").u64(),
        None => Ok(0),
    }
}

/// What happened to a bundle offered to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Stored; these older, lower-priority bundles were evicted to make room.
    Stored { evicted: Vec<Id> },
    /// Already held, delivered or seen before: dropped.
    Duplicate,
    /// Larger than the largest bundle the store accepts.
    TooLarge,
    /// No room: everything evictable has higher priority, or the bundle was
    /// created here (local bundles are refused rather than evict others).
    Full,
}

/// Key of the `held_meta` and `held_data` tables: the bundle's insertion
/// sequence number, big-endian, so new bundles append at the right edge of
/// the B-trees (see `lib.rs` on write amplification).
pub(crate) fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Key of the `expiry` table, which lists held bundles only (seen ids
/// expire through the watermark).
fn expiry_key(expires: u64, id: &Id) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..8].copy_from_slice(&expires.to_be_bytes());
    k[8..].copy_from_slice(id);
    k
}

fn evict_key(priority: u8, seq: u64, id: &Id) -> [u8; 41] {
    let mut k = [0u8; 41];
    k[0] = priority;
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9..].copy_from_slice(id);
    k
}

fn delivery_key(service: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(service.len() + 9);
    k.extend_from_slice(service.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// One write transaction. Dropping it without [`Batch::commit`] aborts it.
pub struct Batch<'s> {
    pub(crate) store: &'s Store,
    txn: Option<RwTxn<'s>>,
    /// Plugin tables created in this transaction: their handles die with it
    /// if it aborts.
    pub(crate) created_tables: Vec<String>,
    /// Changes to the id index, applied when the transaction commits.
    index: Pending,
    /// `HELD_BYTES` and `NEXT_SEQ` as this batch has them: read once,
    /// written back by `commit` (every insert changes both; reading and
    /// writing them in LMDB each time was a fifth of an insert).
    held: Cell<Option<u64>>,
    held_changed: bool,
    next_seq: Option<u64>,
    /// Ids seen in this batch and not yet frozen into a run (prefix,
    /// expiry): one record of the seen log, written at commit.
    log: Vec<(u64, u64)>,
    /// Entries of merging earned by this batch: [`seen::MERGE_WORK`] per
    /// seen id recorded, done at commit.
    merge_credit: usize,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Not committed: LMDB aborts the transaction, and the table handles
        // it created are gone with it.
        if self.txn.is_some() && !self.created_tables.is_empty() {
            let mut reg = self.store.plugin_tables();
            for name in self.created_tables.drain(..) {
                reg.forget(&name);
            }
        }
    }
}

impl<'s> Batch<'s> {
    pub(crate) fn new(store: &'s Store) -> Result<Batch<'s>, StoreError> {
        Ok(Batch {
            store,
            txn: Some(store.env.write_txn()?),
            created_tables: Vec::new(),
            index: Pending::default(),
            held: Cell::new(None),
            held_changed: false,
            next_seq: None,
            log: Vec::new(),
            merge_credit: 0,
        })
    }

    pub(crate) fn txn(&self) -> &RwTxn<'s> {
        self.txn.as_ref().expect("a batch holds its transaction until commit")
    }

    /// The tables (borrowed from the store, not from the batch) and the
    /// transaction, so both can be used at once.
    pub(crate) fn parts(&mut self) -> (&'s crate::Tables, &mut RwTxn<'s>) {
        (&self.store.tables, self.txn.as_mut().expect("a batch holds its transaction until commit"))
    }

    /// Makes everything in the batch durable (fsync). On error the batch is
    /// aborted: nothing in it happened.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.merge_work()?;
        if !self.log.is_empty() {
            let txn = self.txn.as_mut().expect("a batch holds its transaction until commit");
            seen::log_write(&self.store.tables, txn, &self.log)?;
        }
        if let Some(held) = self.held.get().filter(|_| self.held_changed) {
            self.set_counter(HELD_BYTES, held)?;
        }
        if let Some(seq) = self.next_seq {
            self.set_counter(NEXT_SEQ, seq)?;
        }
        let txn = self.txn.take().expect("commit once");
        match txn.commit() {
            Ok(()) => {
                self.created_tables.clear();
                self.store.index().apply(std::mem::take(&mut self.index));
                Ok(())
            }
            Err(e) => {
                // Dropping `self` forgets the tables it created.
                self.txn = None;
                let mut reg = self.store.plugin_tables();
                for name in self.created_tables.drain(..) {
                    reg.forget(&name);
                }
                Err(e.into())
            }
        }
    }

    /// Advances the merging of seen runs by the credit earned, this
    /// batch's and that left by earlier ones below a step (`seen.rs`).
    fn merge_work(&mut self) -> Result<(), StoreError> {
        if self.merge_credit == 0 {
            return Ok(());
        }
        let mut index = self.store.index();
        let credit = self.index.merge_credit(&index).saturating_add(std::mem::take(&mut self.merge_credit));
        if credit < seen::MERGE_STEP {
            self.index.set_merge_credit(credit);
            return Ok(());
        }
        let watermark = self.index.watermark(&index);
        let txn = self.txn.as_mut().expect("a batch holds its transaction until commit");
        self.index.merging(&mut index).work(&self.store.tables, txn, watermark, credit)?;
        self.index.set_merge_credit(0);
        Ok(())
    }

    /// Does every merge due now, at once (tests).
    #[cfg(test)]
    pub(crate) fn merge_everything(&mut self) -> Result<(), StoreError> {
        self.merge_credit = usize::MAX;
        self.merge_work()
    }

    fn counter(&self, key: &[u8]) -> Result<u64, StoreError> {
        read_u64(&self.store.tables.state, self.txn(), key)
    }

    fn set_counter(&mut self, key: &[u8], value: u64) -> Result<(), StoreError> {
        let (t, txn) = self.parts();
        t.state.put(txn, key, &value.to_le_bytes())?;
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        let seq = match self.next_seq {
            Some(seq) => seq,
            None => self.counter(NEXT_SEQ)?,
        };
        self.next_seq = Some(seq + 1);
        Ok(seq)
    }

    fn set_held(&mut self, held: u64) {
        self.held.set(Some(held));
        self.held_changed = true;
    }

    /// Whether the store holds or has seen the bundle (and the seen entry
    /// has not expired).
    pub fn is_known(&self, id: &Id) -> Result<bool, StoreError> {
        let index = self.store.index();
        if self.index.held(&index, id).is_some() {
            return Ok(true);
        }
        let watermark = self.index.watermark(&index);
        if self.index.recent(&index, id).is_some_and(|e| e > watermark) {
            return Ok(true);
        }
        seen::runs_know(&self.store.tables, self.txn(), self.index.runs(&index), prefix(id), watermark)
    }

    /// The sequence number a bundle with `id`'s prefix is held under (the
    /// full id is `held_meta`'s to confirm).
    fn stored_seq(&self, id: &Id) -> Option<u64> {
        self.index.held(&self.store.index(), id)
    }

    /// Records `id` as seen until `expires_unix_ms`: in `recent`, which is
    /// frozen into a run when full, and in the seen log.
    fn record_seen(&mut self, id: &Id, expires_unix_ms: u64) -> Result<(), StoreError> {
        self.log.push((prefix(id), expires_unix_ms));
        self.merge_credit = self.merge_credit.saturating_add(seen::MERGE_WORK);
        let index = self.store.index();
        self.index.set_recent(&index, id, expires_unix_ms);
        if self.index.recent_len(&index) >= self.store.seen_run_len {
            let entries = self.index.take_recent(&index);
            let watermark = self.index.watermark(&index);
            let merge = self.index.merge(&index).copied();
            let runs = self.index.runs_mut(&index);
            let txn = self.txn.as_mut().expect("a batch holds its transaction until commit");
            seen::freeze(&self.store.tables, txn, runs, merge.as_ref(), entries, watermark)?;
            // (In the run now.)
            self.log.clear();
        }
        Ok(())
    }

    fn meta_at(&self, seq: u64) -> Result<Option<BundleMeta>, StoreError> {
        match self.store.tables.meta.get(self.txn(), &seq_key(seq))? {
            Some(v) => Ok(Some(BundleMeta::decode(v)?)),
            None => Ok(None),
        }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> Result<u64, StoreError> {
        match self.held.get() {
            Some(held) => Ok(held),
            None => {
                let held = self.counter(HELD_BYTES)?;
                self.held.set(Some(held));
                Ok(held)
            }
        }
    }

    /// Offers a bundle: stores it (evicting under the quota) unless known,
    /// too large or without room. `meta.seq` is assigned here.
    pub fn insert(&mut self, meta: &BundleMeta, bytes: &[u8]) -> Result<Insert, StoreError> {
        if self.is_known(&meta.id)? {
            return Ok(Insert::Duplicate);
        }
        let cfg = &self.store.config;
        if bytes.len() as u64 > cfg.max_bundle_bytes || bytes.len() as u64 > cfg.quota_bytes {
            return Ok(Insert::TooLarge);
        }
        let size = bytes.len() as u64;
        let held = self.held_bytes()?;
        let mut evicted = Vec::new();
        if held + size > cfg.quota_bytes {
            // Victims: relayed bundles of lower or equal priority, oldest
            // first; a local bundle is never evicted to make room.
            let need = held + size - cfg.quota_bytes;
            let mut freed = 0u64;
            let mut victims = Vec::new();
            for item in self.store.tables.evict.iter(self.txn())? {
                let (k, _) = item?;
                if freed >= need || k[0] > meta.priority {
                    break;
                }
                let seq = u64::from_be_bytes(
                    k[1..9].try_into().map_err(|_| StoreError::Damaged("eviction index"))?,
                );
                let id: Id = k[9..41].try_into().map_err(|_| StoreError::Damaged("eviction index"))?;
                let Some(m) = self.meta_at(seq)? else { continue };
                if m.local {
                    continue;
                }
                freed += u64::from(m.size);
                victims.push(id);
            }
            if meta.local || freed < need {
                return Ok(Insert::Full);
            }
            for id in &victims {
                self.remove(id)?;
            }
            evicted = victims;
        }
        let mut meta = meta.clone();
        meta.seq = self.next_seq()?;
        meta.size = size as u32;
        let (t, txn) = self.parts();
        // Appends: the sequence number is the largest yet, so LMDB goes
        // straight to the last leaf instead of searching the tree (a third
        // of a put's cost in `perf`).
        let append = heed::PutFlags::APPEND;
        t.meta.put_with_flags(txn, append, &seq_key(meta.seq), &meta.encode())?;
        t.data.put_with_flags(txn, append, &seq_key(meta.seq), bytes)?;
        t.expiry.put(txn, &expiry_key(meta.expires_unix_ms, &meta.id), &[])?;
        t.evict.put(txn, &evict_key(meta.priority, meta.seq, &meta.id), &[])?;
        let held = self.held_bytes()?;
        self.set_held(held + size);
        self.index.set_held(&meta.id, meta.seq);
        Ok(Insert::Stored { evicted })
    }

    /// Records a bundle as seen without holding it (delivered here, or
    /// refused), so later copies are dropped until it would have expired.
    pub fn mark_seen(&mut self, id: &Id, expires_unix_ms: u64) -> Result<bool, StoreError> {
        if self.is_known(id)? {
            return Ok(false);
        }
        self.record_seen(id, expires_unix_ms)?;
        Ok(true)
    }

    pub fn meta(&self, id: &Id) -> Result<Option<BundleMeta>, StoreError> {
        let Some(seq) = self.stored_seq(id) else { return Ok(None) };
        Ok(self.meta_at(seq)?.filter(|m| m.id == *id))
    }

    /// A held bundle's bytes (borrowed from the transaction) and when this
    /// node received it, without decoding the rest of its metadata (two
    /// strings): what forwarding needs, for every bundle sent. (The whole
    /// metadata is [`Batch::meta`].)
    pub fn bytes_and_received(&self, id: &Id) -> Result<Option<(u64, &[u8])>, StoreError> {
        let Some(seq) = self.stored_seq(id) else { return Ok(None) };
        let Some(raw) = self.store.tables.meta.get(self.txn(), &seq_key(seq))? else { return Ok(None) };
        let (stored_id, received) = BundleMeta::id_and_received_of(raw)?;
        if stored_id != *id {
            return Ok(None);
        }
        let bytes = self.store.tables.data.get(self.txn(), &seq_key(seq))?;
        Ok(bytes.map(|b| (received, b)))
    }

    /// Updates the copies count of a held bundle.
    pub fn set_copies(&mut self, id: &Id, copies: u32) -> Result<(), StoreError> {
        if let Some(mut m) = self.meta(id)? {
            m.copies = copies;
            let (t, txn) = self.parts();
            t.meta.put(txn, &seq_key(m.seq), &m.encode())?;
        }
        Ok(())
    }

    /// Stops holding a bundle; it stays seen until its expiry.
    pub fn remove(&mut self, id: &Id) -> Result<bool, StoreError> {
        match self.meta(id)? {
            Some(m) => self.remove_held(&m),
            None => Ok(false),
        }
    }

    /// [`Batch::remove`] for a bundle whose metadata the caller has just
    /// read (from [`Batch::meta`] in this batch): no second lookup and
    /// decoding. Returns false if it is no longer held.
    pub fn remove_held(&mut self, meta: &BundleMeta) -> Result<bool, StoreError> {
        if self.stored_seq(&meta.id) != Some(meta.seq) {
            return Ok(false);
        }
        self.unhold_meta(meta)?;
        self.record_seen(&meta.id, meta.expires_unix_ms)?;
        Ok(true)
    }

    /// Deletes a held bundle's records, leaving the id unknown.
    fn unhold(&mut self, id: &Id) -> Result<Option<BundleMeta>, StoreError> {
        let Some(m) = self.meta(id)? else { return Ok(None) };
        self.unhold_meta(&m)?;
        Ok(Some(m))
    }

    fn unhold_meta(&mut self, m: &BundleMeta) -> Result<(), StoreError> {
        let id = &m.id;
        let (t, txn) = self.parts();
        t.meta.delete(txn, &seq_key(m.seq))?;
        t.data.delete(txn, &seq_key(m.seq))?;
        t.evict.delete(txn, &evict_key(m.priority, m.seq, id))?;
        t.expiry.delete(txn, &expiry_key(m.expires_unix_ms, id))?;
        let held = self.held_bytes()?;
        self.set_held(held.saturating_sub(u64::from(m.size)));
        self.index.remove_held(id);
        Ok(())
    }

    /// Drops everything whose time is up at `now_unix_ms`: held bundles and
    /// seen entries alike. Returns the held bundles dropped.
    ///
    /// Seen entries go by the watermark, raised to `now_unix_ms`: they read
    /// as unknown from now on, and runs wholly expired are deleted.
    pub fn expire(&mut self, now_unix_ms: u64) -> Result<Vec<Id>, StoreError> {
        let mut due = Vec::new();
        for item in self.store.tables.expiry.iter(self.txn())? {
            let (k, _) = item?;
            let at = u64::from_be_bytes(k[..8].try_into().map_err(|_| StoreError::Damaged("expiry index"))?);
            if at > now_unix_ms {
                break;
            }
            let id: Id = k[8..40].try_into().map_err(|_| StoreError::Damaged("expiry index"))?;
            due.push((at, id));
        }
        let mut dropped = Vec::new();
        for (at, id) in due {
            if self.unhold(&id)?.is_some() {
                dropped.push(id);
            } else {
                // (An entry without its bundle: not written by this layout.)
                let (t, txn) = self.parts();
                t.expiry.delete(txn, &expiry_key(at, &id))?;
            }
        }
        let mut index = self.store.index();
        if now_unix_ms > self.index.watermark(&index) {
            self.index.set_watermark(now_unix_ms);
            let txn = self.txn.as_mut().expect("a batch holds its transaction until commit");
            self.store.tables.state.put(txn, WATERMARK, &now_unix_ms.to_le_bytes())?;
            if seen::any_expired(self.index.runs(&index), now_unix_ms) {
                self.index.merging(&mut index).drop_expired(&self.store.tables, txn, now_unix_ms)?;
            }
        }
        Ok(dropped)
    }

    /// The earliest expiry of a held bundle, for the router's timer. (Seen
    /// entries need no waking: the watermark is raised at the next call of
    /// [`Batch::expire`], and until then they are only kept a little longer.)
    pub fn next_expiry(&self) -> Result<Option<u64>, StoreError> {
        match self.store.tables.expiry.first(self.txn())? {
            Some((k, _)) => Ok(Some(u64::from_be_bytes(
                k[..8].try_into().map_err(|_| StoreError::Damaged("expiry index"))?,
            ))),
            None => Ok(None),
        }
    }

    /// Every held bundle's metadata, oldest first.
    pub fn held(&self) -> Result<Vec<BundleMeta>, StoreError> {
        let mut out = Vec::new();
        for item in self.store.tables.meta.iter(self.txn())? {
            let (_, v) = item?;
            out.push(BundleMeta::decode(v)?);
        }
        Ok(out)
    }

    /// Ids of every held bundle, oldest first.
    pub fn held_ids(&self) -> Result<Vec<Id>, StoreError> {
        let mut out = Vec::new();
        for item in self.store.tables.meta.iter(self.txn())? {
            let (_, v) = item?;
            out.push(BundleMeta::id_of(v)?);
        }
        Ok(out)
    }

    /// Queues a payload for the local application reading `service`.
    pub fn enqueue_delivery(
        &mut self,
        service: &str,
        id: &Id,
        source: &str,
        received_unix_ms: u64,
        payload: &[u8],
    ) -> Result<u64, StoreError> {
        let seq = self.next_seq()?;
        let value = Delivery::encode_value(id, source, received_unix_ms, payload);
        let (t, txn) = self.parts();
        t.delivery.put(txn, &delivery_key(service, seq), &value)?;
        Ok(seq)
    }

    /// Up to `max` queued deliveries for `service`, oldest first, and no
    /// more than `max_bytes` of them (counted as stored, payload and a few
    /// dozen bytes of metadata each) unless the first alone is larger: it
    /// is always returned, so a large payload never blocks its queue. The
    /// caller holds what this returns in memory, and `max` alone would let
    /// one call gather a thousand full-size bundles.
    pub fn deliveries(
        &self,
        service: &str,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut prefix = service.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.store.tables.delivery.prefix_iter(self.txn(), &prefix)?.take(max) {
            let (k, v) = item?;
            bytes = bytes.saturating_add(v.len());
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            let seq = u64::from_be_bytes(
                k[prefix.len()..].try_into().map_err(|_| StoreError::Damaged("delivery key"))?,
            );
            out.push(Delivery::decode(service, seq, v)?);
        }
        Ok(out)
    }

    /// Removes deliveries of `service` up to and including `seq` (the
    /// application has them).
    pub fn ack_deliveries(&mut self, service: &str, seq: u64) -> Result<usize, StoreError> {
        let start = delivery_key(service, 0);
        let end = delivery_key(service, seq);
        let range = (std::ops::Bound::Included(start.as_slice()), std::ops::Bound::Included(end.as_slice()));
        let (t, txn) = self.parts();
        Ok(t.delivery.delete_range(txn, &range)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    fn meta(n: u8, priority: u8, size_hint: u32, local: bool) -> BundleMeta {
        BundleMeta {
            id: [n; 32],
            source: "dtn://a/".into(),
            destination: "dtn://b/x".into(),
            priority,
            size: size_hint,
            copies: u32::MAX,
            received_unix_ms: 1000,
            expires_unix_ms: 10_000 + u64::from(n),
            from_peer: None,
            local,
            seq: 0,
        }
    }

    fn store(quota: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig { quota_bytes: quota, max_bundle_bytes: 4096, map_bytes: 64 << 20 };
        let s = Store::open(dir.path(), cfg).unwrap();
        (dir, s)
    }

    #[test]
    fn insert_dedups_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
            let mut b = s.batch().unwrap();
            assert_eq!(b.insert(&meta(1, 1, 0, false), b"one").unwrap(), Insert::Stored { evicted: vec![] });
            assert_eq!(b.insert(&meta(1, 1, 0, false), b"one").unwrap(), Insert::Duplicate);
            assert!(b.mark_seen(&[5; 32], 20_000).unwrap());
            b.commit().unwrap();
            let mut b = s.batch().unwrap();
            b.insert(&meta(2, 1, 0, false), b"two").unwrap();
            drop(b); // aborted: 2 is not kept
        }
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let b = s.batch().unwrap();
        assert_eq!(b.bytes_and_received(&[1; 32]).unwrap(), Some((1000, &b"one"[..])));
        assert_eq!(b.bytes_and_received(&[5; 32]).unwrap(), None, "seen, not held");
        assert!(!b.is_known(&[2; 32]).unwrap());
        assert!(b.is_known(&[5; 32]).unwrap() && b.meta(&[5; 32]).unwrap().is_none(), "seen, not held");
        assert_eq!(s.known_ids(), 2);
        assert_eq!(b.held_bytes().unwrap(), 3);
    }

    #[test]
    fn a_store_keyed_by_id_is_moved_over_when_opened() {
        // The layout before bundles were keyed by sequence number, written
        // by hand: one held bundle, one id only seen.
        let dir = tempfile::tempdir().unwrap();
        {
            let env = unsafe { heed::EnvOpenOptions::new().map_size(64 << 20).max_dbs(16).open(dir.path()) }
                .unwrap();
            let mut txn = env.write_txn().unwrap();
            let mut table =
                |name| env.create_database::<heed::types::Bytes, heed::types::Bytes>(&mut txn, Some(name));
            let (meta_t, data_t, seen_t, expiry_t, evict_t, state_t) = (
                table("bundle_meta").unwrap(),
                table("bundle_data").unwrap(),
                table("seen").unwrap(),
                table("expiry").unwrap(),
                table("evict").unwrap(),
                table("state").unwrap(),
            );
            let mut held = meta(1, 1, 5, false);
            held.seq = 7;
            meta_t.put(&mut txn, &held.id, &held.encode()).unwrap();
            data_t.put(&mut txn, &held.id, b"hello").unwrap();
            seen_t.put(&mut txn, &held.id, &held.expires_unix_ms.to_le_bytes()).unwrap();
            expiry_t.put(&mut txn, &expiry_key(held.expires_unix_ms, &held.id), &[]).unwrap();
            evict_t.put(&mut txn, &evict_key(1, 7, &held.id), &[]).unwrap();
            seen_t.put(&mut txn, &[2; 32], &20_000u64.to_le_bytes()).unwrap();
            expiry_t.put(&mut txn, &expiry_key(20_000, &[2; 32]), &[]).unwrap();
            state_t.put(&mut txn, HELD_BYTES, &5u64.to_le_bytes()).unwrap();
            state_t.put(&mut txn, NEXT_SEQ, &8u64.to_le_bytes()).unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let mut b = s.batch().unwrap();
        assert_eq!(b.bytes_and_received(&[1; 32]).unwrap().map(|(_, d)| d), Some(&b"hello"[..]));
        assert_eq!(b.meta(&[1; 32]).unwrap().map(|m| m.seq), Some(7));
        assert!(b.is_known(&[2; 32]).unwrap() && b.meta(&[2; 32]).unwrap().is_none());
        assert_eq!(b.held_ids().unwrap(), vec![[1; 32]]);
        assert_eq!(b.insert(&meta(1, 1, 0, false), b"hello").unwrap(), Insert::Duplicate);
        // New bundles follow it; expiry still drops both kinds.
        assert!(matches!(b.insert(&meta(3, 1, 0, false), b"new").unwrap(), Insert::Stored { .. }));
        assert_eq!(b.meta(&[3; 32]).unwrap().map(|m| m.seq), Some(8));
        assert_eq!(b.expire(30_000).unwrap().len(), 2);
        assert!(!b.is_known(&[1; 32]).unwrap() && !b.is_known(&[2; 32]).unwrap());
        b.commit().unwrap();
    }

    #[test]
    fn a_layout_2_store_moves_its_seen_ids_out_of_expiry_when_opened() {
        // The layout before the seen log, written by hand: one held bundle,
        // ten ids only seen, listed in the expiry table beside it.
        let dir = tempfile::tempdir().unwrap();
        let seen_ids: Vec<Id> = (10..20).map(|n| [n; 32]).collect();
        {
            let env = unsafe { heed::EnvOpenOptions::new().map_size(64 << 20).max_dbs(16).open(dir.path()) }
                .unwrap();
            let mut txn = env.write_txn().unwrap();
            let mut table =
                |name| env.create_database::<heed::types::Bytes, heed::types::Bytes>(&mut txn, Some(name));
            let (meta_t, data_t, expiry_t, evict_t, state_t) = (
                table("held_meta").unwrap(),
                table("held_data").unwrap(),
                table("expiry").unwrap(),
                table("evict").unwrap(),
                table("state").unwrap(),
            );
            let mut held = meta(1, 1, 5, false);
            held.seq = 7;
            meta_t.put(&mut txn, &seq_key(7), &held.encode()).unwrap();
            data_t.put(&mut txn, &seq_key(7), b"hello").unwrap();
            expiry_t.put(&mut txn, &expiry_key(held.expires_unix_ms, &held.id), &[]).unwrap();
            evict_t.put(&mut txn, &evict_key(1, 7, &held.id), &[]).unwrap();
            for (i, id) in seen_ids.iter().enumerate() {
                expiry_t.put(&mut txn, &expiry_key(20_000 + i as u64, id), &[]).unwrap();
            }
            state_t.put(&mut txn, HELD_BYTES, &5u64.to_le_bytes()).unwrap();
            state_t.put(&mut txn, NEXT_SEQ, &8u64.to_le_bytes()).unwrap();
            txn.commit().unwrap();
        }
        let on_disk = |s: &Store| {
            let txn = s.env.read_txn().unwrap();
            let t = &s.tables;
            let entries = |table: &Table| seen::count_entries(table, &txn);
            (
                t.expiry.len(&txn).unwrap(),
                entries(&t.seen_log),
                entries(&t.seen_runs) + entries(&t.seen_merged),
                read_u64(&t.state, &txn, b"layout").unwrap(),
            )
        };
        {
            // Runs of 4: the migration freezes two runs, merged at once.
            let s = Store::open_with_run_len(dir.path(), StoreConfig::default(), 4).unwrap();
            assert_eq!(on_disk(&s), (1, 2, 8, 3), "expiry lists the held bundle only");
            assert_eq!(seen::count_entries(&s.tables.seen_merged, &s.env.read_txn().unwrap()), 8);
            assert_eq!(s.known_ids(), 11);
            let mut b = s.batch().unwrap();
            assert_eq!(b.bytes_and_received(&[1; 32]).unwrap().map(|(_, d)| d), Some(&b"hello"[..]));
            assert_eq!(b.held_ids().unwrap(), vec![[1; 32]]);
            for id in &seen_ids {
                assert!(b.is_known(id).unwrap() && b.meta(id).unwrap().is_none());
                assert!(!b.mark_seen(id, 30_000).unwrap());
            }
            assert_eq!(b.next_expiry().unwrap(), Some(10_001));
            b.commit().unwrap();
        }
        // Opened again: nothing left to migrate, the same ids known.
        let s = Store::open_with_run_len(dir.path(), StoreConfig::default(), 4).unwrap();
        assert_eq!(on_disk(&s), (1, 2, 8, 3));
        assert_eq!(s.known_ids(), 11);
        let mut b = s.batch().unwrap();
        assert!(seen_ids.iter().all(|id| b.is_known(id).unwrap()));
        assert_eq!(b.insert(&meta(1, 1, 0, false), b"hello").unwrap(), Insert::Duplicate);
        assert_eq!(b.expire(20_004).unwrap(), vec![[1; 32]]);
        assert!(!b.is_known(&[1; 32]).unwrap());
        assert!(seen_ids.iter().enumerate().all(|(i, id)| b.is_known(id).unwrap() == (i > 4)));
        b.commit().unwrap();
        // A layout newer than this code knows is refused, not misread.
        let mut txn = s.env.write_txn().unwrap();
        s.tables.state.put(&mut txn, b"layout", &4u64.to_le_bytes()).unwrap();
        txn.commit().unwrap();
        drop(s);
        assert!(matches!(Store::open(dir.path(), StoreConfig::default()), Err(StoreError::Damaged(_))));
    }

    #[test]
    fn quota_evicts_lowest_priority_oldest_first_and_never_local() {
        let (_d, s) = store(30);
        let mut b = s.batch().unwrap();
        b.insert(&meta(1, 1, 0, false), &[0; 10]).unwrap();
        b.insert(&meta(2, 0, 0, false), &[0; 10]).unwrap();
        b.insert(&meta(3, 1, 0, true), &[0; 10]).unwrap();
        // Full. A priority-1 bundle evicts the priority-0 one first.
        assert_eq!(
            b.insert(&meta(4, 1, 0, false), &[0; 10]).unwrap(),
            Insert::Stored { evicted: vec![[2; 32]] }
        );
        // Next the oldest priority-1 relayed bundle (1), never the local 3.
        assert_eq!(
            b.insert(&meta(5, 2, 0, false), &[0; 10]).unwrap(),
            Insert::Stored { evicted: vec![[1; 32]] }
        );
        // A bulk bundle cannot evict higher priorities: full.
        assert_eq!(b.insert(&meta(6, 0, 0, false), &[0; 10]).unwrap(), Insert::Full);
        // A local bundle never evicts.
        assert_eq!(b.insert(&meta(7, 2, 0, true), &[0; 10]).unwrap(), Insert::Full);
        assert_eq!(b.insert(&meta(8, 2, 0, false), &[0; 31]).unwrap(), Insert::TooLarge);
        let mut held: Vec<u8> = b.held().unwrap().iter().map(|m| m.id[0]).collect();
        held.sort();
        assert_eq!(held, vec![3, 4, 5]);
        assert_eq!(b.held_bytes().unwrap(), 30);
        // Evicted bundles stay known: a copy coming back is a duplicate.
        assert_eq!(b.insert(&meta(2, 0, 0, false), &[0; 1]).unwrap(), Insert::Duplicate);
    }

    #[test]
    fn expiry_drops_held_and_seen_entries() {
        let (_d, s) = store(1000);
        let mut b = s.batch().unwrap();
        b.insert(&meta(1, 1, 0, false), b"a").unwrap(); // expires 10001
        b.insert(&meta(2, 1, 0, false), b"b").unwrap(); // expires 10002
        assert!(b.mark_seen(&[9; 32], 10_001).unwrap());
        assert_eq!(b.next_expiry().unwrap(), Some(10_001));
        let mut dropped = b.expire(10_001).unwrap();
        dropped.sort();
        assert_eq!(dropped, vec![[1; 32]]);
        assert!(!b.is_known(&[1; 32]).unwrap() && !b.is_known(&[9; 32]).unwrap());
        assert!(b.is_known(&[2; 32]).unwrap());
        assert_eq!(b.held_bytes().unwrap(), 1);
    }

    #[test]
    fn deliveries_queue_per_service_until_acknowledged() {
        let (_d, s) = store(1000);
        let mut b = s.batch().unwrap();
        let s1 = b.enqueue_delivery("chat", &[1; 32], "dtn://a/", 5, b"hello").unwrap();
        b.enqueue_delivery("other", &[2; 32], "dtn://a/", 5, b"x").unwrap();
        let s3 = b.enqueue_delivery("chat", &[3; 32], "dtn://c/", 6, b"world").unwrap();
        let got = b.deliveries("chat", 10, usize::MAX).unwrap();
        assert_eq!(
            got.iter().map(|d| d.payload.clone()).collect::<Vec<_>>(),
            vec![b"hello".to_vec(), b"world".to_vec()]
        );
        assert_eq!(b.ack_deliveries("chat", s1).unwrap(), 1);
        assert_eq!(b.deliveries("chat", 10, usize::MAX).unwrap()[0].seq, s3);
        assert_eq!(b.deliveries("other", 10, usize::MAX).unwrap().len(), 1);
    }

    #[test]
    fn deliveries_stop_at_the_byte_limit_but_always_return_the_first() {
        let (_d, s) = store(1 << 20);
        let mut b = s.batch().unwrap();
        for n in 0..5u8 {
            b.enqueue_delivery("big", &[n; 32], "dtn://a/", 5, &[n; 1000]).unwrap();
        }
        let payloads = |max_bytes| {
            b.deliveries("big", 10, max_bytes).unwrap().into_iter().map(|d| d.payload[0]).collect::<Vec<_>>()
        };
        // Each record is its payload and some metadata: 2 500 bytes hold two.
        assert_eq!(payloads(2_500), [0, 1]);
        assert_eq!(payloads(usize::MAX), [0, 1, 2, 3, 4]);
        // A limit below one record still returns the oldest.
        assert_eq!(payloads(10), [0]);
        assert_eq!(payloads(0), [0]);
    }
}
