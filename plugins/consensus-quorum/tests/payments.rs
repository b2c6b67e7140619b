//! Payments end to end: 4 authorities and 2 clients, each a real plugin
//! instance through the C ABI with its own LMDB store.

mod common;

use common::{Delivery, GROUP, Kind, Net};
use ed25519_dalek::{Verifier, VerifyingKey};
use meshpay_consensus_quorum::keys::{hex, parse_hex_vec};
use meshpay_consensus_quorum::wire::{self, Certificate};
use serde_json::json;

use Kind::{Authority, Client};

const NET: [Kind; 6] = [Authority, Authority, Authority, Authority, Client, Client];
const CLIENT: usize = 4;
const HOME: usize = 5;

#[test]
fn a_payment_is_certified_applied_by_every_authority_and_receipted_at_home() {
    let mut net = Net::new(&NET, 2, 1000);
    let (alice, bob) = (net.wallet(0), net.wallet(1));
    let order = net.transfer(0, bob, 300, 0);
    let h = net.submit(CLIENT, &order, Some(HOME)).unwrap();

    let st = net.control(CLIENT, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "pending", "{st}");
    assert_eq!(st["votes_weight"], 0);
    assert_eq!(st["quorum_weight"], 3);
    // The wallet must wait for the order in flight, not use sequence 1.
    let ns = net.control(CLIENT, "next_sequence", json!({"account": hex(&alice)})).unwrap();
    assert_eq!(ns["next_sequence"], 0, "{ns}");
    assert_eq!(ns["pending"][0]["order_hash"], h.as_str());

    let refusals = net.run();
    assert!(refusals.is_empty(), "{refusals:?}");

    let st = net.control(CLIENT, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "certified", "{st}");
    assert_eq!(st["certificate"]["order_hash"], h.as_str());
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (700, 1), "authority {a}");
        assert_eq!(net.balance(a, &bob), (1300, 0), "authority {a}");
        net.audit(a);
        let s = net.status(a);
        assert_eq!(s["counters"]["orders_signed"], 1, "{s}");
        assert_eq!(s["counters"]["certificates_applied"], 1, "{s}");
    }
    assert_eq!(net.balance(CLIENT, &alice), (700, 1));
    let ns = net.control(CLIENT, "next_sequence", json!({"account": hex(&alice)})).unwrap();
    assert_eq!(ns["next_sequence"], 1, "{ns}");
    net.audit(CLIENT);

    // The recipient's home node holds the receipt, checked against the committee.
    let r = net.control(HOME, "receipts", json!({"account": hex(&bob)})).unwrap();
    let receipts = r["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 1, "{r}");
    assert_eq!(receipts[0]["verified"], true);
    assert_eq!(receipts[0]["amount"], 300);
    assert_eq!(receipts[0]["sender"], hex(&alice));
    assert_eq!(net.balance(HOME, &bob), (1300, 0));
    net.audit(HOME);

    // Offline, without any node: the committee's keys verify the receipt.
    let bytes = parse_hex_vec("c", receipts[0]["certificate"]["bytes"].as_str().unwrap(), 1 << 16).unwrap();
    let cert = Certificate::from_bytes(&bytes).unwrap();
    let hash = cert.order.body.hash(&net.hash());
    assert_eq!(hex(&hash), h);
    let sender = VerifyingKey::from_bytes(&cert.order.body.sender).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&cert.order.signature);
    sender.verify_strict(&cert.order.body.signing_message(&net.hash()), &sig).unwrap();
    let mut weight = 0;
    for (k, s) in &cert.votes {
        assert!(net.committee.weight(k).is_some(), "a stranger voted");
        let key = VerifyingKey::from_bytes(k).unwrap();
        key.verify(&wire::vote_message(&hash), &ed25519_dalek::Signature::from_bytes(s)).unwrap();
        weight += net.committee.weight(k).unwrap();
    }
    assert!(net.committee.is_quorum(weight));
    // And through the control API of a node that never saw it.
    let v = net.control(CLIENT, "verify_certificate", json!({"certificate": hex(&bytes)})).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    net.assert_no_double_certificates();
}

#[test]
fn lost_orders_are_sent_again_until_certified() {
    let mut net = Net::new(&NET, 2, 1000);
    let order = net.transfer(0, net.wallet(1), 5, 0);
    let h = net.submit(CLIENT, &order, None).unwrap();
    // The mesh loses every copy of the first send.
    net.queue.clear();
    net.advance(5_000);
    assert_eq!(net.queue.iter().filter(|d| d.kind() == "order").count(), 0, "re-sent too early");
    net.advance(6_000); // resend_ms is 10 s by default
    assert!(net.queue.iter().filter(|d| d.kind() == "order").count() >= 4, "the order is sent again");
    assert!(net.run().is_empty());
    let st = net.control(CLIENT, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "certified");
    // Once certified it is not sent any more.
    net.advance(30_000);
    assert_eq!(net.queue.iter().filter(|d| d.kind() == "order").count(), 0);
}

#[test]
fn an_order_resubmitted_elsewhere_gets_its_certificate_back() {
    let mut net = Net::new(&NET, 2, 1000);
    let order = net.transfer(0, net.wallet(1), 5, 0);
    net.submit(CLIENT, &order, None).unwrap();
    assert!(net.run().is_empty());
    // The wallet lost track and asks the other client node.
    let h = net.submit(HOME, &order, None).unwrap();
    assert!(net.run().is_empty());
    let st = net.control(HOME, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "certified", "{st}");
    for a in net.authorities() {
        assert_eq!(net.balance(a, &net.wallet(0)), (995, 1));
    }
}

#[test]
fn a_certificate_ahead_of_the_sequence_waits_for_the_missing_one() {
    let mut net = Net::new(&NET, 2, 1000);
    let (alice, bob) = (net.wallet(0), net.wallet(1));
    let lagging = 3;
    // Sequence 0: authority 3 never hears the confirmation.
    let o0 = net.transfer(0, bob, 10, 0);
    net.submit(CLIENT, &o0, None).unwrap();
    net.run_where(|d| !(d.to == lagging && d.kind() == "confirmation"));
    let missed: Vec<_> =
        net.sent.iter().filter(|d| d.to == lagging && d.kind() == "confirmation").cloned().collect();
    assert_eq!(missed.len(), 1);
    assert_eq!(net.balance(lagging, &alice), (1000, 0));
    // Sequence 1: authority 3 refuses to vote (sequence ahead), the others
    // certify. The client answers the refusal with the certificate 3 lacks
    // (held back here, to see the wait).
    let o1 = net.transfer(0, bob, 20, 1);
    let h1 = net.submit(CLIENT, &o1, None).unwrap();
    let catch_up = |d: &Delivery| d.to == lagging && d.kind() == "confirmation" && d.destination != GROUP;
    net.run_only(|d| !catch_up(d));
    let st = net.control(CLIENT, "transfer_status", json!({"order_hash": h1})).unwrap();
    assert_eq!(st["state"], "certified", "{st}");
    let s = net.status(lagging);
    assert_eq!(s["refusals"]["sequence_ahead"], 1, "{s}");
    assert_eq!(s["counters"]["certificates_waiting"], 1, "{s}");
    assert_eq!(net.balance(lagging, &alice), (1000, 0), "the certificate for 1 waits");
    net.audit(lagging);
    // The catch-up arrives: both apply, in order.
    let held: Vec<Delivery> = net.queue.drain(..).collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].payload, missed[0].payload, "the client sends the missing certificate");
    net.deliver(&held[0]).unwrap();
    assert_eq!(net.balance(lagging, &alice), (970, 2));
    assert_eq!(net.balance(lagging, &bob), (1030, 0));
    let s = net.status(lagging);
    assert_eq!(s["counters"]["certificates_waiting"], 0, "{s}");
    assert_eq!(s["counters"]["certificates_applied"], 2, "{s}");
    net.audit(lagging);
    // The original confirmation, late: a replay.
    net.deliver(&missed[0]).unwrap();
    assert_eq!(net.status(lagging)["counters"]["certificates_applied"], 2);
}

#[test]
fn a_payment_can_spend_what_was_just_received() {
    let mut net = Net::new(&NET, 3, 100);
    let (alice, bob, carol) = (net.wallet(0), net.wallet(1), net.wallet(2));
    net.submit(CLIENT, &net.transfer(0, bob, 100, 0), None).unwrap();
    net.run();
    net.submit(CLIENT, &net.transfer(1, carol, 200, 0), None).unwrap();
    net.run();
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (0, 1));
        assert_eq!(net.balance(a, &bob), (0, 1));
        assert_eq!(net.balance(a, &carol), (300, 0));
        net.audit(a);
    }
    // Alice has nothing left: refused by everyone.
    let h = net.submit(CLIENT, &net.transfer(0, bob, 1, 1), None).unwrap();
    net.run();
    let st = net.control(CLIENT, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "refused", "{st}");
    assert_eq!(st["reason"], "insufficient_balance");
    let h = net.submit(CLIENT, &net.transfer(2, alice, 300, 0), None).unwrap();
    net.run();
    let st = net.control(CLIENT, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "certified");
    // History records every application on an authority.
    let hist = net.control(0, "history", json!({})).unwrap();
    let applied =
        hist["events"].as_array().unwrap().iter().filter(|e| e["event"] == "certificate_applied").count();
    assert_eq!(applied, 3, "{hist}");
}
