//! Property tests over random interleavings: orders (some conflicting),
//! votes, certificates, duplicates, losses, replays, crashes and timer
//! ticks, delivered in any order to any node, with and without a Byzantine
//! authority that votes for everything. After every step, on every node:
//!
//! * money is conserved: Σ balances + Σ locked + Σ settled == genesis
//!   total, recomputed here from the raw tables (and by the plugin's own
//!   `audit` at the end);
//! * sequence numbers only grow;
//! * at most one certificate exists per (account, sequence number), on the
//!   wire and in every node's tables.
//!
//! At the end the network heals (every certificate reaches every
//! authority) and the honest authorities agree on every account.

mod common;

use std::collections::BTreeMap;

use common::{Kind, Net};
use meshpay_consensus_quorum::keys::{Hash, Key};
use meshpay_consensus_quorum::ledger::{Account, Lock, LockState};
use meshpay_consensus_quorum::wire::{Body, Message};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::json;

use Kind::{Authority, Byzantine, Client};

const WALLETS: usize = 3;
const BALANCE: u64 = 100;

#[derive(Clone, Debug)]
enum Op {
    /// A wallet signs an order for its next sequence number (as its client
    /// node knows it) plus `ahead`, and submits it.
    Submit { client: usize, wallet: usize, recipient: usize, amount: u64, ahead: u64 },
    /// A few queued bundles arrive, each picked at random.
    Deliver(Vec<Index>),
    /// One queued bundle arrives and stays queued (a duplicate comes later).
    Duplicate(Index),
    /// One queued bundle is lost.
    Lose(Index),
    /// Something sent earlier arrives again.
    Replay(Index),
    /// A queued bundle is processed but the node crashes before the commit
    /// and restarts; the bundle stays queued (the sender retransmits).
    Crash(Index),
    /// Time passes: resends, heartbeats.
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..WALLETS, 0..WALLETS, 1..=120u64, prop_oneof![4 => Just(0u64), 1 => Just(1u64)])
            .prop_map(|(client, wallet, recipient, amount, ahead)| Op::Submit { client, wallet, recipient, amount, ahead }),
        10 => prop::collection::vec(any::<Index>(), 1..8).prop_map(Op::Deliver),
        2 => any::<Index>().prop_map(Op::Duplicate),
        2 => any::<Index>().prop_map(Op::Lose),
        2 => any::<Index>().prop_map(Op::Replay),
        1 => any::<Index>().prop_map(Op::Crash),
        1 => Just(Op::Tick),
    ]
}

/// What the checks remember between steps.
#[derive(Default)]
struct Seen {
    /// (node, account) → highest next sequence number seen.
    next: BTreeMap<(usize, Key), u64>,
    /// (account, sequence) → the order hash certified for it, anywhere.
    slots: BTreeMap<(Key, u64), Hash>,
}

fn check(net: &Net, seen: &mut Seen) -> Result<(), TestCaseError> {
    for (i, node) in net.nodes.iter().enumerate() {
        if node.store.is_none() {
            continue;
        }
        let tables = net.dump(i);
        let (mut balances, mut locked, mut settled) = (0i128, 0i128, 0i128);
        for ((table, key), value) in &tables {
            match table.as_str() {
                "accounts" => {
                    let a = Account::decode(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    balances += a.balance;
                    let k: Key = key.as_slice().try_into().unwrap();
                    let last = seen.next.entry((i, k)).or_default();
                    prop_assert!(a.next_sequence >= *last, "node {i}: a sequence number went back");
                    *last = a.next_sequence;
                }
                "withdrawals" => {
                    let l = Lock::decode(value).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    match l.state {
                        LockState::Locked => locked += i128::from(l.amount),
                        LockState::Settled => settled += i128::from(l.amount),
                        LockState::Expired => {}
                    }
                }
                "certs" => {
                    let account: Key = key[..32].try_into().unwrap();
                    let seq = u64::from_be_bytes(key[32..].try_into().unwrap());
                    let h: Hash = value[..32].try_into().unwrap();
                    let first = *seen.slots.entry((account, seq)).or_insert(h);
                    prop_assert_eq!(first, h, "node {}: two certificates for one slot", i);
                }
                _ => {}
            }
        }
        prop_assert_eq!(
            balances + locked + settled,
            i128::from(WALLETS as u64 * BALANCE),
            "node {}: money",
            i
        );
    }
    for c in &net.certificates {
        let b = &c.order.body;
        let h = b.hash(&net.hash());
        let first = *seen.slots.entry((b.sender, b.sequence)).or_insert(h);
        prop_assert_eq!(first, h, "two certificates for one slot on the wire");
    }
    Ok(())
}

fn run(byzantine: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let fourth = if byzantine { Byzantine } else { Authority };
    let mut net = Net::new(&[Authority, Authority, Authority, fourth, Client, Client], WALLETS, BALANCE);
    let clients = [4usize, 5];
    let mut seen = Seen::default();
    for op in ops {
        match op {
            Op::Submit { client, wallet, recipient, amount, ahead } => {
                let c = clients[client];
                let account = net.wallet(wallet);
                let next = net
                    .control(
                        c,
                        "next_sequence",
                        json!({"account": meshpay_consensus_quorum::keys::hex(&account)}),
                    )
                    .map_err(TestCaseError::fail)?["next_sequence"]
                    .as_u64()
                    .unwrap();
                let order = net.transfer(wallet, net.wallet(recipient), amount, next + ahead);
                net.submit(c, &order, None).map_err(TestCaseError::fail)?;
            }
            Op::Deliver(picks) => {
                for i in picks {
                    if net.queue.is_empty() {
                        break;
                    }
                    let d = net.queue.remove(i.index(net.queue.len())).unwrap();
                    let _ = net.deliver(&d);
                }
            }
            Op::Duplicate(i) if !net.queue.is_empty() => {
                let d = net.queue[i.index(net.queue.len())].clone();
                let _ = net.deliver(&d);
            }
            Op::Lose(i) if !net.queue.is_empty() => {
                net.queue.remove(i.index(net.queue.len()));
            }
            Op::Replay(i) if !net.sent.is_empty() => {
                let d = net.sent[i.index(net.sent.len())].clone();
                let _ = net.deliver(&d);
            }
            Op::Crash(i) if !net.queue.is_empty() => {
                let d = net.queue[i.index(net.queue.len())].clone();
                if net.nodes[d.to].kind != Byzantine {
                    let _ = net.deliver_with(&d, false);
                    net.crash(d.to);
                    net.start(d.to).map_err(TestCaseError::fail)?;
                }
            }
            Op::Tick => net.advance(11_000),
            _ => {}
        }
        check(&net, &mut seen)?;
    }
    // Heal: everything queued arrives, then every certificate reaches every
    // authority.
    net.run();
    let certs: Vec<_> = net.certificates.clone();
    for c in certs {
        let payload = Message { committee: net.hash(), body: Body::Confirmation(c) }.to_bytes();
        net.push(net.nodes[4].endpoint(), common::GROUP.into(), payload);
    }
    net.run();
    check(&net, &mut seen)?;
    let honest: Vec<usize> = net.authorities();
    for w in 0..WALLETS {
        let account = net.wallet(w);
        let views: Vec<_> = honest.iter().map(|&a| net.balance(a, &account)).collect();
        prop_assert!(
            views.windows(2).all(|v| v[0] == v[1]),
            "authorities disagree on wallet {}: {:?}",
            w,
            views
        );
    }
    for i in 0..net.nodes.len() {
        if net.nodes[i].kind != Byzantine {
            let a = net.control(i, "audit", json!({})).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&a["conserved"], &json!(true), "node {}: {}", i, a);
        }
    }
    Ok(())
}

proptest! {
    // 16 cases of up to 70 steps each by default (each step is real LMDB
    // commits and signatures on six nodes); PROPTEST_CASES=n for more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn honest_committee_conserves_money_and_never_certifies_twice(ops in prop::collection::vec(op(), 1..70)) {
        run(false, ops)?;
    }

    #[test]
    fn one_byzantine_authority_cannot_break_the_ledger(ops in prop::collection::vec(op(), 1..70)) {
        run(true, ops)?;
    }
}
