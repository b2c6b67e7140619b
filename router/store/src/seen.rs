//! Ids seen but not held, frozen on disk: the part of the id index that
//! grows with traffic rather than with the quota.
//!
//! A relay sees every bundle that passes through it, and must remember
//! each id until the bundle's lifetime ends, so a copy coming back is
//! dropped. Held bundles are bounded by the quota; ids merely seen are
//! bounded only by traffic times lifetime. Kept in a map in memory, they
//! cost about 30 bytes of heap each (a relay passing 100 000 bundles grew
//! from 8 to 11.5 MB); kept in an LMDB table keyed by id, each one dirtied
//! its own leaf page (see `index.rs`). So they go through three stages,
//! every write an append at the right edge of a B-tree:
//!
//! 1. **Recent** (in memory, at most [`RUN_LEN`] entries, `index.rs`), and
//!    in the `seen_log` table (one record per batch), so the map can be
//!    rebuilt when the store opens.
//! 2. **Runs**: when recent is full, it is written sorted by prefix as a
//!    new run in `seen_runs`, and the log is emptied, in the same
//!    transaction. In memory a run keeps only its [`Bloom`] filter (12
//!    bits, 1.5 bytes, per id) and a few numbers (`seen_run_meta` has them,
//!    so opening reads no run); a lookup reads LMDB only for the runs whose
//!    filter answers "maybe".
//! 3. **Merges**, as in a binary counter: two runs of the same level merge
//!    into one of the next level (in `seen_merged`), dropping expired
//!    entries, up to [`MERGE_LEVELS`]; above it runs just accumulate (a
//!    filter probe each per lookup). A run whose latest expiry has passed
//!    is deleted whole.
//!
//! Entries are packed [`BLOCK_LEN`] to an LMDB record (key: run number and
//! the block's first prefix), the log's one record per batch: an LMDB
//! write or delete costs 300 to 400 ns, so one per entry and per merge
//! level would have cost a relay several microseconds per bundle; packed,
//! an entry costs a copy of its 16 bytes. A lookup reads the block that
//! may hold the prefix and searches it.
//!
//! A merge is done a little at a time ([`MERGE_WORK`] entries per id
//! recorded, in steps of at least [`MERGE_STEP`]), not at once: LMDB keeps
//! the pages a transaction dirtied as heap after it commits, for the next
//! ones, so merging a million entries in one transaction would leave more
//! heap behind than the ids it saves (26 MB measured for a million
//! entries written in one transaction; deleting is cheap, the freed pages
//! are reused within it). Its progress is in `state`, committed with each
//! batch; the merged run replaces its two inputs when it is complete, and
//! until then lookups read the inputs. Merged runs have their own table so
//! that, with level-0 runs frozen in between, both grow at their right
//! edge.
//!
//! Disk writes per seen id: 16 bytes in the log, and 16 bytes when frozen
//! and again at each merge level it reaches, all appended: at most about
//! 150 bytes over its life, in whole pages.
//!
//! Expiry is a watermark (`expire` sets it to the clock): a seen entry
//! whose expiry is at or below it is unknown, whether or not it has been
//! deleted yet. Nothing needs waking for seen entries; the router's timer
//! follows held bundles, and expired runs go at the next `expire`.

use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;

use heed::{PutFlags, RoTxn, RwTxn};

use crate::record::Reader;
use crate::{StoreError, Table, Tables};

/// Seen ids kept in memory before they are frozen into a run. The map's
/// heap (about 280 KB at this size, capacity kept between runs) is the
/// flat part of the index's cost; smaller runs would mean more runs below
/// the merge cap (one filter probe each per lookup) and more merges.
pub(crate) const RUN_LEN: usize = 8192;

/// Runs merge two by two up to this level: a run of level `l` holds up to
/// `RUN_LEN << l` entries, so at most 1M (8192 << 7). Each level costs
/// every id one more copy; runs at the cap accumulate instead, one filter
/// probe each per lookup (ten runs for ten million live seen ids).
pub(crate) const MERGE_LEVELS: u8 = 7;

/// Entries of a merge done per seen id recorded. Every id is merged once
/// per level, [`MERGE_LEVELS`] times in all: twice that keeps the merges
/// ahead of the runs they must absorb, with room for merges waiting on the
/// one in progress.
pub(crate) const MERGE_WORK: usize = 16;

/// The least merge work done at once: credit below it waits for later
/// batches, so small batches do not cut a merge's output into small
/// blocks. (At 16 bytes an entry, a step of this size dirties about 70
/// KB; a batch of 2 000 seen ids does 32 000 entries, 0.5 MB.)
pub(crate) const MERGE_STEP: usize = 4096;

/// Entries merged per transaction when the store opens after a migration
/// (catching up on every merge at once): bounds the transaction's dirty
/// pages, which LMDB keeps as heap, at about 1 MB.
pub(crate) const CATCH_UP_WORK: usize = 1 << 16;

/// Entries per LMDB record in a run: 62 entries of 16 bytes and the key
/// (16 bytes) make about 1 KB, four records to a 4 KB page (and records
/// below half a page stay in the leaf pages, which appends fill whole,
/// whatever the page size).
const BLOCK_LEN: usize = 62;

/// An entry on disk: prefix and expiry, big-endian.
const ENTRY: usize = 16;

/// Bloom filter size. With 512-bit blocks and 8 bits set per key, 12 bits
/// per key answer "maybe" for about 0.5% of absent ids (a wasted LMDB
/// read), for 1.5 bytes of heap per frozen id.
const BLOOM_BITS_PER_KEY: u64 = 12;

/// Entries read from each input at a time while merging (heed's iterators
/// cannot run across writes).
const READ_CHUNK: usize = 4096;

const META_VERSION: u8 = 1;

/// Key in `state` of the merge in progress, absent if none.
const MERGE_STATE: &[u8] = b"seen_merge";

/// All complete runs, oldest first. Shared (`Arc`) so that a batch changing
/// the list copies the list, not the filters.
pub(crate) type Runs = Vec<Arc<Run>>;

/// Key of a block of a run: the run's number and the block's first prefix.
fn run_key(no: u64, prefix: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&no.to_be_bytes());
    k[8..].copy_from_slice(&prefix.to_be_bytes());
    k
}

fn be_u64(b: &[u8], what: &'static str) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(b.try_into().map_err(|_| StoreError::Damaged(what))?))
}

fn encode_entries(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY);
    for &(p, e) in entries {
        out.extend_from_slice(&p.to_be_bytes());
        out.extend_from_slice(&e.to_be_bytes());
    }
    out
}

/// The entries of a packed record (a run block or a log record).
fn entries(v: &[u8]) -> Result<impl Iterator<Item = (u64, u64)> + '_, StoreError> {
    if !v.len().is_multiple_of(ENTRY) {
        return Err(StoreError::Damaged("seen ids record"));
    }
    Ok(v.chunks_exact(ENTRY).map(|c| {
        let (p, e) = c.split_at(8);
        (
            u64::from_be_bytes(p.try_into().expect("8 bytes")),
            u64::from_be_bytes(e.try_into().expect("8 bytes")),
        )
    }))
}

/// The expiry of `prefix` in a block sorted by prefix.
fn search_block(v: &[u8], prefix: u64) -> Result<Option<u64>, StoreError> {
    if !v.len().is_multiple_of(ENTRY) {
        return Err(StoreError::Damaged("seen ids record"));
    }
    let at = |i: usize| u64::from_be_bytes(v[i * ENTRY..i * ENTRY + 8].try_into().expect("8 bytes"));
    let (mut lo, mut hi) = (0, v.len() / ENTRY);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match at(mid).cmp(&prefix) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let e = &v[mid * ENTRY + 8..mid * ENTRY + ENTRY];
                return Ok(Some(u64::from_be_bytes(e.try_into().expect("8 bytes"))));
            }
        }
    }
    Ok(None)
}

/// Appends a batch's seen ids (prefix, expiry) to the seen log, as one
/// record keyed by the next sequence number (the largest key yet).
pub(crate) fn log_write(t: &Tables, txn: &mut RwTxn, entries: &[(u64, u64)]) -> Result<(), StoreError> {
    let seq = match t.seen_log.last(txn)? {
        Some((k, _)) => be_u64(k, "seen log key")? + 1,
        None => 0,
    };
    t.seen_log.put_with_flags(txn, PutFlags::APPEND, &seq.to_be_bytes(), &encode_entries(entries))?;
    Ok(())
}

/// The log's entries still unexpired at `watermark` (prefix, expiry).
pub(crate) fn read_log(t: &Tables, txn: &RoTxn, watermark: u64) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut out = Vec::new();
    for item in t.seen_log.iter(txn)? {
        out.extend(entries(item?.1)?.filter(|&(_, e)| e > watermark));
    }
    Ok(out)
}

/// Appends `entries` (sorted by prefix) to run `no` in `table`, in blocks.
/// The run's number is the largest in the table and prefixes come in
/// order: every block goes at the right edge.
fn write_blocks(table: &Table, txn: &mut RwTxn, no: u64, entries: &[(u64, u64)]) -> Result<(), StoreError> {
    for block in entries.chunks(BLOCK_LEN) {
        table.put_with_flags(txn, PutFlags::APPEND, &run_key(no, block[0].0), &encode_entries(block))?;
    }
    Ok(())
}

/// A blocked Bloom filter over prefixes: each key sets 8 bits in one
/// 64-byte block (one bit in each 64-bit word, the "split block" layout of
/// Parquet and Impala), so a probe touches one cache line.
///
/// Prefixes are already uniform hashes of the ids, but ids can be ground
/// to chosen prefixes: they are mixed with a random per-run seed, stored
/// with the filter. The mix is written here, not borrowed from a hashing
/// crate, because the filters are persisted and must hash alike in every
/// later version.
#[derive(Debug)]
pub(crate) struct Bloom {
    seed: u64,
    blocks: Box<[Block]>,
}

#[derive(Clone, Copy, Debug, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

/// Odd multipliers, one per word of a block (Parquet's split-block salts).
const SALT: [u32; 8] =
    [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31];

/// murmur3's 64-bit finaliser: a bijection that spreads every input bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Bloom {
    fn new(keys: u64, seed: u64) -> Bloom {
        let blocks = (keys.saturating_mul(BLOOM_BITS_PER_KEY)).div_ceil(512).clamp(1, u32::MAX.into());
        Bloom { seed, blocks: vec![Block::default(); blocks as usize].into_boxed_slice() }
    }

    /// The block and the bit of each of its words for `prefix`.
    fn locate(&self, prefix: u64) -> (usize, [u64; 8]) {
        let h = mix(prefix ^ self.seed);
        let block = (((h >> 32) * self.blocks.len() as u64) >> 32) as usize;
        let low = h as u32;
        (block, SALT.map(|s| 1u64 << (low.wrapping_mul(s) >> 26)))
    }

    fn insert(&mut self, prefix: u64) {
        let (b, bits) = self.locate(prefix);
        for (w, bit) in self.blocks[b].0.iter_mut().zip(bits) {
            *w |= bit;
        }
    }

    /// False: certainly not in the run. True: read the run to know.
    fn may_contain(&self, prefix: u64) -> bool {
        let (b, bits) = self.locate(prefix);
        self.blocks[b].0.iter().zip(bits).all(|(w, bit)| w & bit != 0)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.blocks)
    }
}

/// A complete run, as kept in memory: what decides whether to read it.
#[derive(Debug)]
pub(crate) struct Run {
    no: u64,
    level: u8,
    /// Entries in the run (expired ones included until a merge drops them).
    pub(crate) count: u64,
    /// The latest expiry in the run: at or below the watermark, the whole
    /// run is dead.
    max_expiry: u64,
    bloom: Bloom,
}

impl Run {
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Run>() + self.bloom.heap_bytes()
    }

    /// Level-0 runs are frozen in `seen_runs`, merged ones written in
    /// `seen_merged`.
    fn table<'t>(&self, t: &'t Tables) -> &'t Table {
        table(t, self.level)
    }

    /// The expiry of `prefix` in the run, if it is there.
    fn get(&self, t: &Tables, txn: &RoTxn, prefix: u64) -> Result<Option<u64>, StoreError> {
        // The block that may hold it: the last one starting at or before it.
        match self.table(t).get_lower_than_or_equal_to(txn, &run_key(self.no, prefix))? {
            Some((k, v)) if k[..8] == self.no.to_be_bytes() => search_block(v, prefix),
            _ => Ok(None),
        }
    }

    fn encode_meta(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26 + self.bloom.heap_bytes());
        out.push(META_VERSION);
        out.push(self.level);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.max_expiry.to_le_bytes());
        out.extend_from_slice(&self.bloom.seed.to_le_bytes());
        for block in &self.bloom.blocks {
            for w in block.0 {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out
    }

    fn decode_meta(no: u64, v: &[u8]) -> Result<Run, StoreError> {
        let mut r = Reader::new(v, "seen run metadata");
        if r.u8()? != META_VERSION {
            return Err(StoreError::Damaged("seen run metadata (unknown version)"));
        }
        let (level, count, max_expiry, seed) = (r.u8()?, r.u64()?, r.u64()?, r.u64()?);
        let words = r.rest();
        if words.is_empty() || !words.len().is_multiple_of(64) {
            return Err(StoreError::Damaged("seen run filter"));
        }
        let blocks = words
            .chunks_exact(64)
            .map(|b| {
                let mut block = Block::default();
                for (w, bytes) in block.0.iter_mut().zip(b.chunks_exact(8)) {
                    *w = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                }
                block
            })
            .collect();
        Ok(Run { no, level, count, max_expiry, bloom: Bloom { seed, blocks } })
    }
}

fn table(t: &Tables, level: u8) -> &Table {
    if level == 0 { &t.seen_runs } else { &t.seen_merged }
}

fn random_seed(salt: u64) -> u64 {
    std::hash::RandomState::new().hash_one(salt)
}

/// Every complete run, from `seen_run_meta` (the filters are stored there:
/// opening does not read the runs themselves).
pub(crate) fn load_runs(t: &Tables, txn: &RoTxn) -> Result<Runs, StoreError> {
    let mut runs = Vec::new();
    for item in t.seen_run_meta.iter(txn)? {
        let (k, v) = item?;
        runs.push(Arc::new(Run::decode_meta(be_u64(k, "seen run number")?, v)?));
    }
    Ok(runs)
}

/// Whether a run holds `prefix` with an expiry above `watermark`.
pub(crate) fn runs_know(
    t: &Tables,
    txn: &RoTxn,
    runs: &[Arc<Run>],
    prefix: u64,
    watermark: u64,
) -> Result<bool, StoreError> {
    for run in runs.iter().rev() {
        if run.max_expiry <= watermark || !run.bloom.may_contain(prefix) {
            continue;
        }
        // An id is seen again only once its earlier entries have expired,
        // so any live entry decides.
        if run.get(t, txn, prefix)?.is_some_and(|e| e > watermark) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The number for a new run: above every run's, and the merge output's.
fn next_run_no(runs: &[Arc<Run>], merge: Option<&Merge>) -> u64 {
    runs.iter().map(|r| r.no + 1).chain(merge.map(|m| m.out + 1)).max().unwrap_or(0)
}

/// Writes `entries` (prefix, expiry) as a new level-0 run and empties the
/// seen log, in `txn`: after a crash, either the run exists and the log is
/// empty, or neither changed. (`merge`: the one in progress, whose output
/// number is taken.)
pub(crate) fn freeze(
    t: &Tables,
    txn: &mut RwTxn,
    runs: &mut Runs,
    merge: Option<&Merge>,
    mut entries: Vec<(u64, u64)>,
    watermark: u64,
) -> Result<(), StoreError> {
    entries.retain(|&(_, e)| e > watermark);
    entries.sort_unstable_by_key(|&(p, _)| p);
    // (Unique already, unless two ids of a migrated store shared a prefix.)
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        kept.1 = if same { kept.1.max(later.1) } else { kept.1 };
        same
    });
    t.seen_log.clear(txn)?;
    if entries.is_empty() {
        return Ok(());
    }
    let no = next_run_no(runs, merge);
    let mut bloom = Bloom::new(entries.len() as u64, random_seed(no));
    for &(p, _) in &entries {
        bloom.insert(p);
    }
    write_blocks(&t.seen_runs, txn, no, &entries)?;
    let max_expiry = entries.iter().map(|&(_, e)| e).max().unwrap_or(0);
    let run = Run { no, level: 0, count: entries.len() as u64, max_expiry, bloom };
    t.seen_run_meta.put(txn, &no.to_be_bytes(), &run.encode_meta())?;
    runs.push(Arc::new(run));
    Ok(())
}

/// A merge in progress, as committed in `state`: runs `a` and `b` (of
/// `level - 1`) into run `out` of `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Merge {
    a: u64,
    b: u64,
    out: u64,
    level: u8,
    /// Both inputs are merged up to this prefix, included.
    done_to: Option<u64>,
    /// Entries written to `out`, and their latest expiry.
    count: u64,
    max_expiry: u64,
}

impl Merge {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(50);
        for n in [self.a, self.b, self.out] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.push(self.level);
        out.push(u8::from(self.done_to.is_some()));
        for n in [self.done_to.unwrap_or(0), self.count, self.max_expiry] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out
    }

    /// The merge in progress, if any.
    pub(crate) fn load(t: &Tables, txn: &RoTxn) -> Result<Option<Merge>, StoreError> {
        let Some(v) = t.state.get(txn, MERGE_STATE)? else { return Ok(None) };
        let mut r = Reader::new(v, "seen merge state");
        let (a, b, out, level, started) = (r.u64()?, r.u64()?, r.u64()?, r.u8()?, r.u8()?);
        let (done_to, count, max_expiry) = (r.u64()?, r.u64()?, r.u64()?);
        let done_to = (started != 0).then_some(done_to);
        Ok(Some(Merge { a, b, out, level, done_to, count, max_expiry }))
    }

    fn inputs<'r>(&self, runs: &'r [Arc<Run>]) -> Result<(&'r Arc<Run>, &'r Arc<Run>), StoreError> {
        let find = |no| runs.iter().find(|r| r.no == no).ok_or(StoreError::Damaged("seen merge input"));
        Ok((find(self.a)?, find(self.b)?))
    }

    fn is_input(&self, run: &Run) -> bool {
        run.no == self.a || run.no == self.b
    }

    /// The output's filter, from what is written of it (after the store
    /// opens, or a batch that had it aborted).
    pub(crate) fn rebuild_bloom(
        &self,
        t: &Tables,
        txn: &RoTxn,
        runs: &[Arc<Run>],
    ) -> Result<Bloom, StoreError> {
        let (a, b) = self.inputs(runs)?;
        let mut bloom = Bloom::new(a.count + b.count, random_seed(self.out));
        let (first, last) = (run_key(self.out, 0), run_key(self.out, u64::MAX));
        for item in
            table(t, self.level).range(txn, &(Bound::Included(&first[..]), Bound::Included(&last[..])))?
        {
            for (p, _) in entries(item?.1)? {
                bloom.insert(p);
            }
        }
        Ok(bloom)
    }
}

/// Two runs of the same level below the cap, if any.
fn pair_to_merge(runs: &[Arc<Run>]) -> Option<(&Arc<Run>, &Arc<Run>)> {
    (0..MERGE_LEVELS).find_map(|level| {
        let mut same = runs.iter().filter(|r| r.level == level);
        Some((same.next()?, same.next()?))
    })
}

/// Up to `n` entries of `run` after prefix `after`, in order.
fn read_after(
    t: &Tables,
    txn: &RoTxn,
    run: &Run,
    after: Option<u64>,
    n: usize,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let from = match after {
        Some(u64::MAX) => return Ok(Vec::new()),
        Some(p) => p + 1,
        None => 0,
    };
    // From the block that may hold `from`: the last starting at or before.
    let table = run.table(t);
    let start = match table.get_lower_than_or_equal_to(txn, &run_key(run.no, from))? {
        Some((k, _)) if k[..8] == run.no.to_be_bytes() => {
            k.try_into().map_err(|_| StoreError::Damaged("seen run key"))?
        }
        _ => run_key(run.no, from),
    };
    let last = run_key(run.no, u64::MAX);
    let mut out = Vec::with_capacity(n.min(READ_CHUNK));
    for item in table.range(txn, &(Bound::Included(&start[..]), Bound::Included(&last[..])))? {
        out.extend(entries(item?.1)?.filter(|&(p, _)| p >= from).take(n - out.len()));
        if out.len() == n {
            break;
        }
    }
    Ok(out)
}

/// The merging state a batch works on: the runs, the merge in progress and
/// its output's filter (`None` until rebuilt).
pub(crate) struct Merging<'a> {
    pub(crate) runs: &'a mut Runs,
    pub(crate) merge: &'a mut Option<Merge>,
    pub(crate) bloom: &'a mut Option<Bloom>,
}

impl Merging<'_> {
    /// Merges about `budget` input entries, starting merges as pairs of
    /// runs appear and completing them. Returns whether work remains.
    pub(crate) fn work(
        &mut self,
        t: &Tables,
        txn: &mut RwTxn,
        watermark: u64,
        mut budget: usize,
    ) -> Result<bool, StoreError> {
        while budget > 0 {
            let mut m = match *self.merge {
                Some(m) => m,
                None => {
                    let Some((a, b)) = pair_to_merge(self.runs) else { return Ok(false) };
                    let out = next_run_no(self.runs, None);
                    *self.bloom = Some(Bloom::new(a.count + b.count, random_seed(out)));
                    Merge {
                        a: a.no,
                        b: b.no,
                        out,
                        level: a.level + 1,
                        done_to: None,
                        count: 0,
                        max_expiry: 0,
                    }
                }
            };
            if self.bloom.is_none() {
                *self.bloom = Some(m.rebuild_bloom(t, txn, self.runs)?);
            }
            // Merged entries wait here to be written in whole blocks.
            let mut out = Vec::new();
            let mut done = false;
            while budget > 0 && !done {
                done = self.step(t, txn, &mut m, watermark, &mut budget, &mut out)?;
                let whole = if done { out.len() } else { out.len() - out.len() % BLOCK_LEN };
                write_blocks(table(t, m.level), txn, m.out, &out[..whole])?;
                out.drain(..whole);
            }
            // (A step that stops mid-block writes the rest as a short block.)
            write_blocks(table(t, m.level), txn, m.out, &out)?;
            if done {
                self.finish(t, txn, m)?;
            } else {
                *self.merge = Some(m);
                t.state.put(txn, MERGE_STATE, &m.encode())?;
            }
        }
        Ok(self.merge.is_some() || pair_to_merge(self.runs).is_some())
    }

    /// Merges a chunk of both inputs into `out`. Returns whether both inputs
    /// are used up.
    fn step(
        &mut self,
        t: &Tables,
        txn: &RoTxn,
        m: &mut Merge,
        watermark: u64,
        budget: &mut usize,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<bool, StoreError> {
        let n = (*budget).min(READ_CHUNK);
        let (a, b) = m.inputs(self.runs)?;
        let xs = read_after(t, txn, a, m.done_to, n)?;
        let ys = read_after(t, txn, b, m.done_to, n)?;
        // An input that gave fewer than asked has no more.
        let (a_end, b_end) = (xs.len() < n, ys.len() < n);
        let (mut i, mut j) = (0, 0);
        let bloom = self.bloom.as_mut().expect("built before a step");
        loop {
            let (p, e) = match (xs.get(i), ys.get(j)) {
                (Some(&x), Some(&y)) if x.0 == y.0 => {
                    (i, j) = (i + 1, j + 1);
                    (x.0, x.1.max(y.1))
                }
                (Some(&x), Some(&y)) if x.0 < y.0 => {
                    i += 1;
                    x
                }
                (Some(_), Some(&y)) => {
                    j += 1;
                    y
                }
                // One input's chunk is used up: the other can go on only
                // if that input has no more.
                (Some(&x), None) if b_end => {
                    i += 1;
                    x
                }
                (None, Some(&y)) if a_end => {
                    j += 1;
                    y
                }
                _ => break,
            };
            m.done_to = Some(p);
            if e > watermark {
                out.push((p, e));
                bloom.insert(p);
                m.count += 1;
                m.max_expiry = m.max_expiry.max(e);
            }
        }
        *budget = budget.saturating_sub((i + j).max(1));
        Ok(a_end && b_end && i == xs.len() && j == ys.len())
    }

    /// Deletes the runs wholly expired at `watermark`. The inputs of the
    /// merge in progress stay for it (it drops their expired entries),
    /// unless both are expired: then the merge is abandoned.
    pub(crate) fn drop_expired(
        &mut self,
        t: &Tables,
        txn: &mut RwTxn,
        watermark: u64,
    ) -> Result<(), StoreError> {
        if let Some(m) = *self.merge {
            let (a, b) = m.inputs(self.runs)?;
            if a.max_expiry <= watermark && b.max_expiry <= watermark {
                let (first, last) = (run_key(m.out, 0), run_key(m.out, u64::MAX));
                table(t, m.level)
                    .delete_range(txn, &(Bound::Included(&first[..]), Bound::Included(&last[..])))?;
                t.state.delete(txn, MERGE_STATE)?;
                (*self.merge, *self.bloom) = (None, None);
            }
        }
        let merge = *self.merge;
        let dead = |r: &Run| r.max_expiry <= watermark && !merge.is_some_and(|m| m.is_input(r));
        for run in self.runs.iter().filter(|r| dead(r)) {
            delete_run(t, txn, run)?;
        }
        self.runs.retain(|r| !dead(r));
        Ok(())
    }

    /// Puts the complete output in place of its inputs.
    fn finish(&mut self, t: &Tables, txn: &mut RwTxn, m: Merge) -> Result<(), StoreError> {
        let bloom = self.bloom.take().expect("built before a step");
        if m.count > 0 {
            let run = Run { no: m.out, level: m.level, count: m.count, max_expiry: m.max_expiry, bloom };
            t.seen_run_meta.put(txn, &m.out.to_be_bytes(), &run.encode_meta())?;
            self.runs.push(Arc::new(run));
        }
        let (a, b) = m.inputs(self.runs)?;
        let (a, b) = (a.clone(), b.clone());
        delete_run(t, txn, &a)?;
        delete_run(t, txn, &b)?;
        self.runs.retain(|r| !m.is_input(r));
        *self.merge = None;
        t.state.delete(txn, MERGE_STATE)?;
        Ok(())
    }
}

fn delete_run(t: &Tables, txn: &mut RwTxn, run: &Run) -> Result<(), StoreError> {
    let (first, last) = (run_key(run.no, 0), run_key(run.no, u64::MAX));
    run.table(t).delete_range(txn, &(Bound::Included(&first[..]), Bound::Included(&last[..])))?;
    t.seen_run_meta.delete(txn, &run.no.to_be_bytes())?;
    Ok(())
}

/// Whether a run is wholly expired at `watermark`.
pub(crate) fn any_expired(runs: &[Arc<Run>], watermark: u64) -> bool {
    runs.iter().any(|r| r.max_expiry <= watermark)
}

/// Entries in a table of packed records (tests).
#[cfg(test)]
pub(crate) fn count_entries(table: &Table, txn: &RoTxn) -> u64 {
    table.iter(txn).unwrap().map(|item| (item.unwrap().1.len() / ENTRY) as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BundleMeta, Id};
    use crate::{Insert, Store, StoreConfig};

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let n = 100_000u64;
        let key = |i: u64| mix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut bloom = Bloom::new(n, 42);
        for i in 0..n {
            bloom.insert(key(i));
        }
        assert!((0..n).all(|i| bloom.may_contain(key(i))));
        let fp = (n..2 * n).filter(|&i| bloom.may_contain(key(i))).count();
        let rate = fp as f64 / n as f64;
        assert!(rate < 0.008, "false positive rate {rate}");
        assert!(bloom.heap_bytes() as u64 <= n * BLOOM_BITS_PER_KEY / 8 + 64);
    }

    /// Distinct ids with spread prefixes, as content hashes have.
    fn id(n: u64) -> Id {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&mix(n + 1).to_be_bytes());
        id[8..16].copy_from_slice(&n.to_le_bytes());
        id
    }

    fn meta(n: u64, expires: u64) -> BundleMeta {
        BundleMeta {
            id: id(n),
            source: "dtn://a/".into(),
            destination: "dtn://b/x".into(),
            priority: 1,
            size: 0,
            copies: u32::MAX,
            received_unix_ms: 0,
            expires_unix_ms: expires,
            from_peer: None,
            local: false,
            seq: 0,
        }
    }

    fn open(dir: &std::path::Path, run_len: usize) -> Store {
        let cfg = StoreConfig { quota_bytes: 1 << 20, max_bundle_bytes: 4096, map_bytes: 256 << 20 };
        Store::open_with_run_len(dir, cfg, run_len).unwrap()
    }

    /// Entries in the seen log, in runs (frozen and merged), and in the
    /// runs' metadata; the watermark.
    fn on_disk(s: &Store) -> (u64, u64, u64, u64) {
        let txn = s.env.read_txn().unwrap();
        let t = &s.tables;
        (
            count_entries(&t.seen_log, &txn),
            count_entries(&t.seen_runs, &txn) + count_entries(&t.seen_merged, &txn),
            t.seen_run_meta.len(&txn).unwrap(),
            crate::batch::read_u64(&t.state, &txn, crate::batch::WATERMARK).unwrap(),
        )
    }

    fn levels(s: &Store) -> Vec<u8> {
        s.index().runs().iter().map(|r| r.level).collect()
    }

    fn merging(s: &Store) -> bool {
        s.index().merge_state().0
    }

    /// Ids `from..to` seen: odd ones stored then removed (delivered onward),
    /// even ones marked seen; a commit per `per_batch`.
    fn see(s: &Store, from: u64, to: u64, expires: u64, per_batch: u64) {
        let mut n = from;
        while n < to {
            let mut b = s.batch().unwrap();
            for n in n..to.min(n + per_batch) {
                if n % 2 == 1 {
                    assert!(matches!(b.insert(&meta(n, expires), b"x").unwrap(), Insert::Stored { .. }));
                    assert!(b.remove(&id(n)).unwrap());
                } else {
                    assert!(b.mark_seen(&id(n), expires).unwrap());
                }
            }
            b.commit().unwrap();
            n += per_batch;
        }
    }

    /// Finishes every merge due.
    fn settle(s: &Store) {
        let mut b = s.batch().unwrap();
        b.merge_everything().unwrap();
        b.commit().unwrap();
        assert!(!merging(s));
    }

    #[test]
    fn seen_ids_stay_known_across_freezing_merging_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let run_len = 16;
        {
            let s = open(dir.path(), run_len);
            // 20 runs and 5 ids: the binary counter leaves levels 4 and 2.
            see(&s, 0, 20 * 16 + 5, 1_000, 7);
            settle(&s);
            assert_eq!(levels(&s), vec![4, 2]);
            assert_eq!(s.index().recent_len(), 5);
            assert_eq!(s.known_ids(), 325);
            assert_eq!(on_disk(&s), (5, 320, 2, 0));
            let mut b = s.batch().unwrap();
            for n in 0..325 {
                assert!(b.is_known(&id(n)).unwrap(), "{n}");
                assert!(!b.mark_seen(&id(n), 1_000).unwrap());
                assert_eq!(b.insert(&meta(n, 1_000), b"x").unwrap(), Insert::Duplicate);
            }
            assert!((325..2_000).all(|n| !b.is_known(&id(n)).unwrap()));
            b.commit().unwrap();
        }
        let s = open(dir.path(), run_len);
        assert_eq!(levels(&s), vec![4, 2]);
        assert_eq!(s.known_ids(), 325);
        let b = s.batch().unwrap();
        assert!((0..325).all(|n| b.is_known(&id(n)).unwrap()));
        assert!((325..2_000).all(|n| !b.is_known(&id(n)).unwrap()));
    }

    #[test]
    fn a_merge_spreads_over_batches_and_resumes_after_reopening_or_an_abort() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path(), RUN_LEN);
        // 256 ids a batch earn one step of merging: a merge of two runs
        // of 8192 takes four batches or more.
        let per_batch = (MERGE_STEP / MERGE_WORK) as u64;
        let total = 5 * RUN_LEN as u64;
        let (mut merging_batches, mut reopened, mut aborted) = (0, false, false);
        for n in (0..total).step_by(per_batch as usize) {
            see(&s, n, n + per_batch, 1_000, per_batch);
            if merging(&s) {
                merging_batches += 1;
                if !reopened && n > RUN_LEN as u64 * 2 {
                    // Mid-merge: the output's filter is rebuilt from disk.
                    drop(s);
                    s = open(dir.path(), RUN_LEN);
                    assert_eq!(s.index().merge_state(), (true, true));
                    reopened = true;
                } else if reopened && !aborted {
                    // A batch that did merge work, then aborted: it had the
                    // output's filter, rebuilt by the next one.
                    let mut b = s.batch().unwrap();
                    b.merge_everything().unwrap();
                    drop(b);
                    assert_eq!(s.index().merge_state(), (true, false));
                    aborted = true;
                }
            }
            let b = s.batch().unwrap();
            let last = n + per_batch;
            assert!(
                (0..last).step_by(97).chain(n..last).all(|m| b.is_known(&id(m)).unwrap()),
                "after {last}"
            );
            assert!((last..last + 100).all(|m| !b.is_known(&id(m)).unwrap()), "after {last}");
        }
        assert!(reopened && aborted);
        assert!(merging_batches >= 8, "{merging_batches}");
        settle(&s);
        assert_eq!(levels(&s), vec![2, 0]);
        assert_eq!(on_disk(&s), (0, total, 2, 0));
        let b = s.batch().unwrap();
        assert!((0..total).all(|m| b.is_known(&id(m)).unwrap()));
        assert!((total..total + 10_000).all(|m| !b.is_known(&id(m)).unwrap()));
    }

    #[test]
    fn expiry_during_a_merge_abandons_it_only_if_both_inputs_are_dead() {
        let per_batch = (MERGE_STEP / MERGE_WORK) as u64; // one step a batch
        let len = RUN_LEN as u64;
        for second_expires in [1_000, 3_000] {
            let dir = tempfile::tempdir().unwrap();
            let s = open(dir.path(), RUN_LEN);
            see(&s, 0, len, 1_000, per_batch);
            see(&s, len, 2 * len, second_expires, per_batch);
            assert!(merging(&s), "the second freeze started a merge, not finished in one step");
            let mut b = s.batch().unwrap();
            b.expire(1_000).unwrap();
            b.commit().unwrap();
            if second_expires == 1_000 {
                assert!(!merging(&s));
                assert_eq!((on_disk(&s), levels(&s), s.known_ids()), ((0, 0, 0, 1_000), vec![], 0));
            } else {
                assert!(merging(&s));
                settle(&s);
                assert_eq!(levels(&s), vec![1]);
                // Entries merged before the watermark rose stay, expired,
                // until the next merge; those after it are dropped.
                let (_, entries, metas, watermark) = on_disk(&s);
                assert!(entries > len && entries < 2 * len, "{entries}");
                assert_eq!((metas, watermark, s.known_ids()), (1, 1_000, entries as usize));
            }
            let b = s.batch().unwrap();
            assert!((0..len).all(|n| !b.is_known(&id(n)).unwrap()));
            assert!((len..2 * len).all(|n| b.is_known(&id(n)).unwrap() == (second_expires > 1_000)));
        }
    }

    #[test]
    fn runs_above_the_merge_cap_accumulate() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 2);
        let capped = 2u64 << MERGE_LEVELS;
        see(&s, 0, 2 * capped + 2, 1_000, 64);
        settle(&s);
        assert_eq!(levels(&s), vec![MERGE_LEVELS, MERGE_LEVELS, 0]);
        let b = s.batch().unwrap();
        assert!((0..2 * capped + 2).all(|n| b.is_known(&id(n)).unwrap()));
    }

    #[test]
    fn an_aborted_batch_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 8);
        see(&s, 0, 20, 1_000, 20);
        settle(&s);
        let before = (on_disk(&s), levels(&s), s.known_ids());
        assert_eq!(before, ((4, 16, 1, 0), vec![1], 20));
        {
            let mut b = s.batch().unwrap();
            // Freezes twice, merges, raises the watermark, drops a run.
            for n in 100..120 {
                assert!(b.mark_seen(&id(n), 2_000).unwrap());
            }
            b.merge_everything().unwrap();
            assert!(b.is_known(&id(119)).unwrap());
            assert!(b.expire(1_500).unwrap().is_empty());
            assert!(!b.is_known(&id(0)).unwrap() && b.is_known(&id(100)).unwrap());
            // Dropped: aborted.
        }
        assert_eq!((on_disk(&s), levels(&s), s.known_ids()), before);
        let b = s.batch().unwrap();
        assert!((0..20).all(|n| b.is_known(&id(n)).unwrap()));
        assert!((100..120).all(|n| !b.is_known(&id(n)).unwrap()));
        drop(b);
        drop(s);
        let s = open(dir.path(), 8);
        assert_eq!((on_disk(&s), levels(&s), s.known_ids()), before);
    }

    #[test]
    fn seen_ids_expire_by_the_watermark_and_dead_runs_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path(), 12);
            see(&s, 0, 12, 1_000, 12);
            see(&s, 12, 24, 3_000, 12); // merged with the first: one run
            see(&s, 24, 29, 1_000, 12); // recent
            see(&s, 29, 34, 3_000, 12); // recent
            settle(&s);
            assert_eq!(levels(&s), vec![1]);
            let mut b = s.batch().unwrap();
            assert!(matches!(b.insert(&meta(50, 5_000), b"held").unwrap(), Insert::Stored { .. }));
            // The timer follows held bundles only.
            assert_eq!(b.next_expiry().unwrap(), Some(5_000));
            assert!(b.expire(1_000).unwrap().is_empty());
            assert!((0..12).chain(24..29).all(|n| !b.is_known(&id(n)).unwrap()));
            assert!((12..24).chain(29..34).chain([50]).all(|n| b.is_known(&id(n)).unwrap()));
            // Known again once seen again (a copy after the expiry).
            assert!(b.mark_seen(&id(3), 4_000).unwrap());
            b.commit().unwrap();
            // The run lives on (it has entries until 3000); the expired
            // recent entries are gone from memory.
            assert_eq!(levels(&s), vec![1]);
            assert_eq!(s.index().recent_len(), 6);
            assert_eq!(on_disk(&s), (11, 24, 1, 1_000));
            let mut b = s.batch().unwrap();
            assert!(b.expire(3_000).unwrap().is_empty());
            b.commit().unwrap();
            assert_eq!(s.index().recent_len(), 1);
            assert_eq!(on_disk(&s), (11, 0, 0, 3_000), "the run is gone; the log stays until frozen");
        }
        let s = open(dir.path(), 12);
        assert_eq!(s.known_ids(), 2, "3 (seen again) and 50 (held)");
        let mut b = s.batch().unwrap();
        assert!((0..34).filter(|&n| n != 3).all(|n| !b.is_known(&id(n)).unwrap()));
        assert!(b.is_known(&id(3)).unwrap() && b.is_known(&id(50)).unwrap());
        assert_eq!(b.expire(5_000).unwrap(), vec![id(50)]);
        assert!(!b.is_known(&id(3)).unwrap() && !b.is_known(&id(50)).unwrap());
        assert_eq!(b.next_expiry().unwrap(), None);
    }

    #[test]
    fn a_merge_drops_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 8);
        see(&s, 0, 4, 1_000, 8);
        see(&s, 4, 8, 3_000, 8); // one run, entries expiring at 1000 and 3000
        let mut b = s.batch().unwrap();
        b.expire(2_000).unwrap();
        b.commit().unwrap();
        assert_eq!(on_disk(&s).1, 8, "not dead as a whole: kept");
        see(&s, 8, 16, 3_000, 8); // a second run: merged with the first
        settle(&s);
        assert_eq!(levels(&s), vec![1]);
        assert_eq!(on_disk(&s), (0, 12, 1, 2_000));
        assert_eq!(s.known_ids(), 12);
        let b = s.batch().unwrap();
        assert!((0..4).all(|n| !b.is_known(&id(n)).unwrap()));
        assert!((4..16).all(|n| b.is_known(&id(n)).unwrap()));
    }

    #[test]
    fn heap_per_seen_id_stays_flat() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), RUN_LEN);
        let step = RUN_LEN as u64;
        see(&s, 0, 2 * step + 100, u64::MAX, 2_000);
        let (n1, h1) = (s.known_ids(), s.index_heap_bytes());
        see(&s, 2 * step + 100, 14 * step + 100, u64::MAX, 2_000);
        let (n2, h2) = (s.known_ids(), s.index_heap_bytes());
        assert_eq!(n2 - n1, 12 * RUN_LEN);
        assert!(s.index().recent_len() < RUN_LEN);
        let per_id = (h2 - h1) as f64 / (n2 - n1) as f64;
        assert!(per_id <= 2.0, "{per_id} bytes of heap per seen id");
        assert!(h2 < 600 << 10, "{h2} bytes of heap in all");
    }
}
