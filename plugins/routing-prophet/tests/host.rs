//! PRoPHET through the real plugin host and the C ABI: contacts, decisions,
//! control messages as `HostAction::SendControl`, the exchange timer, two
//! instances converging on the predictabilities RFC 6693's equations give,
//! and hostile control data refused without harm.

mod common;

use std::sync::Arc;

use common::{Services, endpoint, key};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, MP_ERR_INVALID, MP_LINK_DOWN, MP_LINK_UP, PeerInfo};
use meshpay_host::{CallError, HostAction, InstanceState, Level, Plugin, Routing};
use meshpay_routing_prophet::wire::{self, MessageRepr};
use meshpay_routing_prophet::{EXCHANGE_TIMER, NodeId};
use proptest::prelude::*;

fn plugin() -> Arc<Plugin> {
    Plugin::builtin(meshpay_routing_prophet::plugin_entry).expect("the descriptor is valid")
}

/// One node: its host services and its PRoPHET instance.
struct Node {
    services: Arc<Services>,
    routing: Box<dyn Routing>,
}

impl Node {
    fn new(key_byte: u8, config: &str) -> Node {
        let services = Services::new(key(key_byte));
        let routing = plugin().create_routing("prophet", config.as_bytes(), services.clone()).unwrap();
        Node { services, routing }
    }

    fn endpoint(&self) -> String {
        self.services.endpoint()
    }

    fn contact(&mut self, peer: &str, kind: u32) {
        self.routing.on_contact(&PeerInfo { node: peer, link_metric: None, signal_dbm: None }, kind).unwrap();
    }

    /// The control messages queued since the last call, as (peer, data).
    fn sent(&mut self) -> Vec<(String, Vec<u8>)> {
        self.routing
            .take_actions()
            .into_iter()
            .map(|a| match a {
                HostAction::SendControl { peer, data } => (peer, data),
                other => panic!("PRoPHET asked for {other:?}"),
            })
            .collect()
    }

    /// Fires the timers that are due.
    fn fire_timers(&mut self) {
        for id in self.services.take_due(self.routing.id()) {
            self.routing.on_timer(id).unwrap();
        }
    }

    /// This node's table as it tells a new neighbour (a probe that is not
    /// an instance): P(self, X) for each X, to wire precision.
    fn table(&mut self, probe: u8) -> Vec<(NodeId, f64)> {
        let probe = endpoint(&key(probe));
        self.sent(); // drop what was queued before
        self.contact(&probe, MP_LINK_UP);
        let mut out = Vec::new();
        // A new contact sends a triggered update to every neighbour in
        // contact; the probe reads only its own messages.
        for (_, data) in self.sent().into_iter().filter(|(to, _)| *to == probe) {
            let m = MessageRepr::parse(&data).expect("our own messages parse");
            out.extend(m.entries.iter().map(|&(n, q)| (n, wire::dequantize(q))));
        }
        self.contact(&probe, MP_LINK_DOWN);
        out
    }
}

fn p_of(table: &[(NodeId, f64)], node: u8) -> f64 {
    table.iter().find(|(n, _)| *n == NodeId(key(node))).map_or(0.0, |e| e.1)
}

/// Hands every queued control message to the instance it is addressed to;
/// messages to nodes that are not instances are dropped.
fn deliver(nodes: &mut [&mut Node]) -> usize {
    let mut queued = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        queued.extend(n.sent().into_iter().map(|(to, data)| (i, to, data)));
    }
    let mut delivered = 0;
    for (from, to, data) in queued {
        let from_endpoint = nodes[from].endpoint();
        if let Some(dest) = nodes.iter_mut().find(|n| n.endpoint() == to) {
            dest.routing.on_control(&from_endpoint, &data).unwrap();
            delivered += 1;
        }
    }
    delivered
}

fn bundle(destination: &str) -> BundleInfo<'_> {
    BundleInfo {
        id: b"bundle-1",
        source: "dtn://a/",
        destination,
        priority: 1,
        created_ms: 1,
        lifetime_ms: 3_600_000,
        age_ms: 0,
        payload_len: 100,
        hop_count: 1,
        copies: MP_COPIES_UNLIMITED,
        payload: &[],
    }
}

#[test]
fn the_descriptor_names_the_plugin() {
    assert_eq!(plugin().descriptor().id, "org.meshpay.routing.prophet");
}

#[test]
fn a_contact_sends_our_vector_as_a_host_action_and_arms_the_exchange() {
    let mut a = Node::new(1, r#"{"exchange_interval_ms": 5000}"#);
    let b = endpoint(&key(2));
    a.contact(&b, MP_LINK_UP);
    let actions = a.routing.take_actions();
    assert_eq!(actions.len(), 1);
    let HostAction::SendControl { peer, data } = &actions[0] else { panic!("{actions:?}") };
    assert_eq!(peer, &b);
    assert_eq!(MessageRepr::parse(data), Ok(MessageRepr { first: true, entries: vec![] }));
    assert_eq!(a.services.timer(a.routing.id(), EXCHANGE_TIMER), Some(5000));
    // The timer, fired through the host, resends.
    a.services.advance(5000);
    a.fire_timers();
    assert_eq!(a.sent().len(), 1);
    assert_eq!(a.services.timer(a.routing.id(), EXCHANGE_TIMER), Some(10_000));
}

#[test]
fn a_new_contact_sends_a_triggered_update_to_every_neighbour_in_contact() {
    // B meets A, then C. A must hear of P(B, C) at once, not at the next
    // periodic exchange: A may hold bundles for C.
    let mut b = Node::new(2, "{}");
    let (a, c) = (endpoint(&key(1)), endpoint(&key(3)));
    b.contact(&a, MP_LINK_UP);
    b.sent();
    b.contact(&c, MP_LINK_UP);
    let to: std::collections::BTreeSet<String> = b.sent().into_iter().map(|(to, _)| to).collect();
    assert_eq!(to, [a.clone(), c].into_iter().collect());
}

#[test]
fn two_instances_converge_on_the_predictabilities_of_the_equations() {
    let config = r#"{"time_unit_ms": 30000, "i_typ_ms": 300000, "exchange_interval_ms": 60000}"#;
    let mut a = Node::new(1, config);
    let mut b = Node::new(2, config);
    let c = endpoint(&key(3)); // met by A only, before A meets B
    let (ea, eb) = (a.endpoint(), b.endpoint());

    a.contact(&c, MP_LINK_UP);
    a.contact(&c, MP_LINK_DOWN);
    a.sent();
    for n in [&a, &b] {
        n.services.advance(1000);
    }
    a.contact(&eb, MP_LINK_UP);
    b.contact(&ea, MP_LINK_UP);
    assert_eq!(deliver(&mut [&mut a, &mut b]), 2);

    // The same protocol, by hand, from RFC 6693's equations:
    //   encounter  P = P + (1 − δ − P) × P_enc,  P_enc = 0.7 × 60 s / 300 s
    //   ageing     P = P × γ^2                   (60 s = 2 units of 30 s)
    //   transitive P(X,C) = max(P(X,C), P(X,Y) × P(Y,C) × β)
    let (gamma2, p_enc, beta, delta) = (0.999f64.powi(2), 0.7 * 60.0 / 300.0, 0.9, 0.01);
    let (mut ab, mut ba, mut ac) = (0.5, 0.5, 0.5);
    let mut bc = ba * ac * beta; // B learnt C from A's first vector: 0.225
    let check = |a: &mut Node, b: &mut Node, expected: [f64; 4], when: &str| {
        let (ta, tb) = (a.table(9), b.table(9));
        let got = [p_of(&ta, 2), p_of(&tb, 1), p_of(&ta, 3), p_of(&tb, 3)];
        for (what, (g, e)) in ["P(A,B)", "P(B,A)", "P(A,C)", "P(B,C)"].iter().zip(got.iter().zip(expected)) {
            assert!((g - e).abs() < 1e-4, "{when}: {what} is {g}, the equations say {e}");
        }
    };
    check(&mut a, &mut b, [ab, ba, ac, bc], "after the first exchange");
    assert!((bc - 0.225).abs() < 1e-12);

    for round in 1..=200 {
        for n in [&a, &b] {
            n.services.advance(60_000);
        }
        a.fire_timers();
        b.fire_timers();
        assert!(deliver(&mut [&mut a, &mut b]) >= 2, "round {round}: the exchange stopped");
        // A's tick, B's tick (each ages, then re-counts the encounter),
        // then each applies the vector the other sent in its tick.
        ab *= gamma2;
        ac *= gamma2;
        ab += (1.0 - delta - ab) * p_enc;
        ba *= gamma2;
        bc *= gamma2;
        ba += (1.0 - delta - ba) * p_enc;
        let (sent_ac, sent_bc) = (ac, bc);
        bc = f64::max(bc, ba * sent_ac * beta);
        ac = f64::max(ac, ab * sent_bc * beta);
        if [1, 2, 5, 50].contains(&round) {
            check(&mut a, &mut b, [ab, ba, ac, bc], &format!("round {round}"));
        }
    }
    // P(A,B) converges where ageing and re-counting balance:
    // p = (p γ² + (0.99 − p γ²) P_enc)  ⇒  p = 0.99 P_enc / (1 − (1 − P_enc) γ²) ≈ 0.978
    let fixed = (1.0 - delta) * p_enc / (1.0 - (1.0 - p_enc) * gamma2);
    assert!((ab - fixed).abs() < 1e-9 && (fixed - 0.978).abs() < 1e-3, "{ab} {fixed}");
    check(&mut a, &mut b, [fixed, fixed, ac, bc], "after 200 rounds");

    // And GRTR acts on it: for C, B hands bundles to A (P(A,C) > P(B,C)),
    // never the other way round.
    let to_c = format!("{c}wallet");
    let mut out = Vec::new();
    b.routing
        .decide(&bundle(&to_c), &[PeerInfo { node: &ea, link_metric: None, signal_dbm: None }], &mut out)
        .unwrap();
    assert_eq!(out, [(0, MP_COPIES_UNLIMITED)]);
    out.clear();
    a.routing
        .decide(&bundle(&to_c), &[PeerInfo { node: &eb, link_metric: None, signal_dbm: None }], &mut out)
        .unwrap();
    assert!(out.is_empty());
    assert_eq!(a.routing.state(), &InstanceState::Active);
    assert_eq!(b.routing.state(), &InstanceState::Active);
}

#[test]
fn bad_configs_are_refused_with_mp_err_invalid_naming_the_key() {
    for (config, names) in [
        (r#"{"beta": 1.2}"#, "config.beta"),
        (r#"{"gamma": 0}"#, "config.gamma"),
        (r#"{"time_unit_ms": 0}"#, "config.time_unit_ms"),
        (r#"{"p_encounter_first": 0.05}"#, "config.p_encounter_first"),
        (r#"{"max_message_bytes": 10}"#, "config.max_message_bytes"),
        (r#"{"delta": "small"}"#, "config.delta"),
        (r#"{"gama": 0.99}"#, "gama"),
        (r#"{"copies": 8}"#, "copies"),
        ("[]", "object"),
    ] {
        let services = Services::new(key(1));
        let err = plugin()
            .create_routing("prophet", config.as_bytes(), services.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} was accepted"));
        assert_eq!(err, CallError::Failed { what: "create", status: MP_ERR_INVALID }, "{config}");
        let logs = services.logs();
        assert!(
            logs.iter().any(|(level, m)| *level == Level::Error && m.contains(names)),
            "{config}: no error naming {names} in {logs:?}"
        );
    }
}

/// A node with neighbour B in contact, for feeding it B's control data.
fn with_neighbour() -> (Node, String) {
    let mut a = Node::new(1, "{}");
    let b = endpoint(&key(2));
    a.contact(&b, MP_LINK_UP);
    a.sent();
    (a, b)
}

fn refused_or_accepted(a: &mut Node, b: &str, data: &[u8]) -> Result<bool, TestCaseError> {
    let r = a.routing.on_control(b, data);
    prop_assert_eq!(a.routing.state(), &InstanceState::Active);
    match r {
        Ok(()) => Ok(true),
        Err(CallError::Failed { what: "on_control", status: MP_ERR_INVALID }) => Ok(false),
        Err(e) => Err(TestCaseError::fail(format!("{e:?}"))),
    }
}

#[test]
fn malformed_control_data_is_refused_and_changes_nothing() {
    let (mut a, b) = with_neighbour();
    let before = a.table(9);
    let good = {
        let mut d = Vec::new();
        MessageRepr { first: true, entries: vec![(NodeId(key(5)), 60000)] }.emit(&mut d);
        d
    };
    for (i, junk) in [
        vec![],
        good[..good.len() - 1].to_vec(),
        [&good[..], &[0]].concat(),
        [&[2u8][..], &good[1..]].concat(),
        [&good[..2], &[0x80], &good[3..]].concat(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ]
    .iter()
    .enumerate()
    {
        let r = a.routing.on_control(&b, junk);
        assert_eq!(r, Err(CallError::Failed { what: "on_control", status: MP_ERR_INVALID }), "case {i}");
    }
    assert_eq!(a.routing.state(), &InstanceState::Active);
    assert_eq!(a.table(9), before, "refused data must not change the table");
    let logs = a.services.logs();
    assert!(logs.iter().any(|(_, m)| m.contains("unsupported version 2")), "{logs:?}");
    // The good one is taken.
    a.routing.on_control(&b, &good).unwrap();
    assert!(p_of(&a.table(9), 5) > 0.3);
    // From a node that is not in contact: refused.
    let stranger = endpoint(&key(7));
    assert_eq!(
        a.routing.on_control(&stranger, &good),
        Err(CallError::Failed { what: "on_control", status: MP_ERR_INVALID })
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_without_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (mut a, b) = with_neighbour();
        refused_or_accepted(&mut a, &b, &data)?;
    }

    #[test]
    fn arbitrary_headers_on_plausible_lengths_never_panic(
        head in proptest::array::uniform5(any::<u8>()),
        entries in 0usize..8,
        fill in any::<u8>(),
    ) {
        let (mut a, b) = with_neighbour();
        let mut data = head.to_vec();
        data.resize(wire::message_len(entries), fill);
        refused_or_accepted(&mut a, &b, &data)?;
    }

    #[test]
    fn well_formed_vectors_are_accepted(
        first in any::<bool>(),
        entries in proptest::collection::btree_map(any::<[u8; 32]>(), any::<u16>(), 0..40),
    ) {
        let (mut a, b) = with_neighbour();
        let mut data = Vec::new();
        MessageRepr { first, entries: entries.into_iter().map(|(k, p)| (NodeId(k), p)).collect() }.emit(&mut data);
        prop_assert!(refused_or_accepted(&mut a, &b, &data)?);
    }
}
