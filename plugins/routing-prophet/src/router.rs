//! The sans-IO core of a PRoPHET instance: the predictability table, the
//! neighbours in contact with what each last told us, and the forwarding
//! decision. Events come in with the time; control messages to send come
//! back as [`Outgoing`] values, which the plugin hands to the host.
//!
//! Protocol, per neighbour B (RFC 6693 §2.1.2 for the equations, §3.6 for
//! GRTR):
//! * contact up: age the table, count the encounter (Eq. 1), send B our
//!   vector;
//! * every `exchange_interval_ms` while in contact: age, count the
//!   encounter again (scaled down by I_typ, so a long contact keeps P(A,B)
//!   high without racing it to 1 − δ) and resend the vector;
//! * B's vector arrives: keep it for forwarding decisions, and apply
//!   transitivity (Eq. 3);
//! * contact down: forget B's vector (P(A,B) stays: it is history);
//! * decide (GRTR): forward a bundle for node D to B if P(B,D) > P(A,D).

use std::collections::{BTreeMap, HashMap};

use meshpay_abi::sdk::{Forwarder, Level, PluginError};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, MP_LINK_DOWN, MP_LINK_UP, MP_LINK_UPDATE, PeerInfo};

use crate::config::Config;
use crate::destination::Destination;
use crate::node_id::NodeId;
use crate::table::Table;
use crate::wire::{self, MessageRepr};

/// Most neighbours in contact at once that PRoPHET keeps state for. Each
/// holds up to `max_entries` predictabilities, so this bounds memory; the
/// engine's neighbours are far fewer.
pub const MAX_NEIGHBOURS: usize = 256;

/// A line for the host's log: why an event was ignored.
pub type Note = (Level, String);

/// A control message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The neighbour's node endpoint, as the host knows it.
    pub peer: String,
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct Neighbour {
    /// The endpoint as the host spelled it (we reply to the same string).
    endpoint: String,
    /// P(B,·) as B last told us.
    vector: HashMap<NodeId, f64>,
}

/// The PRoPHET state of one node.
#[derive(Debug)]
pub struct Router {
    config: Config,
    /// This node, if its endpoint names a key: its own entry in neighbours'
    /// vectors is skipped.
    me: Option<NodeId>,
    table: Table,
    neighbours: BTreeMap<NodeId, Neighbour>,
}

impl Router {
    pub fn new(config: Config, me: Option<NodeId>, now_ms: u64) -> Router {
        let table = Table::new(config.clone(), now_ms);
        Router { config, me, table, neighbours: BTreeMap::new() }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn has_neighbours(&self) -> bool {
        !self.neighbours.is_empty()
    }

    /// P(A,node) at `now_ms`.
    pub fn predictability(&mut self, node: &NodeId, now_ms: u64) -> f64 {
        self.table.age(now_ms);
        self.table.get(node)
    }

    /// P(B,node) as neighbour B last told us; `None` if B is not in contact.
    pub fn neighbour_predictability(&self, b: &NodeId, node: &NodeId) -> Option<f64> {
        self.neighbours.get(b).map(|n| n.vector.get(node).copied().unwrap_or(0.0))
    }

    /// A contact event. Returns the messages to send, and a line worth
    /// logging if the event was ignored.
    pub fn contact(
        &mut self,
        peer: &str,
        kind: u32,
        now_ms: u64,
    ) -> Result<(Vec<Outgoing>, Option<Note>), PluginError> {
        if !matches!(kind, MP_LINK_UP | MP_LINK_DOWN | MP_LINK_UPDATE) {
            return Err(PluginError::invalid(format!("on_contact: unknown contact kind {kind}")));
        }
        let Some(b) = NodeId::from_endpoint(peer) else {
            let why = format!("neighbour {peer:?} is not named by a node key; PRoPHET keeps no state for it");
            return Ok((Vec::new(), Some((Level::Debug, why))));
        };
        if Some(b) == self.me {
            return Ok((Vec::new(), Some((Level::Warn, "contact with this node itself ignored".into()))));
        }
        if kind == MP_LINK_DOWN {
            self.neighbours.remove(&b);
            return Ok((Vec::new(), None));
        }
        if self.neighbours.contains_key(&b) {
            // MP_LINK_UPDATE (a metric changed), or a repeated UP: the same
            // contact goes on; the exchange timer re-counts it.
            return Ok((Vec::new(), None));
        }
        // A new contact (an UPDATE for a neighbour we did not know is one
        // too: we missed its UP).
        if self.neighbours.len() >= MAX_NEIGHBOURS {
            let why = format!("{MAX_NEIGHBOURS} neighbours in contact already; {b:?} ignored");
            return Ok((Vec::new(), Some((Level::Warn, why))));
        }
        self.neighbours.insert(b, Neighbour { endpoint: peer.to_owned(), vector: HashMap::new() });
        self.table.age(now_ms);
        self.table.encounter(b, now_ms);
        self.enforce_cap();
        // A triggered update: the encounter changed our table, so every
        // neighbour in contact gets it now, not at the next periodic
        // exchange. (A neighbour that met us before B would otherwise judge
        // us by stale predictabilities for up to an exchange interval.)
        let sorted = self.table.sorted();
        let in_contact: Vec<NodeId> = self.neighbours.keys().copied().collect();
        Ok((in_contact.iter().flat_map(|n| self.vector_for(n, &sorted)).collect(), None))
    }

    /// The periodic exchange: re-count every contact and resend vectors.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Outgoing> {
        self.table.age(now_ms);
        let in_contact: Vec<NodeId> = self.neighbours.keys().copied().collect();
        for b in &in_contact {
            self.table.encounter(*b, now_ms);
        }
        self.enforce_cap();
        let sorted = self.table.sorted();
        in_contact.iter().flat_map(|b| self.vector_for(b, &sorted)).collect()
    }

    /// Control data from `peer`: its predictability vector.
    pub fn control(&mut self, peer: &str, data: &[u8], now_ms: u64) -> Result<(), PluginError> {
        let refuse = |why: String| PluginError::invalid(format!("control data from {peer:?} refused: {why}"));
        let b = NodeId::from_endpoint(peer).ok_or_else(|| refuse("not a node key endpoint".into()))?;
        let message = MessageRepr::parse(data).map_err(|e| refuse(e.to_string()).at(Level::Warn))?;
        let cap = self.config.max_entries as usize;
        let me = self.me;
        let Some(n) = self.neighbours.get_mut(&b) else {
            return Err(refuse("not in contact".into()).at(Level::Warn));
        };
        if message.first {
            n.vector.clear();
        }
        let mut fresh = Vec::with_capacity(message.entries.len());
        for &(c, q) in &message.entries {
            if c == b || Some(c) == me {
                continue;
            }
            let p = wire::dequantize(q);
            // We keep at most `cap` entries of a neighbour's vector; past
            // that, only ones already kept are updated (it sends its
            // highest first, so those are the useful ones).
            if n.vector.len() < cap || n.vector.contains_key(&c) {
                n.vector.insert(c, p);
            }
            fresh.push((c, p));
        }
        self.table.age(now_ms);
        self.table.transitive(b, fresh, me);
        self.enforce_cap();
        Ok(())
    }

    /// GRTR: which neighbours get `bundle`, with the shared rules first (a
    /// neighbour that is the destination gets it, and no one else; a group
    /// bundle goes to every neighbour).
    pub fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
        now_ms: u64,
    ) -> Result<(), PluginError> {
        let destination = Destination::of(bundle.destination);
        let name = match destination {
            Destination::Group => {
                return (0..peers.len()).try_for_each(|i| out.forward(i, MP_COPIES_UNLIMITED));
            }
            Destination::Unroutable => return Ok(()),
            Destination::Node(name) => name,
        };
        if let Some(i) = peers.iter().position(|p| destination.is_node(p.node)) {
            return out.forward(i, MP_COPIES_UNLIMITED);
        }
        let Some(d) = NodeId::from_name(name) else { return Ok(()) };
        if Some(d) == self.me {
            return Ok(());
        }
        self.table.age(now_ms);
        let p_ad = self.table.get(&d);
        for (i, peer) in peers.iter().enumerate() {
            let p_bd = NodeId::from_endpoint(peer.node)
                .and_then(|b| self.neighbour_predictability(&b, &d))
                .unwrap_or(0.0);
            if p_bd > p_ad {
                out.forward(i, MP_COPIES_UNLIMITED)?;
            }
        }
        Ok(())
    }

    fn enforce_cap(&mut self) {
        let neighbours = &self.neighbours;
        self.table.enforce_cap(|n| neighbours.contains_key(n));
    }

    /// Our vector (`sorted`: the table, highest first) for neighbour `b`,
    /// split into messages. Entries about `b` itself are left out (it skips
    /// them anyway). Always at least one message, so that `FIRST` clears
    /// what `b` heard from us before.
    fn vector_for(&self, b: &NodeId, sorted: &[(NodeId, f64)]) -> Vec<Outgoing> {
        let Some(n) = self.neighbours.get(b) else { return Vec::new() };
        let entries: Vec<(NodeId, u16)> =
            sorted.iter().filter(|(c, _)| c != b).map(|&(c, p)| (c, wire::quantize(p))).collect();
        let per_message = self.config.entries_per_message();
        let mut out = Vec::new();
        let mut chunks = entries.chunks(per_message);
        let mut first = true;
        loop {
            let chunk = chunks.next().unwrap_or(&[]);
            if chunk.is_empty() && !first {
                break;
            }
            let mut data = Vec::new();
            MessageRepr { first, entries: chunk.to_vec() }.emit(&mut data);
            out.push(Outgoing { peer: n.endpoint.clone(), data });
            first = false;
        }
        out
    }
}
