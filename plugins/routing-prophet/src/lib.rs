//! # PRoPHET routing (RFC 6693)
//!
//! Probabilistic Routing Protocol using History of Encounters and
//! Transitivity. Each node keeps a *delivery predictability* P(A,X) for the
//! nodes it has met or heard of ([`table`]): it rises when A meets X
//! (Eq. 1), decays with time (Eq. 2), and is inherited through neighbours
//! (Eq. 3). Neighbours exchange their tables as control messages ([`wire`])
//! when a contact starts and periodically while it lasts. A bundle for node
//! D goes to neighbour B when P(B,D) > P(A,D) (the GRTR forwarding strategy),
//! so copies move towards nodes that meet D more often, where epidemic
//! routing would send them everywhere.
//!
//! The parts:
//! * [`config`]: every parameter, RFC 6693 defaults;
//! * [`table`]: the three equations, sans-IO;
//! * [`wire`]: the control message format (versioned, strict parsing);
//! * [`router`]: the protocol state and the forwarding decision, sans-IO;
//! * [`Prophet`]: the [`RoutingPlugin`] glue: host clock, control messages
//!   and the exchange timer.
//!
//! Rules every meshpay routing plugin shares: a neighbour that *is* the
//! destination node gets the bundle (and then no one else); a bundle to a
//! group endpoint (`dtn://~authorities/quorum`) is flooded to every
//! neighbour, since each member needs a copy and predictabilities are per
//! node, not per group. PRoPHET does not count copies: every copy is
//! `MP_COPIES_UNLIMITED`.

pub mod config;
pub mod destination;
pub mod node_id;
pub mod router;
pub mod table;
pub mod wire;

use meshpay_abi::sdk::{Forwarder, Host, Level, PluginError, RoutingHost, RoutingPlugin};
use meshpay_abi::{BundleInfo, PeerInfo};

pub use config::Config;
pub use node_id::NodeId;
pub use router::{Outgoing, Router};

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.routing.prophet",
    name: "PRoPHET routing (RFC 6693)",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "Forwards towards neighbours that meet the destination more often (delivery predictabilities, GRTR)",
    routing: Prophet,
}

/// Our one timer: the periodic exchange while neighbours are in contact.
pub const EXCHANGE_TIMER: u64 = 1;

/// One PRoPHET instance.
pub struct Prophet {
    host: Host,
    link: RoutingHost,
    router: Router,
    /// Whether `EXCHANGE_TIMER` is armed.
    timer_armed: bool,
}

impl Prophet {
    /// The protocol state, for inspection.
    pub fn router(&mut self) -> &mut Router {
        &mut self.router
    }

    fn send(&self, messages: Vec<Outgoing>) {
        for m in messages {
            // A lost vector is not fatal: the next exchange resends it.
            if let Err(e) = self.link.send_control(&m.peer, &m.data) {
                self.host.log(Level::Warn, &format!("send_control to {}: {e}", m.peer));
            }
        }
    }

    /// Arms the exchange timer while someone is in contact.
    fn schedule(&mut self) {
        let interval = self.router.config().exchange_interval_ms;
        if interval == 0 || self.timer_armed || !self.router.has_neighbours() {
            return;
        }
        match self.host.set_timer(EXCHANGE_TIMER, interval) {
            Ok(()) => self.timer_armed = true,
            Err(e) => self.host.log(Level::Warn, &format!("periodic exchange off: {e}")),
        }
    }
}

impl RoutingPlugin for Prophet {
    fn create(host: Host, link: RoutingHost, config: &[u8]) -> Result<Self, PluginError> {
        let config = Config::parse(config)?;
        let me = host.node_endpoint().ok().and_then(|e| NodeId::from_endpoint(&e));
        if me.is_none() {
            host.log(Level::Warn, "this node's endpoint is not a node key; its own entries are not filtered");
        }
        let router = Router::new(config, me, host.now_ms());
        Ok(Prophet { host, link, router, timer_armed: false })
    }

    fn on_contact(&mut self, peer: &PeerInfo<'_>, kind: u32) -> Result<(), PluginError> {
        let (messages, note) = self.router.contact(peer.node, kind, self.host.now_ms())?;
        if let Some((level, line)) = note {
            self.host.log(level, &line);
        }
        self.send(messages);
        self.schedule();
        Ok(())
    }

    fn on_control(&mut self, peer: &str, data: &[u8]) -> Result<(), PluginError> {
        self.router.control(peer, data, self.host.now_ms())
    }

    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
    ) -> Result<(), PluginError> {
        self.router.decide(bundle, peers, out, self.host.now_ms())
    }

    fn on_timer(&mut self, timer_id: u64) -> Result<(), PluginError> {
        if timer_id != EXCHANGE_TIMER {
            return Err(PluginError::invalid(format!("on_timer: unknown timer {timer_id}")));
        }
        self.timer_armed = false;
        let messages = self.router.tick(self.host.now_ms());
        self.send(messages);
        self.schedule();
        Ok(())
    }
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestHost;
    use crate::wire::MessageRepr;
    use meshpay_abi::{MP_COPIES_UNLIMITED, MP_ERR_INVALID, MP_LINK_DOWN, MP_LINK_UP, MP_LINK_UPDATE};

    fn id(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    fn peer(node: &str) -> PeerInfo<'_> {
        PeerInfo { node, link_metric: None, signal_dbm: None }
    }

    fn bundle(destination: &str) -> BundleInfo<'_> {
        BundleInfo {
            id: b"id",
            source: "dtn://a/",
            destination,
            priority: 1,
            created_ms: 0,
            lifetime_ms: 60_000,
            age_ms: 0,
            payload_len: 10,
            hop_count: 0,
            copies: MP_COPIES_UNLIMITED,
            payload: &[],
        }
    }

    fn decide(p: &mut Prophet, b: &BundleInfo<'_>, peers: &[PeerInfo<'_>]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        p.decide(b, peers, &mut Forwarder::collecting(&mut out, peers.len())).unwrap();
        out
    }

    fn vector(entries: &[(NodeId, f64)]) -> Vec<u8> {
        let mut data = Vec::new();
        MessageRepr { first: true, entries: entries.iter().map(|&(n, p)| (n, wire::quantize(p))).collect() }
            .emit(&mut data);
        data
    }

    #[test]
    fn a_contact_counts_an_encounter_and_sends_our_vector() {
        let host = TestHost::new(id(1));
        let mut p = host.create(b"{}").unwrap();
        let b = id(2).endpoint();
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        assert_eq!(p.router().predictability(&id(2), 0), 0.5);
        let sent = host.take_sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, b);
        // Only B is known, and B is not told about itself.
        assert_eq!(MessageRepr::parse(&sent[0].1).unwrap(), MessageRepr { first: true, entries: vec![] });
        assert_eq!(host.timer(EXCHANGE_TIMER), Some(60_000));
        // A repeated UP or an UPDATE is the same contact.
        p.on_contact(&peer(&b), MP_LINK_UPDATE).unwrap();
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        assert!(host.take_sent().is_empty());
        assert_eq!(p.router().predictability(&id(2), 0), 0.5);
        assert_eq!(p.on_contact(&peer(&b), 99).unwrap_err().status, MP_ERR_INVALID);
    }

    #[test]
    fn grtr_forwards_to_neighbours_more_likely_to_meet_the_destination() {
        let host = TestHost::new(id(1));
        let mut p = host.create(b"{}").unwrap();
        let (b, c) = (id(2).endpoint(), id(3).endpoint());
        let d = format!("{}wallet", id(9).endpoint());
        // A met D long ago; now P(A,D) = 0.5 aged 100 units.
        host.set_now(0);
        p.on_contact(&peer(&id(9).endpoint()), MP_LINK_UP).unwrap();
        p.on_contact(&peer(&id(9).endpoint()), MP_LINK_DOWN).unwrap();
        host.set_now(100 * 30_000);
        let p_ad = 0.5 * 0.999f64.powi(100); // 0.452384...
        assert!((p.router().predictability(&id(9), host.now()) - p_ad).abs() < 1e-12);
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        p.on_contact(&peer(&c), MP_LINK_UP).unwrap();
        // B says P(B,D) = 0.46 > 0.4524; C says 0.45 < 0.4524.
        p.on_control(&b, &vector(&[(id(9), 0.46)])).unwrap();
        p.on_control(&c, &vector(&[(id(9), 0.45)])).unwrap();
        let peers = [peer(&b), peer(&c)];
        assert_eq!(decide(&mut p, &bundle(&d), &peers), [(0, MP_COPIES_UNLIMITED)]);
        // B now says 0.40: neither neighbour beats P(A,D).
        p.on_control(&b, &vector(&[(id(9), 0.40)])).unwrap();
        assert!(decide(&mut p, &bundle(&d), &peers).is_empty());
        // Time passes: A's P(A,D) ages while C's vector stays, so after 6
        // more units C is the better carrier:
        // 0.5 × 0.999^106 = 0.449686 < 0.45.
        host.set_now(106 * 30_000);
        assert_eq!(decide(&mut p, &bundle(&d), &peers), [(1, MP_COPIES_UNLIMITED)]);
        // A neighbour whose vector we never got gets nothing.
        let e = id(4).endpoint();
        p.on_contact(&peer(&e), MP_LINK_UP).unwrap();
        assert_eq!(decide(&mut p, &bundle(&d), &[peer(&e)]), []);
        // After B goes, its vector is forgotten.
        p.on_contact(&peer(&b), MP_LINK_DOWN).unwrap();
        assert_eq!(decide(&mut p, &bundle(&d), &[peer(&b)]), []);
    }

    #[test]
    fn the_destination_always_gets_it_and_groups_are_flooded() {
        let host = TestHost::new(id(1));
        let mut p = host.create(b"{}").unwrap();
        let nodes: Vec<String> = (2..5).map(|b| id(b).endpoint()).collect();
        let peers: Vec<PeerInfo<'_>> = nodes.iter().map(|n| peer(n)).collect();
        // No predictabilities at all, yet the destination gets its bundle,
        // and only it.
        let to_c = format!("{}wallet", nodes[1]);
        assert_eq!(decide(&mut p, &bundle(&to_c), &peers), [(1, MP_COPIES_UNLIMITED)]);
        let all: Vec<_> = (0..3).map(|i| (i, MP_COPIES_UNLIMITED)).collect();
        assert_eq!(decide(&mut p, &bundle("dtn://~authorities/quorum"), &peers), all);
        assert!(decide(&mut p, &bundle("dtn:none"), &peers).is_empty());
        assert!(decide(&mut p, &bundle("dtn://not-a-key/x"), &peers).is_empty());
        assert!(decide(&mut p, &bundle(&format!("{}x", id(1).endpoint())), &peers).is_empty());
        assert_eq!(p.initial_copies(&bundle(&to_c)), MP_COPIES_UNLIMITED);
    }

    #[test]
    fn transitivity_through_a_neighbour_uses_equation_3() {
        let host = TestHost::new(id(1));
        let mut p = host.create(b"{}").unwrap();
        let b = id(2).endpoint();
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap(); // P(A,B) = 0.5
        // B reaches C with 0.8, us with 0.9 (skipped), itself (skipped).
        p.on_control(&b, &vector(&[(id(3), 0.8), (id(1), 0.9), (id(2), 1.0)])).unwrap();
        let p_ac = p.router().predictability(&id(3), 0);
        assert!((p_ac - 0.5 * wire::dequantize(wire::quantize(0.8)) * 0.9).abs() < 1e-12, "{p_ac}");
        assert!((p_ac - 0.36).abs() < 1e-5);
        assert_eq!(p.router().predictability(&id(1), 0), 0.0);
        // Our next vector to another neighbour carries it.
        let c = id(4).endpoint();
        p.on_contact(&peer(&c), MP_LINK_UP).unwrap();
        let sent = host.take_sent();
        let to_c = MessageRepr::parse(&sent.last().unwrap().1).unwrap();
        assert_eq!(to_c.entries.iter().map(|e| e.0).collect::<Vec<_>>(), [id(2), id(3)]);
    }

    #[test]
    fn the_exchange_timer_recounts_the_contact_and_resends() {
        let host = TestHost::new(id(1));
        let mut p = host.create(br#"{"exchange_interval_ms": 60000, "i_typ_ms": 300000}"#).unwrap();
        let b = id(2).endpoint();
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        host.take_sent();
        host.set_now(60_000);
        p.on_timer(EXCHANGE_TIMER).unwrap();
        // Aged 2 units, then P_encounter = 0.7 × 60/300 = 0.14:
        // 0.5 × 0.999² = 0.4990005; + (0.99 − 0.4990005) × 0.14 = 0.56773907
        let expected = 0.5 * 0.999f64.powi(2);
        let expected = expected + (0.99 - expected) * 0.14;
        assert!((p.router().predictability(&id(2), 60_000) - expected).abs() < 1e-12);
        assert_eq!(host.take_sent().len(), 1);
        assert_eq!(host.timer(EXCHANGE_TIMER), Some(120_000));
        // Nobody in contact: the timer is not re-armed.
        p.on_contact(&peer(&b), MP_LINK_DOWN).unwrap();
        host.clear_timers();
        host.set_now(120_000);
        p.on_timer(EXCHANGE_TIMER).unwrap();
        assert!(host.take_sent().is_empty());
        assert_eq!(host.timer(EXCHANGE_TIMER), None);
        assert_eq!(p.on_timer(7).unwrap_err().status, MP_ERR_INVALID);
    }

    #[test]
    fn a_large_table_goes_out_in_several_messages() {
        let host = TestHost::new(id(1));
        // (5 + 3 × 34) bytes: three entries a message.
        let mut p = host.create(br#"{"max_message_bytes": 107}"#).unwrap();
        let b = id(2).endpoint();
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        let far: Vec<(NodeId, f64)> = (10..17).map(|i| (id(i), 0.3 + f64::from(i) / 100.0)).collect();
        p.on_control(&b, &vector(&far)).unwrap();
        let c = id(3).endpoint();
        p.on_contact(&peer(&c), MP_LINK_UP).unwrap();
        let sent: Vec<MessageRepr> = host
            .take_sent()
            .into_iter()
            .filter(|(to, _)| *to == c)
            .map(|(_, d)| MessageRepr::parse(&d).unwrap())
            .collect();
        // B (0.5) and seven transitive entries: 8 entries in 3 messages,
        // highest first, only the first flagged.
        assert_eq!(
            sent.iter().map(|m| (m.first, m.entries.len())).collect::<Vec<_>>(),
            [(true, 3), (false, 3), (false, 2)]
        );
        let ps: Vec<u16> = sent.iter().flat_map(|m| m.entries.iter().map(|e| e.1)).collect();
        assert!(ps.windows(2).all(|w| w[0] >= w[1]), "{ps:?}");
        assert_eq!(sent[0].entries[0].0, id(2));
    }

    #[test]
    fn a_neighbour_cannot_grow_our_state_without_bound() {
        let host = TestHost::new(id(1));
        let mut p = host.create(br#"{"max_entries": 5}"#).unwrap();
        let b = id(2).endpoint();
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        for round in 0..4u8 {
            let flood: Vec<(NodeId, f64)> =
                (0..100u8).map(|i| (NodeId([i, round, 7, 7].repeat(8).try_into().unwrap()), 0.9)).collect();
            let mut data = Vec::new();
            MessageRepr {
                first: false,
                entries: flood.iter().map(|&(n, p)| (n, wire::quantize(p))).collect(),
            }
            .emit(&mut data);
            p.on_control(&b, &data).unwrap();
        }
        let to = id(3).endpoint();
        p.on_contact(&peer(&to), MP_LINK_UP).unwrap();
        let sent = host.take_sent();
        let m = MessageRepr::parse(&sent.last().unwrap().1).unwrap();
        // The table holds 5 (B and C are protected, in contact).
        assert_eq!(m.entries.len(), 4, "{m:?}"); // minus C itself
    }

    #[test]
    fn control_from_strangers_and_garbage_is_refused() {
        let host = TestHost::new(id(1));
        let mut p = host.create(b"{}").unwrap();
        let b = id(2).endpoint();
        let e = p.on_control(&b, &vector(&[(id(3), 0.5)])).unwrap_err();
        assert_eq!(e.status, MP_ERR_INVALID);
        assert!(e.message.contains("not in contact"), "{}", e.message);
        p.on_contact(&peer(&b), MP_LINK_UP).unwrap();
        for junk in [&b""[..], b"\x02\x01\x00\x00\x00", b"\x01\x01\x00\x00\x01", b"hello"] {
            assert_eq!(p.on_control(&b, junk).unwrap_err().status, MP_ERR_INVALID, "{junk:?}");
        }
        assert_eq!(p.on_control("dtn://b/", &vector(&[])).unwrap_err().status, MP_ERR_INVALID);
        // Nothing was learnt from any of it.
        assert_eq!(p.router().predictability(&id(3), 0), 0.0);
    }

    #[test]
    fn bad_configs_are_refused() {
        let host = TestHost::new(id(1));
        let e = host.create(br#"{"gamma": 2}"#).err().unwrap();
        assert_eq!(e.status, MP_ERR_INVALID);
        assert!(e.message.contains("config.gamma"), "{}", e.message);
    }
}
