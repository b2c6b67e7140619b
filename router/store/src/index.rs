//! The id index, in memory: which bundle ids the store holds or has seen,
//! and the sequence number each held bundle is stored under.
//!
//! Why not an LMDB table: ids are hashes, so each new id lands on its own
//! leaf page of an id-keyed B-tree, and a commit rewrites every page it
//! touched. Once such a table outgrows a batch, that is a page (and with
//! the kernel's large folios, more) written per bundle: the `store` bench
//! measured 19 KB written to disk per 200-byte bundle with one id-keyed
//! table left, against about 0.5 KB with none. On flash that is wear, and
//! on any disk it was the relay's limit.
//!
//! What is on disk is enough to rebuild it when the store opens: the expiry
//! table lists every id held or seen, `held_meta` maps sequence numbers to
//! held bundles. Memory: about 20 to 40 bytes per id held or seen (the map
//! doubles as it grows).
//!
//! Keys are the ids' first 8 bytes, as in the engine's summaries. A held
//! entry is confirmed against the full id in `held_meta`; two ids sharing a
//! prefix (probability about n / 2^64 for each new bundle with n known)
//! would make the second read as seen. The hasher is keyed per process
//! (foldhash's `RandomState`: fast, seeded at random): ids can be ground to
//! chosen prefixes, and an unkeyed table could be driven into long probe
//! chains.

use foldhash::{HashMap, HashSet};

use crate::record::Id;

/// The value of an id seen but not held (delivered here, refused, or
/// stored and since removed is told apart by `held_meta`).
pub(crate) const SEEN_ONLY: u64 = u64::MAX;

pub(crate) fn prefix(id: &Id) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes"))
}

/// Prefix to sequence number (or [`SEEN_ONLY`]).
#[derive(Debug, Default)]
pub(crate) struct IdIndex {
    map: HashMap<u64, u64>,
}

impl IdIndex {
    pub(crate) fn insert(&mut self, id: &Id, value: u64) {
        self.map.insert(prefix(id), value);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Makes a committed batch's changes visible.
    pub(crate) fn apply(&mut self, pending: Pending) {
        for p in pending.removed {
            self.map.remove(&p);
        }
        self.map.extend(pending.set);
    }
}

/// A batch's changes to the index, applied only if it commits.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    set: HashMap<u64, u64>,
    removed: HashSet<u64>,
}

impl Pending {
    pub(crate) fn set(&mut self, id: &Id, value: u64) {
        let p = prefix(id);
        self.removed.remove(&p);
        self.set.insert(p, value);
    }

    pub(crate) fn remove(&mut self, id: &Id) {
        let p = prefix(id);
        self.set.remove(&p);
        self.removed.insert(p);
    }

    /// The entry as the batch sees it: its own changes over the index.
    pub(crate) fn lookup(&self, index: &IdIndex, id: &Id) -> Option<u64> {
        let p = prefix(id);
        if let Some(v) = self.set.get(&p) {
            return Some(*v);
        }
        if !self.removed.is_empty() && self.removed.contains(&p) {
            return None;
        }
        index.map.get(&p).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_changes_shadow_the_index_until_applied() {
        let mut index = IdIndex::default();
        index.insert(&[1; 32], 5);
        index.insert(&[2; 32], SEEN_ONLY);
        let mut p = Pending::default();
        p.remove(&[1; 32]);
        p.set(&[3; 32], 9);
        p.set(&[2; 32], 7);
        assert_eq!(p.lookup(&index, &[1; 32]), None);
        assert_eq!(p.lookup(&index, &[2; 32]), Some(7));
        assert_eq!(p.lookup(&index, &[3; 32]), Some(9));
        // Not applied (an aborted batch): the index is as it was.
        assert_eq!(Pending::default().lookup(&index, &[1; 32]), Some(5));
        index.apply(p);
        let none = Pending::default();
        assert_eq!(none.lookup(&index, &[1; 32]), None);
        assert_eq!(none.lookup(&index, &[2; 32]), Some(7));
        assert_eq!(none.lookup(&index, &[3; 32]), Some(9));
        assert_eq!(index.len(), 2);
    }
}
