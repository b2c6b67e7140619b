//! The id index: which bundle ids the store holds or has seen, and the
//! sequence number each held bundle is stored under.
//!
//! Why not an LMDB table keyed by id: ids are hashes, so each new id lands
//! on its own leaf page of an id-keyed B-tree, and a commit rewrites every
//! page it touched. Once such a table outgrows a batch, that is a page (and
//! with the kernel's large folios, more) written per bundle: the `store`
//! bench measured 19 KB written to disk per 200-byte bundle with one
//! id-keyed table left, against about 0.5 KB with none. On flash that is
//! wear, and on any disk it was the relay's limit.
//!
//! Why not all in memory either: ids merely seen (delivered here, refused,
//! or stored and since removed) stay until the bundle's lifetime ends, so
//! their number follows traffic, not the quota; at about 30 bytes of heap
//! each, a relay's memory grew with every bundle it passed on. So the
//! index has three parts:
//!
//! * `held`: prefix to sequence number of each held bundle, in memory
//!   (bounded by the quota), rebuilt from `held_meta` when the store opens;
//! * `recent`: prefix to expiry of ids seen but not held, in memory, at most
//!   [`RUN_LEN`](crate::seen::RUN_LEN) of them, rebuilt from the `seen_log`
//!   table;
//! * frozen runs of older seen ids, on disk, with a Bloom filter each in
//!   memory (1.5 bytes per id): see `seen.rs`.
//!
//! Heap, then: about 20 to 40 bytes per held bundle, a fixed few hundred KB
//! for `recent`, and 1.5 bytes per id seen within the bundle lifetime (the
//! `store` bench: 1.5 bytes of index and 3.3 of process heap per seen id,
//! against 22 before). The seen ids are written to disk in appends only.
//!
//! A seen entry expires through the watermark: `expire` sets it to the
//! clock, and an entry whose expiry is at or below it reads as unknown.
//!
//! Keys are the ids' first 8 bytes, as in the engine's summaries. A held
//! entry is confirmed against the full id in `held_meta`; two ids sharing a
//! prefix (probability about n / 2^64 for each new bundle with n known)
//! would make the second read as seen. The in-memory maps' hasher is keyed
//! per process (foldhash's `RandomState`: fast, seeded at random): ids can
//! be ground to chosen prefixes, and an unkeyed table could be driven into
//! long probe chains.
//!
//! A batch's changes are kept in a [`Pending`] and applied to the index
//! only when its transaction commits, so an aborted batch leaves no trace.

use foldhash::{HashMap, HashSet};

use crate::record::Id;
use crate::seen::{Bloom, Merge, Merging, Run, Runs};

pub(crate) fn prefix(id: &Id) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes"))
}

/// The index as of the last commit.
#[derive(Debug)]
pub(crate) struct IdIndex {
    /// Prefix to sequence number of each held bundle.
    held: HashMap<u64, u64>,
    /// Prefix to expiry (unix ms) of ids seen, not held, not yet frozen.
    recent: HashMap<u64, u64>,
    /// The frozen runs, oldest first.
    runs: Runs,
    /// The merge of two runs in progress, and its output's filter (`None`
    /// if a batch that had it aborted: rebuilt from the output on disk).
    merge: Option<Merge>,
    merge_bloom: Option<Bloom>,
    /// Merge work earned by batches and not done yet (below a step).
    merge_credit: usize,
    /// Seen entries expiring at or before this are gone.
    watermark: u64,
}

impl IdIndex {
    pub(crate) fn new(
        held: impl IntoIterator<Item = (u64, u64)>,
        recent: impl IntoIterator<Item = (u64, u64)>,
        runs: Runs,
        merge: Option<(Merge, Bloom)>,
        watermark: u64,
    ) -> IdIndex {
        let mut recent: HashMap<u64, u64> = recent.into_iter().collect();
        recent.retain(|_, e| *e > watermark);
        let (merge, merge_bloom) = merge.map_or((None, None), |(m, b)| (Some(m), Some(b)));
        IdIndex {
            held: held.into_iter().collect(),
            recent,
            runs,
            merge,
            merge_bloom,
            merge_credit: 0,
            watermark,
        }
    }

    /// Ids held or seen (expired seen ids included until they are dropped).
    pub(crate) fn len(&self) -> usize {
        let frozen: u64 = self.runs.iter().map(|r| r.count).sum();
        self.held.len() + self.recent.len() + frozen as usize
    }

    #[cfg(test)]
    pub(crate) fn recent_len(&self) -> usize {
        self.recent.len()
    }

    #[cfg(test)]
    pub(crate) fn runs(&self) -> &[std::sync::Arc<Run>] {
        &self.runs
    }

    /// Whether a merge is in progress, and whether its filter is built.
    #[cfg(test)]
    pub(crate) fn merge_state(&self) -> (bool, bool) {
        (self.merge.is_some(), self.merge_bloom.is_some())
    }

    /// An estimate of the heap the index uses: the maps' tables (a control
    /// byte per bucket, 8 buckets per 7 entries of capacity) and the runs'
    /// filters.
    pub(crate) fn heap_bytes(&self) -> usize {
        let map = |m: &HashMap<u64, u64>| m.capacity() * 8 / 7 * (std::mem::size_of::<(u64, u64)>() + 1);
        let runs: usize = self.runs.iter().map(|r| r.heap_bytes()).sum();
        let merging = self.merge_bloom.as_ref().map_or(0, |b| b.heap_bytes());
        map(&self.held)
            + map(&self.recent)
            + runs
            + merging
            + self.runs.capacity() * std::mem::size_of::<usize>()
    }

    /// Makes a committed batch's changes visible.
    pub(crate) fn apply(&mut self, pending: Pending) {
        for p in pending.held_removed {
            self.held.remove(&p);
        }
        self.held.extend(pending.held_set);
        if pending.recent_cleared {
            // (Capacity kept: it fills again to the same size.)
            self.recent.clear();
        }
        self.recent.extend(pending.recent_set);
        if let Some(runs) = pending.runs {
            self.runs = runs;
        }
        if let Some(merge) = pending.merge {
            self.merge = merge;
            self.merge_bloom = pending.merge_bloom;
        }
        if let Some(credit) = pending.merge_credit {
            self.merge_credit = credit;
        }
        if let Some(w) = pending.watermark {
            self.watermark = w;
            self.recent.retain(|_, e| *e > w);
        }
    }
}

/// A batch's changes to the index, applied only if it commits.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    held_set: HashMap<u64, u64>,
    held_removed: HashSet<u64>,
    recent_set: HashMap<u64, u64>,
    /// The committed `recent` was frozen into a run in this batch.
    recent_cleared: bool,
    /// Prefixes in `recent_set` not in the committed `recent`.
    recent_added: usize,
    /// The run list, if this batch changed it.
    runs: Option<Runs>,
    /// The merge in progress, if this batch took it over, with its filter
    /// (moved out of the index: if the batch aborts, the next one rebuilds
    /// it from what the merge has written).
    merge: Option<Option<Merge>>,
    merge_bloom: Option<Bloom>,
    merge_credit: Option<usize>,
    watermark: Option<u64>,
}

impl Pending {
    pub(crate) fn set_held(&mut self, id: &Id, seq: u64) {
        let p = prefix(id);
        self.held_removed.remove(&p);
        self.held_set.insert(p, seq);
    }

    pub(crate) fn remove_held(&mut self, id: &Id) {
        let p = prefix(id);
        self.held_set.remove(&p);
        self.held_removed.insert(p);
    }

    /// The sequence number `id`'s prefix is held under, as the batch sees
    /// it: its own changes over the index.
    pub(crate) fn held(&self, index: &IdIndex, id: &Id) -> Option<u64> {
        let p = prefix(id);
        if let Some(v) = self.held_set.get(&p) {
            return Some(*v);
        }
        if !self.held_removed.is_empty() && self.held_removed.contains(&p) {
            return None;
        }
        index.held.get(&p).copied()
    }

    /// The expiry of `id`'s entry in `recent`, expired or not.
    pub(crate) fn recent(&self, index: &IdIndex, id: &Id) -> Option<u64> {
        let p = prefix(id);
        if let Some(e) = self.recent_set.get(&p) {
            return Some(*e);
        }
        if self.recent_cleared { None } else { index.recent.get(&p).copied() }
    }

    pub(crate) fn set_recent(&mut self, index: &IdIndex, id: &Id, expiry: u64) {
        let p = prefix(id);
        if self.recent_set.insert(p, expiry).is_none()
            && (self.recent_cleared || !index.recent.contains_key(&p))
        {
            self.recent_added += 1;
        }
    }

    /// Entries in `recent` as the batch sees it, expired ones included.
    pub(crate) fn recent_len(&self, index: &IdIndex) -> usize {
        self.recent_added + if self.recent_cleared { 0 } else { index.recent.len() }
    }

    /// Empties `recent` (frozen into a run), returning its entries.
    pub(crate) fn take_recent(&mut self, index: &IdIndex) -> Vec<(u64, u64)> {
        let mut all = if self.recent_cleared { HashMap::default() } else { index.recent.clone() };
        // The batch's own entries win over the committed ones.
        all.extend(std::mem::take(&mut self.recent_set));
        self.recent_cleared = true;
        self.recent_added = 0;
        all.into_iter().collect()
    }

    pub(crate) fn runs<'a>(&'a self, index: &'a IdIndex) -> &'a [std::sync::Arc<Run>] {
        self.runs.as_ref().unwrap_or(&index.runs)
    }

    /// The run list, copied from the index on the batch's first change.
    pub(crate) fn runs_mut(&mut self, index: &IdIndex) -> &mut Runs {
        self.runs.get_or_insert_with(|| index.runs.clone())
    }

    pub(crate) fn merge<'a>(&'a self, index: &'a IdIndex) -> Option<&'a Merge> {
        match &self.merge {
            Some(m) => m.as_ref(),
            None => index.merge.as_ref(),
        }
    }

    pub(crate) fn merge_credit(&self, index: &IdIndex) -> usize {
        self.merge_credit.unwrap_or(index.merge_credit)
    }

    pub(crate) fn set_merge_credit(&mut self, credit: usize) {
        self.merge_credit = Some(credit);
    }

    /// The runs and the merge in progress, for the batch to work on.
    pub(crate) fn merging<'a>(&'a mut self, index: &'a mut IdIndex) -> Merging<'a> {
        if self.merge.is_none() {
            self.merge = Some(index.merge);
            self.merge_bloom = index.merge_bloom.take();
        }
        Merging {
            runs: self.runs.get_or_insert_with(|| index.runs.clone()),
            merge: self.merge.as_mut().expect("taken over above"),
            bloom: &mut self.merge_bloom,
        }
    }

    pub(crate) fn watermark(&self, index: &IdIndex) -> u64 {
        self.watermark.unwrap_or(index.watermark)
    }

    pub(crate) fn set_watermark(&mut self, watermark: u64) {
        self.watermark = Some(watermark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_changes_shadow_the_index_until_applied() {
        let mut index = IdIndex::new([(prefix(&[1; 32]), 5)], [(prefix(&[2; 32]), 100)], Vec::new(), None, 0);
        let mut p = Pending::default();
        p.remove_held(&[1; 32]);
        p.set_held(&[3; 32], 9);
        p.set_recent(&index, &[4; 32], 200);
        p.set_watermark(150);
        assert_eq!(p.held(&index, &[1; 32]), None);
        assert_eq!(p.held(&index, &[3; 32]), Some(9));
        assert_eq!(p.recent(&index, &[2; 32]), Some(100));
        assert_eq!(p.recent(&index, &[4; 32]), Some(200));
        assert_eq!(p.recent_len(&index), 2);
        assert_eq!(p.watermark(&index), 150);
        // Not applied (an aborted batch): the index is as it was.
        let none = Pending::default();
        assert_eq!(none.held(&index, &[1; 32]), Some(5));
        assert_eq!(none.recent(&index, &[4; 32]), None);
        assert_eq!(none.watermark(&index), 0);
        index.apply(p);
        assert_eq!(none.held(&index, &[1; 32]), None);
        assert_eq!(none.held(&index, &[3; 32]), Some(9));
        // The watermark passed 2's expiry: dropped from `recent`.
        assert_eq!(none.recent(&index, &[2; 32]), None);
        assert_eq!(none.recent(&index, &[4; 32]), Some(200));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn taking_recent_merges_the_batch_entries_over_the_index() {
        let id = |p: u64| {
            let mut id = [0xee; 32];
            id[..8].copy_from_slice(&p.to_be_bytes());
            id
        };
        let index = IdIndex::new([], [(1, 10), (2, 20)], Vec::new(), None, 0);
        let mut p = Pending::default();
        p.set_recent(&index, &id(0), 5); // new
        p.set_recent(&index, &id(2), 25); // replaces 20
        assert_eq!(p.recent_len(&index), 3);
        let mut got = p.take_recent(&index);
        got.sort();
        assert_eq!(got, vec![(0, 5), (1, 10), (2, 25)]);
        assert_eq!(p.recent_len(&index), 0);
        assert_eq!(p.recent(&index, &id(0)), None);
        p.set_recent(&index, &id(0), 6);
        assert_eq!(p.recent_len(&index), 1);
    }
}
