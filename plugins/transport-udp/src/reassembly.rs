//! Reassembly of frames from fragments: sans-IO (no clock, no sockets), with
//! strict checks and bounded memory.
//!
//! A partial frame is keyed by (source address, frame id). Its fragment
//! geometry is learned from the fragments: every fragment but the last
//! carries `P` bytes, the last the rest, so `P` follows from the first
//! fragment seen and every later fragment must agree. A fragment that
//! contradicts the frame (another total or count, another size, a second copy
//! of an index) drops the whole frame: a frame is delivered only if every
//! byte came from one consistent set of fragments.
//!
//! Memory is reserved for a frame's full length when its first fragment
//! arrives, against three budgets ([`Limits`]):
//! * per source, so one peer cannot take everything; a source over its
//!   budget loses its own oldest partial frames first (a peer sends frames in
//!   order, so its oldest partial is the one that lost a fragment);
//! * for strangers (sources that are not up peers) together, so a flood of
//!   fragment starts from spoofed addresses only ever evicts other strangers;
//! * in total, where strangers are evicted before peers.
//!
//! Partial frames that receive nothing for `timeout_ms` are dropped by
//! [`Reassembler::expire`].

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::wire::FragmentRepr;

/// Bookkeeping charged per partial frame on top of its length.
const OVERHEAD: usize = 256;
/// Buffers kept for reuse.
const POOL: usize = 8;

/// Memory and count limits; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_frame: usize,
    pub per_source_bytes: usize,
    pub per_source_frames: usize,
    pub stranger_bytes: usize,
    pub stranger_frames: usize,
    pub total_bytes: usize,
    pub total_frames: usize,
    pub timeout_ms: u64,
}

impl Limits {
    /// The limits the plugin uses for a given `max_frame_bytes`: two maximum
    /// frames per source and for all strangers together, eight in total.
    pub fn for_max_frame(max_frame: usize, timeout_ms: u64) -> Limits {
        let frame = max_frame + OVERHEAD + max_frame / 64;
        Limits {
            max_frame,
            per_source_bytes: 2 * frame,
            per_source_frames: 32,
            stranger_bytes: 2 * frame,
            stranger_frames: 64,
            total_bytes: 8 * frame,
            total_frames: 1024,
            timeout_ms,
        }
    }
}

/// Who sent a fragment, for the budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// An up or static peer.
    Peer,
    /// Anybody else.
    Stranger,
}

/// Why a fragment (and its frame) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// The frame is longer than `max_frame`.
    TooLarge,
    /// A second copy of a fragment index.
    Duplicate,
    /// A fragment that contradicts the frame's total, count or sizes.
    Inconsistent,
    /// No budget left for a new frame.
    NoRoom,
}

impl Drop {
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::TooLarge => "frame too large",
            Drop::Duplicate => "duplicate fragment",
            Drop::Inconsistent => "inconsistent fragment",
            Drop::NoRoom => "reassembly memory full",
        }
    }
}

/// What became of a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; the frame is not complete yet.
    Pending,
    /// The frame is complete. Give the buffer back with
    /// [`Reassembler::recycle`] when done with it.
    Complete(Vec<u8>),
    /// The fragment was refused, and with it the frame it belonged to.
    Dropped(Drop),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Usage {
    bytes: usize,
    frames: usize,
}

impl Usage {
    fn add(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.frames += 1;
    }
    fn sub(&mut self, bytes: usize) {
        self.bytes -= bytes;
        self.frames -= 1;
    }
}

struct Partial {
    /// Capacity `total_len`, length 0 until complete: bytes are written into
    /// the spare capacity, and the length is set once every fragment is in
    /// (which means every byte has been written exactly once).
    buf: Vec<u8>,
    class: Class,
    total_len: u32,
    count: u16,
    received: u16,
    /// Payload bytes of every fragment but the last (known from the first).
    piece: u32,
    bitmap: Vec<u64>,
    /// Activity order (for eviction) and time (for expiry).
    seq: u64,
    last_ms: u64,
    reserved: usize,
}

/// Counters of what happened to partial frames besides [`Outcome`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub completed: u64,
    /// Dropped to make room for a newer frame.
    pub evicted: u64,
    /// Dropped after `timeout_ms` without a fragment.
    pub expired: u64,
    /// Dropped because their source went away.
    pub forgotten: u64,
}

/// Partial frames of all sources.
pub struct Reassembler {
    limits: Limits,
    partials: HashMap<(SocketAddr, u32), Partial>,
    sources: HashMap<SocketAddr, Usage>,
    strangers: Usage,
    total: Usage,
    seq: u64,
    pool: Vec<Vec<u8>>,
    pub stats: Stats,
}

/// The piece size implied by one fragment, if the fragment can belong to a
/// frame of `total` bytes in `count` pieces.
fn piece_of(total: u32, count: u16, index: u16, len: usize) -> Option<u32> {
    let (total, count, len) = (u64::from(total), u64::from(count), len as u64);
    if count < 2 || len == 0 {
        return None;
    }
    let piece = if u64::from(index) + 1 < count {
        len
    } else {
        let rest = total.checked_sub(len)?;
        if rest % (count - 1) != 0 {
            return None;
        }
        rest / (count - 1)
    };
    // Every piece but the last is full; the last is 1..=piece bytes.
    let ok = piece > 0 && (count - 1) * piece < total && total <= count * piece;
    ok.then_some(piece as u32)
}

impl Reassembler {
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler {
            limits,
            partials: HashMap::new(),
            sources: HashMap::new(),
            strangers: Usage::default(),
            total: Usage::default(),
            seq: 0,
            pool: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes reserved by partial frames now.
    pub fn bytes_in_use(&self) -> usize {
        self.total.bytes
    }

    /// Partial frames held now.
    pub fn frames_in_use(&self) -> usize {
        self.total.frames
    }

    /// Takes one fragment of a multi-fragment frame (`header.count >= 2`; a
    /// single-fragment frame needs no reassembly). The header must have
    /// passed [`crate::wire::Fragment::new_checked`].
    pub fn push(
        &mut self,
        source: SocketAddr,
        class: Class,
        header: &FragmentRepr,
        payload: &[u8],
        now_ms: u64,
    ) -> Outcome {
        debug_assert!(header.count >= 2);
        if header.total_len as usize > self.limits.max_frame {
            return Outcome::Dropped(Drop::TooLarge);
        }
        self.seq += 1;
        let key = (source, header.frame_id);
        let Some(partial) = self.partials.get_mut(&key) else {
            return self.start(key, class, header, payload, now_ms);
        };
        if partial.total_len != header.total_len || partial.count != header.count {
            self.remove(&key);
            return Outcome::Dropped(Drop::Inconsistent);
        }
        let (word, bit) = (usize::from(header.index) / 64, 1u64 << (header.index % 64));
        if partial.bitmap[word] & bit != 0 {
            self.remove(&key);
            return Outcome::Dropped(Drop::Duplicate);
        }
        match piece_of(header.total_len, header.count, header.index, payload.len()) {
            Some(piece) if partial.piece == piece => {}
            _ => {
                self.remove(&key);
                return Outcome::Dropped(Drop::Inconsistent);
            }
        }
        partial.bitmap[word] |= bit;
        partial.received += 1;
        partial.seq = self.seq;
        partial.last_ms = now_ms;
        write_piece(partial, header.index, payload);
        if partial.received < partial.count {
            return Outcome::Pending;
        }
        let mut done = self.remove(&key).expect("the partial was just found");
        // SAFETY: all `count` pieces were written, and with a consistent
        // piece size they cover 0..total_len exactly (see `piece_of`).
        unsafe { done.set_len(header.total_len as usize) };
        self.stats.completed += 1;
        Outcome::Complete(done)
    }

    /// The first fragment of a frame: reserve room, then store it.
    fn start(
        &mut self,
        key: (SocketAddr, u32),
        class: Class,
        header: &FragmentRepr,
        payload: &[u8],
        now_ms: u64,
    ) -> Outcome {
        let Some(piece) = piece_of(header.total_len, header.count, header.index, payload.len()) else {
            return Outcome::Dropped(Drop::Inconsistent);
        };
        let words = usize::from(header.count).div_ceil(64);
        let reserved = header.total_len as usize + OVERHEAD + words * 8;
        if !self.make_room(key.0, class, reserved) {
            return Outcome::Dropped(Drop::NoRoom);
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.reserve_exact(header.total_len as usize);
        let mut partial = Partial {
            buf,
            class,
            total_len: header.total_len,
            count: header.count,
            received: 1,
            piece,
            bitmap: vec![0; words],
            seq: self.seq,
            last_ms: now_ms,
            reserved,
        };
        partial.bitmap[usize::from(header.index) / 64] |= 1 << (header.index % 64);
        write_piece(&mut partial, header.index, payload);
        self.sources.entry(key.0).or_default().add(reserved);
        self.total.add(reserved);
        if class == Class::Stranger {
            self.strangers.add(reserved);
        }
        self.partials.insert(key, partial);
        Outcome::Pending
    }

    /// Evicts until a new frame of `reserved` bytes from `source` fits every
    /// budget. Returns false (evicting nothing more) if it cannot fit.
    fn make_room(&mut self, source: SocketAddr, class: Class, reserved: usize) -> bool {
        let l = self.limits;
        if reserved > l.per_source_bytes || (class == Class::Stranger && reserved > l.stranger_bytes) {
            return false;
        }
        if class == Class::Stranger {
            while self.strangers.bytes + reserved > l.stranger_bytes
                || self.strangers.frames >= l.stranger_frames
            {
                if !self.evict_oldest(|_, p| p.class == Class::Stranger) {
                    return false;
                }
            }
        }
        loop {
            let used = self.sources.get(&source).copied().unwrap_or_default();
            if used.bytes + reserved <= l.per_source_bytes && used.frames < l.per_source_frames {
                break;
            }
            if !self.evict_oldest(|s, _| *s == source) {
                return false;
            }
        }
        while self.total.bytes + reserved > l.total_bytes || self.total.frames >= l.total_frames {
            let evicted = self.evict_oldest(|_, p| p.class == Class::Stranger)
                || (class == Class::Peer && self.evict_oldest(|_, _| true));
            if !evicted {
                return false;
            }
        }
        true
    }

    /// Evicts the least recently active partial frame that `matches`.
    fn evict_oldest(&mut self, matches: impl Fn(&SocketAddr, &Partial) -> bool) -> bool {
        let oldest = self.partials.iter().filter(|((s, _), p)| matches(s, p)).min_by_key(|(_, p)| p.seq);
        let Some((&key, _)) = oldest else { return false };
        self.remove(&key);
        self.stats.evicted += 1;
        true
    }

    /// Removes a partial frame, releasing its budget; returns its buffer.
    fn remove(&mut self, key: &(SocketAddr, u32)) -> Option<Vec<u8>> {
        let partial = self.partials.remove(key)?;
        self.total.sub(partial.reserved);
        if partial.class == Class::Stranger {
            self.strangers.sub(partial.reserved);
        }
        if let Some(used) = self.sources.get_mut(&key.0) {
            used.sub(partial.reserved);
            if used.frames == 0 {
                self.sources.remove(&key.0);
            }
        }
        Some(partial.buf)
    }

    /// Gives a buffer back for reuse (a completed frame, once delivered).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < POOL && buf.capacity() <= self.limits.max_frame {
            self.pool.push(buf);
        }
    }

    /// Drops partial frames idle for `timeout_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let timeout = self.limits.timeout_ms;
        let stale: Vec<_> = self
            .partials
            .iter()
            .filter(|(_, p)| now_ms.saturating_sub(p.last_ms) >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in &stale {
            if let Some(buf) = self.remove(key) {
                self.recycle(buf);
            }
        }
        self.stats.expired += stale.len() as u64;
        stale.len()
    }

    /// Drops every partial frame of `source` (a peer that went down or
    /// restarted); returns how many.
    pub fn forget(&mut self, source: &SocketAddr) -> usize {
        if !self.sources.contains_key(source) {
            return 0;
        }
        let keys: Vec<_> = self.partials.keys().filter(|(s, _)| s == source).copied().collect();
        for key in &keys {
            if let Some(buf) = self.remove(key) {
                self.recycle(buf);
            }
        }
        self.stats.forgotten += keys.len() as u64;
        keys.len()
    }

    /// Drops everything (the instance stops).
    pub fn clear(&mut self) {
        self.partials.clear();
        self.sources.clear();
        self.strangers = Usage::default();
        self.total = Usage::default();
    }
}

/// Copies a checked fragment's payload into its place.
fn write_piece(partial: &mut Partial, index: u16, payload: &[u8]) {
    let offset = usize::from(index) * partial.piece as usize;
    debug_assert!(offset + payload.len() <= partial.buf.capacity());
    // SAFETY: `piece_of` guarantees offset + len <= total_len <= capacity;
    // the bytes are spare capacity (not yet part of the Vec's length).
    unsafe {
        std::ptr::copy_nonoverlapping(payload.as_ptr(), partial.buf.as_mut_ptr().add(offset), payload.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 100_000;

    fn limits() -> Limits {
        Limits::for_max_frame(MAX, 1000)
    }

    fn src(n: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], n))
    }

    fn h(frame_id: u32, index: u16, count: u16, total_len: u32) -> FragmentRepr {
        FragmentRepr { frame_id, index, count, total_len }
    }

    /// Splits `frame` as a sender with piece size `piece` does.
    fn split(frame: &[u8], piece: usize) -> Vec<&[u8]> {
        frame.chunks(piece).collect()
    }

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn any_order_reassembles_byte_exact() {
        let mut r = Reassembler::new(limits());
        let data = frame(10_000, 1);
        let pieces = split(&data, 1400);
        let count = pieces.len() as u16;
        // Last first, then the rest backwards.
        let order: Vec<usize> = (0..pieces.len()).rev().collect();
        for (n, &i) in order.iter().enumerate() {
            let out = r.push(src(1), Class::Peer, &h(7, i as u16, count, 10_000), pieces[i], 5);
            if n + 1 < order.len() {
                assert_eq!(out, Outcome::Pending);
            } else {
                assert_eq!(out, Outcome::Complete(data.clone()));
            }
        }
        assert_eq!(r.bytes_in_use(), 0);
        assert_eq!(r.stats.completed, 1);
    }

    #[test]
    fn duplicates_and_contradictions_drop_the_frame() {
        let mut r = Reassembler::new(limits());
        let data = frame(3000, 2);
        let p = split(&data, 1000);
        assert_eq!(r.push(src(1), Class::Peer, &h(1, 0, 3, 3000), p[0], 0), Outcome::Pending);
        assert_eq!(
            r.push(src(1), Class::Peer, &h(1, 0, 3, 3000), p[0], 0),
            Outcome::Dropped(Drop::Duplicate)
        );
        assert_eq!(r.frames_in_use(), 0, "the frame is gone");

        for bad in [
            (h(2, 1, 3, 3001), p[1]),         // another total
            (h(2, 1, 4, 3000), p[1]),         // another count
            (h(2, 1, 3, 3000), &p[1][..999]), // a short middle piece
            (h(2, 2, 3, 3000), &data[..999]), // a last piece that implies another size
        ] {
            assert_eq!(r.push(src(1), Class::Peer, &h(2, 0, 3, 3000), p[0], 0), Outcome::Pending);
            assert_eq!(r.push(src(1), Class::Peer, &bad.0, bad.1, 0), Outcome::Dropped(Drop::Inconsistent));
            assert_eq!(r.frames_in_use(), 0);
        }
        // Impossible geometry on a first fragment: 3 pieces of 1000 cannot
        // make 5000 bytes; a last piece larger than the others.
        assert_eq!(
            r.push(src(1), Class::Peer, &h(3, 0, 3, 5000), p[0], 0),
            Outcome::Dropped(Drop::Inconsistent)
        );
        assert_eq!(
            r.push(src(1), Class::Peer, &h(3, 1, 2, 3000), &data[..2000], 0),
            Outcome::Dropped(Drop::Inconsistent)
        );
        assert_eq!(
            r.push(src(1), Class::Peer, &h(4, 0, 2, MAX as u32 + 1), p[0], 0),
            Outcome::Dropped(Drop::TooLarge)
        );
        assert_eq!(r.bytes_in_use(), 0);
        // The same frame id from another source is another frame.
        assert_eq!(r.push(src(1), Class::Peer, &h(5, 0, 2, 2000), p[0], 0), Outcome::Pending);
        assert_eq!(r.push(src(2), Class::Peer, &h(5, 1, 2, 2000), p[1], 0), Outcome::Pending);
        assert_eq!(r.frames_in_use(), 2);
    }

    #[test]
    fn idle_frames_expire_and_forget_frees_a_source() {
        let mut r = Reassembler::new(limits());
        let data = frame(2000, 3);
        r.push(src(1), Class::Peer, &h(1, 0, 2, 2000), &data[..1000], 100);
        r.push(src(2), Class::Peer, &h(1, 0, 2, 2000), &data[..1000], 600);
        assert_eq!(r.expire(1099), 0);
        assert_eq!(r.expire(1100), 1);
        assert_eq!(r.frames_in_use(), 1);
        assert_eq!(r.forget(&src(2)), 1);
        assert_eq!((r.frames_in_use(), r.bytes_in_use()), (0, 0));
        assert_eq!((r.stats.expired, r.stats.forgotten), (1, 1));
    }

    #[test]
    fn a_source_over_budget_loses_its_own_oldest_frames() {
        let l = limits();
        let mut r = Reassembler::new(l);
        let data = frame(MAX, 4);
        // Two maximum frames fill the source's budget; the third evicts the first.
        for id in 0..3 {
            assert_eq!(
                r.push(src(1), Class::Peer, &h(id, 0, 100, MAX as u32), &data[..1000], 0),
                Outcome::Pending
            );
            assert!(r.sources[&src(1)].bytes <= l.per_source_bytes);
        }
        assert_eq!(r.stats.evicted, 1);
        assert!(!r.partials.contains_key(&(src(1), 0)));
        // Another peer is untouched by this and has its own budget.
        assert_eq!(
            r.push(src(2), Class::Peer, &h(0, 0, 100, MAX as u32), &data[..1000], 0),
            Outcome::Pending
        );
        assert_eq!(r.stats.evicted, 1);
        // Many small frames: the count limit applies too.
        for id in 100..100 + l.per_source_frames as u32 + 5 {
            r.push(src(3), Class::Peer, &h(id, 0, 2, 20), &data[..10], 0);
        }
        assert_eq!(r.sources[&src(3)].frames, l.per_source_frames);
    }

    #[test]
    fn a_flood_of_spoofed_starts_stays_bounded_and_spares_peers() {
        let l = limits();
        let mut r = Reassembler::new(l);
        let data = frame(MAX, 5);
        let honest = frame(50_000, 6);
        let pieces = split(&honest, 1000);
        // An honest peer's frame is half way when the flood starts.
        for (i, p) in pieces.iter().enumerate().take(25) {
            r.push(src(1), Class::Peer, &h(9, i as u16, 50, 50_000), p, 0);
        }
        for n in 0..10_000u32 {
            // Claims of a maximum frame (100 pieces of 1000) and of a tiny
            // one (2 pieces of 1), from 5000 addresses.
            let (count, claim, piece) = if n % 2 == 0 { (100, MAX as u32, 1000) } else { (2, 2, 1) };
            let out = r.push(
                src(1000 + (n % 5000) as u16),
                Class::Stranger,
                &h(n, 0, count, claim),
                &data[..piece],
                0,
            );
            assert_eq!(out, Outcome::Pending, "strangers evict strangers, they are not refused");
            assert!(r.strangers.bytes <= l.stranger_bytes && r.strangers.frames <= l.stranger_frames);
            assert!(r.total.bytes <= l.total_bytes && r.total.frames <= l.total_frames);
        }
        // The honest frame survived and completes.
        let mut last = Outcome::Pending;
        for (i, p) in pieces.iter().enumerate().skip(25) {
            last = r.push(src(1), Class::Peer, &h(9, i as u16, 50, 50_000), p, 0);
        }
        assert_eq!(last, Outcome::Complete(honest));
    }

    #[test]
    fn peers_fill_the_total_budget_fairly() {
        let l = limits();
        let mut r = Reassembler::new(l);
        let data = frame(MAX, 7);
        for peer in 0..20u16 {
            for id in 0..2 {
                r.push(src(peer), Class::Peer, &h(id, 0, 100, MAX as u32), &data[..1000], u64::from(peer));
                assert!(r.total.bytes <= l.total_bytes);
            }
        }
        // The total holds eight maximum frames; the oldest were evicted.
        assert_eq!(r.total.frames, 8);
        assert!(r.partials.keys().all(|(s, _)| s.port() >= 16));
    }
}
