//! # meshpay store
//!
//! One LMDB environment per node (heed), holding:
//!
//! * the **bundle store**: bundles by id (metadata and bytes apart, so a
//!   copy-count update does not rewrite 64 KiB), an index by expiry, an
//!   eviction order (lowest priority, then oldest, first), and the ids
//!   already **seen** (kept until the bundle's lifetime ends, so a copy
//!   that comes back later is recognised and dropped: a log of the latest,
//!   and sorted runs of the older ones, `seen.rs`);
//! * the **delivery queue** of payloads for local applications;
//! * the **plugins' tables** (a consensus plugin's ledger), private to each
//!   plugin id, written inside the same transactions.
//!
//! Bundles are keyed by their local insertion sequence number, not by id,
//! and no table is keyed by id: new bundles append at the right edge of the
//! B-trees, and a commit writes the new pages only. Keyed by id (a hash,
//! uniformly spread), each insert dirtied its own leaf page in every
//! id-keyed table once the tables outgrew a batch: the `store` bench
//! measured 19 KB written to disk per 200-byte bundle, which made the disk,
//! not the CPU, the limit of a relay. Lookups by id go through an index in
//! memory, rebuilt when the store opens (`index.rs`). Its heap is bounded
//! by the quota for held bundles; for ids only seen, which follow traffic,
//! it is a Bloom filter's 1.5 bytes per id, the ids themselves being on
//! disk in sorted runs, packed and appended (at most about 150 bytes
//! written per seen id over its life, `seen.rs`).
//!
//! Everything changes inside a [`Batch`]: one write transaction for a batch
//! of events, committed (fsync) once. What the router acknowledges, it
//! acknowledges after the commit, so a crash (even `kill -9`) loses nothing
//! acknowledged; LMDB itself never leaves a half-written state.

mod batch;
mod index;
mod kv;
mod record;
mod seen;

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions};

pub use batch::{Batch, Insert};
pub use kv::PluginCall;
pub use record::{BundleMeta, Delivery, Id};

/// Sizes and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Most bytes of bundles held at once; beyond it the lowest-priority,
    /// oldest relayed bundles are evicted.
    pub quota_bytes: u64,
    /// Largest single bundle accepted.
    pub max_bundle_bytes: u64,
    /// LMDB map size (address space reserved; the file grows as used).
    /// Must leave room for the quota, the plugins' tables and free pages.
    pub map_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let quota = 256 << 20;
        StoreConfig { quota_bytes: quota, max_bundle_bytes: 1 << 20, map_bytes: default_map_bytes(quota) }
    }
}

/// A map size for a quota: twice the quota for copy-on-write and free pages,
/// plus room for ledgers; smaller on 32-bit targets, where address space is
/// scarce (mips routers).
pub fn default_map_bytes(quota_bytes: u64) -> u64 {
    let want = quota_bytes.saturating_mul(2).saturating_add(256 << 20);
    if cfg!(target_pointer_width = "32") { want.min(1 << 30) } else { want }
}

/// Store errors. `Full` and `Io` are conditions an operator must see; the
/// router refuses the input that hit them and keeps running.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is full (LMDB map size reached): raise [store] map_mb or lower quota_mb")]
    MapFull,
    #[error("disk full or I/O error: {0}")]
    Io(String),
    #[error("damaged record in the store: {0}")]
    Damaged(&'static str),
    #[error("LMDB: {0}")]
    Lmdb(String),
}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::MapFull,
            heed::Error::Io(io) => StoreError::Io(io.to_string()),
            heed::Error::Mdb(heed::MdbError::Other(code)) if code == libc_enospc() => {
                StoreError::Io("no space left on device".into())
            }
            other => StoreError::Lmdb(other.to_string()),
        }
    }
}

const fn libc_enospc() -> i32 {
    28
}

type Table = Database<Bytes, Bytes>;

pub(crate) struct Tables {
    /// Sequence number (big-endian) to bundle metadata.
    meta: Table,
    /// Sequence number (big-endian) to bundle bytes.
    data: Table,
    /// Expiry (big-endian) and id of each held bundle.
    expiry: Table,
    evict: Table,
    delivery: Table,
    state: Table,
    /// Seen ids not yet in a run: a record per batch, sequence number to
    /// the (prefix, expiry) pairs it recorded.
    seen_log: Table,
    /// Runs of seen ids as frozen: run number and a block's first prefix to
    /// the block's (prefix, expiry) pairs, sorted.
    seen_runs: Table,
    /// Runs of seen ids merged from two: the same.
    seen_merged: Table,
    /// Each run's level, size, latest expiry and Bloom filter.
    seen_run_meta: Table,
}

/// The node's LMDB environment.
pub struct Store {
    env: Env,
    tables: Tables,
    config: StoreConfig,
    /// Plugin tables by handle (index) and full name; handles are what
    /// `kv_open` returns to plugins.
    plugin_tables: Mutex<PluginTables>,
    /// Ids held or seen (`index.rs`), as of the last commit.
    index: Mutex<index::IdIndex>,
    /// Seen ids kept in memory before a run is frozen: [`seen::RUN_LEN`],
    /// smaller in tests.
    seen_run_len: usize,
}

#[derive(Default)]
pub(crate) struct PluginTables {
    handles: Vec<Option<(String, Table)>>,
    by_name: HashMap<String, u32>,
}

/// The id index from the tables: held bundles from `held_meta`, recent seen
/// ids from the seen log, runs from their metadata.
fn load_index(txn: &heed::RoTxn, t: &Tables) -> Result<index::IdIndex, StoreError> {
    let watermark = batch::read_u64(&t.state, txn, batch::WATERMARK)?;
    let mut held = Vec::new();
    for item in t.meta.iter(txn)? {
        let (k, v) = item?;
        let seq = u64::from_be_bytes(k.try_into().map_err(|_| StoreError::Damaged("bundle sequence key"))?);
        held.push((index::prefix(&BundleMeta::id_of(v)?), seq));
    }
    let recent = seen::read_log(t, txn, watermark)?;
    let runs = seen::load_runs(t, txn)?;
    let merge = match seen::Merge::load(t, txn)? {
        Some(m) => Some((m, m.rebuild_bloom(t, txn, &runs)?)),
        None => None,
    };
    Ok(index::IdIndex::new(held, recent, runs, merge, watermark))
}

/// Stores written before bundles were keyed by sequence number had
/// `bundle_meta` and `bundle_data` keyed by id and a `seen` table. Moves
/// their entries over, inside the opening transaction (all or nothing), and
/// empties the old tables.
fn migrate_id_keyed(env: &Env, txn: &mut heed::RwTxn, t: &Tables) -> Result<(), StoreError> {
    let old = |txn: &heed::RwTxn, name| env.open_database::<Bytes, Bytes>(txn, Some(name));
    let (Some(meta), Some(data), Some(seen)) =
        (old(txn, "bundle_meta")?, old(txn, "bundle_data")?, old(txn, "seen")?)
    else {
        return Ok(());
    };
    let metas: Vec<Vec<u8>> =
        meta.iter(txn)?.map(|item| item.map(|(_, v)| v.to_vec())).collect::<Result<_, _>>()?;
    for v in &metas {
        let m = BundleMeta::decode(v)?;
        let bytes = data.get(txn, &m.id)?.ok_or(StoreError::Damaged("bundle without its bytes"))?.to_vec();
        t.meta.put(txn, &batch::seq_key(m.seq), v)?;
        t.data.put(txn, &batch::seq_key(m.seq), &bytes)?;
    }
    // The seen ids are in the expiry table too, which stays (and is
    // migrated next, `migrate_seen_out_of_expiry`).
    meta.clear(txn)?;
    data.clear(txn)?;
    seen.clear(txn)?;
    Ok(())
}

/// The layout version, in `state`. Absent: layout 2 (or a new store),
/// where the expiry table listed seen ids beside held bundles.
const LAYOUT: &[u8] = b"layout";
/// Layout 3: seen ids in the seen log and runs, `expiry` for held bundles.
const LAYOUT_VERSION: u64 = 3;

/// Moves the seen ids of a layout-2 store (entries of `expiry` without a
/// held bundle) to runs, [`seen::RUN_LEN`] (`run_len`) per transaction, the
/// last ones to the seen log. Each transaction moves its ids whole, so a
/// crash leaves a store that the next opening finishes migrating; the
/// layout version is written by the last. (Not one transaction: LMDB keeps
/// a transaction's dirty pages as heap, see `seen.rs`.) Returns whether
/// any id was moved.
fn migrate_seen_out_of_expiry(env: &Env, t: &Tables, run_len: usize) -> Result<bool, StoreError> {
    let txn = env.read_txn()?;
    match batch::read_u64(&t.state, &txn, LAYOUT)? {
        LAYOUT_VERSION => return Ok(false),
        v if v > LAYOUT_VERSION => {
            return Err(StoreError::Damaged("store layout (written by a newer version)"));
        }
        _ => {}
    }
    let mut held = HashSet::new();
    for item in t.meta.iter(&txn)? {
        held.insert(BundleMeta::id_of(item?.1)?);
    }
    let watermark = batch::read_u64(&t.state, &txn, batch::WATERMARK)?;
    let mut runs = seen::load_runs(t, &txn)?;
    drop(txn);
    let mut moved_any = false;
    let mut after: Option<[u8; 40]> = None;
    loop {
        let mut txn = env.write_txn()?;
        let mut moved = Vec::new();
        let done = 'scan: loop {
            // A chunk of keys at a time: heed's iterators cannot run across
            // writes.
            let lower = after.as_ref().map_or(Bound::Unbounded, |k| Bound::Excluded(&k[..]));
            let mut chunk = Vec::new();
            for item in t.expiry.range(&txn, &(lower, Bound::Unbounded))?.take(4096) {
                let k: [u8; 40] = item?.0.try_into().map_err(|_| StoreError::Damaged("expiry index"))?;
                chunk.push(k);
            }
            if chunk.is_empty() {
                break true;
            }
            for k in chunk {
                after = Some(k);
                let id: Id = k[8..].try_into().expect("32 bytes");
                if held.contains(&id) {
                    continue;
                }
                t.expiry.delete(&mut txn, &k)?;
                let expires = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
                if expires > watermark {
                    moved.push((index::prefix(&id), expires));
                }
                if moved.len() >= run_len {
                    break 'scan false;
                }
            }
        };
        moved_any |= !moved.is_empty();
        if !done {
            seen::freeze(t, &mut txn, &mut runs, None, moved, watermark)?;
            txn.commit()?;
            continue;
        }
        if !moved.is_empty() {
            seen::log_write(t, &mut txn, &moved)?;
        }
        t.state.put(&mut txn, LAYOUT, &LAYOUT_VERSION.to_le_bytes())?;
        txn.commit()?;
        return Ok(moved_any);
    }
}

/// Does every merge the runs call for, a bounded amount per transaction
/// (after a migration, which freezes runs without merging them).
fn catch_up_merges(env: &Env, t: &Tables) -> Result<(), StoreError> {
    let txn = env.read_txn()?;
    let watermark = batch::read_u64(&t.state, &txn, batch::WATERMARK)?;
    let (mut runs, mut merge) = (seen::load_runs(t, &txn)?, seen::Merge::load(t, &txn)?);
    drop(txn);
    let mut bloom = None;
    loop {
        let mut txn = env.write_txn()?;
        let mut merging = seen::Merging { runs: &mut runs, merge: &mut merge, bloom: &mut bloom };
        let more = merging.work(t, &mut txn, watermark, seen::CATCH_UP_WORK)?;
        txn.commit()?;
        if !more {
            return Ok(());
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        Store::open_with_run_len(dir, config, seen::RUN_LEN)
    }

    /// [`Store::open`], freezing seen ids into runs of `seen_run_len` (tests
    /// use small runs to exercise freezing and merging).
    pub(crate) fn open_with_run_len(
        dir: &Path,
        config: StoreConfig,
        seen_run_len: usize,
    ) -> Result<Store, StoreError> {
        let seen_run_len = seen_run_len.max(1);
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        // SAFETY: the state directory's lock file ensures one router process
        // per environment, and nothing else maps these files.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(config.map_bytes as usize)
                .max_dbs(256)
                .max_readers(64)
                .open(dir)?
        };
        // Readers left behind by a killed process would pin old pages.
        let _ = env.clear_stale_readers();
        let mut txn = env.write_txn()?;
        let mut table = |name: &str| env.create_database::<Bytes, Bytes>(&mut txn, Some(name));
        let tables = Tables {
            meta: table("held_meta")?,
            data: table("held_data")?,
            expiry: table("expiry")?,
            evict: table("evict")?,
            delivery: table("delivery")?,
            state: table("state")?,
            seen_log: table("seen_log")?,
            seen_runs: table("seen_runs")?,
            seen_merged: table("seen_merged")?,
            seen_run_meta: table("seen_run_meta")?,
        };
        migrate_id_keyed(&env, &mut txn, &tables)?;
        txn.commit()?;
        if migrate_seen_out_of_expiry(&env, &tables, seen_run_len)? {
            catch_up_merges(&env, &tables)?;
        }
        let txn = env.read_txn()?;
        let index = load_index(&txn, &tables)?;
        drop(txn);
        Ok(Store {
            env,
            tables,
            config,
            plugin_tables: Mutex::new(PluginTables::default()),
            index: Mutex::new(index),
            seen_run_len,
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Starts a batch: one write transaction.
    pub fn batch(&self) -> Result<Batch<'_>, StoreError> {
        Batch::new(self)
    }

    /// Held bundles (metadata), for listing. A read snapshot.
    pub fn list(&self) -> Result<Vec<BundleMeta>, StoreError> {
        let txn = self.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.tables.meta.iter(&txn)? {
            let (_, v) = item?;
            out.push(BundleMeta::decode(v)?);
        }
        Ok(out)
    }

    /// Bytes and count of held bundles.
    pub fn usage(&self) -> Result<(u64, u64), StoreError> {
        let txn = self.env.read_txn()?;
        let bytes = batch::read_u64(&self.tables.state, &txn, batch::HELD_BYTES)?;
        Ok((bytes, self.tables.meta.len(&txn)?))
    }

    /// Ids held or seen: held bundles, plus seen ids in memory and in runs
    /// (those expired included, until dropped).
    pub fn known_ids(&self) -> usize {
        self.index().len()
    }

    /// An estimate of the heap the id index uses, in bytes: the maps of
    /// held and recent ids, and the runs' filters.
    pub fn index_heap_bytes(&self) -> usize {
        self.index().heap_bytes()
    }

    pub(crate) fn index(&self) -> std::sync::MutexGuard<'_, index::IdIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plugin_tables(&self) -> std::sync::MutexGuard<'_, PluginTables> {
        self.plugin_tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}
