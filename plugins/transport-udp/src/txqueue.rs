//! A peer's queue of datagrams waiting to be sent (sans-IO).
//!
//! `send` copies a frame's fragments, headers included, into the queue at
//! once (the frame is only borrowed for the call); the plugin flushes queues
//! in batches. Datagrams are laid out back to back in *chunks* of equal-sized
//! datagrams, the last of which may be shorter: exactly the shape of a UDP
//! GSO send, so a flush hands the kernel up to 64 datagrams of a chunk in one
//! message. Small frames of one size (the common case: bundles of a
//! similar size) go into the same chunk, so they are batched too.

use std::collections::VecDeque;

use crate::wire::{self, FragmentRepr};

/// Chunk buffers kept for reuse, and the largest one kept.
const POOL: usize = 16;
const POOL_MAX_CAPACITY: usize = 4 << 20;

/// Equal-sized datagrams back to back; the last may be shorter, and then the
/// chunk is closed.
#[derive(Debug)]
struct Chunk {
    buf: Vec<u8>,
    /// Size of every datagram but possibly the last.
    segment: usize,
    /// Bytes already sent from the front.
    sent: usize,
    closed: bool,
}

/// One message to send: a slice of whole datagrams of `segment` bytes (the
/// last may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub data: &'a [u8],
    pub segment: usize,
}

impl Message<'_> {
    pub fn datagrams(&self) -> usize {
        self.data.len().div_ceil(self.segment)
    }
}

/// The datagrams queued for one peer, oldest first.
#[derive(Debug, Default)]
pub struct TxQueue {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    datagrams: usize,
}

/// Reusable chunk buffers, shared by all queues of an instance.
#[derive(Debug, Default)]
pub struct Pool(Vec<Vec<u8>>);

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        self.0.pop().unwrap_or_default()
    }

    fn give(&mut self, mut buf: Vec<u8>) {
        if self.0.len() < POOL && buf.capacity() <= POOL_MAX_CAPACITY {
            buf.clear();
            self.0.push(buf);
        }
    }
}

impl TxQueue {
    /// Unsent bytes (headers included).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Unsent datagrams.
    pub fn datagrams(&self) -> usize {
        self.datagrams
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Queues `frame` as fragments of at most `piece` payload bytes.
    pub fn push_frame(&mut self, frame_id: u32, frame: &[u8], piece: usize, pool: &mut Pool) {
        let count = wire::fragment_count(frame.len(), piece);
        debug_assert!(count <= usize::from(u16::MAX));
        let total_len = frame.len() as u32;
        let mut header = [0u8; wire::FRAGMENT_HEADER_LEN];
        for index in 0..count {
            let payload = &frame[(index * piece).min(frame.len())..((index + 1) * piece).min(frame.len())];
            FragmentRepr { frame_id, index: index as u16, count: count as u16, total_len }.emit(&mut header);
            let len = header.len() + payload.len();
            let chunk = self.chunk_for(len, (count - index) * (header.len() + piece), pool);
            chunk.buf.extend_from_slice(&header);
            chunk.buf.extend_from_slice(payload);
            if len < chunk.segment {
                chunk.closed = true;
            }
            self.bytes += len;
            self.datagrams += 1;
        }
    }

    /// The open chunk a datagram of `len` bytes can join, or a new one
    /// (with room for `hint` bytes).
    fn chunk_for(&mut self, len: usize, hint: usize, pool: &mut Pool) -> &mut Chunk {
        let fits = self.chunks.back().is_some_and(|c| !c.closed && len <= c.segment);
        if !fits {
            let mut buf = pool.take();
            buf.reserve(hint);
            self.chunks.push_back(Chunk { buf, segment: len, sent: 0, closed: false });
        }
        self.chunks.back_mut().expect("a chunk was just ensured")
    }

    /// The next messages to send, oldest first: each up to `max_segments`
    /// datagrams and `max_bytes` bytes (1 and anything: one datagram each).
    pub fn messages(&self, max_segments: usize, max_bytes: usize) -> impl Iterator<Item = Message<'_>> {
        self.chunks.iter().flat_map(move |c| {
            let per = max_segments.min(max_bytes / c.segment).max(1) * c.segment;
            c.buf[c.sent..].chunks(per).map(|data| Message { data, segment: c.segment })
        })
    }

    /// Marks the first `bytes` queued bytes sent (whole messages from
    /// [`TxQueue::messages`]) and recycles emptied chunks.
    pub fn advance(&mut self, mut bytes: usize, pool: &mut Pool) {
        while bytes > 0 {
            let Some(c) = self.chunks.front_mut() else { break };
            let left = c.buf.len() - c.sent;
            let n = bytes.min(left);
            self.datagrams -= n.div_ceil(c.segment);
            c.sent += n;
            self.bytes -= n;
            bytes -= n;
            if c.sent == c.buf.len() {
                let c = self.chunks.pop_front().expect("front exists");
                pool.give(c.buf);
            }
        }
        // An empty open chunk at the front is reused as is.
    }

    /// Drops everything (the peer went away).
    pub fn clear(&mut self, pool: &mut Pool) {
        for c in self.chunks.drain(..) {
            pool.give(c.buf);
        }
        self.bytes = 0;
        self.datagrams = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Fragment;

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Splits messages back into datagrams and parses them.
    fn datagrams(q: &TxQueue, segs: usize, bytes: usize) -> Vec<(FragmentRepr, Vec<u8>)> {
        let mut out = Vec::new();
        for m in q.messages(segs, bytes) {
            assert!(m.datagrams() <= segs, "{} datagrams in a message", m.datagrams());
            assert!(m.datagrams() == 1 || m.data.len() <= bytes);
            for d in m.data.chunks(m.segment) {
                let f = Fragment::new_checked(d).expect("a valid fragment");
                out.push((FragmentRepr::parse(&f), f.payload().to_vec()));
            }
        }
        out
    }

    #[test]
    fn a_large_frame_becomes_gso_trains() {
        let mut pool = Pool::default();
        let mut q = TxQueue::default();
        let data = frame(65536);
        q.push_frame(9, &data, 1436, &mut pool);
        assert_eq!(q.datagrams(), 46);
        assert_eq!(q.bytes(), 65536 + 46 * 16);
        let msgs: Vec<_> = q.messages(64, 65000).collect();
        assert_eq!(msgs.len(), 2, "44 + 2 datagrams");
        assert_eq!(msgs[0].datagrams(), 44);
        let d = datagrams(&q, 64, 65000);
        let joined: Vec<u8> = d.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(joined, data);
        assert!(
            d.iter().enumerate().all(|(i, (h, _))| h.index as usize == i && h.count == 46 && h.frame_id == 9)
        );
        // Without GSO: one datagram per message.
        assert_eq!(q.messages(1, usize::MAX).count(), 46);
    }

    #[test]
    fn small_frames_of_one_size_share_a_train() {
        let mut pool = Pool::default();
        let mut q = TxQueue::default();
        for id in 0..100 {
            q.push_frame(id, &frame(200), 1436, &mut pool);
        }
        q.push_frame(100, &frame(150), 1436, &mut pool); // shorter: closes the chunk
        q.push_frame(101, &frame(200), 1436, &mut pool);
        let sizes: Vec<usize> = q.messages(64, 65000).map(|m| m.datagrams()).collect();
        assert_eq!(sizes, [64, 37, 1]);
        let d = datagrams(&q, 64, 65000);
        assert_eq!(d.len(), 102);
        assert!(d.iter().enumerate().all(|(i, (h, _))| h.frame_id == i as u32 && h.count == 1));
    }

    #[test]
    fn advance_consumes_whole_messages_and_recycles() {
        let mut pool = Pool::default();
        let mut q = TxQueue::default();
        q.push_frame(1, &frame(5000), 1436, &mut pool);
        q.push_frame(2, &frame(10), 1436, &mut pool);
        let first: Vec<usize> = q.messages(2, 65000).map(|m| m.data.len()).collect();
        assert_eq!(first, [2 * 1452, 1452 + 16 + 692, 26]);
        q.advance(first[0], &mut pool);
        assert_eq!(q.datagrams(), 3);
        let d = datagrams(&q, 64, 65000);
        assert_eq!(
            d.iter().map(|(h, _)| (h.frame_id, h.index)).collect::<Vec<_>>(),
            [(1, 2), (1, 3), (2, 0)]
        );
        q.advance(first[1] + first[2], &mut pool);
        assert!(q.is_empty() && q.datagrams() == 0);
        assert_eq!(pool.0.len(), 2, "both chunks recycled");
        q.push_frame(3, &[], 1436, &mut pool);
        assert_eq!(
            datagrams(&q, 64, 65000)[0].0,
            FragmentRepr { frame_id: 3, index: 0, count: 1, total_len: 0 }
        );
        q.clear(&mut pool);
        assert!(q.is_empty());
    }
}
