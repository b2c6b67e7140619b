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
}
