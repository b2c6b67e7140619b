//! The batched path (`Core::on_bundles`, behind the ABI 1.1 `on_bundles`
//! entry point) leaves exactly the tables and emits exactly the votes the
//! one-bundle-per-call path does, refuses the same bad items, and spreads
//! its signature work over threads.

mod common;

use std::collections::BTreeMap;

use common::{Delivery, GROUP, Kind, Net, small_store};
use meshpay_consensus_quorum::PLUGIN_ID;
use meshpay_consensus_quorum::batch::Incoming;
use meshpay_consensus_quorum::config::Config;
use meshpay_consensus_quorum::direct::{DirectCrypto, DirectEnv};
use meshpay_consensus_quorum::env::TableId;
use meshpay_consensus_quorum::ledger;
use meshpay_consensus_quorum::protocol::Core;
use meshpay_host::KvStore;
use meshpay_store::Store;

use Kind::{Authority, Client};

fn dump(store: &Store) -> BTreeMap<(String, Vec<u8>), Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut batch = store.batch().unwrap();
    let mut call = batch.plugin_call(PLUGIN_ID);
    for t in TableId::ALL {
        let h = call.open(t.name()).unwrap();
        call.scan(h, &[0], &mut |k, v| {
            out.insert((t.name().to_owned(), k.to_vec()), v.to_vec());
            true
        })
        .unwrap();
    }
    call.finish(true).unwrap();
    out
}

/// Runs `items` through `Core::on_bundles` in one batch, committed.
fn run_batch(
    store: &Store,
    core: &mut Core,
    crypto: &DirectCrypto,
    items: &[Delivery],
) -> (Vec<bool>, Vec<(String, Vec<u8>)>) {
    let mut batch = store.batch().unwrap();
    let mut call = batch.plugin_call(PLUGIN_ID);
    let env = DirectEnv::open(&mut call, crypto).unwrap();
    let incoming: Vec<Incoming<'_>> =
        items.iter().map(|d| Incoming { source: &d.source, payload: &d.payload }).collect();
    let results = core.on_bundles(&env, crypto, 2, &incoming).expect("no host failure");
    let emitted = env.take_emitted().into_iter().map(|e| (e.destination, e.payload)).collect();
    drop(env);
    call.finish(true).unwrap();
    batch.commit().unwrap();
    (results.iter().map(Result::is_ok).collect(), emitted)
}

#[test]
fn a_batch_does_what_one_call_per_bundle_does() {
    let mut net = Net::new(&[Authority, Authority, Authority, Authority, Client], 24, 1000);
    // The twin of authority 0, driven directly: same key, same config.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small_store()).unwrap();
    let crypto = DirectCrypto::new(net.nodes[0].signing.clone());
    let cfg = Config::parse(&net.nodes[0].config).unwrap();
    let mut core = Core::new(
        cfg,
        crypto.public_key(),
        &format!("dtn://{}/", meshpay_consensus_quorum::keys::hex(&net.nodes[0].key)),
    )
    .unwrap();
    {
        let mut batch = store.batch().unwrap();
        let mut call = batch.plugin_call(PLUGIN_ID);
        let env = DirectEnv::open(&mut call, &crypto).unwrap();
        ledger::init(&env, core.committee()).unwrap();
        drop(env);
        call.finish(true).unwrap();
        batch.commit().unwrap();
    }
    assert_eq!(dump(&store), net.dump(0));

    // Orders of 20 wallets, plus: a duplicate, a mis-signed one, garbage,
    // and a second order for a slot already voted (a double spend).
    for w in 0..20 {
        let o = net.transfer(w, net.wallet(23), 10 + w as u64, 0);
        net.submit(4, &o, None).unwrap();
    }
    let conflicting = net.transfer(3, net.wallet(22), 1, 0);
    net.submit(4, &conflicting, None).unwrap();
    let mut to_0: Vec<Delivery> = net.queue.iter().filter(|d| d.to == 0).cloned().collect();
    let client = net.nodes[4].endpoint();
    to_0.insert(5, to_0[2].clone());
    let mut bad = to_0[7].clone();
    let n = bad.payload.len();
    bad.payload[n - 1] ^= 1;
    to_0.insert(8, bad);
    to_0.insert(
        11,
        Delivery { to: 0, source: client.clone(), destination: GROUP.into(), payload: b"junk".to_vec() },
    );

    // Half of them checked ahead, as a host would while committing the
    // previous batch (the mis-signed one is not remembered).
    let ahead: Vec<Incoming<'_>> =
        to_0[..12].iter().map(|d| Incoming { source: &d.source, payload: &d.payload }).collect();
    core.checker.prepare(&crypto, 2, &ahead);
    assert!(!core.checker.prechecked.is_empty());
    let (ok, emitted) = run_batch(&store, &mut core, &crypto, &to_0);
    assert!(core.checker.prechecked.is_empty(), "each precheck is used once");
    let mut one_by_one = Vec::new();
    for d in &to_0 {
        one_by_one.push(net.deliver(d).is_ok());
    }
    assert_eq!(ok, one_by_one, "per-item results differ");
    assert_eq!(ok.iter().filter(|x| !**x).count(), 2, "the mis-signed order and the junk");
    let votes: Vec<(String, Vec<u8>)> = net
        .queue
        .iter()
        .filter(|d| d.to == 4 && d.kind() != "order")
        .map(|d| (d.destination.clone(), d.payload.clone()))
        .collect();
    // The batch emits refusals as it goes and votes at the end: compare as sets.
    let (mut emitted, mut votes) = (emitted, votes);
    emitted.sort();
    votes.sort();
    assert_eq!(emitted.len(), 22, "21 votes (one a resend) and one refusal");
    assert_eq!(emitted, votes, "votes (and the refusal) differ");
    assert_eq!(dump(&store), net.dump(0), "tables differ after the orders");
    // Refusals are counted once, as on the single path.
    let counted: u64 = core.vol.refusals.values().sum();
    let single =
        net.status(0)["refusals"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!((counted, single), (3, 3), "{:?}", core.vol.refusals);

    // Certificates: let the network finish, then give the twin every
    // confirmation authority 0 got, in one batch.
    net.queue.retain(|d| d.to != 0 || d.kind() != "order");
    net.run();
    let confirmations: Vec<Delivery> =
        net.sent.iter().filter(|d| d.to == 0 && d.kind() == "confirmation").cloned().collect();
    assert_eq!(confirmations.len(), 20);
    let mut batch_items = confirmations.clone();
    batch_items.push(confirmations[0].clone()); // a replay within the batch
    let (ok, emitted) = run_batch(&store, &mut core, &crypto, &batch_items);
    assert!(ok.iter().all(|x| *x), "{ok:?}");
    assert!(emitted.is_empty());
    assert_eq!(dump(&store), net.dump(0), "tables differ after the certificates");
    let mut batch = store.batch().unwrap();
    let mut call = batch.plugin_call(PLUGIN_ID);
    let env = DirectEnv::open(&mut call, &crypto).unwrap();
    let audit = ledger::audit(&env).unwrap();
    assert!(audit.conserved(), "{audit:?}");
    assert_eq!(ledger::counter(&env, ledger::Counter::CertificatesApplied).unwrap(), 20);
}
