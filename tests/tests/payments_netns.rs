//! Payments end to end across real processes: every node is a `meshpay run`
//! in its own network namespace, the namespaces share Ethernet segments
//! (Linux bridges, see `Switch`), the nodes talk over the UDP transport and
//! carry the payment messages as bundles (epidemic routing), and the
//! consensus plugin `org.meshpay.consensus.quorum` keeps its ledger in each
//! node's LMDB. Wallets, payments and checks go through the `meshpay` CLI
//! and the control API, as an operator would use them.
//!
//! Four authorities of weight 1: a certificate needs the votes of three.
//!
//! Slow suite: `cargo test -p meshpay-tests --test payments_netns -- --ignored --nocapture`
//! (build first: `cargo build -p meshpay -p meshpay-tests -p meshpay-test-plugin-byzantine-so`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use meshpay_tests::*;
use serde_json::{Value, json};

const QUORUM: &str = "org.meshpay.consensus.quorum";
const AUTHORITIES: &str = "dtn://~authorities/quorum";
const BYZANTINE_LIB: &str = "meshpay_test_plugin_byzantine";

/// Plugin timings for tests: a fast tick and resends, heartbeats every
/// second.
const FAST: &str = "tick_ms = 100, resend_ms = 1000, heartbeat_ms = 1000, heartbeat_window_ms = 5000";
/// The same, with heartbeats once at start only, so that the bundles an
/// authority's plugin receives can be counted.
const QUIET: &str = "tick_ms = 100, resend_ms = 1000, heartbeat_ms = 600000, heartbeat_window_ms = 600000";

/// Message types of the plugin's wire format (README, "Messages").
const ORDER: u8 = 1;
const CONFIRMATION: u8 = 3;

// ------------------------------------------------------------ helpers

/// One lab at a time: each runs 2 to 7 nodes (debug builds) and the
/// machine may have 2 cores; in parallel they would only slow each other.
fn one_lab_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LAB.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn tohex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A wallet: its key file, account and address (`account@home node`).
#[derive(Clone, Debug)]
struct Wallet {
    file: PathBuf,
    account: String,
    address: String,
}

/// One node of a test: its directory (`meshpay.toml`, `state/`), its key,
/// and its process while it runs.
struct Member {
    name: String,
    dir: PathBuf,
    key: String,
    config: String,
    node: Option<NodeProc>,
}

impl Member {
    /// Creates the node key (`meshpay id --create`), so the committee file
    /// can name it before the first start.
    fn new(root: &Path, name: &str) -> Member {
        let mut m = Member {
            name: name.to_owned(),
            dir: root.join(name),
            key: String::new(),
            config: String::new(),
            node: None,
        };
        let out = m.cli(&["id", "--create", "--json"]);
        assert!(out.status.success(), "id --create: {}", text(&out.stderr));
        let id: Value = serde_json::from_slice(&out.stdout).unwrap();
        m.key = id["id"].as_str().unwrap().to_owned();
        m
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// A `meshpay` command against this node's state directory.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(meshpay_bin())
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .output()
            .expect("run meshpay")
    }

    /// `meshpay wallet new` (in the state directory, or `file`).
    fn new_wallet(&self, file: Option<&Path>) -> Wallet {
        let file = file.map(Path::to_path_buf).unwrap_or_else(|| self.state().join("wallet.key"));
        let out = self.cli(&["wallet", "new", "--wallet", file.to_str().unwrap()]);
        assert!(out.status.success(), "wallet new: {}", text(&out.stderr));
        let address = text(&out.stdout).trim().to_owned();
        let (account, home) = address.split_once('@').expect("address is account@home");
        assert_eq!(home, self.key, "a wallet's home is its node");
        Wallet { file, account: account.to_owned(), address }
    }

    fn start(&mut self, ns: &Netns) {
        assert!(self.node.is_none(), "{} runs already", self.name);
        self.node = Some(NodeProc::start_in(ns, &self.dir, &self.config));
    }

    fn kill9(&mut self) {
        self.node.take().expect("running").kill9();
    }

    fn stop(&mut self) {
        if let Some(n) = self.node.take() {
            assert_eq!(n.stop().code(), Some(0), "{} did not stop cleanly", self.name);
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(out.status.success(), "{}: status: {}", self.name, text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The consensus plugin's part of `meshpay status --json`.
    fn consensus_status(&self) -> Value {
        let s = self.status();
        let c = &s["consensus"]["status"];
        assert!(c.is_object(), "{}: no consensus status in {s:#}", self.name);
        c.clone()
    }

    /// A control method of the consensus plugin (`meshpay consensus`).
    fn call(&self, method: &str, body: &Value) -> Result<Value, String> {
        self.call_text(method, &body.to_string())
    }

    /// Like `call`, with the body as JSON text (for numbers `Value` cannot hold).
    fn call_text(&self, method: &str, body: &str) -> Result<Value, String> {
        let out = self.cli(&["consensus", method, body]);
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).expect("consensus prints JSON"))
        } else {
            Err(text(&out.stderr))
        }
    }

    fn must(&self, method: &str, body: &Value) -> Value {
        self.call(method, body).unwrap_or_else(|e| panic!("{}: consensus {method} {body}: {e}", self.name))
    }

    /// `(balance, next_sequence)` of an account as this node knows it.
    fn balance(&self, account: &str) -> (i64, u64) {
        let out = self.cli(&["balance", "--account", account, "--json"]);
        assert!(out.status.success(), "{}: balance: {}", self.name, text(&out.stderr));
        let b: Value = serde_json::from_slice(&out.stdout).unwrap();
        (b["balance"].as_i64().unwrap(), b["next_sequence"].as_u64().unwrap())
    }

    /// The whole history table.
    fn history(&self) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        loop {
            let r = self.must("history", &json!({"from": all.len(), "limit": 1000}));
            let events = r["events"].as_array().unwrap().clone();
            if events.is_empty() {
                return all;
            }
            all.extend(events);
        }
    }

    fn assert_conserved(&self) -> Value {
        let a = self.must("audit", &json!({}));
        assert_eq!(a["conserved"], true, "{}: money not conserved: {a:#}", self.name);
        a
    }

    fn counter(&self, name: &str) -> u64 {
        self.status()["counters"][name].as_u64().unwrap_or_else(|| panic!("no node counter {name}"))
    }

    fn neighbours(&self) -> usize {
        self.status()["neighbours"].as_array().map_or(0, Vec::len)
    }

    /// `meshpay pay`: Ok(its JSON) once certified, Err(stderr) otherwise.
    fn pay(&self, wallet: &Wallet, to: &str, amount: u64, timeout_s: u64) -> Result<Value, String> {
        let (amount, timeout) = (amount.to_string(), timeout_s.to_string());
        let out = self.cli(&[
            "pay",
            "--wallet",
            wallet.file.to_str().unwrap(),
            "--to",
            to,
            "--amount",
            &amount,
            "--timeout",
            &timeout,
            "--json",
        ]);
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).expect("pay --json prints JSON"))
        } else {
            Err(text(&out.stderr))
        }
    }

    /// Sends a raw payload as a bundle (service `service` of this node).
    fn send(&self, to: &str, service: &str, payload: &[u8]) {
        let file = self.dir.join(format!("payload-{service}-{}", payload.len()));
        std::fs::write(&file, payload).unwrap();
        let out = self.cli(&["send", "--to", to, "--service", service, file.to_str().unwrap()]);
        assert!(out.status.success(), "{}: send: {}", self.name, text(&out.stderr));
    }

    /// The pending order of `account` this (client) node holds, if any.
    fn pending_order(&self, account: &str) -> Option<(String, u64)> {
        let r = self.must("next_sequence", &json!({"account": account}));
        let p = r["pending"].as_array()?.first()?.clone();
        Some((p["order_hash"].as_str()?.to_owned(), p["sequence"].as_u64()?))
    }

    fn transfer_status(&self, order_hash: &str) -> Value {
        self.must("transfer_status", &json!({"order_hash": order_hash}))
    }
}

/// The last lines of each member's log, for failure messages.
fn logs(members: &[&Member]) -> String {
    let mut out = String::new();
    for m in members {
        let log = m.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(25)..];
        out.push_str(&format!("--- {} ({}):\n{}\n", m.name, m.key, tail.join("\n")));
    }
    out
}

/// Polls `f` (every 100 ms) until it returns `Some`; panics after `secs`
/// with `what` and the members' logs.
fn eventually<T>(what: &str, secs: u64, members: &[&Member], mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= end {
            panic!("timed out after {secs} s waiting for {what}\n{}", logs(members));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_neighbours(m: &Member, n: usize, all: &[&Member]) {
    eventually(&format!("{} to see {n} neighbour(s)", m.name), 30, all, || {
        (m.neighbours() >= n).then_some(())
    });
}

/// The committee file: the authorities (key, name) and genesis balances.
fn committee_toml(authorities: &[&Member], genesis: &[(&str, u64)]) -> String {
    let mut s = String::new();
    for a in authorities {
        s.push_str(&format!("[[authority]]\nkey = \"{}\"\nname = \"{}\"\n\n", a.key, a.name));
    }
    for (account, balance) in genesis {
        s.push_str(&format!("[[genesis]]\naccount = \"{account}\"\nbalance = {balance}\n\n"));
    }
    s
}

/// A node's config: UDP transport on `interfaces`, epidemic routing, and
/// the consensus plugin (`plugin`: built-in id or `.so` path) in `role`.
fn node_config(
    name: &str,
    interfaces: &[&str],
    plugin: &str,
    role: &str,
    timing: &str,
    committee: &Path,
) -> String {
    let ifs = interfaces.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "[node]\nname = \"{name}\"\nlog_level = \"info\"\n\n[bundles]\nretransmit_ms = 500\n\n\
         [[transport]]\nname = \"udp\"\nplugin = \"org.meshpay.transport.udp\"\n\
         config = {{ interfaces = [{ifs}], beacon_interval_ms = 200, peer_timeout_ms = 1500 }}\n\n\
         [routing]\nplugin = \"org.meshpay.routing.epidemic\"\n\n\
         [consensus]\nplugin = \"{plugin}\"\nconfig = {{ role = \"{role}\", {timing} }}\n\
         config_files = {{ committee = \"{}\" }}\n",
        committee.display()
    )
}

/// A payload of the plugin's wire format: `version 1 | type | committee | body`.
fn message(kind: u8, committee: &str, body: &[u8]) -> Vec<u8> {
    [&[1u8, kind][..], &unhex(committee), body].concat()
}

/// The encoded order inside encoded certificate bytes (`order | count u16 |
/// (authority | signature)*`).
fn order_of_certificate(cert: &[u8], votes: usize) -> Vec<u8> {
    cert[..cert.len() - 2 - 96 * votes].to_vec()
}

/// What a ledger node's tables show about `account`: `(balance,
/// next_sequence, history length, certificates applied)`.
fn snapshot(m: &Member, accounts: &[&str]) -> (Vec<(i64, u64)>, usize, u64) {
    let balances = accounts.iter().map(|a| m.balance(a)).collect();
    let applied = m.consensus_status()["counters"]["certificates_applied"].as_u64().unwrap();
    (balances, m.history().len(), applied)
}

/// Order hashes any node holds a certificate for at (`account`, `sequence`):
/// applied, waiting or conflicting in its history, or certified among the
/// orders it submitted.
fn certificates_at(m: &Member, account: &str, sequence: u64, submitted: &[&str]) -> BTreeSet<String> {
    let mut found: BTreeSet<String> = m
        .history()
        .iter()
        .filter(|e| e["account"] == account && e["sequence"] == sequence)
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some("certificate_applied" | "certificate_waiting" | "conflicting_certificate")
            )
        })
        .map(|e| e["order_hash"].as_str().unwrap().to_owned())
        .collect();
    for h in submitted {
        if let Ok(st) = m.call("transfer_status", &json!({"order_hash": h}))
            && st["state"] == "certified"
        {
            found.insert((*h).to_owned());
        }
    }
    let conflicting = m.consensus_status()["counters"]["conflicting_certificates"].as_u64().unwrap();
    assert_eq!(conflicting, 0, "DOUBLE SPEND: {} received conflicting certificates", m.name);
    found
}

// ------------------------------------------------------------ 1. relay

/// Two segments: S1 holds authorities a1, a2, clients c1, c2 and the relay;
/// S2 holds a3, a4 and the relay's second interface. The relay (role
/// `relay`: no ledger) is the only path to a3 and a4, so no certificate can
/// form without it.
#[test]
#[ignore = "slow: network namespaces"]
fn a_payment_across_a_relay_is_certified_received_and_applied_on_every_authority() {
    let _lab = one_lab_at_a_time();
    let Some(ns) = namespaces_or_skip(&["p1a1", "p1a2", "p1a3", "p1a4", "p1c1", "p1c2", "p1r"]) else {
        return;
    };
    let s1 = Switch::new("p1s1").unwrap();
    let s2 = Switch::new("p1s2").unwrap();
    for n in [&ns[0], &ns[1], &ns[4], &ns[5], &ns[6]] {
        s1.plug(n, "eth0").unwrap();
    }
    s2.plug(&ns[6], "eth1").unwrap();
    s2.plug(&ns[2], "eth0").unwrap();
    s2.plug(&ns[3], "eth0").unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut m: Vec<Member> =
        ["a1", "a2", "a3", "a4", "c1", "c2", "relay"].iter().map(|n| Member::new(root, n)).collect();
    let w1 = m[4].new_wallet(None);
    let w2 = m[5].new_wallet(None);
    let committee = root.join("committee.toml");
    std::fs::write(
        &committee,
        committee_toml(&[&m[0], &m[1], &m[2], &m[3]], &[(&w1.account, 1000), (&w2.account, 1000)]),
    )
    .unwrap();
    for (i, mm) in m.iter_mut().enumerate() {
        let (role, ifs): (&str, &[&str]) = match i {
            0..=3 => ("authority", &["eth0"]),
            4 | 5 => ("client", &["eth0"]),
            _ => ("relay", &["eth0", "eth1"]),
        };
        mm.config = node_config(&mm.name, ifs, QUORUM, role, QUIET, &committee);
    }
    let t0 = Instant::now();
    for (mm, n) in m.iter_mut().zip(&ns) {
        mm.start(n);
    }
    let all: Vec<&Member> = m.iter().collect();
    let [a1, a2, a3, a4, c1, c2, relay] = [&m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &m[6]];
    wait_neighbours(relay, 6, &all);
    for x in [a1, a2, c1, c2] {
        wait_neighbours(x, 4, &all);
    }
    for x in [a3, a4] {
        wait_neighbours(x, 2, &all);
    }
    eprintln!("7 nodes up and linked in {:.2} s", t0.elapsed().as_secs_f64());
    assert_eq!(relay.consensus_status()["role"], "relay");
    let committee_hash = c1.consensus_status()["committee_hash"].as_str().unwrap().to_owned();
    for x in &all {
        assert_eq!(x.consensus_status()["committee_hash"], committee_hash.as_str(), "{}", x.name);
    }

    // Client 1 pays client 2's wallet address.
    let t = Instant::now();
    let paid =
        c1.pay(&w1, &w2.address, 250, 30).unwrap_or_else(|e| panic!("pay failed: {e}\n{}", logs(&all)));
    let latency = t.elapsed();
    let certified = Instant::now();
    eprintln!(
        "payment certified: {:.1} ms for `meshpay pay` ({} ms inside it)",
        latency.as_secs_f64() * 1e3,
        paid["elapsed_ms"]
    );
    let cert = &paid["certificate"];
    let order_hash = paid["order_hash"].as_str().unwrap().to_owned();
    assert_eq!(paid["sequence"], 0);
    assert_eq!(cert["order_hash"], order_hash.as_str());
    let signers: BTreeSet<&str> =
        cert["votes"].as_array().unwrap().iter().map(|v| v["authority"].as_str().unwrap()).collect();
    assert!(signers.len() >= 3, "a certificate needs 3 of 4 votes: {cert:#}");
    assert!(
        signers.contains(a3.key.as_str()) || signers.contains(a4.key.as_str()),
        "the certificate must hold a vote that came through the relay: {signers:?}"
    );

    // Client 2 holds the receipt, verified offline against the committee.
    let receipt = eventually("client 2's receipt", 30, &all, || {
        let out = c2.cli(&["receipts", "--json"]);
        assert!(out.status.success(), "receipts: {}", text(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        r["receipts"].as_array().unwrap().first().cloned()
    });
    eprintln!(
        "receipt at client 2 within {:.1} ms of certification",
        certified.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(receipt["verified"], true, "{receipt:#}");
    assert_eq!(receipt["amount"], 250);
    assert_eq!(receipt["sender"], w1.account.as_str());
    assert_eq!(receipt["certificate"]["order_hash"], order_hash.as_str());
    let bytes = receipt["certificate"]["bytes"].as_str().unwrap().to_owned();
    assert_eq!(bytes, cert["bytes"].as_str().unwrap());
    let out = c2.cli(&["receipts"]);
    assert!(text(&out.stdout).contains("verified") && !text(&out.stdout).contains("NOT VALID"));
    // Anyone with the committee can check the bytes: another node does.
    for x in [a4, c1] {
        let v = x.must("verify_certificate", &json!({"certificate": bytes}));
        assert_eq!(v["valid"], true, "{}: {v:#}", x.name);
        assert_eq!(v["order_hash"], order_hash.as_str());
    }
    // ...and the check can fail: one bit of one signature changed.
    let mut forged = unhex(&bytes);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let v = a4.must("verify_certificate", &json!({"certificate": tohex(&forged)}));
    assert_eq!(v["valid"], false, "a forged signature verified: {v:#}");
    assert_eq!(v["reason"], "bad_signature", "{v:#}");

    // Every authority applies it (a3 and a4 through the relay).
    let accounts = [w1.account.as_str(), w2.account.as_str()];
    for a in [a1, a2, a3, a4] {
        eventually(&format!("{} to apply the payment", a.name), 30, &all, || {
            (a.balance(&w1.account) == (750, 1) && a.balance(&w2.account) == (1250, 0)).then_some(())
        });
        a.assert_conserved();
    }
    eprintln!(
        "applied on all 4 authorities within {:.1} ms of certification",
        certified.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(c1.balance(&w1.account), (750, 1), "client 1's view");
    assert_eq!(c2.balance(&w2.account), (1250, 0), "client 2's view");
    for x in [c1, c2] {
        x.assert_conserved();
    }
    let e = relay.call("audit", &json!({})).expect_err("a relay keeps no ledger");
    assert!(e.contains("relay") && e.contains("wrong_role"), "{e}");

    // Replays change nothing. Through the control API: the same signed
    // order again is the same order (same hash), already certified.
    let ledgers = [a1, a2, a3, a4, c1, c2];
    let before: Vec<_> = ledgers.iter().map(|x| snapshot(x, &accounts)).collect();
    let order_json = cert["order"].clone();
    for x in [c1, c2] {
        let r = x.must("submit_transfer", &json!({"order": order_json}));
        assert_eq!(r["order_hash"], order_hash.as_str(), "{}", x.name);
    }
    assert_eq!(c1.transfer_status(&order_hash)["state"], "certified");
    // As bundles to every authority: the certificate, then the order.
    let delivered: Vec<(u64, Value)> = [a1, a2, a3, a4]
        .iter()
        .map(|a| (a.counter("bundles_delivered"), a.consensus_status()["refusals"].clone()))
        .collect();
    let votes = cert["votes"].as_array().unwrap().len();
    let cert_bytes = unhex(&bytes);
    let confirmation = message(CONFIRMATION, &committee_hash, &cert_bytes);
    c1.send(AUTHORITIES, "replay", &confirmation);
    c1.send(
        AUTHORITIES,
        "replay",
        &message(ORDER, &committee_hash, &order_of_certificate(&cert_bytes, votes)),
    );
    // An authority answers an order it certified already with its
    // certificate: four answers, each the same certificate.
    let out = c1.cli(&["recv", "replay", "--count", "4", "--timeout", "30"]);
    assert!(
        out.status.success(),
        "the replayed order was not answered by all 4: {}\n{}",
        text(&out.stderr),
        logs(&all)
    );
    assert_eq!(out.stdout.len(), 4 * confirmation.len());
    for chunk in out.stdout.chunks(confirmation.len()) {
        assert_eq!(chunk, &confirmation[..], "an authority answered with another certificate");
    }
    for (a, (d, r)) in [a1, a2, a3, a4].iter().zip(&delivered) {
        eventually(&format!("{} to take both replays", a.name), 20, &all, || {
            (a.counter("bundles_delivered") >= d + 2).then_some(())
        });
        let refusals = a.consensus_status()["refusals"].clone();
        assert_eq!(&refusals, r, "{}: a replay was refused instead of ignored", a.name);
    }
    let after: Vec<_> = ledgers.iter().map(|x| snapshot(x, &accounts)).collect();
    for ((x, b), a) in ledgers.iter().zip(&before).zip(&after) {
        assert_eq!(
            b, a,
            "{}: a replay changed the ledger (balances, history length, certificates applied)",
            x.name
        );
        x.assert_conserved();
    }
    eprintln!(
        "replays of the order and certificate: answered, nothing changed; whole test {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    for x in m.iter_mut() {
        x.stop();
    }
}

// ------------------------------------------------------------ 2, 3. double spends

/// Two halves, cut apart: S_A holds a1, a2 and client 1, S_B holds a3, the
/// fourth authority (honest, or Byzantine: votes for everything) and
/// client 2. Both clients hold the same wallet key and pay different
/// amounts with sequence number 0 while the halves are apart; then the
/// halves are joined.
fn double_spend_across_a_partition(byzantine: bool) {
    let p = if byzantine { "p3" } else { "p2" };
    let tags: Vec<String> = ["a1", "a2", "a3", "a4", "c1", "c2"].iter().map(|n| format!("{p}{n}")).collect();
    let _lab = one_lab_at_a_time();
    let Some(ns) = namespaces_or_skip(&tags.iter().map(String::as_str).collect::<Vec<_>>()) else { return };
    let sa = Switch::new(&format!("{p}sa")).unwrap();
    let sb = Switch::new(&format!("{p}sb")).unwrap();
    for i in [0, 1, 4] {
        sa.plug(&ns[i], "eth0").unwrap();
    }
    for i in [2, 3, 5] {
        sb.plug(&ns[i], "eth0").unwrap();
    }
    let trunk = sa.trunk(&sb).unwrap();
    sa.set_port(&trunk, false);

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let fourth = if byzantine { "z" } else { "a4" };
    let mut m: Vec<Member> =
        ["a1", "a2", "a3", fourth, "c1", "c2"].iter().map(|n| Member::new(root, n)).collect();
    let w = m[4].new_wallet(None);
    // The same key on client 2.
    let copy = m[5].dir.join("same-wallet.key");
    std::fs::copy(&w.file, &copy).unwrap();
    let w_copy = Wallet { file: copy, ..w.clone() };
    let r = m[5].new_wallet(None);
    let committee = root.join("committee.toml");
    std::fs::write(
        &committee,
        committee_toml(&[&m[0], &m[1], &m[2], &m[3]], &[(&w.account, 1000), (&r.account, 1000)]),
    )
    .unwrap();
    let byzantine_lib = cdylib(BYZANTINE_LIB);
    for (i, mm) in m.iter_mut().enumerate() {
        let (plugin, role) = match i {
            3 if byzantine => (byzantine_lib.to_str().unwrap(), "authority"),
            0..=3 => (QUORUM, "authority"),
            _ => (QUORUM, "client"),
        };
        mm.config = node_config(&mm.name, &["eth0"], plugin, role, FAST, &committee);
    }
    let t0 = Instant::now();
    for (mm, n) in m.iter_mut().zip(&ns) {
        mm.start(n);
    }
    let all: Vec<&Member> = m.iter().collect();
    let [a1, a2, a3, a4, c1, c2] = [&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]];
    for x in &all {
        wait_neighbours(x, 2, &all);
    }
    if byzantine {
        assert!(
            a4.status()["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == "org.meshpay.test.byzantine"),
            "the fourth authority must run the Byzantine plugin"
        );
    }
    eprintln!("{p}: 6 nodes up, two halves, in {:.2} s", t0.elapsed().as_secs_f64());

    // Two different orders for sequence 0, one per half.
    let e1 = c1.pay(&w, &r.address, 600, 2).expect_err("half a committee cannot certify");
    let e2 = c2.pay(&w_copy, &r.address, 700, 2).expect_err("half a committee cannot certify");
    assert!(e1.contains("no certificate") && e2.contains("no certificate"), "{e1}\n{e2}");
    let (x, sx) = c1.pending_order(&w.account).expect("client 1's order is pending");
    let (y, sy) = c2.pending_order(&w.account).expect("client 2's order is pending");
    assert_eq!((sx, sy), (0, 0), "both orders must use sequence 0");
    assert_ne!(x, y);
    // Each half votes for its own order: two votes each, no more.
    for (c, h) in [(c1, &x), (c2, &y)] {
        eventually(&format!("{}: 2 votes for its order", c.name), 20, &all, || {
            (c.transfer_status(h)["votes_weight"] == 2).then_some(())
        });
    }
    if byzantine {
        let v = a4.consensus_status()["byzantine"]["votes_signed"].as_u64().unwrap();
        assert!(v >= 1, "the Byzantine authority voted for order {y}");
    }
    eprintln!("{p}: both halves voted for their own order: {x} and {y}");

    // Join the halves.
    let t = Instant::now();
    sa.set_port(&trunk, true);
    let evidence_of = |a: &Member| -> Vec<(String, String)> {
        a.consensus_status()["double_spends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["account"] == w.account.as_str() && d["sequence"] == 0)
            .map(|d| {
                (
                    d["locked_order"].as_str().unwrap().to_owned(),
                    d["attempted_order"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    // Both orders come to an end: certified (votes of a quorum) or refused
    // (refusals of more than a third).
    let end_of = |c: &Member, h: &str| -> String {
        eventually(&format!("{}: its order certified or refused", c.name), 40, &all, || {
            let st = c.transfer_status(h)["state"].as_str().unwrap().to_owned();
            (st != "pending").then_some(st)
        })
    };
    let (end_x, end_y) = (end_of(c1, &x), end_of(c2, &y));
    eprintln!("{p}: halves joined; x {end_x}, y {end_y} after {:.2} s", t.elapsed().as_secs_f64());
    let at_most_one_certificate = || {
        let mut seen = BTreeSet::new();
        for node in &all {
            let certs = certificates_at(node, &w.account, 0, &[&x, &y]);
            assert!(certs.len() <= 1, "{}: two certificates for one sequence number: {certs:?}", node.name);
            seen.extend(certs);
        }
        assert!(seen.len() <= 1, "DOUBLE SPEND: certificates for both orders: {seen:?}\n{}", logs(&all));
        seen
    };
    at_most_one_certificate();

    let expected: (i64, i64) = if byzantine {
        // a3 locked y; z votes for x too, so x has a quorum (a1, a2, z); y
        // is refused by a1 and a2 (locked by x, or x applied already).
        assert_eq!((end_x.as_str(), end_y.as_str()), ("certified", "refused"));
        let signers: BTreeSet<String> = c1.transfer_status(&x)["certificate"]["votes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["authority"].as_str().unwrap().to_owned())
            .collect();
        assert!(signers.contains(&a4.key), "x's quorum holds the Byzantine vote: {signers:?}");
        assert!(!signers.contains(&a3.key), "a3 locked y and must not have voted for x");
        let v = a4.consensus_status()["byzantine"]["votes_signed"].as_u64().unwrap();
        assert!(v >= 2, "the Byzantine authority signed both orders ({v} votes)");
        eventually("a3 to record the attempted double spend", 30, &all, || {
            evidence_of(a3).contains(&(y.clone(), x.clone())).then_some(())
        });
        // Every authority applies x (a3 too: a certificate is final).
        for a in [a1, a2, a3, a4] {
            eventually(&format!("{} to apply x", a.name), 30, &all, || {
                (a.balance(&w.account) == (400, 1)).then_some(())
            });
        }
        (400, 1600)
    } else {
        // Two votes each, then two refusals each: no quorum for either.
        assert_eq!((end_x.as_str(), end_y.as_str()), ("refused", "refused"));
        for (a, mine, other) in [(a1, &x, &y), (a2, &x, &y), (a3, &y, &x), (a4, &y, &x)] {
            eventually(&format!("{} to record the attempted double spend", a.name), 30, &all, || {
                evidence_of(a).contains(&(mine.clone(), other.clone())).then_some(())
            });
            let s = a.consensus_status();
            assert!(s["counters"]["double_spend_attempts"].as_u64().unwrap() >= 1, "{s:#}");
            assert!(s["refusals"]["double_spend"].as_u64() >= Some(1), "{}: {s:#}", a.name);
            assert!(a.log().contains("attempted double spend"), "{}: not logged", a.name);
        }
        // Give a wrong certificate every chance to show up.
        std::thread::sleep(Duration::from_secs(2));
        (1000, 1000)
    };
    let seen = at_most_one_certificate();
    if byzantine {
        assert_eq!(seen, BTreeSet::from([x.clone()]));
    } else {
        assert!(seen.is_empty(), "{seen:?}");
    }
    for a in [a1, a2, a3, a4] {
        assert_eq!(a.balance(&w.account).0, expected.0, "{}", a.name);
        assert_eq!(a.balance(&r.account).0, expected.1, "{}", a.name);
    }
    for node in &all {
        let audit = node.assert_conserved();
        assert_eq!(audit["genesis_total"], 2000);
    }
    eprintln!(
        "{p}: certificates for sequence 0 across all nodes: {seen:?}; money conserved; {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    for x in m.iter_mut() {
        x.stop();
    }
}

#[test]
#[ignore = "slow: network namespaces"]
fn a_double_spend_across_a_partition_gets_no_second_certificate() {
    double_spend_across_a_partition(false);
}

#[test]
#[ignore = "slow: network namespaces"]
fn a_byzantine_authority_signing_everything_cannot_make_a_double_spend() {
    double_spend_across_a_partition(true);
}

// ------------------------------------------------------------ 4. crash

/// Authorities a1..a4 and a client on one segment. The client pays in a
/// stream (one `meshpay pay` after another) while a4 is killed with SIGKILL
/// and restarted three times.
#[test]
#[ignore = "slow: network namespaces"]
fn an_authority_killed_under_a_payment_stream_loses_nothing_and_applies_each_payment_once() {
    let _lab = one_lab_at_a_time();
    let Some(ns) = namespaces_or_skip(&["p4a1", "p4a2", "p4a3", "p4a4", "p4c1"]) else { return };
    let s = Switch::new("p4s").unwrap();
    for n in &ns {
        s.plug(n, "eth0").unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut m: Vec<Member> = ["a1", "a2", "a3", "a4", "c1"].iter().map(|n| Member::new(root, n)).collect();
    let w1 = m[4].new_wallet(None);
    let w2 = m[4].new_wallet(Some(&root.join("w2.key")));
    let committee = root.join("committee.toml");
    std::fs::write(
        &committee,
        committee_toml(&[&m[0], &m[1], &m[2], &m[3]], &[(&w1.account, 1000), (&w2.account, 1000)]),
    )
    .unwrap();
    for (i, mm) in m.iter_mut().enumerate() {
        let role = if i < 4 { "authority" } else { "client" };
        mm.config = node_config(&mm.name, &["eth0"], QUORUM, role, FAST, &committee);
    }
    for (mm, n) in m.iter_mut().zip(&ns) {
        mm.start(n);
    }
    {
        let all: Vec<&Member> = m.iter().collect();
        for x in &all {
            wait_neighbours(x, 4, &all);
        }
    }

    // The stream: sequential payments of 1 until told to stop; `count`
    // says how many are certified so far.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let stream = {
        let (stop, count) = (stop.clone(), count.clone());
        let state = m[4].state();
        let (wallet, to) = (w1.file.clone(), w2.address.clone());
        std::thread::spawn(move || {
            let mut done: Vec<(String, u64, Duration)> = Vec::new();
            let mut failed: Vec<String> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let out = Command::new(meshpay_bin())
                    .arg("--state-dir")
                    .arg(&state)
                    .args(["pay", "--wallet", wallet.to_str().unwrap(), "--to", &to, "--amount", "1"])
                    .args(["--timeout", "30", "--json"])
                    .output()
                    .unwrap();
                if out.status.success() {
                    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                    done.push((
                        v["order_hash"].as_str().unwrap().to_owned(),
                        v["sequence"].as_u64().unwrap(),
                        t.elapsed(),
                    ));
                    count.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.push(text(&out.stderr));
                }
            }
            (done, failed)
        })
    };

    let t0 = Instant::now();
    let a4_ns = &ns[3];
    // Four kills, each a few payments into the stream and at a different
    // point of a payment (counted, not timed: the machine may be slow).
    let wait_count = |m: &[Member], k: u64, what: &str| {
        let all: Vec<&Member> = m.iter().collect();
        eventually(what, 120, &all, || (count.load(Ordering::Relaxed) >= k).then_some(()));
    };
    for (round, (after, pause_ms)) in [(3, 0), (7, 60), (11, 130), (15, 40)].into_iter().enumerate() {
        wait_count(&m, after, &format!("{after} payments certified"));
        std::thread::sleep(Duration::from_millis(pause_ms));
        let before = m[3].consensus_status()["counters"].clone();
        m[3].kill9();
        eprintln!(
            "crash {}: a4 killed (SIGKILL) at {:.2} s, having applied {} certificates",
            round + 1,
            t0.elapsed().as_secs_f64(),
            before["certificates_applied"]
        );
        std::thread::sleep(Duration::from_millis(400));
        let t = Instant::now();
        m[3].start(a4_ns);
        eprintln!("crash {}: a4 back in {:.2} s", round + 1, t.elapsed().as_secs_f64());
    }
    // A few more after the last restart, then stop.
    let last = count.load(Ordering::Relaxed);
    wait_count(&m, last + 5, "5 payments after the last restart");
    stop.store(true, Ordering::Relaxed);
    let (done, failed) = stream.join().unwrap();
    let stream_s = t0.elapsed().as_secs_f64();
    let all: Vec<&Member> = m.iter().collect();
    assert!(failed.is_empty(), "payments failed during the crashes: {failed:#?}\n{}", logs(&all));
    let n = done.len() as u64;
    let mut lat: Vec<f64> = done.iter().map(|d| d.2.as_secs_f64() * 1e3).collect();
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "stream: {n} payments certified in {stream_s:.1} s ({:.1}/s); `meshpay pay` latency median {:.1} ms, max {:.1} ms",
        n as f64 / stream_s,
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
    let seqs: Vec<u64> = done.iter().map(|d| d.1).collect();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "sequence numbers must be 0..{n} in order");
    let hashes: BTreeSet<String> = done.iter().map(|d| d.0.clone()).collect();

    // Every authority, a4 included, ends with each payment applied once.
    let t = Instant::now();
    let [a1, a2, a3, a4, c1] = [&m[0], &m[1], &m[2], &m[3], &m[4]];
    for a in [a1, a2, a3, a4] {
        eventually(&format!("{} to apply all {n} payments", a.name), 60, &all, || {
            (a.balance(&w1.account) == (1000 - n as i64, n) && a.balance(&w2.account) == (1000 + n as i64, 0))
                .then_some(())
        });
    }
    eprintln!("all authorities caught up {:.2} s after the stream", t.elapsed().as_secs_f64());
    for a in [a1, a2, a3, a4] {
        let applied: Vec<Value> =
            a.history().into_iter().filter(|e| e["event"] == "certificate_applied").collect();
        let mut per_hash: BTreeSet<String> = BTreeSet::new();
        for e in &applied {
            assert!(
                per_hash.insert(e["order_hash"].as_str().unwrap().to_owned()),
                "{}: certificate {} applied twice",
                a.name,
                e["order_hash"]
            );
        }
        assert_eq!(per_hash, hashes, "{}: the applied certificates are not the certified payments", a.name);
        let mut seq: Vec<u64> = applied.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
        seq.sort_unstable();
        assert_eq!(seq, (0..n).collect::<Vec<_>>(), "{}", a.name);
        let s = a.consensus_status();
        assert_eq!(s["counters"]["certificates_applied"], n, "{}", a.name);
        assert_eq!(s["counters"]["conflicting_certificates"], 0, "{}", a.name);
        let audit = a.assert_conserved();
        assert_eq!(audit["locked"], 0, "{}", a.name);
    }
    let signed = a4.consensus_status()["counters"]["orders_signed"].as_u64().unwrap();
    assert!(signed > 0, "a4 never voted: the crashes hit an idle authority");
    eprintln!("a4 voted for {signed} of the {n} orders across its 4 crashes");
    assert_eq!(c1.balance(&w1.account), (1000 - n as i64, n));
    c1.assert_conserved();
    for x in m.iter_mut() {
        x.stop();
    }
}

// ------------------------------------------------------------ 5. bad input

/// A one-authority committee and a client on a segment. Bad orders through
/// the control API (and the CLI) of both nodes are refused with their
/// reason, and nothing changes.
#[test]
#[ignore = "slow: network namespaces"]
fn bad_input_through_the_control_api_is_refused_with_its_reason_and_changes_nothing() {
    let _lab = one_lab_at_a_time();
    let Some(ns) = namespaces_or_skip(&["p5a", "p5c"]) else { return };
    let s = Switch::new("p5s").unwrap();
    for n in &ns {
        s.plug(n, "eth0").unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut m: Vec<Member> = ["a", "c"].iter().map(|n| Member::new(root, n)).collect();
    let w = m[1].new_wallet(None);
    let r = m[1].new_wallet(Some(&root.join("r.key")));
    let stranger = m[1].new_wallet(Some(&root.join("stranger.key")));
    let committee = root.join("committee.toml");
    std::fs::write(&committee, committee_toml(&[&m[0]], &[(&w.account, 1000), (&r.account, 10)])).unwrap();
    m[0].config = node_config("a", &["eth0"], QUORUM, "authority", FAST, &committee);
    m[1].config = node_config("c", &["eth0"], QUORUM, "client", FAST, &committee);
    for (mm, n) in m.iter_mut().zip(&ns) {
        mm.start(n);
    }
    let all: Vec<&Member> = m.iter().collect();
    let [a, c] = [&m[0], &m[1]];
    wait_neighbours(c, 1, &all);
    let committee_hash = c.consensus_status()["committee_hash"].as_str().unwrap().to_owned();

    // One good payment, for a signed order to start from.
    let paid = c.pay(&w, &r.address, 10, 30).unwrap_or_else(|e| panic!("pay: {e}\n{}", logs(&all)));
    let good = paid["certificate"]["order"].clone();
    eventually("a to apply the payment", 20, &all, || (a.balance(&w.account) == (990, 1)).then_some(()));

    let accounts = [w.account.as_str(), r.account.as_str(), stranger.account.as_str()];
    let before: Vec<_> = [a, c].iter().map(|x| snapshot(x, &accounts)).collect();
    let with = |changes: &[(&str, Value)]| {
        let mut o = good.clone();
        o["sequence"] = json!(1);
        for (k, v) in changes {
            o[*k] = v.clone();
        }
        json!({"order": o}).to_string()
    };
    let other_committee = {
        let mut h = unhex(&committee_hash);
        h[0] ^= 0xff;
        tohex(&h)
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        // The signature of sequence 0 on an order for sequence 1.
        ("mis-signed order", with(&[]), vec!["bad_signature", "does not verify", w.account.as_str()]),
        (
            "a signature of the wrong length",
            with(&[("signature", json!("ab".repeat(63)))]),
            vec!["malformed", "order.signature"],
        ),
        (
            "order of another committee",
            with(&[("committee", json!(other_committee))]),
            vec!["other_committee", other_committee.as_str(), committee_hash.as_str()],
        ),
        (
            "amount beyond u64",
            with(&[("amount", json!("AMOUNT"))]).replace("\"AMOUNT\"", "18446744073709551616"),
            vec!["malformed", "order.amount"],
        ),
        ("negative amount", with(&[("amount", json!(-5))]), vec!["malformed", "order.amount"]),
        ("zero amount", with(&[("amount", json!(0))]), vec!["zero_amount"]),
        ("sequence number u64::MAX", with(&[("sequence", json!(u64::MAX))]), vec!["overflow", "u64::MAX"]),
        (
            "a weak (small-order) recipient key",
            with(&[("recipient", json!(format!("01{}", "00".repeat(31))))]),
            vec!["weak_key", "recipient"],
        ),
        ("an unknown field", with(&[("colour", json!("red"))]), vec!["malformed", "colour"]),
    ];
    for node in [a, c] {
        for (what, body, expect) in &cases {
            let e = node
                .call_text("submit_transfer", body)
                .expect_err(&format!("{}: {what} was accepted", node.name));
            for word in expect {
                assert!(e.contains(word), "{}: {what}: the error lacks `{word}`: {e}", node.name);
            }
            eprintln!("{}: {what}: refused: {}", node.name, e.trim());
        }
    }
    // The CLI refuses an amount that does not fit, naming the option.
    let out = c.cli(&["pay", "--to", &r.address, "--amount", "18446744073709551616"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--amount"), "{}", text(&out.stderr));
    // An amount beyond the balance: refused by the committee, with the reason.
    let e = c.pay(&w, &r.address, u64::MAX, 20).expect_err("more than the balance was paid");
    assert!(e.contains("refused") && e.contains("insufficient_balance"), "{e}");
    // An account the committee never funded: the authority's signed
    // refusal names it, `meshpay pay` says so.
    for node in [c, a] {
        let e = node.pay(&stranger, &r.address, 5, 20).expect_err("an unknown account paid");
        assert!(e.contains("refused") && e.contains("unknown_account"), "{}: {e}", node.name);
        eprintln!("{}: unknown account: {}", node.name, e.trim());
    }
    // A certificate of another committee, as a bundle to the authorities:
    // refused, counted, and the other hash shown in status.
    let refused_before = a.consensus_status()["refusals"]["other_committee"].as_u64().unwrap_or(0);
    let cert_bytes = unhex(paid["certificate"]["bytes"].as_str().unwrap());
    c.send(AUTHORITIES, "bad", &message(CONFIRMATION, &other_committee, &cert_bytes));
    eventually("a to refuse the certificate of another committee", 20, &all, || {
        let s = a.consensus_status();
        (s["last_other_committee"] == other_committee.as_str()).then_some(s)
    });
    let s = a.consensus_status();
    assert_eq!(s["refusals"]["other_committee"], refused_before + 1, "{s:#}");
    assert_eq!(s["other_committee_messages"], 1, "{s:#}");
    let log = a.log();
    assert!(
        log.contains("refused by the consensus plugin") && log.contains("different committee files"),
        "the refusal is not in a's log:\n{log}"
    );
    // A garbage certificate through the control API.
    let v = c.call("verify_certificate", &json!({"certificate": "00ff"})).expect_err("garbage verified");
    assert!(v.contains("malformed"), "{v}");

    // Nothing changed, and both nodes still run.
    let after: Vec<_> = [a, c].iter().map(|x| snapshot(x, &accounts)).collect();
    assert_eq!(before, after, "bad input changed a ledger (balances, history length, certificates applied)");
    for x in [a, c] {
        x.assert_conserved();
        assert_eq!(x.balance(&stranger.account), (0, 0));
    }
    assert_eq!(a.balance(&w.account), (990, 1));
    // And the ledger still works: the next good payment goes through.
    let next = c.pay(&w, &r.address, 5, 30).unwrap_or_else(|e| panic!("pay after bad input: {e}"));
    assert_eq!(next["sequence"], 1);
    for x in m.iter_mut() {
        x.stop();
    }
}
