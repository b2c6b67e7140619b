//! Withdrawals: locked by certificate, listed at the gateway, settled by a
//! quorum of acknowledgements, or expired back to the sender; refused while
//! an authority cannot reach a quorum (heartbeats).

mod common;

use common::{Kind, Net};
use meshpay_consensus_quorum::keys::hex;
use meshpay_consensus_quorum::wire::{Order, OrderBody, OrderKind};
use serde_json::json;

use Kind::{Authority, Client, Gateway};

const NET: [Kind; 6] = [Authority, Authority, Authority, Authority, Client, Gateway];
const CLIENT: usize = 4;
const GATEWAY: usize = 5;

fn withdrawal(net: &Net, w: usize, amount: u64, sequence: u64, expiry_ms: u64) -> Order {
    let body = OrderBody {
        sender: net.wallet(w),
        sequence,
        amount,
        kind: OrderKind::Withdrawal {
            gateway: net.nodes[GATEWAY].key,
            expiry_ms,
            destination: b"DE89370400440532013000".to_vec(),
        },
    };
    net.sign(w, body)
}

fn status(net: &mut Net, h: &str) -> serde_json::Value {
    net.control(CLIENT, "transfer_status", json!({"order_hash": h})).unwrap()
}

/// Lets every authority hear every other one.
fn heartbeats(net: &mut Net) {
    net.advance(5_000);
    let errors = net.run();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_withdrawal_is_refused_without_a_reachable_quorum_then_locked_listed_and_settled() {
    let mut net = Net::new(&NET, 2, 1000);
    let alice = net.wallet(0);
    // Nobody has heard anybody yet.
    for a in net.authorities() {
        assert_eq!(net.status(a)["quorum_reachable"], false);
    }
    let order = withdrawal(&net, 0, 400, 0, 60_000);
    let h = net.submit(CLIENT, &order, None).unwrap();
    net.run();
    let st = status(&mut net, &h);
    assert_eq!(st["state"], "refused", "{st}");
    assert_eq!(st["reason"], "no_quorum");
    // Transfers do not need heartbeats.
    let t = net.submit(CLIENT, &net.transfer(1, alice, 1, 0), None).unwrap();
    net.run();
    assert_eq!(status(&mut net, &t)["state"], "certified");

    heartbeats(&mut net);
    for a in net.authorities() {
        let s = net.status(a);
        assert_eq!(s["quorum_reachable"], true, "{s}");
        assert_eq!(s["reachable_weight"], 4);
    }
    assert_eq!(net.submit(CLIENT, &order, None).unwrap(), h, "resubmitting retries the refused order");
    net.run();
    let st = status(&mut net, &h);
    assert_eq!(st["state"], "certified", "{st}");
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (601, 1));
        let audit = net.audit(a);
        assert_eq!(audit["locked"], 400, "{audit}");
    }

    // The gateway holds it for settlement.
    let list = net.control(GATEWAY, "withdrawals", json!({})).unwrap();
    let w = &list["withdrawals"][0];
    assert_eq!(w["certificate_hash"], h.as_str(), "{list}");
    assert_eq!(w["state"], "awaiting");
    assert_eq!(w["amount"], 400);
    assert_eq!(w["destination"], hex(b"DE89370400440532013000"));
    let s = net.control(GATEWAY, "settle", json!({"certificate_hash": h})).unwrap();
    assert_eq!(s["state"], "settling");
    let errors = net.run();
    assert!(errors.is_empty(), "{errors:?}");
    let list = net.control(GATEWAY, "withdrawals", json!({})).unwrap();
    assert_eq!(list["withdrawals"][0]["state"], "settled", "{list}");
    for a in net.authorities() {
        let audit = net.audit(a);
        assert_eq!((audit["locked"].as_i64(), audit["settled"].as_i64()), (Some(0), Some(400)), "{audit}");
        assert_eq!(net.balance(a, &alice), (601, 1));
    }
    // Settled funds never come back, not even after the deadline.
    net.advance(61_000);
    net.run();
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (601, 1));
        net.audit(a);
    }
    // Settling twice changes nothing.
    net.control(GATEWAY, "settle", json!({"certificate_hash": h})).unwrap();
    net.run();
    for a in net.authorities() {
        assert_eq!(net.audit(a)["settled"], 400);
    }
}

#[test]
fn an_unsettled_lock_expires_and_releases_the_funds() {
    let mut net = Net::new(&NET, 2, 1000);
    let alice = net.wallet(0);
    heartbeats(&mut net);
    let h = net.submit(CLIENT, &withdrawal(&net, 0, 300, 0, 60_000), None).unwrap();
    net.run();
    assert_eq!(status(&mut net, &h)["state"], "certified");
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (700, 1));
    }
    net.advance(30_000);
    net.run();
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (700, 1), "not yet");
    }
    net.advance(31_000);
    net.run();
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (1000, 1), "authority {a}");
        let audit = net.audit(a);
        assert_eq!(audit["locked"], 0);
        assert_eq!(net.status(a)["counters"]["locks_expired"], 1);
    }
    // Too late to settle: the authorities refuse, the gateway never gets a quorum.
    net.control(GATEWAY, "settle", json!({"certificate_hash": h})).unwrap();
    let errors = net.run();
    assert_eq!(errors.iter().filter(|e| e.contains("lock_expired")).count(), 4, "{errors:?}");
    let list = net.control(GATEWAY, "withdrawals", json!({})).unwrap();
    assert_eq!(list["withdrawals"][0]["state"], "settling", "{list}");
}

#[test]
fn an_authority_that_let_the_lock_expire_takes_the_funds_back_on_a_settlement_certificate() {
    let mut net = Net::new(&NET, 2, 1000);
    let alice = net.wallet(0);
    heartbeats(&mut net);
    let h = net.submit(CLIENT, &withdrawal(&net, 0, 300, 0, 60_000), None).unwrap();
    net.run();
    net.control(GATEWAY, "settle", json!({"certificate_hash": h})).unwrap();
    // Authority 3 never hears the claim; the others acknowledge.
    net.run_only(|d| !(d.to == 3 && d.kind() == "settle") && d.kind() != "settle-certificate");
    net.queue.retain(|d| !(d.to == 3 && d.kind() == "settle"));
    let list = net.control(GATEWAY, "withdrawals", json!({})).unwrap();
    assert_eq!(list["withdrawals"][0]["state"], "settled", "{list}");
    // 3's lock expires meanwhile.
    net.advance(61_000);
    net.run_only(|d| d.kind() != "settle-certificate" && d.kind() != "settle");
    assert_eq!(net.balance(3, &alice), (1000, 1));
    assert_eq!(net.balance(0, &alice), (700, 1));
    // The settlement certificate arrives: 3 agrees again.
    let errors = net.run();
    assert!(errors.is_empty(), "{errors:?}");
    for a in net.authorities() {
        assert_eq!(net.balance(a, &alice), (700, 1), "authority {a}");
        let audit = net.audit(a);
        assert_eq!(audit["settled"], 300, "{audit}");
    }
}

#[test]
fn an_authority_cut_off_from_the_others_refuses_withdrawals_but_votes_on_transfers() {
    let mut net = Net::new(&NET, 2, 1000);
    // Authority 0 hears no heartbeats.
    net.advance(5_000);
    net.run_where(|d| !(d.to == 0 && d.kind() == "heartbeat"));
    assert_eq!(net.status(0)["quorum_reachable"], false);
    assert_eq!(net.status(1)["quorum_reachable"], true);
    let w = net.submit(CLIENT, &withdrawal(&net, 0, 10, 0, 600_000), None).unwrap();
    net.run();
    // 1, 2 and 3 still make a quorum.
    assert_eq!(status(&mut net, &w)["state"], "certified");
    assert_eq!(net.status(0)["refusals"]["no_quorum"], 1);
    let t = net.submit(CLIENT, &net.transfer(1, net.wallet(0), 5, 0), None).unwrap();
    net.run();
    assert_eq!(status(&mut net, &t)["state"], "certified");
    assert_eq!(net.status(0)["counters"]["orders_signed"], 1, "0 signed the transfer");
    // The heard authorities age out of the window.
    net.advance(20_000);
    net.run_where(|d| d.kind() != "heartbeat");
    assert_eq!(net.status(1)["quorum_reachable"], false);
}
