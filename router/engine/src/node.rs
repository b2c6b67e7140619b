//! The engine state machine: links, the HELLO exchange, neighbours.

use std::collections::{BTreeMap, VecDeque};

use crate::frame::{Frame, FrameRepr};

/// One link: a transport instance and a peer address on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId {
    /// The transport instance (the host's instance id).
    pub transport: u64,
    /// The transport's own peer address.
    pub peer: String,
}

/// What the engine is told.
#[derive(Debug)]
pub enum Event<'a> {
    LinkUp { link: LinkId },
    LinkDown { link: LinkId },
    Frame { link: LinkId, data: &'a [u8] },
}

/// What the engine asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `frame` on `link`.
    Send { link: LinkId, frame: Vec<u8> },
    /// A neighbour identified itself on a link.
    NeighbourUp { link: LinkId, node_key: [u8; 32] },
    /// A link to an identified neighbour went down.
    NeighbourDown { link: LinkId, node_key: [u8; 32] },
}

/// A neighbour known on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub link: LinkId,
    pub node_key: [u8; 32],
    /// When it said HELLO, in the driver's clock.
    pub since_ms: u64,
}

/// Frame counters, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames that failed to parse (dropped).
    pub frames_malformed: u64,
    /// Frames on a link the engine did not know about (dropped).
    pub frames_unknown_link: u64,
}

#[derive(Debug)]
struct Link {
    neighbour: Option<([u8; 32], u64)>,
}

/// The sans-IO node core.
#[derive(Debug)]
pub struct Engine {
    node_key: [u8; 32],
    links: BTreeMap<LinkId, Link>,
    actions: VecDeque<Action>,
    counters: Counters,
}

impl Engine {
    pub fn new(node_key: [u8; 32]) -> Engine {
        Engine { node_key, links: BTreeMap::new(), actions: VecDeque::new(), counters: Counters::default() }
    }

    /// Feeds one event at time `now_ms`.
    pub fn handle(&mut self, now_ms: u64, event: Event<'_>) {
        match event {
            Event::LinkUp { link } => {
                self.links.entry(link.clone()).or_insert(Link { neighbour: None });
                self.send(link, &FrameRepr::Hello { node_key: self.node_key });
            }
            Event::LinkDown { link } => {
                if let Some(Link { neighbour: Some((node_key, _)) }) = self.links.remove(&link) {
                    self.actions.push_back(Action::NeighbourDown { link, node_key });
                }
            }
            Event::Frame { link, data } => self.on_frame(now_ms, link, data),
        }
    }

    fn on_frame(&mut self, now_ms: u64, link: LinkId, data: &[u8]) {
        self.counters.frames_in += 1;
        let repr = match Frame::new_checked(data).and_then(|f| FrameRepr::parse(&f)) {
            Ok(r) => r,
            Err(_) => {
                self.counters.frames_malformed += 1;
                return;
            }
        };
        let Some(state) = self.links.get_mut(&link) else {
            self.counters.frames_unknown_link += 1;
            return;
        };
        match repr {
            FrameRepr::Hello { node_key } => {
                let known = state.neighbour.map(|(k, _)| k);
                if known == Some(node_key) {
                    return;
                }
                // First HELLO on this link (or the peer's key changed, e.g.
                // another node took over the address): (re)announce and answer.
                state.neighbour = Some((node_key, now_ms));
                if let Some(old) = known {
                    self.actions.push_back(Action::NeighbourDown { link: link.clone(), node_key: old });
                }
                self.actions.push_back(Action::NeighbourUp { link: link.clone(), node_key });
                self.send(link, &FrameRepr::Hello { node_key: self.node_key });
            }
        }
    }

    fn send(&mut self, link: LinkId, repr: &FrameRepr) {
        self.counters.frames_out += 1;
        self.actions.push_back(Action::Send { link, frame: repr.to_vec() });
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Neighbours that said HELLO, by link.
    pub fn neighbours(&self) -> impl Iterator<Item = Neighbour> + '_ {
        self.links.iter().filter_map(|(link, l)| {
            l.neighbour.map(|(node_key, since_ms)| Neighbour { link: link.clone(), node_key, since_ms })
        })
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(t: u64, p: &str) -> LinkId {
        LinkId { transport: t, peer: p.into() }
    }

    /// Two engines wired back to back by hand: no sockets, no clock.
    #[test]
    fn two_engines_learn_each_other_and_forget_on_link_down() {
        let mut a = Engine::new([1; 32]);
        let mut b = Engine::new([2; 32]);
        let (ab, ba) = (link(1, "b"), link(9, "a"));
        a.handle(0, Event::LinkUp { link: ab.clone() });
        b.handle(0, Event::LinkUp { link: ba.clone() });
        // Shuttle frames until both are quiet.
        let mut rounds = 0;
        loop {
            let mut moved = false;
            while let Some(act) = a.poll_action() {
                if let Action::Send { frame, .. } = act {
                    b.handle(5, Event::Frame { link: ba.clone(), data: &frame });
                    moved = true;
                }
            }
            while let Some(act) = b.poll_action() {
                if let Action::Send { frame, .. } = act {
                    a.handle(5, Event::Frame { link: ab.clone(), data: &frame });
                    moved = true;
                }
            }
            rounds += 1;
            if !moved || rounds > 10 {
                break;
            }
        }
        assert!(rounds <= 3, "HELLO exchange did not settle");
        assert_eq!(a.neighbours().map(|n| n.node_key).collect::<Vec<_>>(), vec![[2; 32]]);
        assert_eq!(b.neighbours().map(|n| n.node_key).collect::<Vec<_>>(), vec![[1; 32]]);

        a.handle(10, Event::LinkDown { link: ab.clone() });
        assert_eq!(a.poll_action(), Some(Action::NeighbourDown { link: ab, node_key: [2; 32] }));
        assert_eq!(a.neighbours().count(), 0);
    }

    #[test]
    fn malformed_and_unknown_link_frames_are_counted_and_dropped() {
        let mut a = Engine::new([1; 32]);
        a.handle(0, Event::Frame { link: link(1, "x"), data: b"garbage" });
        a.handle(
            0,
            Event::Frame { link: link(1, "x"), data: &FrameRepr::Hello { node_key: [3; 32] }.to_vec() },
        );
        assert_eq!(a.counters().frames_malformed, 1);
        assert_eq!(a.counters().frames_unknown_link, 1);
        assert_eq!(a.poll_action(), None);
    }
}
