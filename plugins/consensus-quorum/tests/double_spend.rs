//! Double spending: two different orders for one sequence number never
//! both get a certificate, with or without a Byzantine authority; replays
//! change nothing.

mod common;

use common::{Delivery, Kind, Net};
use meshpay_consensus_quorum::keys::hex;
use meshpay_consensus_quorum::wire::{Body, Order};
use serde_json::json;

use Kind::{Authority, Byzantine, Client};

fn is_order(d: &Delivery, o: &Order) -> bool {
    matches!(d.message(), Some(m) if m.body == Body::Order(o.clone()))
}

fn state(net: &mut Net, client: usize, h: &str) -> String {
    let st = net.control(client, "transfer_status", json!({"order_hash": h})).unwrap();
    st["state"].as_str().unwrap().to_owned()
}

#[test]
fn two_orders_for_one_slot_to_two_halves_of_the_committee_certify_neither() {
    let mut net = Net::new(&[Authority, Authority, Authority, Authority, Client, Client], 3, 1000);
    let (alice, bob, carol) = (net.wallet(0), net.wallet(1), net.wallet(2));
    let a = net.transfer(0, bob, 600, 0);
    let b = net.transfer(0, carol, 600, 0);
    let ha = net.submit(4, &a, None).unwrap();
    let hb = net.submit(5, &b, None).unwrap();
    // Order a reaches authorities 0 and 1 first, b reaches 2 and 3.
    let (first, later): (Vec<Delivery>, Vec<Delivery>) =
        net.queue.drain(..).partition(|d| if is_order(d, &a) { d.to < 2 } else { d.to >= 2 });
    net.queue.extend(first);
    net.run();
    assert_eq!(state(&mut net, 4, &ha), "pending");
    assert_eq!(state(&mut net, 5, &hb), "pending");
    // Then each reaches the other half: refused there as double spends.
    net.queue.extend(later);
    net.run();
    assert_eq!(state(&mut net, 4, &ha), "refused");
    assert_eq!(state(&mut net, 5, &hb), "refused");
    let st = net.control(4, "transfer_status", json!({"order_hash": ha})).unwrap();
    assert_eq!(st["reason"], "double_spend", "{st}");
    assert!(net.certificates.is_empty(), "no certificate may exist");
    for i in net.authorities() {
        assert_eq!(net.balance(i, &alice), (1000, 0));
        net.audit(i);
        let s = net.status(i);
        assert_eq!(s["counters"]["double_spend_attempts"], 1, "authority {i}: {s}");
        let ds = &s["double_spends"][0];
        assert_eq!(ds["account"], hex(&alice));
        assert_eq!(ds["sequence"], 0);
        let (locked, attempted) = if i < 2 { (&ha, &hb) } else { (&hb, &ha) };
        assert_eq!(ds["locked_order"], locked.as_str(), "{ds}");
        assert_eq!(ds["attempted_order"], attempted.as_str(), "{ds}");
        assert_eq!(s["refusals"]["double_spend"], 1);
        let logged = net.nodes[i].services.logs().iter().any(|(_, m)| {
            m.contains("attempted double spend")
                && m.contains(locked.as_str())
                && m.contains(attempted.as_str())
        });
        assert!(logged, "authority {i} logs both order hashes");
    }
    // The equivocating wallet froze only its own account: Bob still pays.
    let h = net.submit(4, &net.transfer(1, carol, 1, 0), None).unwrap();
    net.run();
    assert_eq!(state(&mut net, 4, &h), "certified");
}

#[test]
fn with_three_votes_one_order_wins_and_the_other_never_does() {
    let mut net = Net::new(&[Authority, Authority, Authority, Authority, Client, Client], 3, 1000);
    let (bob, carol) = (net.wallet(1), net.wallet(2));
    let a = net.transfer(0, bob, 600, 0);
    let b = net.transfer(0, carol, 600, 0);
    let ha = net.submit(4, &a, None).unwrap();
    let hb = net.submit(5, &b, None).unwrap();
    // a reaches 0, 1, 2 first; b reaches only 3 first.
    let (first, later): (Vec<Delivery>, Vec<Delivery>) =
        net.queue.drain(..).partition(|d| if is_order(d, &a) { d.to < 3 } else { d.to == 3 });
    net.queue.extend(first);
    net.queue.extend(later);
    net.run();
    assert_eq!(state(&mut net, 4, &ha), "certified");
    assert_eq!(state(&mut net, 5, &hb), "refused");
    net.assert_no_double_certificates();
    for i in net.authorities() {
        assert_eq!(net.balance(i, &bob), (1600, 0), "authority {i}");
        assert_eq!(net.balance(i, &carol), (1000, 0), "authority {i}");
        net.audit(i);
    }
}

#[test]
fn a_byzantine_authority_that_signs_everything_cannot_make_a_double_spend() {
    // Authority 3 votes for every order it sees, without any check.
    let mut net = Net::new(&[Authority, Authority, Authority, Byzantine, Client, Client], 3, 1000);
    let (alice, bob, carol) = (net.wallet(0), net.wallet(1), net.wallet(2));
    let a = net.transfer(0, bob, 600, 0);
    let b = net.transfer(0, carol, 600, 0);
    let ha = net.submit(4, &a, None).unwrap();
    let hb = net.submit(5, &b, None).unwrap();
    // The worst split for the honest: a at 0 and 1, b at 2, both at 3.
    let (first, later): (Vec<Delivery>, Vec<Delivery>) =
        net.queue.drain(..).partition(|d| d.to == 3 || if is_order(d, &a) { d.to < 2 } else { d.to == 2 });
    net.queue.extend(first);
    net.run();
    assert_eq!(state(&mut net, 4, &ha), "certified", "0, 1 and the Byzantine 3 make a quorum");
    assert_eq!(state(&mut net, 5, &hb), "pending", "2 and 3 are not a quorum");
    net.queue.extend(later);
    net.run();
    // Even replaying everything, b never gets a third honest vote.
    for d in net.sent.clone() {
        let _ = net.deliver(&d);
    }
    net.run();
    net.advance(60_000); // resends of b
    net.run();
    assert_ne!(state(&mut net, 5, &hb), "certified");
    net.assert_no_double_certificates();
    for i in net.authorities() {
        assert_eq!(net.balance(i, &alice), (400, 1), "authority {i}");
        assert_eq!(net.balance(i, &carol), (1000, 0), "authority {i}");
        net.audit(i);
    }
}

#[test]
fn replayed_orders_votes_and_certificates_change_nothing() {
    let mut net = Net::new(&[Authority, Authority, Authority, Authority, Client, Client], 2, 1000);
    let bob = net.wallet(1);
    net.submit(4, &net.transfer(0, bob, 10, 0), Some(5)).unwrap();
    net.run();
    net.submit(4, &net.transfer(0, bob, 20, 1), Some(5)).unwrap();
    net.run();
    let before: Vec<_> = (0..net.nodes.len()).map(|i| net.dump(i)).collect();
    let applied: Vec<_> = (0..4).map(|i| net.status(i)["counters"]["certificates_applied"].clone()).collect();
    // Every bundle ever sent, twice more, in reverse order.
    let history = net.sent.clone();
    for _ in 0..2 {
        for d in history.iter().rev() {
            let _ = net.deliver(d);
        }
    }
    net.run();
    for (i, b) in before.iter().enumerate() {
        assert_eq!(&net.dump(i), b, "node {i}'s tables changed");
    }
    for (i, applied) in applied.iter().enumerate() {
        assert_eq!(&net.status(i)["counters"]["certificates_applied"], applied);
        assert_eq!(net.balance(i, &bob), (1030, 0));
        net.audit(i);
    }
    let r = net.control(5, "receipts", json!({"account": hex(&bob)})).unwrap();
    assert_eq!(r["receipts"].as_array().unwrap().len(), 2, "{r}");
}
