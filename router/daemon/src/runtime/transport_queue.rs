//! The queue from transport instances to the node loop.
//!
//! One queue carries both frames and link events, so the loop sees them in
//! the order the transport reported them. A transport that hears a new peer
//! reports the link up and then delivers the frame that came with it (the
//! peer's HELLO, often) in the same call. With a queue for each, the loop
//! could take the frame first, while the link was still unknown to the
//! engine, and drop it; a peer that sent its HELLO once was then never
//! identified.
//!
//! Frames are bounded ([`FRAME_QUEUE`]): a transport that delivers faster
//! than the node stores gets `Full`, and the drop is counted (the sender's
//! retransmission recovers the frame). Link events are never refused: a lost
//! LINK_DOWN would leave a ghost neighbour, and they are rare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use meshpay_abi::LinkEvent;
use meshpay_host::{HostError, InstanceId, TransportEvents};
use tokio::sync::mpsc;

/// Frames that may wait in the queue.
pub const FRAME_QUEUE: usize = 8192;

/// A message from a transport instance to the node loop.
#[derive(Debug)]
pub enum TransportMsg {
    Frame { instance: InstanceId, peer: String, data: Vec<u8> },
    Link { instance: InstanceId, kind: u32, peer: String, metric: Option<u32>, signal_dbm: Option<i32> },
}

/// The transports' side: thread-safe, handed to every instance.
pub struct ChannelEvents {
    tx: mpsc::UnboundedSender<TransportMsg>,
    /// Frames sent and not yet taken by the loop.
    queued_frames: AtomicUsize,
    /// Frames refused because [`FRAME_QUEUE`] were waiting.
    pub dropped: AtomicU64,
}

/// The node loop's side.
pub struct TransportQueue {
    rx: mpsc::UnboundedReceiver<TransportMsg>,
    events: Arc<ChannelEvents>,
}

/// A new, empty queue.
pub fn transport_queue() -> (Arc<ChannelEvents>, TransportQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let events =
        Arc::new(ChannelEvents { tx, queued_frames: AtomicUsize::new(0), dropped: AtomicU64::new(0) });
    (events.clone(), TransportQueue { rx, events })
}

impl TransportEvents for ChannelEvents {
    fn deliver(&self, instance: InstanceId, peer: &str, frame: &[u8]) -> Result<(), HostError> {
        if self.queued_frames.fetch_add(1, Ordering::AcqRel) >= FRAME_QUEUE {
            self.queued_frames.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(HostError::Full);
        }
        let msg = TransportMsg::Frame { instance, peer: peer.to_owned(), data: frame.to_vec() };
        self.tx.send(msg).map_err(|_| {
            // The loop is gone (shutting down).
            self.queued_frames.fetch_sub(1, Ordering::AcqRel);
            HostError::Failed
        })
    }

    fn link_event(&self, instance: InstanceId, event: &LinkEvent<'_>) -> Result<(), HostError> {
        let msg = TransportMsg::Link {
            instance,
            kind: event.kind,
            peer: event.peer.to_owned(),
            metric: event.metric,
            signal_dbm: event.signal_dbm,
        };
        self.tx.send(msg).map_err(|_| HostError::Failed)
    }
}

impl TransportQueue {
    /// Waits for the next message.
    pub async fn recv(&mut self) -> Option<TransportMsg> {
        let msg = self.rx.recv().await?;
        self.taken(&msg);
        Some(msg)
    }

    /// `first` and whatever else is queued, in order, up to `max` messages.
    pub fn take(&mut self, first: Option<TransportMsg>, max: usize) -> Vec<TransportMsg> {
        let mut msgs: Vec<_> = first.into_iter().collect();
        while msgs.len() < max {
            match self.rx.try_recv() {
                Ok(m) => {
                    self.taken(&m);
                    msgs.push(m);
                }
                Err(_) => break,
            }
        }
        msgs
    }

    fn taken(&self, msg: &TransportMsg) {
        if let TransportMsg::Frame { .. } = msg {
            self.events.queued_frames.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: u32, peer: &str) -> LinkEvent<'_> {
        LinkEvent { kind, peer, metric: None, signal_dbm: None, mtu: None }
    }

    #[test]
    fn frames_and_link_events_come_out_in_the_order_they_went_in() {
        let (events, mut queue) = transport_queue();
        let i = InstanceId(7);
        events.link_event(i, &link(meshpay_abi::MP_LINK_UP, "p")).unwrap();
        events.deliver(i, "p", b"hello").unwrap();
        events.link_event(i, &link(meshpay_abi::MP_LINK_DOWN, "p")).unwrap();
        let order: Vec<String> = queue
            .take(None, 10)
            .into_iter()
            .map(|m| match m {
                TransportMsg::Frame { data, .. } => String::from_utf8(data).unwrap(),
                TransportMsg::Link { kind, .. } => format!("link {kind}"),
            })
            .collect();
        let (up, down) = (meshpay_abi::MP_LINK_UP, meshpay_abi::MP_LINK_DOWN);
        assert_eq!(order, [format!("link {up}"), "hello".into(), format!("link {down}")]);
    }

    #[test]
    fn frames_are_bounded_and_link_events_are_not() {
        let (events, mut queue) = transport_queue();
        let i = InstanceId(1);
        for _ in 0..FRAME_QUEUE {
            events.deliver(i, "p", b"f").unwrap();
        }
        assert_eq!(events.deliver(i, "p", b"f"), Err(HostError::Full));
        assert_eq!(events.dropped.load(Ordering::Relaxed), 1);
        events.link_event(i, &link(meshpay_abi::MP_LINK_DOWN, "p")).expect("link events are never refused");
        // Taking frames makes room again, one for one.
        assert_eq!(queue.take(None, 2).len(), 2);
        events.deliver(i, "p", b"f").unwrap();
        events.deliver(i, "p", b"f").unwrap();
        assert_eq!(events.deliver(i, "p", b"f"), Err(HostError::Full));
        // Everything accepted comes out: the frames, the link event, the two late frames.
        assert_eq!(queue.take(None, usize::MAX).len(), FRAME_QUEUE - 2 + 1 + 2);
    }
}
