//! The UDP transport on real sockets: two network namespaces joined by a
//! veth pair (created here), one plugin instance in each, driven through the
//! real `meshpay_host` by the test host in `lab/`.
//!
//! Needs root (network namespaces), so these are slow-suite tests:
//! `cargo test -p meshpay-transport-udp --test netns -- --ignored` (and
//! `tests/run.sh` without `--fast`). When the kernel or the privileges refuse
//! `ip netns add`, each test prints why and passes without running: that is
//! the only skip.

use meshpay_tests::lab;

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab::{Event, Node, Pair, Recorder};
use meshpay_abi::{MP_ERR_INVALID, MP_ERR_NOT_FOUND};
use meshpay_host::{
    CallError, HostError, HostServices, InstanceId, InstanceLabel, Level, Plugin, TransportEvents,
};
use meshpay_transport_udp::wire::{BeaconRepr, FragmentRepr};

const WAIT: Duration = Duration::from_secs(10);
const MIB: usize = 1 << 20;

/// The namespaces, or None (after saying why) if the kernel refuses them.
fn pair() -> Option<Pair> {
    match Pair::new() {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("SKIPPED: network namespaces are not available here ({e}); run as root on Linux");
            None
        }
    }
}

fn config(extra: serde_json::Value) -> String {
    let mut c = serde_json::json!({"interfaces": ["mesh0"], "beacon_interval_ms": 100});
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c.to_string()
}

/// How node x is named by its neighbour: its link-local address on mesh0.
fn ll_name(pair: &Pair, ns: &str) -> String {
    let ip: Ipv6Addr = pair.link_local(ns).expect("a link-local address").parse().unwrap();
    format!("[{ip}%mesh0]:4556")
}

/// Deterministic test data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Nodes a and b, up on each other; returns them with their names as seen
/// by the other.
fn linked(pair: &Pair, extra: serde_json::Value) -> (Node, Node, String, String) {
    let a = Node::spawn(&pair.a, &config(extra.clone())).expect("node a");
    let b = Node::spawn(&pair.b, &config(extra)).expect("node b");
    let (a_name, b_name) = (ll_name(pair, &pair.a), ll_name(pair, &pair.b));
    assert!(a.recorder.wait(WAIT, |e| lab::up_peers(e) == [b_name.clone()]), "a: {:?}", a.recorder.events());
    assert!(b.recorder.wait(WAIT, |e| lab::up_peers(e) == [a_name.clone()]), "b: {:?}", b.recorder.events());
    (a, b, a_name, b_name)
}

/// Sends `frames` from `from` to `peer` and waits until `to` has them all
/// from `from_name`; returns what arrived.
fn carry(from: &Node, peer: &str, to: &Node, from_name: &str, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let before = to.recorder.frames_from(from_name).len();
    for f in frames {
        from.send(peer, f).unwrap_or_else(|e| panic!("send of {} bytes: {e}", f.len()));
    }
    let want = before + frames.len();
    let arrived = to.recorder.wait(WAIT, |_| to.recorder.frames_from(from_name).len() >= want);
    let got = to.recorder.frames_from(from_name);
    assert!(
        arrived,
        "{} of {} frames arrived; stats {:?}",
        got.len() - before,
        frames.len(),
        to.recorder.last_stats()
    );
    got[before..].to_vec()
}

#[test]
#[ignore = "slow: network namespaces"]
fn peers_discover_each_other_over_ipv6_link_local_multicast() {
    let Some(pair) = pair() else { return };
    let (a, b, a_name, b_name) = linked(&pair, serde_json::json!({}));
    for (node, peer) in [(&a, &b_name), (&b, &a_name)] {
        let events = node.recorder.events();
        assert_eq!(events[0], Event::Up { peer: peer.clone(), mtu: MIB as u32 }, "{events:?}");
    }
    // Exactly one up each (no duplicates from repeated beacons, no ghost
    // peer from our own beacons).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.recorder.events().len(), 1, "{:?}", a.recorder.events());
}

#[test]
#[ignore = "slow: network namespaces"]
fn peers_discover_each_other_over_ipv4_broadcast() {
    let Some(pair) = pair() else { return };
    pair.add_ipv4().unwrap();
    let extra = serde_json::json!({"ipv6": false, "ipv4_broadcast": true});
    let a = Node::spawn(&pair.a, &config(extra.clone())).unwrap();
    let b = Node::spawn(&pair.b, &config(extra)).unwrap();
    assert!(a.recorder.wait(WAIT, |e| lab::up_peers(e) == ["10.77.0.2:4556"]), "{:?}", a.recorder.events());
    assert!(b.recorder.wait(WAIT, |e| lab::up_peers(e) == ["10.77.0.1:4556"]), "{:?}", b.recorder.events());
    let frames = vec![data(1, 1), data(70_000, 2)];
    assert_eq!(carry(&a, "10.77.0.2:4556", &b, "10.77.0.1:4556", &frames), frames);
}

/// Waits for a stats line (logged on beacon ticks) where `ok` holds.
fn stats_where(node: &Node, ok: impl Fn(&HashMap<String, u64>) -> bool) -> HashMap<String, u64> {
    let deadline = Instant::now() + WAIT;
    while !ok(&node.recorder.last_stats()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    node.recorder.last_stats()
}

#[test]
#[ignore = "slow: network namespaces"]
fn a_neighbour_heard_over_ipv6_and_ipv4_is_one_peer() {
    let Some(pair) = pair() else { return };
    pair.add_ipv4().unwrap();
    let extra = serde_json::json!({"ipv6": true, "ipv4_broadcast": true});
    let a = Node::spawn(&pair.a, &config(extra.clone())).unwrap();
    let b = Node::spawn(&pair.b, &config(extra)).unwrap();
    let (a_name, b_name) = (ll_name(&pair, &pair.a), ll_name(&pair, &pair.b));
    // Both kinds of beacon arrive (for six intervals); the instance is one
    // peer, at its IPv6 address, on both sides, and stays so.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(a.recorder.up_peers(), std::slice::from_ref(&b_name), "{:?}", a.recorder.events());
    assert_eq!(b.recorder.up_peers(), std::slice::from_ref(&a_name), "{:?}", b.recorder.events());
    let frames = vec![data(3000, 7)];
    assert_eq!(carry(&a, &b_name, &b, &a_name, &frames), frames);
    assert_eq!(carry(&b, &a_name, &a, &b_name, &frames), frames);
    assert_eq!(a.recorder.up_peers(), [b_name], "no second peer from the frames");
    // The IPv4 beacons were heard, and ignored as the same instance (the
    // stats line comes with the tick after the frames).
    for node in [&a, &b] {
        let stats = stats_where(node, |s| s.get("rx_frames").copied().unwrap_or(0) >= 1);
        assert!(stats["alias_beacons"] >= 3, "{stats:?}");
    }
}

fn frames_arrive_byte_exact(extra: serde_json::Value, offload: bool) {
    let Some(pair) = pair() else { return };
    let (a, b, a_name, b_name) = linked(&pair, extra);
    let frames: Vec<Vec<u8>> =
        [1, 1400, 1436, 1437, 64 * 1024, MIB].iter().enumerate().map(|(i, &n)| data(n, i as u64)).collect();
    assert_eq!(carry(&a, &b_name, &b, &a_name, &frames), frames);
    assert_eq!(carry(&b, &a_name, &a, &b_name, &frames), frames, "and back");
    // A burst of small frames of one size (one GSO train each 64) and of
    // mixed sizes.
    let burst: Vec<Vec<u8>> =
        (0..2000).map(|i| data(if i % 3 == 0 { 200 } else { 180 + i % 50 }, i as u64)).collect();
    let mut got = carry(&a, &b_name, &b, &a_name, &burst);
    let mut want = burst.clone();
    got.sort();
    want.sort();
    assert!(got == want, "the burst arrived altered");
    // Too large for the link: refused, naming the size.
    let e = a.send(&b_name, &data(MIB + 1, 9)).unwrap_err();
    assert_eq!(e.status(), Some(MP_ERR_INVALID), "{e}");
    let e = a.send("[fe80::99%mesh0]:4556", b"x").unwrap_err();
    assert_eq!(e.status(), Some(MP_ERR_NOT_FOUND), "{e}");
    // The offloads were used (or not), and nothing was dropped.
    let sent = stats_where(&a, |s| s.get("tx_frames").copied().unwrap_or(0) >= 2000 + 6);
    let got = stats_where(&b, |s| s.get("rx_frames").copied().unwrap_or(0) >= 2000 + 6);
    assert_eq!(sent["tx_trains"] > 0, offload, "GSO trains sent: {sent:?}");
    assert_eq!(got["rx_trains"] > 0, offload, "GRO trains received: {got:?}");
    for stats in [&sent, &got] {
        let drops: u64 = stats.iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v).sum();
        assert_eq!(drops, 0, "{stats:?}");
    }
}

#[test]
#[ignore = "slow: network namespaces"]
fn frames_arrive_byte_exact_with_gso_and_gro() {
    frames_arrive_byte_exact(serde_json::json!({}), true);
}

#[test]
#[ignore = "slow: network namespaces"]
fn frames_arrive_byte_exact_without_gso_and_gro() {
    frames_arrive_byte_exact(serde_json::json!({"gso": false, "gro": false}), false);
}

#[test]
#[ignore = "slow: network namespaces"]
fn a_silent_peer_is_reported_down_within_the_timeout_and_up_when_it_returns() {
    let Some(pair) = pair() else { return };
    let (a, b, a_name, b_name) = linked(&pair, serde_json::json!({"peer_timeout_ms": 350}));
    let stopped = Instant::now();
    b.call(|ctx| ctx.transport().stop()).unwrap();
    assert!(b.recorder.wait(WAIT, |e| lab::up_peers(e).is_empty()), "stop reports b's peers down");
    let down = |e: &[Event]| e.iter().any(|e| *e == Event::Down { peer: b_name.clone() });
    assert!(a.recorder.wait(WAIT, down), "a never reported b down: {:?}", a.recorder.events());
    let at = a.recorder.timed_events().iter().find(|(_, e)| down(std::slice::from_ref(e))).unwrap().0;
    let silent = at.duration_since(stopped);
    // b's last beacon left at most 110 ms before it stopped (interval 100 ms,
    // +10% jitter); a must wait out the timeout from there, and not much more.
    assert!(silent >= Duration::from_millis(350 - 110), "down after only {silent:?} of silence");
    assert!(silent <= Duration::from_millis(350 + 400), "down only after {silent:?} (timeout 350 ms)");

    let returned = Instant::now();
    b.call(|ctx| ctx.transport().start()).unwrap();
    assert!(a.recorder.wait(WAIT, |e| lab::up_peers(e) == [b_name.clone()]), "{:?}", a.recorder.events());
    assert!(b.recorder.wait(WAIT, |e| lab::up_peers(e) == [a_name.clone()]), "{:?}", b.recorder.events());
    assert!(returned.elapsed() < Duration::from_secs(2), "up again only after {:?}", returned.elapsed());
    let frames = vec![data(5000, 3)];
    assert_eq!(carry(&b, &a_name, &a, &b_name, &frames), frames);
}

#[test]
#[ignore = "slow: network namespaces"]
fn a_restarted_peer_is_reported_down_and_up_at_once() {
    let Some(pair) = pair() else { return };
    // A long timeout: the down must come from the new nonce, not from silence.
    let (a, b, a_name, b_name) = linked(&pair, serde_json::json!({"peer_timeout_ms": 5000}));
    let before = a.recorder.events().len();
    let restarted = Instant::now();
    // A new instance, without `stop`: a crash. (Retried briefly: while
    // another test's thread forks `ip`, the child holds a copy of the old
    // socket until it execs, and the port is still taken.)
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match b.call(|ctx| ctx.create_and_start()) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => eprintln!("restart: {e}; retrying"),
            Err(e) => panic!("restart: {e}: {:?}", b.recorder.logs()),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let want = [Event::Down { peer: b_name.clone() }, Event::Up { peer: b_name.clone(), mtu: MIB as u32 }];
    assert!(a.recorder.wait(WAIT, |e| e.len() >= before + 2), "{:?}", a.recorder.events());
    assert_eq!(a.recorder.events()[before..before + 2], want);
    assert!(restarted.elapsed() < Duration::from_secs(2), "took {:?}", restarted.elapsed());
    // The new instance and a carry frames both ways.
    assert!(b.recorder.wait(WAIT, |e| lab::up_peers(e) == [a_name.clone()]));
    let frames = vec![data(100_000, 4)];
    assert_eq!(carry(&a, &b_name, &b, &a_name, &frames), frames);
    assert_eq!(carry(&b, &a_name, &a, &b_name, &frames), frames);
}

#[test]
#[ignore = "slow: network namespaces"]
fn static_peers_link_without_group_beacons() {
    let Some(pair) = pair() else { return };
    let (a_ll, b_ll) = (pair.link_local(&pair.a).unwrap(), pair.link_local(&pair.b).unwrap());
    // No interfaces, no group beacons: each knows the other by configuration.
    let a_cfg = serde_json::json!({"static_peers": [format!("{b_ll}%mesh0")], "beacon_interval_ms": 100});
    let b_cfg =
        serde_json::json!({"static_peers": [format!("[{a_ll}%mesh0]:4556")], "beacon_interval_ms": 100});
    let a = Node::spawn(&pair.a, &a_cfg.to_string()).unwrap();
    let b = Node::spawn(&pair.b, &b_cfg.to_string()).unwrap();
    let (a_name, b_name) = (ll_name(&pair, &pair.a), ll_name(&pair, &pair.b));
    assert!(a.recorder.wait(WAIT, |e| lab::up_peers(e) == [b_name.clone()]), "{:?}", a.recorder.events());
    assert!(b.recorder.wait(WAIT, |e| lab::up_peers(e) == [a_name.clone()]), "{:?}", b.recorder.events());
    let frames = vec![data(64 * 1024, 5)];
    assert_eq!(carry(&a, &b_name, &b, &a_name, &frames), frames);
}

/// A socket in `ns` (on its own thread) that sends `datagrams` to `to`
/// from `ports` different source ports.
fn hostile(ns: &str, to: SocketAddr, ports: usize, datagrams: Vec<Vec<u8>>) {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        lab::enter_netns(&ns).unwrap();
        let sockets: Vec<UdpSocket> = (0..ports).map(|_| UdpSocket::bind("[::]:0").unwrap()).collect();
        for (i, d) in datagrams.iter().enumerate() {
            // A full socket buffer only loses garbage; pace a little.
            let _ = sockets[i % ports].send_to(d, to);
            if i % 256 == 255 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    })
    .join()
    .unwrap();
}

fn fragment(frame_id: u32, index: u16, count: u16, total_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 16 + payload.len()];
    FragmentRepr { frame_id, index, count, total_len }.emit(&mut d);
    d[16..].copy_from_slice(payload);
    d
}

#[test]
#[ignore = "slow: network namespaces"]
fn garbage_and_forged_fragments_are_dropped_and_counted_without_breaking_honest_traffic() {
    let Some(pair) = pair() else { return };
    let (a, b, a_name, b_name) = linked(&pair, serde_json::json!({}));
    let a_ll: Ipv6Addr = pair.link_local(&pair.a).unwrap().parse().unwrap();
    let mesh0: u32 = pair
        .ip(&pair.b, &["-o", "link", "show", "mesh0"])
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let target = SocketAddr::V6(std::net::SocketAddrV6::new(a_ll, 4556, 0, mesh0));

    let mut junk: Vec<Vec<u8>> = Vec::new();
    for i in 0..200u64 {
        junk.push(data((i % 90) as usize, i)); // random bytes, 0 to 89 long
    }
    junk.push(b"MP\x01\x01................".to_vec()); // bad magic
    junk.push(b"mp\x09\x01................".to_vec()); // another version
    junk.push(b"mp\x01\x07................".to_vec()); // unknown type
    junk.push(b"mp\x01\x01short".to_vec()); // truncated header
    junk.push(fragment(1, 5, 5, 100, b"x")); // index past the end
    junk.push(fragment(2, 0, 2, 64 << 20, &[0; 1000])); // larger than max_frame
    junk.push(fragment(3, 0, 3, 3000, &[0; 1000])); // a duplicate...
    junk.push(fragment(3, 0, 3, 3000, &[0; 1000]));
    junk.push(fragment(4, 0, 3, 3000, &[0; 1000])); // ...and a contradiction
    junk.push(fragment(4, 1, 3, 3000, &[0; 999]));
    let mut beacon = [0u8; 20];
    BeaconRepr { nonce: 1, port: 0, flags: 0, max_frame: 0 }.emit(&mut beacon);
    junk.push(beacon.to_vec()); // a beacon with port 0
    hostile(&pair.b, target, 1, junk);
    // A flood of fragment starts claiming 1 MiB each, from 200 source ports.
    let flood: Vec<Vec<u8>> =
        (0..5000u32).map(|n| fragment(n, 0, (MIB / 1400 + 1) as u16, MIB as u32, &[0xEE; 1400])).collect();
    let flooder = {
        let ns = pair.b.clone();
        std::thread::spawn(move || hostile(&ns, target, 200, flood))
    };
    // Honest traffic meanwhile.
    let frames: Vec<Vec<u8>> = (0..20).map(|i| data(if i % 2 == 0 { 64 * 1024 } else { 1400 }, i)).collect();
    assert_eq!(carry(&b, &a_name, &a, &b_name, &frames), frames);
    flooder.join().unwrap();
    assert_eq!(carry(&b, &a_name, &a, &b_name, &frames), frames, "and after the flood");

    // The counters, from the stats line of a later beacon tick.
    let counted = |s: &HashMap<String, u64>| {
        ["drop_bad_magic", "drop_bad_version", "drop_unknown_type", "drop_truncated", "drop_bad_fragment"]
            .iter()
            .chain(&[
                "drop_bad_beacon",
                "drop_too_large",
                "drop_duplicate",
                "drop_inconsistent",
                "drop_evicted",
            ])
            .all(|k| s.get(*k).copied().unwrap_or(0) > 0)
    };
    // The kernel may drop part of the flood (a full receive queue); of what
    // arrives, every start past the strangers' 64 evicts an older one.
    let evicted = |s: &HashMap<String, u64>| s.get("drop_evicted").copied().unwrap_or(0) >= 1000;
    let deadline = Instant::now() + WAIT;
    while !(counted(&a.recorder.last_stats()) && evicted(&a.recorder.last_stats()))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = a.recorder.last_stats();
    assert!(counted(&stats), "not every kind of drop counted: {stats:?}");
    assert!(evicted(&stats), "flood starts evict each other: {stats:?}");
    // What the flood holds is bounded by the strangers' budget: two maximum
    // frames (and the honest frames are all complete by now).
    let budget = 2 * (MIB + 256 + MIB / 64) as u64;
    assert!(stats["partial_bytes"] <= budget, "{} bytes held: {stats:?}", stats["partial_bytes"]);
    // No peer was made up of the garbage.
    assert_eq!(a.recorder.up_peers(), [b_name]);
}

/// Host services for creating instances outside a namespace: nothing runs.
struct Inert(std::sync::Mutex<Vec<String>>);

impl HostServices for Inert {
    fn log(&self, _: &InstanceLabel, _: Level, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
    fn now_ms(&self) -> u64 {
        0
    }
    fn node_key(&self) -> [u8; 32] {
        [0; 32]
    }
    fn node_endpoint(&self) -> String {
        String::new()
    }
    fn sign(&self, _: &[u8]) -> [u8; 64] {
        [0; 64]
    }
    fn set_timer(&self, _: InstanceId, _: u64, _: u64) -> Result<(), HostError> {
        Ok(())
    }
    fn cancel_timer(&self, _: InstanceId, _: u64) -> bool {
        false
    }
    fn watch_fd(&self, _: InstanceId, _: i32, _: u32) -> Result<(), HostError> {
        Ok(())
    }
    fn unwatch_fd(&self, _: InstanceId, _: i32) -> Result<(), HostError> {
        Ok(())
    }
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let plugin = Plugin::builtin(meshpay_transport_udp::plugin_entry).unwrap();
    let events: Arc<dyn TransportEvents> = Arc::new(Recorder::default());
    for (config, key) in [
        ("{}", "config.interfaces"),
        (r#"{"interfaces": ["mesh0"], "prot": 4556}"#, "prot"),
        (
            r#"{"interfaces": ["mesh0"], "beacon_interval_ms": 1000, "peer_timeout_ms": 500}"#,
            "config.peer_timeout_ms",
        ),
        (r#"{"interfaces": ["mesh0"], "max_frame_bytes": 1000}"#, "config.max_frame_bytes"),
        (r#"{"static_peers": ["fe80::1"]}"#, "config.static_peers[0]"),
        ("not json", "config is not JSON"),
    ] {
        let services = Arc::new(Inert(Default::default()));
        let e = plugin.create_transport("udp", config.as_bytes(), services.clone(), events.clone()).err();
        assert!(
            matches!(e, Some(CallError::Failed { what: "create", status: MP_ERR_INVALID })),
            "{config}: {e:?}"
        );
        let log = services.0.lock().unwrap().join("\n");
        assert!(log.contains(key), "{config}: the log does not name {key}: {log}");
    }
}

#[test]
#[ignore = "slow: network namespaces"]
fn a_port_in_use_is_a_clear_start_error() {
    let Some(pair) = pair() else { return };
    let _a = Node::spawn(&pair.a, &config(serde_json::json!({}))).unwrap();
    let e =
        Node::spawn(&pair.a, &config(serde_json::json!({}))).err().expect("a second instance on port 4556");
    assert!(e.contains("cannot open UDP port 4556") && e.contains("in use"), "{e}");
}
