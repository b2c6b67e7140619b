//! The C example (`plugins/examples/c-unixdgram`, compiled here with the
//! system `cc` and loaded with `dlopen`) and the Rust plugin (this crate,
//! through `plugin_entry()`) speak the same protocol: driven through their
//! `MpTransportV1` tables by the fake host in `fake_host/`, on sockets in a
//! temporary directory, they find each other and carry frames byte-exact.
//!
//! Needs `cc` and `nm` (override with `CC` / `NM`); without them the tests
//! fail with a message saying so, they are never skipped.

mod fake_host;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use fake_host::{Event, Lab, Node, Plugin};
use meshpay_abi::*;

// ---------------------------------------------------------------------------
// The two plugins

fn rust_plugin() -> Plugin {
    // SAFETY: a linked-in descriptor, static.
    unsafe { Plugin::from_entry(meshpay_transport_unixdgram::plugin_entry(), None) }
}

fn c_plugin() -> Plugin {
    let build = c_build();
    let library = build.library.clone();
    // SAFETY: the symbol has the ABI's entry type; the library stays loaded
    // as long as the Plugin (and every node made from it) holds the Arc.
    unsafe {
        let entry = library
            .get::<MpPluginEntryFn>(ENTRY_SYMBOL.as_bytes())
            .expect("the C plugin exports meshpay_plugin_entry");
        let entry = entry();
        Plugin::from_entry(entry, Some(library.clone()))
    }
}

/// Both plugins, named for failure messages.
fn both() -> [(&'static str, Plugin); 2] {
    [("c", c_plugin()), ("rust", rust_plugin())]
}

/// The C example built once per test process.
struct CBuild {
    library: Arc<libloading::Library>,
    /// `nm -D --defined-only` of the library.
    exports: String,
}

static C_BUILD: OnceLock<CBuild> = OnceLock::new();

fn c_build() -> &'static CBuild {
    C_BUILD.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = manifest.join("../examples/c-unixdgram");
        let include = manifest.join("../../abi/include");
        let dir = tempfile::tempdir().expect("temp dir");
        let so = dir.path().join("libmeshpay_example_c_unixdgram.so");

        // The Makefile's flags (keep in step with it).
        let cc = find_tool("CC", "cc");
        let mut command = Command::new(&cc);
        command
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-g"])
            .args(["-fPIC", "-fvisibility=hidden", "-shared"])
            .arg("-I")
            .arg(&include)
            .arg(format!("-Wl,--version-script={}", example.join("meshpay_plugin.map").display()))
            .arg("-Wl,-z,defs")
            .arg("-o")
            .arg(&so)
            .arg(example.join("unixdgram.c"));
        run(command, "compiling the C example");

        let mut nm = Command::new(find_tool("NM", "nm"));
        nm.args(["-D", "--defined-only"]).arg(&so);
        let exports = run(nm, "listing the C example's exports");

        // SAFETY: loading runs no constructors in this library (it has none).
        let library = unsafe { libloading::Library::new(&so) }.expect("dlopen the C example");
        // `dir` is removed here; the mapped library stays usable.
        CBuild { library: Arc::new(library), exports }
    })
}

/// Finds an executable: `$var` if set (a name or a path), else `name`, looked
/// up on PATH. Fails loudly: these tests are never skipped.
fn find_tool(var: &str, name: &str) -> PathBuf {
    let wanted = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| name.into());
    if wanted.components().count() > 1 {
        assert!(wanted.is_file(), "{var}={} does not exist", wanted.display());
        return wanted;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(&wanted))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{}` not found on PATH ({}). The interop tests build and inspect the C \
                 example with it: install a C toolchain and binutils (Debian: \
                 `apt-get install gcc binutils`) or set {var}.",
                wanted.display(),
                path.to_string_lossy()
            )
        })
}

/// Runs a command; its stdout, or a panic with its output.
fn run(mut command: Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {command:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

// ---------------------------------------------------------------------------
// Helpers

fn config(path: &Path, peers: &[&Path]) -> String {
    serde_json::json!({
        "path": path,
        "peers": peers,
        "probe_interval_ms": 1000,
        "peer_timeout_ms": 3500,
    })
    .to_string()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A C node and a Rust node, each listing the other (and `extra`) as peers.
struct Pair {
    lab: Lab,
    c: usize,
    rust: usize,
    c_path: PathBuf,
    rust_path: PathBuf,
    dir: tempfile::TempDir,
}

fn pair(extra_peer: Option<&str>) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let c_path = dir.path().join("c.sock");
    let rust_path = dir.path().join("rust.sock");
    let extra = extra_peer.map(|name| dir.path().join(name));
    let mut c_peers = vec![rust_path.as_path()];
    let mut rust_peers = vec![c_path.as_path()];
    if let Some(extra) = &extra {
        c_peers.push(extra);
        rust_peers.push(extra);
    }
    let mut lab = Lab::new();
    let c = lab.add(&c_plugin(), "c", &config(&c_path, &c_peers));
    let rust = lab.add(&rust_plugin(), "rust", &config(&rust_path, &rust_peers));
    Pair { lab, c, rust, c_path, rust_path, dir }
}

impl Pair {
    /// Starts both and waits until each reports the other up.
    fn start_and_link(&self) {
        assert_eq!(self.lab[self.c].start(), MP_OK);
        assert_eq!(self.lab[self.rust].start(), MP_OK);
        let (c, rust) = (self.c, self.rust);
        let (cp, rp) = (s(&self.c_path).to_owned(), s(&self.rust_path).to_owned());
        self.lab.run_until("both links up", |lab| lab[c].is_up(&rp) && lab[rust].is_up(&cp));
    }

    /// Sends every frame from node `from` to `peer`, retrying after
    /// `MP_ERR_AGAIN` once the receiver has drained, and waits until all
    /// have arrived at node `to`.
    fn carry(&self, from: usize, peer: &Path, to: usize, from_path: &Path, frames: &[Vec<u8>]) {
        let before = self.lab[to].frames_from(s(from_path)).len();
        for frame in frames {
            let mut busy = 0;
            loop {
                match self.lab[from].send(s(peer), frame) {
                    MP_OK => break,
                    MP_ERR_AGAIN if busy < 100 => {
                        busy += 1;
                        self.lab.settle();
                    }
                    other => panic!("send of {} bytes: {}", frame.len(), status_name(other)),
                }
            }
        }
        let want = before + frames.len();
        self.lab.run_until("frames delivered", |lab| lab[to].frames_from(s(from_path)).len() >= want);
        let got = self.lab[to].frames_from(s(from_path));
        assert_eq!(got.len(), want, "duplicated frames");
        for (i, (got, sent)) in got[before..].iter().zip(frames).enumerate() {
            assert!(
                got == sent,
                "frame {i}: sent {} bytes, got {} bytes (or different bytes)",
                sent.len(),
                got.len()
            );
        }
    }

    fn assert_clean(&self) {
        self.lab[self.c].assert_clean();
        self.lab[self.rust].assert_clean();
    }
}

fn all_byte_values() -> Vec<u8> {
    (0..=255).collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn c_and_rust_link_up_and_carry_frames_byte_exact() {
    let p = pair(None);
    p.start_and_link();
    for (node, peer) in [(p.c, &p.rust_path), (p.rust, &p.c_path)] {
        let ups: Vec<_> =
            p.lab[node].events().into_iter().filter(|e| matches!(e, Event::Up { .. })).collect();
        assert_eq!(ups, [Event::Up { peer: s(peer).into(), mtu: 65000 }], "{}", p.lab[node].name());
    }

    let mut reversed = all_byte_values();
    reversed.reverse();
    let c_to_rust =
        vec![all_byte_values(), pattern(60000, 7), Vec::new(), b"hello from C".to_vec(), pattern(65000, 1)];
    let rust_to_c =
        vec![reversed, pattern(60000, 99), Vec::new(), b"hello from Rust".to_vec(), pattern(65000, 2)];
    p.carry(p.c, &p.rust_path, p.rust, &p.c_path, &c_to_rust);
    p.carry(p.rust, &p.c_path, p.c, &p.rust_path, &rust_to_c);

    // Nothing went astray: each side got exactly what the other sent.
    assert_eq!(p.lab[p.rust].frames_from(s(&p.c_path)), c_to_rust);
    assert_eq!(p.lab[p.c].frames_from(s(&p.rust_path)), rust_to_c);
    p.assert_clean();
}

#[test]
fn a_full_socket_is_mp_err_again_and_loses_nothing() {
    let p = pair(None);
    p.start_and_link();
    for (from, peer, to, from_path) in
        [(p.c, &p.rust_path, p.rust, &p.c_path), (p.rust, &p.c_path, p.c, &p.rust_path)]
    {
        let name = p.lab[from].name().to_owned();
        let before = p.lab[to].frames_from(s(from_path)).len();
        // Without the receiver reading, the sender's socket buffer fills
        // after a few 60000-byte datagrams.
        let mut sent = Vec::new();
        let refused =
            (0..64u8).map(|n| pattern(60000, n)).find(|frame| match p.lab[from].send(s(peer), frame) {
                MP_OK => {
                    sent.push(frame.clone());
                    false
                }
                MP_ERR_AGAIN => true,
                other => panic!("{name}: send: {}", status_name(other)),
            });
        let refused =
            refused.unwrap_or_else(|| panic!("{name}: 64 frames of 60000 bytes never filled the socket"));
        assert!(!sent.is_empty(), "{name}: not even one frame fit");
        p.lab.settle();
        assert_eq!(p.lab[to].frames_from(s(from_path))[before..], sent[..], "{name}");
        // Once drained, the refused frame goes through.
        assert_eq!(p.lab[from].send(s(peer), &refused), MP_OK, "{name}");
        p.lab.settle();
        assert_eq!(p.lab[to].frames_from(s(from_path)).last(), Some(&refused), "{name}");
    }
    p.assert_clean();
}

#[test]
fn send_refuses_unknown_peers_and_oversized_frames() {
    let p = pair(None);
    p.start_and_link();
    for (node, peer) in [(p.c, &p.rust_path), (p.rust, &p.c_path)] {
        let n = &p.lab[node];
        let stranger = p.dir.path().join("stranger.sock");
        assert_eq!(n.send(s(&stranger), b"x"), MP_ERR_INVALID, "{}: unknown peer", n.name());
        assert_eq!(n.send("", b"x"), MP_ERR_INVALID, "{}: empty peer", n.name());
        assert_eq!(n.send(s(peer), &vec![0; 65001]), MP_ERR_INVALID, "{}: 65001 bytes", n.name());
        assert_eq!(n.send(s(peer), &vec![0; 65000]), MP_OK, "{}: 65000 bytes", n.name());
    }
    p.lab.settle();
    assert_eq!(p.lab[p.rust].frames_from(s(&p.c_path)), [vec![0; 65000]]);
    assert_eq!(p.lab[p.c].frames_from(s(&p.rust_path)), [vec![0; 65000]]);
    p.assert_clean();
}

#[test]
fn bad_datagrams_are_dropped_and_counted_without_harm() {
    let p = pair(Some("evil.sock"));
    p.start_and_link();
    let evil_path = p.dir.path().join("evil.sock");
    let evil = UnixDatagram::bind(&evil_path).unwrap();
    let stranger = UnixDatagram::bind(p.dir.path().join("stranger.sock")).unwrap();
    let mut oversized = b"MPU1\x01".to_vec();
    oversized.resize(5 + 65001, 0xaa);
    let bad: [&[u8]; 7] = [
        b"XXXX\x01hello",   // bad magic
        b"MPU2\x01hello",   // another version's magic
        b"MP",              // shorter than the header
        b"",                // empty
        b"MPU1\x07frame",   // unknown type
        b"MPU1\x00payload", // probe with a payload
        &oversized,         // longer than the MTU
    ];
    for target in [&p.c_path, &p.rust_path] {
        for datagram in bad {
            evil.send_to(datagram, target).unwrap();
        }
        // A valid datagram from a socket that is not a configured peer.
        stranger.send_to(b"MPU1\x01from a stranger", target).unwrap();
        // Datagrams arrive in order: once this one is delivered, all of the
        // above have been read.
        evil.send_to(b"MPU1\x01after", target).unwrap();
    }
    let evil_s = s(&evil_path).to_owned();
    p.lab.run_until("the valid frame after the garbage", |lab| {
        !lab[p.c].frames_from(&evil_s).is_empty() && !lab[p.rust].frames_from(&evil_s).is_empty()
    });

    for node in [p.c, p.rust] {
        let n = &p.lab[node];
        let about_evil: Vec<Event> =
            n.events().into_iter().filter(|e| format!("{e:?}").contains("evil.sock")).collect();
        assert_eq!(
            about_evil,
            [
                Event::Up { peer: evil_s.clone(), mtu: 65000 },
                Event::Frame { peer: evil_s.clone(), frame: b"after".to_vec() }
            ],
            "{}: only the valid datagram counts",
            n.name()
        );
        assert!(!format!("{:?}", n.events()).contains("stranger"), "{}", n.name());
        let drops = n
            .logs()
            .iter()
            .filter(|(level, m)| *level == MP_LOG_DEBUG && m.contains("dropped datagram"))
            .count();
        assert_eq!(
            drops,
            bad.len() + 1,
            "{}: one debug line per dropped datagram: {:#?}",
            n.name(),
            n.logs()
        );
    }
    // Both still work.
    p.carry(p.c, &p.rust_path, p.rust, &p.c_path, &[b"still alive".to_vec()]);
    p.carry(p.rust, &p.c_path, p.c, &p.rust_path, &[b"me too".to_vec()]);
    p.assert_clean();
}

#[test]
fn stop_reports_down_and_silence_times_the_peer_out() {
    let p = pair(None);
    p.start_and_link();
    let (cs, rs) = (s(&p.c_path).to_owned(), s(&p.rust_path).to_owned());
    // Each in turn stops; the other must time it out. Then it restarts.
    for (stopping, stopping_path, other, other_path) in [(p.rust, &rs, p.c, &cs), (p.c, &cs, p.rust, &rs)] {
        let (quiet, watcher) = (&p.lab[stopping], &p.lab[other]);
        let name = quiet.name().to_owned();
        let stopped_at = p.lab.now();
        assert_eq!(quiet.stop(), MP_OK);
        assert_eq!(quiet.events().last(), Some(&Event::Down { peer: other_path.clone() }), "{name}");
        assert!(!Path::new(stopping_path).exists(), "{name}: stop removes the socket file");
        assert!(quiet.watched_fds().is_empty(), "{name}: stop unwatches the socket");
        assert!(quiet.armed_timers().is_empty(), "{name}: stop cancels the probe timer");
        assert_eq!(watcher.send(stopping_path, b"anyone?"), MP_ERR_FAILED, "send to a socket that is gone");

        p.lab.run_until("the silent node timed out", |lab| !lab[other].is_up(stopping_path));
        let silence = p.lab.now() - stopped_at;
        // Last heard at most one probe interval before the stop; checked
        // once a probe interval: down 2500..=4500 ms after the stop.
        assert!((2500..=4500).contains(&silence), "{name} went down after {silence} ms");

        assert_eq!(quiet.start(), MP_OK, "{name}: restart");
        p.lab.run_until("links up again", |lab| {
            lab[other].is_up(stopping_path) && lab[stopping].is_up(other_path)
        });
    }
    for (node, path, peer) in [(p.c, &p.c_path, &rs), (p.rust, &p.rust_path, &cs)] {
        let n = &p.lab[node];
        assert_eq!(n.stop(), MP_OK);
        assert_eq!(n.stop(), MP_OK, "{}: a second stop is harmless", n.name());
        assert!(!path.exists(), "{}", n.name());
        let downs = n.events().iter().filter(|e| **e == Event::Down { peer: peer.clone() }).count();
        let ups = n.events().iter().filter(|e| **e == Event::Up { peer: peer.clone(), mtu: 65000 }).count();
        assert_eq!((ups, downs), (3, 3), "{}: every up has its down: {:?}", n.name(), n.events());
    }
    p.assert_clean();
}

#[test]
fn a_stale_socket_is_replaced_but_other_files_are_left_alone() {
    for (name, plugin) in both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sock");
        let peer = dir.path().join("peer.sock");
        let mut lab = Lab::new();
        let node = lab.add(&plugin, name, &config(&path, &[&peer]));

        drop(UnixDatagram::bind(&path).unwrap()); // leaves the socket file
        assert_eq!(lab[node].start(), MP_OK, "{name}: over a stale socket");
        assert_eq!(lab[node].stop(), MP_OK);
        assert!(!path.exists(), "{name}");

        std::fs::write(&path, "precious").unwrap();
        assert_eq!(lab[node].start(), MP_ERR_FAILED, "{name}: over a regular file");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious", "{name}");
        assert!(
            lab[node].logs().iter().any(|(l, m)| *l == MP_LOG_ERROR && m.contains("not a socket")),
            "{name}"
        );
        assert!(lab[node].watched_fds().is_empty() && lab[node].armed_timers().is_empty(), "{name}");
        lab[node].assert_clean();
    }
}

/// Configs both plugins must refuse, and words the error line must hold
/// (the key, and for some what is wrong with it).
fn bad_configs() -> Vec<(Vec<u8>, &'static [&'static str])> {
    let long = format!(r#"{{"path": "/{}", "peers": []}}"#, "x".repeat(107));
    let many: Vec<String> = (0..65).map(|i| format!("/p{i}")).collect();
    let many = serde_json::json!({"path": "/a", "peers": many}).to_string();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&[u8], &[&str])> = vec![
        (b"", &[]),
        (b"not json", &[]),
        (b"[]", &["object"]),
        (br#"["/a", ["/b"]]"#, &["object"]),
        (deep.as_bytes(), &[]),
        (b"{}", &["missing", "path"]),
        (br#"{"path": "/a"}"#, &["missing", "peers"]),
        (br#"{"peers": ["/b"]}"#, &["missing", "path"]),
        (br#"{"path": "", "peers": []}"#, &["empty", "path"]),
        (br#"{"path": "/a", "peers": [], "bogus": true}"#, &["unknown", "bogus"]),
        (br#"{"path": "/a", "peers": [], "Path": "/b"}"#, &["unknown", "Path"]),
        (br#"{"path": 5, "peers": []}"#, &["path"]),
        (br#"{"path": null, "peers": []}"#, &["path"]),
        (br#"{"path": "/a", "peers": "/b"}"#, &["peers"]),
        (br#"{"path": "/a", "peers": [5]}"#, &["peers"]),
        (br#"{"path": "/a", "peers": [""]}"#, &["empty", "peers"]),
        (br#"{"path": "/a", "peers": ["/a"]}"#, &["peers"]),
        (br#"{"path": "/a", "peers": ["/b", "/b"]}"#, &["peers"]),
        (many.as_bytes(), &["peers"]),
        (long.as_bytes(), &["path"]),
        (br#"{"path": "/a\u0000b", "peers": []}"#, &["path"]),
        (br#"{"path": "\ud800", "peers": []}"#, &["path"]),
        (b"{\"path\": \"/\xff\", \"peers\": []}", &[]),
        (br#"{"path": "/a", "peers": [], "path": "/b"}"#, &["duplicate", "path"]),
        (br#"{"path": "/a", "peers": [], "probe_interval_ms": -1}"#, &["probe_interval_ms"]),
        (br#"{"path": "/a", "peers": [], "probe_interval_ms": 1.5}"#, &["probe_interval_ms"]),
        (br#"{"path": "/a", "peers": [], "probe_interval_ms": "1000"}"#, &["probe_interval_ms"]),
        (br#"{"path": "/a", "peers": [], "probe_interval_ms": 4294967296}"#, &["probe_interval_ms"]),
        (br#"{"path": "/a", "peers": [], "probe_interval_ms": 0}"#, &["probe_interval_ms"]),
        (br#"{"path": "/a", "peers": [], "peer_timeout_ms": 1000}"#, &["peer_timeout_ms"]),
        (br#"{"path": "/a" "peers": []}"#, &[]),
        (br#"{"path": "/a", "peers": [],}"#, &[]),
        (br#"{"path": "/a", "peers": []} {}"#, &[]),
        (br#"{"path": "/a", "peers": ["/b",]}"#, &[]),
        (br#"{"path": "/a", "peers": ["/b"]"#, &[]),
    ];
    cases.into_iter().map(|(c, k)| (c.to_vec(), k)).collect()
}

#[test]
fn bad_configs_are_refused_with_mp_err_invalid_and_a_reason() {
    let clock = Arc::default();
    for (name, plugin) in both() {
        for (config, words) in bad_configs() {
            let shown = String::from_utf8_lossy(&config[..config.len().min(120)]).into_owned();
            match Node::create(&plugin, name, &clock, &config) {
                Ok(_) => panic!("{name}: accepted {shown}"),
                Err((status, state)) => {
                    assert_eq!(status, MP_ERR_INVALID, "{name}: {shown}");
                    let node_logs = state.logs();
                    let errors: Vec<&String> =
                        node_logs.iter().filter(|(l, _)| *l == MP_LOG_ERROR).map(|(_, m)| m).collect();
                    assert_eq!(errors.len(), 1, "{name}: one error line for {shown}: {node_logs:?}");
                    for word in words {
                        assert!(
                            errors[0].contains(word),
                            "{name}: {shown}: {:?} does not say {word:?}",
                            errors[0]
                        );
                    }
                }
            }
        }
        // And the good ones are accepted, optional keys or not.
        for good in [
            r#"{"path": "/a", "peers": []}"#,
            r#" { "peers" : [ "/b" , "/c" ] , "path" : "\/a" , "peer_timeout_ms" : 2 , "probe_interval_ms" : 1 } "#,
            r#"{"path": "/t\u00e9st\ud83d\ude00", "peers": ["/b\n"]}"#,
        ] {
            let node = Node::create(&plugin, name, &clock, good.as_bytes());
            assert!(node.is_ok(), "{name}: refused {good}: {:?}", node.err().map(|(st, s)| (st, s.logs())));
        }
    }
}

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mangled_configs_never_crash_and_both_plugins_agree() {
    let (c, rust) = (c_plugin(), rust_plugin());
    let clock = Arc::default();
    let base = br#"{"path": "/run/x/a.sock", "peers": ["/run/x/b.sock", "/run/\u00e9"], "probe_interval_ms": 1000, "peer_timeout_ms": 3500}"#;
    let mut inputs: Vec<Vec<u8>> = (0..=base.len()).map(|n| base[..n].to_vec()).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"{}[]\":,.-+eE0123456789 \\/ua\x00\x1f\x7f\xc3\xa9\xff";
    for _ in 0..3000 {
        let mut m = base.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(m.len());
            match rng.below(3) {
                0 => m[at] = alphabet[rng.below(alphabet.len())],
                1 => {
                    m.remove(at);
                }
                _ => m.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        inputs.push(m);
    }
    for _ in 0..500 {
        let len = rng.below(64);
        inputs.push((0..len).map(|_| rng.next() as u8).collect());
    }

    let mut accepted = 0;
    for input in &inputs {
        let shown = String::from_utf8_lossy(input);
        let status = |plugin: &Plugin, name: &str| match Node::create(plugin, name, &clock, input) {
            Ok(_node) => MP_OK, // destroyed here
            Err((status, _)) => status,
        };
        let (c_status, rust_status) = (status(&c, "c"), status(&rust, "rust"));
        assert!(matches!(c_status, MP_OK | MP_ERR_INVALID), "c: {} for {shown}", status_name(c_status));
        assert_eq!(c_status, rust_status, "c and rust disagree on {shown}");
        accepted += usize::from(c_status == MP_OK);
    }
    // The mutations are not all fatal, or this test would prove little.
    assert!(accepted > 50, "only {accepted} of {} inputs were valid", inputs.len());
}

#[test]
fn the_c_library_exports_only_the_entry_symbol() {
    let exports = &c_build().exports;
    // Lines are "<address> <type> <name>"; the version node MESHPAY_1 shows
    // up as an absolute ("A") symbol and is not a function or data export.
    let defined: Vec<&str> = exports
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[..] {
                [_, "A", "MESHPAY_1"] => None,
                [_, _, name] => Some(name),
                _ => panic!("unexpected nm line {line:?}"),
            }
        })
        .collect();
    let names: Vec<&str> = defined.iter().map(|n| n.split('@').next().unwrap()).collect();
    assert_eq!(names, ["meshpay_plugin_entry"], "nm -D --defined-only:\n{exports}");
    assert!(
        defined[0] == "meshpay_plugin_entry" || defined[0] == "meshpay_plugin_entry@@MESHPAY_1",
        "{exports}"
    );
}

#[test]
fn descriptors_say_who_is_who() {
    let c = c_plugin();
    let rust = rust_plugin();
    assert_eq!(c.id(), "org.meshpay.example.c-unixdgram");
    assert_eq!(rust.id(), "org.meshpay.transport.unixdgram");
    for (name, p) in [("c", &c), ("rust", &rust)] {
        assert_eq!(p.entry.struct_size, table_size::<MpPluginEntry>(), "{name}");
        assert_eq!(p.entry.abi, ABI_VERSION, "{name}");
        assert_eq!(p.entry.kinds, MP_KIND_TRANSPORT, "{name}");
        assert_eq!(p.vtable.flags, MP_TRANSPORT_POLL_FD, "{name}");
        assert_eq!(p.vtable.struct_size, table_size::<MpTransportV1>(), "{name}");
        let get = p.entry.get_interface.unwrap();
        for other in
            [INTERFACE_ROUTING_V1, INTERFACE_CONSENSUS_V1, "meshpay.transport/2", "meshpay.transport/1\0", ""]
        {
            assert!(unsafe { get(MpStr::new(other)) }.is_null(), "{name} serves {other:?}");
        }
    }
}
