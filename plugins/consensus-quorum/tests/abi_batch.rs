//! The plugin's ABI 1.1 entry points, through the real host and LMDB: one
//! `on_bundles` call (with `prepare_bundles` run ahead on another thread,
//! as a host does while it commits the previous batch) leaves exactly the
//! tables, results and emitted bundles that one `on_bundle` call per bundle
//! leaves.

mod common;

use common::{Delivery, GROUP, Kind, Net};
use meshpay_abi::BundleInfo;
use meshpay_consensus_quorum::PLUGIN_ID;
use meshpay_host::HostAction;

use Kind::{Authority, Client};

fn info(d: &Delivery) -> BundleInfo<'_> {
    d.info(b"id")
}

/// `prepare` on a worker thread (joined), then `items` to node `i` in one
/// `on_bundles` call in one batch, committed. Returns the per-bundle
/// results and the payloads emitted, sorted.
fn batched(net: &mut Net, i: usize, prepare: &[Delivery], items: &[Delivery]) -> (Vec<bool>, Vec<Vec<u8>>) {
    let node = &mut net.nodes[i];
    let plugin = node.plugin.as_mut().expect("running");
    assert!(plugin.has_on_bundles() && plugin.preparer().is_active());
    let preparer = plugin.preparer();
    let ahead: Vec<Delivery> = prepare.to_vec();
    std::thread::spawn(move || preparer.prepare_bundles(&ahead.iter().map(info).collect::<Vec<_>>()))
        .join()
        .unwrap()
        .expect("prepare_bundles");
    let store = node.store.as_ref().unwrap();
    let mut batch = store.batch().unwrap();
    let mut call = batch.plugin_call(PLUGIN_ID);
    let bundles: Vec<BundleInfo<'_>> = items.iter().map(info).collect();
    let results = plugin.on_bundles(&mut call, &bundles).expect("no failure of the whole call");
    call.finish(true).unwrap();
    batch.commit().unwrap();
    let mut emitted: Vec<Vec<u8>> = plugin
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            HostAction::EmitBundle { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    emitted.sort();
    (results.iter().map(Result::is_ok).collect(), emitted)
}

/// What node `i` emitted (through `Net::deliver`) since `since`
/// deliveries, sorted. (Votes and refusals go back to the client node
/// alone: one delivery each.)
fn emitted_by(net: &Net, i: usize, since: usize) -> Vec<Vec<u8>> {
    let source = net.nodes[i].endpoint();
    let mut out: Vec<Vec<u8>> =
        net.sent[since..].iter().filter(|d| d.source == source).map(|d| d.payload.clone()).collect();
    out.sort();
    out
}

#[test]
fn on_bundles_through_the_abi_does_what_on_bundle_per_bundle_does() {
    let kinds = [Authority, Authority, Authority, Authority, Client];
    // Two identical networks (same keys, same configs): authority 0 of one
    // gets one call per bundle, its twin in the other one call in all.
    let mut single = Net::new(&kinds, 24, 1000);
    let mut twin = Net::new(&kinds, 24, 1000);
    assert_eq!(single.dump(0), twin.dump(0));

    // Orders of 20 wallets, plus a duplicate, a mis-signed one, junk, and a
    // second order for a slot already voted (a double spend).
    for w in 0..20 {
        let o = single.transfer(w, single.wallet(23), 10 + w as u64, 0);
        single.submit(4, &o, None).unwrap();
    }
    let conflicting = single.transfer(3, single.wallet(22), 1, 0);
    single.submit(4, &conflicting, None).unwrap();
    let mut to_0: Vec<Delivery> = single.queue.iter().filter(|d| d.to == 0).cloned().collect();
    to_0.insert(5, to_0[2].clone());
    let mut bad = to_0[7].clone();
    let n = bad.payload.len();
    bad.payload[n - 1] ^= 1;
    to_0.insert(8, bad);
    let client = single.nodes[4].endpoint();
    to_0.insert(11, Delivery { to: 0, source: client, destination: GROUP.into(), payload: b"junk".to_vec() });

    let since = single.sent.len();
    let one_by_one: Vec<bool> = to_0.iter().map(|d| single.deliver(d).is_ok()).collect();
    let (ok, emitted) = batched(&mut twin, 0, &to_0[..12], &to_0);
    assert_eq!(ok, one_by_one, "per-bundle results differ");
    assert_eq!(ok.iter().filter(|x| !**x).count(), 2, "the mis-signed order and the junk");
    assert_eq!(emitted.len(), 22, "21 votes (one a resend) and one refusal");
    assert_eq!(emitted, emitted_by(&single, 0, since), "emitted bundles differ");
    assert_eq!(twin.dump(0), single.dump(0), "tables differ after the orders");

    // Certificates: the network finishes; the twin gets every confirmation
    // authority 0 got, and a replay, in one call.
    single.queue.retain(|d| d.to != 0 || d.kind() != "order");
    single.run();
    let mut confirmations: Vec<Delivery> =
        single.sent.iter().filter(|d| d.to == 0 && d.kind() == "confirmation").cloned().collect();
    assert_eq!(confirmations.len(), 20);
    confirmations.push(confirmations[0].clone());
    let (ok, emitted) = batched(&mut twin, 0, &confirmations[..10], &confirmations);
    assert!(ok.iter().all(|x| *x), "{ok:?}");
    assert!(emitted.is_empty());
    assert_eq!(twin.dump(0), single.dump(0), "tables differ after the certificates");
    twin.audit(0); // asserts conservation
}
