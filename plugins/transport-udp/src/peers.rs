//! The neighbour table: who is up, since when, and as which instance
//! (sans-IO: the caller passes the time and turns the returned changes into
//! link events).
//!
//! * A peer is up from its first valid beacon or complete frame.
//! * It is down once silent for `peer_timeout_ms`: any valid datagram (a
//!   beacon, a fragment) counts as not silent.
//! * Each beacon carries the sender's instance nonce. A new nonce from an up
//!   peer means it restarted: its old instance is reported down and the new
//!   one up, so the router drops what it knew of the old one.
//! * Static peers (from the configuration) stay in the table when down;
//!   discovered peers are forgotten when they go down.
//! * One instance is one peer, even when its beacons arrive at two addresses
//!   (IPv6 multicast and IPv4 broadcast both on): the first address heard
//!   stands, except that an IPv6 address replaces an IPv4 one. Both ends
//!   apply the same rule, so they settle on the same pair of addresses.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::txqueue::TxQueue;
use crate::wire::{BeaconRepr, FLAG_UNICAST};

/// Most peers in the table: a bound against floods of spoofed beacons.
pub const MAX_PEERS: usize = 256;

/// Index of a peer in the table (stable while the peer is in it).
pub type PeerId = usize;

#[derive(Debug)]
pub struct Peer {
    /// The key: see [`crate::addr::normalize`].
    pub addr: SocketAddr,
    /// The canonical name the router knows it by.
    pub name: String,
    pub is_static: bool,
    pub up: bool,
    /// The instance nonce from its beacons, once one was heard.
    pub nonce: Option<u64>,
    pub last_seen_ms: u64,
    /// It asked for unicast beacons ([`FLAG_UNICAST`]).
    pub wants_unicast: bool,
    /// The largest frame it accepts (ours until a beacon says).
    pub max_frame: u32,
    pub tx: TxQueue,
}

/// A change the caller reports to the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Up {
        id: PeerId,
        name: String,
        mtu: u32,
    },
    /// The peer's queued frames and partial frames must be dropped; a
    /// discovered peer's slot is already gone.
    Down {
        addr: SocketAddr,
        name: String,
    },
    /// A beacon lowered the frame size the peer accepts.
    Mtu {
        id: PeerId,
        name: String,
        mtu: u32,
    },
}

/// Why a beacon or frame could not be attributed to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The table is full.
    Full,
    /// The beacon's instance is already up at another address.
    Alias,
}

pub struct Peers {
    slots: Vec<Option<Peer>>,
    by_addr: HashMap<SocketAddr, PeerId>,
    by_name: HashMap<String, PeerId>,
    free: Vec<PeerId>,
    timeout_ms: u64,
    our_max_frame: u32,
    /// Queues of peers that went down, for the caller to account and recycle.
    released: Vec<TxQueue>,
}

impl Peers {
    pub fn new(timeout_ms: u64, our_max_frame: u32) -> Peers {
        Peers {
            slots: Vec::new(),
            by_addr: HashMap::new(),
            by_name: HashMap::new(),
            free: Vec::new(),
            timeout_ms,
            our_max_frame,
            released: Vec::new(),
        }
    }

    /// The send queues of peers that went down since the last call (their
    /// frames are dropped with the contact).
    pub fn take_released(&mut self) -> Vec<TxQueue> {
        std::mem::take(&mut self.released)
    }

    pub fn get(&self, id: PeerId) -> Option<&Peer> {
        self.slots.get(id).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.slots.get_mut(id).and_then(Option::as_mut)
    }

    pub fn by_addr(&self, addr: &SocketAddr) -> Option<PeerId> {
        self.by_addr.get(addr).copied()
    }

    pub fn by_name(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).copied()
    }

    /// All peers with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.slots.iter().enumerate().filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (PeerId, &mut Peer)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, p)| p.as_mut().map(|p| (i, p)))
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Whether datagrams from `addr` count as from a peer (up or static).
    pub fn is_known(&self, addr: &SocketAddr) -> bool {
        self.by_addr(addr).and_then(|id| self.get(id)).is_some_and(|p| p.up || p.is_static)
    }

    fn insert(&mut self, addr: SocketAddr, name: String, is_static: bool) -> Result<PeerId, Refused> {
        if self.len() >= MAX_PEERS {
            return Err(Refused::Full);
        }
        let peer = Peer {
            addr,
            name: name.clone(),
            is_static,
            up: false,
            nonce: None,
            last_seen_ms: 0,
            wants_unicast: false,
            max_frame: self.our_max_frame,
            tx: TxQueue::default(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id] = Some(peer);
                id
            }
            None => {
                self.slots.push(Some(peer));
                self.slots.len() - 1
            }
        };
        self.by_addr.insert(addr, id);
        self.by_name.insert(name, id);
        Ok(id)
    }

    /// Adds a static peer (down until heard from).
    pub fn add_static(&mut self, addr: SocketAddr, name: String) -> Result<PeerId, Refused> {
        match self.by_addr(&addr) {
            Some(id) => Ok(id),
            None => self.insert(addr, name, true),
        }
    }

    /// Removes a static peer whose address changed (its interface came back
    /// with another index); the caller re-adds it.
    pub fn remove(&mut self, id: PeerId, changes: &mut Vec<Change>) -> Option<Peer> {
        let mut peer = self.slots.get_mut(id)?.take()?;
        self.by_addr.remove(&peer.addr);
        self.by_name.remove(&peer.name);
        self.free.push(id);
        if peer.up {
            changes.push(Change::Down { addr: peer.addr, name: peer.name.clone() });
        }
        self.released.push(std::mem::take(&mut peer.tx));
        Some(peer)
    }

    /// A valid beacon from `addr`. Returns the peer and whether it is new
    /// (just came up), so the caller can answer it at once.
    pub fn on_beacon(
        &mut self,
        addr: SocketAddr,
        beacon: &BeaconRepr,
        now_ms: u64,
        name: impl FnOnce() -> String,
        changes: &mut Vec<Change>,
    ) -> Result<(PeerId, bool), Refused> {
        let id = match self.by_addr(&addr) {
            Some(id) => id,
            None => {
                let alias = self
                    .iter()
                    .find(|(_, p)| p.up && p.nonce == Some(beacon.nonce))
                    .map(|(id, p)| (id, p.addr));
                if let Some((other, other_addr)) = alias {
                    if !(addr.is_ipv6() && other_addr.is_ipv4()) {
                        return Err(Refused::Alias);
                    }
                    self.down(other, changes);
                }
                self.insert(addr, name(), false)?
            }
        };
        let our_max = self.our_max_frame;
        let peer = self.slots[id].as_mut().expect("indexed peers exist");
        let mtu = beacon.max_frame.min(our_max);
        let restarted = peer.up && peer.nonce.is_some_and(|n| n != beacon.nonce);
        if restarted {
            changes.push(Change::Down { addr, name: peer.name.clone() });
            peer.up = false;
            self.released.push(std::mem::take(&mut peer.tx));
        }
        peer.nonce = Some(beacon.nonce);
        peer.last_seen_ms = now_ms;
        peer.wants_unicast = beacon.flags & FLAG_UNICAST != 0;
        let old_mtu = peer.max_frame.min(our_max);
        peer.max_frame = beacon.max_frame;
        if !peer.up {
            peer.up = true;
            changes.push(Change::Up { id, name: peer.name.clone(), mtu });
            Ok((id, true))
        } else {
            if mtu != old_mtu {
                changes.push(Change::Mtu { id, name: peer.name.clone(), mtu });
            }
            Ok((id, false))
        }
    }

    /// A complete frame from `addr`: the sender is up (if it was not).
    pub fn on_frame(
        &mut self,
        addr: SocketAddr,
        now_ms: u64,
        name: impl FnOnce() -> String,
        changes: &mut Vec<Change>,
    ) -> Result<PeerId, Refused> {
        let id = match self.by_addr(&addr) {
            Some(id) => id,
            None => self.insert(addr, name(), false)?,
        };
        let our_max = self.our_max_frame;
        let peer = self.slots[id].as_mut().expect("indexed peers exist");
        peer.last_seen_ms = now_ms;
        if !peer.up {
            peer.up = true;
            changes.push(Change::Up { id, name: peer.name.clone(), mtu: peer.max_frame.min(our_max) });
        }
        Ok(id)
    }

    /// Any other valid datagram from `addr` (a fragment): an up peer is not
    /// silent.
    pub fn on_traffic(&mut self, addr: &SocketAddr, now_ms: u64) {
        if let Some(&id) = self.by_addr.get(addr)
            && let Some(peer) = self.slots[id].as_mut()
            && peer.up
        {
            peer.last_seen_ms = now_ms;
        }
    }

    /// Takes peer `id` down (reporting it if it was up): its queue is
    /// released, a discovered peer is forgotten, a static one stays.
    fn down(&mut self, id: PeerId, changes: &mut Vec<Change>) {
        let Some(peer) = self.slots.get_mut(id).and_then(Option::as_mut) else { return };
        if peer.up {
            changes.push(Change::Down { addr: peer.addr, name: peer.name.clone() });
        }
        peer.up = false;
        peer.nonce = None;
        peer.wants_unicast = false;
        self.released.push(std::mem::take(&mut peer.tx));
        if !peer.is_static {
            let peer = self.slots[id].take().expect("exists");
            self.by_addr.remove(&peer.addr);
            self.by_name.remove(&peer.name);
            self.free.push(id);
        }
    }

    /// Reports peers silent for the timeout down (forgetting discovered
    /// ones). Returns when the next peer would time out, if any is up.
    pub fn expire(&mut self, now_ms: u64, changes: &mut Vec<Change>) -> Option<u64> {
        let timeout = self.timeout_ms;
        let mut next: Option<u64> = None;
        let mut silent = Vec::new();
        for (id, peer) in self.iter().filter(|(_, p)| p.up) {
            let deadline = peer.last_seen_ms.saturating_add(timeout);
            if now_ms >= deadline {
                silent.push(id);
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        for id in silent {
            self.down(id, changes);
        }
        next
    }

    /// Every up peer goes down (the instance stops); discovered ones are
    /// forgotten.
    pub fn all_down(&mut self, changes: &mut Vec<Change>) {
        for id in 0..self.slots.len() {
            self.down(id, changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon(nonce: u64, max_frame: u32) -> BeaconRepr {
        BeaconRepr { nonce, port: 4556, flags: 0, max_frame }
    }

    fn a(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 4556))
    }

    fn name(n: u8) -> impl FnOnce() -> String {
        move || a(n).to_string()
    }

    #[test]
    fn up_on_beacon_down_on_silence() {
        let mut p = Peers::new(350, 1 << 20);
        let mut ch = Vec::new();
        assert_eq!(p.on_beacon(a(2), &beacon(1, 1 << 20), 1000, name(2), &mut ch), Ok((0, true)));
        assert_eq!(ch, [Change::Up { id: 0, name: "10.0.0.2:4556".into(), mtu: 1 << 20 }]);
        ch.clear();
        assert_eq!(p.on_beacon(a(2), &beacon(1, 1 << 20), 1100, name(2), &mut ch), Ok((0, false)));
        p.on_traffic(&a(2), 1200);
        assert_eq!(p.expire(1549, &mut ch), Some(1550));
        assert!(ch.is_empty());
        assert_eq!(p.expire(1550, &mut ch), None);
        assert_eq!(ch, [Change::Down { addr: a(2), name: "10.0.0.2:4556".into() }]);
        assert!(p.is_empty(), "a discovered peer is forgotten when down");
        // It comes back.
        ch.clear();
        assert_eq!(p.on_beacon(a(2), &beacon(1, 1 << 20), 2000, name(2), &mut ch), Ok((0, true)));
        assert!(matches!(ch[..], [Change::Up { .. }]));
    }

    #[test]
    fn a_new_nonce_is_down_then_up() {
        let mut p = Peers::new(350, 1 << 20);
        let mut ch = Vec::new();
        p.on_beacon(a(2), &beacon(1, 1 << 20), 0, name(2), &mut ch).unwrap();
        ch.clear();
        assert_eq!(p.on_beacon(a(2), &beacon(2, 1 << 20), 10, name(2), &mut ch), Ok((0, true)));
        assert_eq!(ch.len(), 2);
        assert!(matches!(ch[0], Change::Down { .. }) && matches!(ch[1], Change::Up { .. }));
    }

    #[test]
    fn frames_bring_peers_up_and_mtu_is_the_smaller() {
        let mut p = Peers::new(350, 1 << 20);
        let mut ch = Vec::new();
        assert_eq!(p.on_frame(a(3), 0, name(3), &mut ch), Ok(0));
        assert_eq!(ch, [Change::Up { id: 0, name: "10.0.0.3:4556".into(), mtu: 1 << 20 }]);
        ch.clear();
        // Its first beacon (nonce now known) lowers the MTU.
        p.on_beacon(a(3), &beacon(7, 100_000), 1, name(3), &mut ch).unwrap();
        assert_eq!(ch, [Change::Mtu { id: 0, name: "10.0.0.3:4556".into(), mtu: 100_000 }]);
        // A peer that was never up is not "known": its fragments are a
        // stranger's.
        assert!(p.is_known(&a(3)) && !p.is_known(&a(4)));
    }

    #[test]
    fn one_instance_at_two_addresses_is_one_peer_preferring_ipv6() {
        let mut p = Peers::new(350, 1 << 20);
        let mut ch = Vec::new();
        let v6: SocketAddr = "[fe80::2%3]:4556".parse().unwrap();
        p.on_beacon(a(2), &beacon(5, 1 << 20), 0, name(2), &mut ch).unwrap();
        ch.clear();
        // The same instance over IPv6: it replaces the IPv4 address.
        assert_eq!(p.on_beacon(v6, &beacon(5, 1 << 20), 1, || "v6".into(), &mut ch).map(|r| r.1), Ok(true));
        assert!(
            matches!(&ch[..], [Change::Down { addr, .. }, Change::Up { name, .. }] if *addr == a(2) && name == "v6")
        );
        // Its IPv4 beacons are now ignored, not a second peer.
        ch.clear();
        assert_eq!(p.on_beacon(a(2), &beacon(5, 1 << 20), 2, name(2), &mut ch), Err(Refused::Alias));
        assert!(ch.is_empty());
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn static_peers_stay_and_the_table_is_bounded() {
        let mut p = Peers::new(350, 1 << 20);
        let mut ch = Vec::new();
        let id = p.add_static(a(9), "10.0.0.9:4556".into()).unwrap();
        assert!(p.is_known(&a(9)), "static peers are known before they are heard");
        p.on_beacon(a(9), &beacon(1, 1 << 20), 0, name(9), &mut ch).unwrap();
        p.expire(1000, &mut ch);
        assert_eq!(p.by_addr(&a(9)), Some(id), "still there");
        assert!(!p.get(id).unwrap().up);
        let mut refused = 0;
        for n in 0..MAX_PEERS as u32 + 10 {
            let addr = SocketAddr::from(([10, 1, (n >> 8) as u8, n as u8], 1));
            if let Err(e) =
                p.on_beacon(addr, &beacon(u64::from(n) + 100, 1 << 20), 0, || addr.to_string(), &mut ch)
            {
                assert_eq!(e, Refused::Full);
                refused += 1;
            }
        }
        assert_eq!(p.len(), MAX_PEERS);
        assert_eq!(refused, 11, "one slot holds the static peer");
        ch.clear();
        p.all_down(&mut ch);
        assert_eq!(ch.len(), MAX_PEERS - 1, "every up peer reported down");
        assert_eq!(p.len(), 1, "only the static peer remains");
    }
}
