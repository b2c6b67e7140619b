//! Hostile and broken input: each refused with a clear reason, the tables
//! untouched, nothing panics.

mod common;

use common::{Delivery, GROUP, Kind, Net};
use ed25519_dalek::Signer;
use meshpay_consensus_quorum::control::OrderJson;
use meshpay_consensus_quorum::error::Reason;
use meshpay_consensus_quorum::keys::hex;
use meshpay_consensus_quorum::wire::{self, Body, Certificate, Message, Order, OrderBody, OrderKind};
use serde_json::json;

use Kind::{Authority, Client};

const NET: [Kind; 5] = [Authority, Authority, Authority, Authority, Client];

/// The identity point: a small-order key.
fn weak_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k[0] = 1;
    k
}

fn to_authority(net: &Net, payload: Vec<u8>) -> Delivery {
    Delivery { to: 0, source: net.nodes[4].endpoint(), destination: GROUP.into(), payload }
}

fn order_msg(net: &Net, o: &Order) -> Vec<u8> {
    Message { committee: net.hash(), body: Body::Order(o.clone()) }.to_bytes()
}

/// Delivers to authority 0; expects `MP_ERR_INVALID` naming `reason`, and
/// no change to any table.
fn refused(net: &mut Net, payload: Vec<u8>, reason: Reason) {
    let before = net.dump(0);
    let e = net.deliver(&to_authority(net, payload)).unwrap_err();
    assert!(e.contains("MP_ERR_INVALID") && e.contains(reason.as_str()), "want {reason}: {e}");
    assert_eq!(net.dump(0), before, "the tables changed for a {reason} refusal");
    assert!(net.queue.is_empty(), "a refused input made the node emit: {:?}", net.queue);
}

/// Delivers a validly signed order the authority refuses with a signed
/// answer; checks the answer and that no table changed.
fn refused_signed(net: &mut Net, order: &Order, reason: Reason) {
    let before = net.dump(0);
    net.deliver(&to_authority(net, order_msg(net, order))).unwrap();
    assert_eq!(net.dump(0), before, "the tables changed for a {reason} refusal");
    let answers: Vec<_> = net.queue.drain(..).collect();
    assert_eq!(answers.len(), 1, "one answer to the client: {answers:?}");
    match answers[0].message().map(|m| m.body) {
        Some(Body::Refusal(r)) => {
            assert_eq!(r.reason, reason as u8);
            assert_eq!(r.authority, net.nodes[0].key);
            assert_eq!(answers[0].to, 4, "the answer goes to the order's source");
        }
        other => panic!("want a refusal, got {other:?}"),
    }
    let logs = net.nodes[0].services.logs();
    let last = &logs.last().unwrap().1;
    assert!(last.contains(reason.as_str()), "want {reason}: {last}");
}

#[test]
fn malformed_payloads_are_refused_as_malformed() {
    let mut net = Net::new(&NET, 2, 100);
    let good = order_msg(&net, &net.transfer(0, net.wallet(1), 5, 0));
    let mut wrong_version = good.clone();
    wrong_version[0] = 9;
    let mut unknown_type = good.clone();
    unknown_type[1] = 200;
    let mut trailing = good.clone();
    trailing.push(0);
    for payload in
        [vec![], b"hello".to_vec(), good[..good.len() - 1].to_vec(), wrong_version, unknown_type, trailing]
    {
        refused(&mut net, payload, Reason::Malformed);
    }
    assert_eq!(net.status(0)["refusals"]["malformed"], 6);
}

#[test]
fn orders_that_are_mis_signed_or_of_another_committee_are_refused() {
    let mut net = Net::new(&NET, 2, 100);
    let bob = net.wallet(1);
    // Signed by Bob's key for Alice's account.
    let body = OrderBody {
        sender: net.wallet(0),
        sequence: 0,
        amount: 5,
        kind: OrderKind::Transfer { recipient: bob },
    };
    let forged = Order {
        body: body.clone(),
        signature: net.wallets[1].sign(&body.signing_message(&net.hash())).to_bytes(),
    };
    let p = order_msg(&net, &forged);
    refused(&mut net, p, Reason::BadSignature);
    // A flipped bit.
    let mut flipped = net.transfer(0, bob, 5, 0);
    flipped.signature[10] ^= 1;
    let p = order_msg(&net, &flipped);
    refused(&mut net, p, Reason::BadSignature);
    // Signed for another committee: the header says so.
    let other = [7u8; 32];
    let o = Order {
        body: body.clone(),
        signature: net.wallets[0].sign(&body.signing_message(&other)).to_bytes(),
    };
    refused(
        &mut net,
        Message { committee: other, body: Body::Order(o.clone()) }.to_bytes(),
        Reason::OtherCommittee,
    );
    // ...or the header is ours and the signature is for the other one.
    let p = order_msg(&net, &o);
    refused(&mut net, p, Reason::BadSignature);
    let s = net.status(0);
    assert_eq!(s["other_committee_messages"], 1, "{s}");
    assert_eq!(s["last_other_committee"], hex(&other));
}

#[test]
fn weak_keys_zero_amounts_and_overflowing_numbers_are_refused() {
    let mut net = Net::new(&NET, 2, 100);
    // A payment to a small-order key would be money nobody can spend.
    let p = order_msg(&net, &net.transfer(0, weak_key(), 5, 0));
    refused(&mut net, p, Reason::WeakKey);
    // A weak sender "signs" anything under the batch equation: refused first.
    let body = OrderBody {
        sender: weak_key(),
        sequence: 0,
        amount: 5,
        kind: OrderKind::Transfer { recipient: net.wallet(1) },
    };
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let p = order_msg(&net, &Order { body, signature: sig });
    refused(&mut net, p, Reason::WeakKey);
    let p = order_msg(&net, &net.transfer(0, net.wallet(1), 0, 0));
    refused(&mut net, p, Reason::ZeroAmount);
    let p = order_msg(&net, &net.transfer(0, net.wallet(1), 5, u64::MAX));
    refused(&mut net, p, Reason::Overflow);
    // Far more than the balance (and more than the total supply).
    let p = &net.transfer(0, net.wallet(1), u64::MAX, 0);
    refused_signed(&mut net, p, Reason::InsufficientBalance);
    let p = &net.transfer(0, net.wallet(1), 101, 0);
    refused_signed(&mut net, p, Reason::InsufficientBalance);
    // Through the control API: a number beyond u64 is not JSON we take.
    let mut o = OrderJson::of(&net.transfer(0, net.wallet(1), 5, 0), &net.hash());
    o["amount"] = serde_json::from_str("18446744073709551616").unwrap();
    let before = net.dump(4);
    let e = net.control(4, "submit_transfer", json!({"order": o})).unwrap_err();
    assert!(e.contains("malformed") && e.contains("amount"), "{e}");
    let mut o = OrderJson::of(&net.transfer(0, net.wallet(1), 5, 0), &net.hash());
    o["recipient"] = json!(hex(&weak_key()));
    let e = net.control(4, "submit_transfer", json!({"order": o})).unwrap_err();
    assert!(e.contains("weak"), "{e}");
    let mut o = OrderJson::of(&net.transfer(0, net.wallet(1), 5, 0), &net.hash());
    o["colour"] = json!("red");
    let e = net.control(4, "submit_transfer", json!({"order": o})).unwrap_err();
    assert!(e.contains("colour"), "{e}");
    let mut o = OrderJson::of(&net.transfer(0, net.wallet(1), 5, 0), &net.hash());
    o["signature"] = json!(hex(&[0u8; 64]));
    let e = net.control(4, "submit_transfer", json!({"order": o})).unwrap_err();
    assert!(e.contains("bad_signature"), "{e}");
    assert_eq!(net.dump(4), before, "refused submissions left no trace");
    net.audit(0);
}

#[test]
fn orders_from_unknown_accounts_or_out_of_sequence_are_refused_with_a_signed_answer() {
    let mut net = Net::new(&[Authority, Authority, Authority, Authority, Client], 2, 100);
    // A wallet that is not in genesis and never received anything.
    let stranger = common::wallet_key(50);
    let body = OrderBody {
        sender: stranger.verifying_key().to_bytes(),
        sequence: 0,
        amount: 1,
        kind: OrderKind::Transfer { recipient: net.wallet(0) },
    };
    let o = Order { signature: stranger.sign(&body.signing_message(&net.hash())).to_bytes(), body };
    // Through the client, so the answers come back.
    let h = net.submit(4, &o, None).unwrap();
    net.run();
    let st = net.control(4, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "refused");
    assert_eq!(st["reason"], "unknown_account", "{st}");
    let h = net.submit(4, &net.transfer(0, net.wallet(1), 1, 3), None).unwrap();
    net.run();
    let st = net.control(4, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["reason"], "sequence_ahead", "{st}");
    for a in net.authorities() {
        let s = net.status(a);
        assert_eq!(s["refusals"]["unknown_account"], 1, "{s}");
        assert_eq!(s["counters"]["orders_signed"], 0, "{s}");
        net.audit(a);
    }
    let b = net.control(0, "balance", json!({"account": hex(&stranger.verifying_key().to_bytes())})).unwrap();
    assert_eq!(b["known"], false);
}

#[test]
fn bad_certificates_are_refused() {
    let mut net = Net::new(&NET, 2, 100);
    let order = net.transfer(0, net.wallet(1), 5, 0);
    net.submit(4, &order, None).unwrap();
    // Let the votes come back to the client but keep the confirmations.
    net.run_where(|d| d.kind() != "confirmation");
    assert_eq!(net.certificates.len(), 1);
    let good = net.certificates[0].clone();
    let confirm = |net: &Net, c: &Certificate, committee: [u8; 32]| {
        to_authority(net, Message { committee, body: Body::Confirmation(c.clone()) }.to_bytes())
    };
    // Of another committee.
    let d = confirm(&net, &good, [9; 32]);
    refused(&mut net, d.payload, Reason::OtherCommittee);
    // Too few votes.
    let mut two = good.clone();
    two.votes.truncate(2);
    let p = confirm(&net, &two, net.hash()).payload;
    refused(&mut net, p, Reason::BadCertificate);
    // A vote of a stranger (a foreign committee's authority).
    let stranger = common::wallet_key(77);
    let mut foreign = good.clone();
    let h = good.order.body.hash(&net.hash());
    foreign.votes[0] =
        (stranger.verifying_key().to_bytes(), stranger.sign(&wire::vote_message(&h)).to_bytes());
    foreign.votes = wire::canonical_signatures(foreign.votes);
    let p = confirm(&net, &foreign, net.hash()).payload;
    refused(&mut net, p, Reason::UnknownAuthority);
    // A broken vote signature: named by the single-check fallback.
    let mut broken = good.clone();
    broken.votes[1].1[5] ^= 1;
    let before = net.dump(0);
    let e = net.deliver(&confirm(&net, &broken, net.hash())).unwrap_err();
    assert!(e.contains("bad_signature") && e.contains(&hex(&broken.votes[1].0)), "{e}");
    assert_eq!(net.dump(0), before);
    // A broken sender signature.
    let mut broken = good.clone();
    broken.order.signature[0] ^= 1;
    let e = net.deliver(&confirm(&net, &broken, net.hash())).unwrap_err();
    assert!(e.contains("bad_signature") && e.contains("sender"), "{e}");
    // The real one applies.
    net.deliver(&confirm(&net, &good, net.hash())).unwrap();
    assert_eq!(net.balance(0, &net.wallet(1)), (105, 0));
    net.audit(0);
}

#[test]
fn votes_and_messages_for_the_wrong_node_are_refused() {
    let mut net = Net::new(&NET, 2, 100);
    let order = net.transfer(0, net.wallet(1), 5, 0);
    // An order sent to a client node.
    let d = Delivery {
        to: 4,
        source: net.nodes[0].endpoint(),
        destination: net.nodes[4].endpoint(),
        payload: order_msg(&net, &order),
    };
    let e = net.deliver(&d).unwrap_err();
    assert!(e.contains("wrong_role"), "{e}");
    // A vote for an order the client never submitted.
    let h = order.body.hash(&net.hash());
    let vote = wire::Vote {
        order_hash: h,
        authority: net.nodes[0].key,
        signature: net.nodes[0].signing.sign(&wire::vote_message(&h)).to_bytes(),
    };
    let payload = Message { committee: net.hash(), body: Body::Vote(vote.clone()) }.to_bytes();
    let before = net.dump(4);
    let d =
        Delivery { to: 4, source: net.nodes[0].endpoint(), destination: net.nodes[4].endpoint(), payload };
    let e = net.deliver(&d).unwrap_err();
    assert!(e.contains("unknown_order"), "{e}");
    // A vote with a bad signature for an order it did submit.
    net.submit(4, &order, None).unwrap();
    net.queue.clear();
    let before_vote = net.dump(4);
    let mut bad = vote.clone();
    bad.signature[3] ^= 1;
    let payload = Message { committee: net.hash(), body: Body::Vote(bad) }.to_bytes();
    let e = net.deliver(&Delivery { payload, ..d.clone() }).unwrap_err();
    assert!(e.contains("bad_signature"), "{e}");
    // A vote by someone outside the committee.
    let stranger = common::wallet_key(60);
    let v = wire::Vote {
        order_hash: h,
        authority: stranger.verifying_key().to_bytes(),
        signature: stranger.sign(&wire::vote_message(&h)).to_bytes(),
    };
    let payload = Message { committee: net.hash(), body: Body::Vote(v) }.to_bytes();
    let e = net.deliver(&Delivery { payload, ..d.clone() }).unwrap_err();
    assert!(e.contains("unknown_authority"), "{e}");
    assert_eq!(net.dump(4), before_vote);
    assert_ne!(before, before_vote, "(the submission itself was stored)");
    // A heartbeat to a client.
    let e = net
        .deliver(&Delivery {
            payload: Message {
                committee: net.hash(),
                body: Body::Heartbeat(wire::Heartbeat {
                    authority: net.nodes[0].key,
                    seq: 1,
                    signature: [0; 64],
                }),
            }
            .to_bytes(),
            ..d
        })
        .unwrap_err();
    assert!(e.contains("wrong_role"), "{e}");
}

#[test]
fn broken_configurations_are_refused_at_create_with_the_key_named() {
    let mut net = Net::new(&NET, 1, 100);
    let k = hex(&net.nodes[0].key);
    let cases = [
        (json!({"role": "authority", "committee": {"authority": [{"key": hex(&weak_key())}]}}), "weak"),
        (
            json!({"role": "authority", "committee": {"authority": [{"key": hex(&net.nodes[1].key)}]}}),
            "not in the committee",
        ),
        (json!({"role": "client"}), "committee"),
        (json!({"role": "client", "committee": {"authority": [{"key": k}]}, "tick_ms": 0}), "tick_ms"),
        (
            json!({"role": "client", "committee": {"authority": [{"key": k}]}, "heartbeat_window_ms": 1}),
            "heartbeat_window_ms",
        ),
        (
            json!({"role": "client", "committee": {"authority": [{"key": k}], "genesis": [{"account": k, "balance": -1}]}}),
            "balance",
        ),
    ];
    for (config, want) in cases {
        net.nodes[0].config = serde_json::to_vec(&config).unwrap();
        let e = net.start(0).unwrap_err();
        assert!(e.contains(want), "{config}: {e}");
    }
}

#[test]
fn a_ledger_refuses_to_run_under_another_committee() {
    let mut net = Net::new(&NET, 2, 100);
    net.submit(4, &net.transfer(0, net.wallet(1), 5, 0), None).unwrap();
    net.run();
    // Restart authority 0 with a genesis that differs by one unit.
    let mut c = net.committee_json.clone();
    c["genesis"][0]["balance"] = json!(101);
    net.nodes[0].config = serde_json::to_vec(&json!({"role": "authority", "committee": c})).unwrap();
    let e = net.start(0).unwrap_err();
    assert!(e.contains("belongs to committee") && e.contains(&hex(&net.hash())), "{e}");
}

#[test]
fn a_relay_keeps_no_ledger_and_says_so() {
    let mut net = Net::new(&[Authority, Authority, Authority, Authority, Kind::Relay], 1, 100);
    assert!(net.nodes[4].subscriptions.is_empty(), "a relay subscribes to nothing");
    let s = net.status(4);
    assert_eq!(s["role"], "relay");
    assert_eq!(s["committee_hash"], hex(&net.hash()));
    assert!(s.get("counters").is_none(), "{s}");
    let e = net.control(4, "balance", json!({"account": hex(&net.wallet(0))})).unwrap_err();
    assert!(e.contains("relay"), "{e}");
    assert!(net.dump(4).is_empty(), "no tables written");
}
