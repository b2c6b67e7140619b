//! Crash safety of the plugin's part: a call that fails half-way leaves
//! nothing behind (the host's undo log), and a bundle delivered again after
//! a crash (the batch was never committed) is handled exactly once.

mod common;

use common::{Kind, Net};
use meshpay_consensus_quorum::env::TableId;
use meshpay_consensus_quorum::ledger::slot_key;
use serde_json::json;

use Kind::{Authority, Client};

const NET: [Kind; 6] = [Authority, Authority, Authority, Authority, Client, Client];

#[test]
fn a_call_that_fails_half_way_leaves_no_partial_state() {
    let mut net = Net::new(&NET, 2, 1000);
    let (alice, bob) = (net.wallet(0), net.wallet(1));
    let lagging = 3;
    net.submit(4, &net.transfer(0, bob, 10, 0), None).unwrap();
    net.run_where(|d| !(d.to == lagging && d.kind() == "confirmation"));
    let late: Vec<_> =
        net.sent.iter().filter(|d| d.to == lagging && d.kind() == "confirmation").cloned().collect();
    net.submit(4, &net.transfer(0, bob, 20, 1), None).unwrap();
    // (The client answers 3's sequence_ahead refusal with the missing
    // certificate: lost here, so 1 waits.)
    net.run_only(|d| !(d.to == lagging && d.kind() == "confirmation" && d.destination != common::GROUP));
    net.queue.clear();
    let waiting_key = slot_key(&alice, 1);
    let dump = net.dump(lagging);
    let waiting = dump.get(&("waiting".to_owned(), waiting_key.to_vec())).expect("sequence 1 waits").clone();

    // Damage the waiting certificate: applying 0 succeeds, then chaining 1
    // fails, after sequence 0's writes (balances, certificate, index,
    // counters, history) were made in the same call.
    net.poke(lagging, TableId::Waiting, &waiting_key, b"\x00garbage");
    let before = net.dump(lagging);
    let e = net.deliver(&late[0]).unwrap_err();
    assert!(e.contains("damaged"), "{e}");
    assert_eq!(net.dump(lagging), before, "the failed call left writes behind");
    assert_eq!(net.balance(lagging, &alice), (1000, 0));
    net.audit(lagging);

    // Repaired, the same confirmation applies both.
    net.poke(lagging, TableId::Waiting, &waiting_key, &waiting);
    net.deliver(&late[0]).unwrap();
    assert_eq!(net.balance(lagging, &alice), (970, 2));
    net.audit(lagging);
}

#[test]
fn an_order_redelivered_after_a_crash_gets_exactly_one_lock_and_the_same_vote() {
    let mut net = Net::new(&NET, 2, 1000);
    net.submit(4, &net.transfer(0, net.wallet(1), 10, 0), None).unwrap();
    let to_0 = net.queue.iter().find(|d| d.to == 0).unwrap().clone();
    net.queue.clear();
    let fresh = net.dump(0);

    // Crash before the commit: nothing of the call survives, no vote left.
    net.deliver_with(&to_0, false).unwrap();
    assert!(net.queue.is_empty());
    net.crash(0);
    net.start(0).unwrap();
    assert_eq!(net.dump(0), fresh);

    // Delivered again: the lock and the vote.
    net.deliver(&to_0).unwrap();
    let votes: Vec<_> = net.queue.drain(..).collect();
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].kind(), "vote");
    let locked = net.dump(0);
    assert_ne!(locked, fresh);

    // Committed, but the node dies before the vote leaves: the client
    // sends the order again, the same vote comes back and nothing new is
    // locked.
    net.crash(0);
    net.start(0).unwrap();
    net.deliver(&to_0).unwrap();
    let again: Vec<_> = net.queue.drain(..).collect();
    assert_eq!(again, votes, "a different vote for the same order");
    let s = net.status(0);
    assert_eq!(s["counters"]["orders_signed"], 1, "{s}");
    assert_eq!(s["counters"]["votes_resent"], 1, "{s}");
    let mut after = net.dump(0);
    let mut expected = locked;
    // Only the resend counter moved.
    after.retain(|(t, k), _| !(t == "meta" && k.starts_with(b"n.votes_resent")));
    expected.retain(|(t, k), _| !(t == "meta" && k.starts_with(b"n.votes_resent")));
    assert_eq!(after, expected);
}

#[test]
fn a_certificate_redelivered_after_a_crash_is_applied_once() {
    let mut net = Net::new(&NET, 2, 1000);
    let (alice, bob) = (net.wallet(0), net.wallet(1));
    net.submit(4, &net.transfer(0, bob, 10, 0), Some(5)).unwrap();
    net.run_where(|d| d.kind() != "confirmation");
    let confirmations: Vec<_> = net.sent.iter().filter(|d| d.kind() == "confirmation").cloned().collect();
    assert_eq!(confirmations.len(), 5, "4 authorities and the recipient's home node");
    for d in &confirmations {
        // Applied in a batch that never commits, then the node restarts.
        net.deliver_with(d, false).unwrap();
        net.crash(d.to);
        net.start(d.to).unwrap();
        // Delivered again (the sender's DTN layer retransmits), twice.
        net.deliver(d).unwrap();
        net.deliver(d).unwrap();
    }
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (990, 1));
        assert_eq!(net.balance(a, &bob), (1010, 0));
        assert_eq!(net.status(a)["counters"]["certificates_applied"], 1);
        net.audit(a);
    }
    let r =
        net.control(5, "receipts", json!({"account": meshpay_consensus_quorum::keys::hex(&bob)})).unwrap();
    assert_eq!(r["receipts"].as_array().unwrap().len(), 1);
    net.audit(5);
}

#[test]
fn a_client_that_crashes_while_gathering_votes_counts_each_vote_once() {
    let mut net = Net::new(&NET, 2, 1000);
    let h = net.submit(4, &net.transfer(0, net.wallet(1), 10, 0), None).unwrap();
    // Orders to the authorities, votes back; keep the votes.
    net.run_only(|d| d.kind() == "order");
    let votes: Vec<_> = net.queue.drain(..).collect();
    assert_eq!(votes.len(), 4);
    net.deliver_with(&votes[0], false).unwrap();
    net.crash(4);
    net.start(4).unwrap();
    net.deliver(&votes[0]).unwrap();
    net.deliver(&votes[0]).unwrap();
    net.deliver(&votes[1]).unwrap();
    let st = net.control(4, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["votes_weight"], 2, "{st}");
    net.deliver(&votes[2]).unwrap();
    let st = net.control(4, "transfer_status", json!({"order_hash": h})).unwrap();
    assert_eq!(st["state"], "certified", "{st}");
}
