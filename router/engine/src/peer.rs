//! Per-neighbour state: links, what the neighbour holds, the send queue,
//! bundles in flight, and the inbound rate limit.

use std::collections::VecDeque;

// Keyed per process and fast: these are touched for every bundle.
use foldhash::{HashMap, HashSet};

use crate::LinkId;

pub(crate) type Id = [u8; 32];

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    pub(crate) fn new(rate: f64, burst: f64, now_ms: u64) -> Self {
        TokenBucket { rate, burst, tokens: burst, at_ms: now_ms }
    }

    /// Takes `n` tokens if there are enough.
    pub(crate) fn take(&mut self, n: f64, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at_ms = now_ms;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// A bundle waiting to be sent to a neighbour.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    pub id: Id,
    pub copies: u32,
    /// Not before this time (after a "later" answer).
    pub not_before_ms: u64,
}

/// A bundle sent and not yet acknowledged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InFlight {
    pub copies: u32,
    pub sent_ms: u64,
    pub retries: u32,
}

/// One neighbour (a node key), over one or more links.
#[derive(Debug)]
pub(crate) struct Neighbour {
    /// Links to it; the first is used for sending.
    pub links: Vec<LinkId>,
    /// Its node endpoint (`dtn://<hex>/`).
    pub endpoint: String,
    pub metric: Option<u32>,
    pub signal: Option<i32>,
    pub since_ms: u64,
    /// Its summary vector arrived in full: only then does forwarding start.
    pub summary_done: bool,
    /// Id prefixes it holds (from its summary, its bundles, its ACKs).
    pub has: HashSet<u64>,
    /// Acknowledgements not sent yet (`Acks` entries).
    pub acks_due: Vec<u8>,
    pub queue: VecDeque<Queued>,
    /// Ids queued or in flight, to queue each bundle once.
    pub pending: HashSet<Id>,
    pub inflight: HashMap<Id, InFlight>,
    pub inbound: TokenBucket,
    pub inbound_bytes: TokenBucket,
    /// Bytes of bundles this node holds that came from this neighbour.
    pub held_from: u64,
}

impl Neighbour {
    pub(crate) fn link(&self) -> &LinkId {
        &self.links[0]
    }

    /// Forgets a bundle everywhere in this neighbour's state; returns the
    /// copies it had reserved (queued or in flight).
    pub(crate) fn forget(&mut self, id: &Id) -> u32 {
        let mut released = 0;
        if self.pending.remove(id) {
            if let Some(pos) = self.queue.iter().position(|q| &q.id == id) {
                released += self.queue.remove(pos).map_or(0, |q| q.copies);
            }
            if let Some(f) = self.inflight.remove(id) {
                released += f.copies;
            }
        }
        released
    }

    /// Gives back the memory of a backlog that has drained: a burst can
    /// leave these collections with room for tens of thousands of ids
    /// (about 2 MB measured on a relay), kept for good otherwise.
    pub(crate) fn compact(&mut self) {
        give_back_room!(self.has);
        give_back_room!(self.pending);
        give_back_room!(self.inflight);
        give_back_room!(self.queue);
    }
}

/// Entries a collection may keep room for without being shrunk: below
/// this, shrinking saves too little to be worth the reallocation.
pub(crate) const KEEP_ROOM: usize = 1024;

/// Shrinks a collection (anything with `capacity`, `len` and `shrink_to`:
/// the std and foldhash maps and sets, `VecDeque`) to twice its length when
/// it has room for more than four times its length and more than
/// [`KEEP_ROOM`] entries.
macro_rules! give_back_room {
    ($c:expr) => {
        if $c.capacity() > $crate::peer::KEEP_ROOM && $c.capacity() > 4 * $c.len() {
            $c.shrink_to($c.len() * 2);
        }
    };
}
pub(crate) use give_back_room;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_gives_back_the_room_of_a_drained_backlog_and_keeps_what_is_left() {
        let mut n = Neighbour {
            links: Vec::new(),
            endpoint: String::new(),
            metric: None,
            signal: None,
            since_ms: 0,
            summary_done: true,
            has: HashSet::default(),
            acks_due: Vec::new(),
            queue: VecDeque::new(),
            pending: HashSet::default(),
            inflight: HashMap::default(),
            inbound: TokenBucket::new(1.0, 1.0, 0),
            inbound_bytes: TokenBucket::new(1.0, 1.0, 0),
            held_from: 0,
        };
        let id = |i: u32| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id
        };
        for i in 0..50_000 {
            n.has.insert(u64::from(i));
            n.pending.insert(id(i));
            n.queue.push_back(Queued { id: id(i), copies: 1, not_before_ms: 0 });
            n.inflight.insert(id(i), InFlight { copies: 1, sent_ms: 0, retries: 0 });
        }
        // A burst still queued: nothing to give back.
        let before = (n.has.capacity(), n.pending.capacity(), n.queue.capacity(), n.inflight.capacity());
        n.compact();
        assert_eq!(
            before,
            (n.has.capacity(), n.pending.capacity(), n.queue.capacity(), n.inflight.capacity())
        );
        // Drained but for 100: the room goes, the 100 stay.
        for i in 100..50_000 {
            n.forget(&id(i));
            n.has.remove(&u64::from(i));
        }
        n.compact();
        for cap in [n.has.capacity(), n.pending.capacity(), n.queue.capacity(), n.inflight.capacity()] {
            assert!(cap <= KEEP_ROOM, "room for {cap} entries kept for 100");
        }
        assert_eq!((n.has.len(), n.pending.len(), n.queue.len(), n.inflight.len()), (100, 100, 100, 100));
        assert!((0..100).all(|i| n.pending.contains(&id(i)) && n.inflight.contains_key(&id(i))));
    }
}
