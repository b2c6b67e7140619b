//! Harness for meshpay's system tests: it runs the real `meshpay` binary as
//! separate processes, builds C plugins with the system compiler, and finds
//! the Rust plugin libraries cargo built.
//!
//! Everything here assumes `cargo build --workspace` ran first (the README's
//! test command does); a missing artifact fails the test with that advice.

pub mod lab;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_owned()
}

/// `target/<profile>`: where cargo put this executable (tests live in its
/// `deps/`; binaries such as the benchmarks directly in it).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("an executable has a directory");
    if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().expect("deps/ has a parent") } else { dir }
        .to_owned()
}

fn artifact(name: &str) -> PathBuf {
    let p = target_profile_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, or run the README's test command)",
        p.display()
    );
    p
}

/// The `meshpay` binary (`$MESHPAY_BIN` if set), refused if it is older
/// than the sources it is built from (`cargo test -p meshpay-tests` does not rebuild it, and a
/// stale binary makes tests pass or fail for the wrong reasons).
pub fn meshpay_bin() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            // An explicitly chosen binary (a benchmark of a snapshot while
            // the tree changes) is taken as it is.
            if let Some(bin) = std::env::var_os("MESHPAY_BIN") {
                return PathBuf::from(bin);
            }
            let bin = artifact("meshpay");
            let built = std::fs::metadata(&bin).and_then(|m| m.modified()).expect("binary mtime");
            // Cargo's dep-info file lists exactly the sources the binary
            // was built from.
            let dep_info = std::fs::read_to_string(bin.with_extension("d")).unwrap_or_default();
            let sources = dep_info.split_once(": ").map(|(_, deps)| deps).unwrap_or("");
            let stale = sources
                .split_whitespace()
                .map(Path::new)
                .filter(|p| std::fs::metadata(p).and_then(|m| m.modified()).is_ok_and(|t| t > built))
                .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
            if let Some(path) = stale {
                panic!(
                    "{} is older than {}: rebuild with `cargo build --workspace` (the README's test command does)",
                    bin.display(),
                    path.display()
                );
            }
            bin
        })
        .clone()
}

/// A Rust plugin library built by cargo: `lib<name>.so`.
pub fn cdylib(name: &str) -> PathBuf {
    artifact(&format!("lib{name}.so"))
}

/// The ABI headers.
pub fn include_dir() -> PathBuf {
    repo_root().join("abi/include")
}

/// Compiles C sources into a plugin library with the system C compiler,
/// exporting only the entry symbol. `header` is the `meshpay_plugin.h` to
/// build against (e.g. a golden copy of an older minor).
pub fn build_c_plugin(sources: &[PathBuf], header: &Path, out_dir: &Path, name: &str) -> PathBuf {
    let inc = out_dir.join(format!("{name}-include"));
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::copy(header, inc.join("meshpay_plugin.h")).unwrap();
    let map = out_dir.join(format!("{name}.map"));
    std::fs::write(&map, "MESHPAY_1 { global: meshpay_plugin_entry; local: *; };\n").unwrap();
    let out = out_dir.join(format!("lib{name}.so"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-fPIC", "-shared", "-fvisibility=hidden"])
        .arg("-I")
        .arg(&inc)
        .args(sources)
        .arg(format!("-Wl,--version-script={}", map.display()))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "compiling {sources:?} failed");
    out
}

/// Symbols a shared library defines and exports (`nm -D --defined-only`),
/// without version suffixes.
pub fn exported_symbols(lib: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["-D", "--defined-only", "--format=posix"])
        .arg(lib)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nm (binutils): {e}"));
    assert!(out.status.success(), "nm failed on {}", lib.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|s| s.split('@').next().unwrap_or(s).to_owned())
        // Version-node definitions (e.g. MESHPAY_1) are absolute symbols, not code.
        .filter(|s| !s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .collect()
}

/// Runs `meshpay` with arguments and returns its output.
pub fn meshpay(args: &[&str]) -> Output {
    Command::new(meshpay_bin()).args(args).output().expect("run meshpay")
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `meshpay run` process with its own state directory. Killed on drop.
pub struct NodeProc {
    child: Option<Child>,
    state_dir: PathBuf,
    log: PathBuf,
}

impl NodeProc {
    /// Writes `config` to `<dir>/meshpay.toml` and runs a node on state
    /// directory `<dir>/state`; waits until its control socket answers.
    pub fn start(dir: &Path, config: &str) -> NodeProc {
        let node = Self::spawn(dir, config, &[]);
        let status = wait_for(Duration::from_secs(20), || node.status().ok());
        assert!(
            status.is_some(),
            "node in {} did not answer `status`; its log:\n{}",
            dir.display(),
            node.log()
        );
        node
    }

    /// Like `start`, without waiting (for nodes expected to fail).
    pub fn spawn(dir: &Path, config: &str, extra_env: &[(&str, &str)]) -> NodeProc {
        std::fs::create_dir_all(dir).unwrap();
        let config_path = dir.join("meshpay.toml");
        std::fs::write(&config_path, config).unwrap();
        let state_dir = dir.join("state");
        let log = dir.join("node.log");
        let child = Command::new(meshpay_bin())
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["run", "--config"])
            .arg(&config_path)
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("node.stdout")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn meshpay run");
        NodeProc { child: Some(child), state_dir, log }
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `meshpay status --json`, parsed.
    pub fn status(&self) -> Result<Value, String> {
        let out = self.cli(&["status", "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Runs a `meshpay` CLI command against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(meshpay_bin())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .output()
            .expect("run meshpay")
    }

    /// Polls status until `pred` holds; panics with the log otherwise.
    pub fn wait_status(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let got = wait_for(timeout, || {
            let s = self.status().ok()?;
            let ok = pred(&s);
            last = s.clone();
            ok.then_some(s)
        });
        got.unwrap_or_else(|| {
            panic!("timed out waiting for {what}; last status:\n{last:#}\nlog:\n{}", self.log())
        })
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits for the process to exit (up to `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = wait_for(timeout, || child.try_wait().ok().flatten());
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// SIGTERM, then waits; returns the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let log = self.log();
        self.wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|| panic!("node did not stop on SIGTERM; log:\n{log}"))
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Finds the transport named `name` in a status.
pub fn transport<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["transports"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no transport {name} in status {status:#}"))
}

/// A network namespace created by a test, deleted on drop.
pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs a command inside a namespace.
pub fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    ip(&full)
}

impl Netns {
    /// Creates `mp-<tag>-<pid>-<serial>` with loopback up and IPv6 DAD off
    /// (so link-local addresses work at once). `Err` when the kernel or the
    /// sandbox refuses namespaces: callers skip with that message.
    ///
    /// The serial makes the name unique per call, not only per process:
    /// the tests of one process run in parallel, and several use the same
    /// tags (every `line_*` test of `dtn_netns` asks for `a`, `b`, `c`).
    /// With the pid alone, a second test re-created a namespace under a
    /// name the first was still using, and two nodes could land in one
    /// namespace (seen: "cannot open UDP port 4556: Address already in
    /// use" in a CI run).
    pub fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("mp-{tag}-{}-{}", std::process::id(), next_serial());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        in_ns(&ns.name, &["ip", "link", "set", "lo", "up"])?;
        for key in ["net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"] {
            in_ns(&ns.name, &["sysctl", "-q", "-w", &format!("{key}=0")])?;
        }
        Ok(ns)
    }

    /// Runs a command in this namespace.
    pub fn run(&self, args: &[&str]) -> Result<(), String> {
        in_ns(&self.name, args)
    }

    /// Sets interface `ifname` in this namespace up or down.
    pub fn set_link(&self, ifname: &str, up: bool) {
        self.run(&["ip", "link", "set", ifname, if up { "up" } else { "down" }]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A veth pair joining `a` (interface `if_a`) and `b` (`if_b`), both up,
/// with the given IPv4 addresses (a /24 each, for optional IPv4 use).
pub fn veth(a: &Netns, if_a: &str, b: &Netns, if_b: &str) -> Result<(), String> {
    // Unique per call: tests of one process run in parallel.
    let (tmp_a, tmp_b) = veth_names();
    ip(&["link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b])?;
    ip(&["link", "set", &tmp_a, "netns", &a.name, "name", if_a])?;
    ip(&["link", "set", &tmp_b, "netns", &b.name, "name", if_b])?;
    a.run(&["ip", "link", "set", if_a, "up"])?;
    b.run(&["ip", "link", "set", if_b, "up"])?;
    Ok(())
}

/// Namespaces, or the reason a test must skip: only when the kernel (or the
/// sandbox) refuses to create them. Prints the reason.
pub fn namespaces_or_skip(tags: &[&str]) -> Option<Vec<Netns>> {
    let mut out = Vec::new();
    for t in tags {
        match Netns::new(t) {
            Ok(ns) => out.push(ns),
            Err(e) => {
                eprintln!("SKIPPED: cannot create network namespaces here: {e}");
                return None;
            }
        }
    }
    Some(out)
}

impl NodeProc {
    /// Like `start`, with the node running inside namespace `ns`.
    pub fn start_in(ns: &Netns, dir: &Path, config: &str) -> NodeProc {
        let node = Self::spawn_in(ns, dir, config);
        let status = wait_for(Duration::from_secs(20), || node.status().ok());
        assert!(
            status.is_some(),
            "node in {} did not answer `status`; its log:\n{}",
            dir.display(),
            node.log()
        );
        node
    }

    /// Spawns `meshpay run` in namespace `ns` without waiting.
    pub fn spawn_in(ns: &Netns, dir: &Path, config: &str) -> NodeProc {
        std::fs::create_dir_all(dir).unwrap();
        let config_path = dir.join("meshpay.toml");
        std::fs::write(&config_path, config).unwrap();
        let state_dir = dir.join("state");
        let log = dir.join("node.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(meshpay_bin())
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["run", "--config"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn meshpay run in a namespace");
        NodeProc { child: Some(child), state_dir, log }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10)).expect("SIGKILL did not stop the node");
    }

    /// The process id (of `meshpay` itself: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// The node's id (hex) and endpoint.
    pub fn id(&self) -> (String, String) {
        let s = self.status().expect("status");
        (s["node"]["id"].as_str().unwrap().to_owned(), s["node"]["endpoint"].as_str().unwrap().to_owned())
    }
}

/// Unique names for the temporary ends of veth pairs (before they move into
/// their namespaces): a pid alone is shared by the tests of one process,
/// which run in parallel.
fn veth_names() -> (String, String) {
    let base = format!("mv{}x{}", std::process::id() % 100_000, next_serial());
    (format!("{base}a"), format!("{base}b"))
}

/// A number no earlier call in this process returned: with the pid, it
/// makes the names of namespaces and interfaces unique across the tests of
/// one process, which run in parallel.
fn next_serial() -> u32 {
    static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An Ethernet switch: a Linux bridge in a namespace of its own, so several
/// namespaces share one segment (as radios share a channel). Multicast
/// snooping is off: no MLD querier runs here, and with snooping on the
/// bridge would stop forwarding the transport's link-local multicast
/// beacons once it learned (wrongly) that nobody listens.
pub struct Switch {
    pub ns: Netns,
    ports: std::sync::atomic::AtomicU32,
}

impl Switch {
    /// Creates the switch's namespace (`Err`: namespaces refused, skip).
    pub fn new(tag: &str) -> Result<Switch, String> {
        let ns = Netns::new(tag)?;
        ns.run(&["ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0"])?;
        ns.run(&["ip", "link", "set", "br0", "up"])?;
        Ok(Switch { ns, ports: std::sync::atomic::AtomicU32::new(0) })
    }

    fn add_port(&self, tmp: &str) -> Result<String, String> {
        let port = format!("p{}", self.ports.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        ip(&["link", "set", tmp, "netns", &self.ns.name, "name", &port])?;
        self.ns.run(&["ip", "link", "set", &port, "master", "br0"])?;
        self.ns.run(&["ip", "link", "set", &port, "up"])?;
        Ok(port)
    }

    /// Plugs namespace `ns` in with interface `ifname` (up). Returns the
    /// switch's port name (set it down to unplug: the carrier goes down on
    /// both ends).
    pub fn plug(&self, ns: &Netns, ifname: &str) -> Result<String, String> {
        let (tmp_a, tmp_b) = veth_names();
        ip(&["link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b])?;
        ip(&["link", "set", &tmp_a, "netns", &ns.name, "name", ifname])?;
        ns.run(&["ip", "link", "set", ifname, "up"])?;
        self.add_port(&tmp_b)
    }

    /// Joins two switches with a cable (one segment while it is up). Returns
    /// this switch's port name: `set_port(.., false)` cuts the segments apart.
    pub fn trunk(&self, other: &Switch) -> Result<String, String> {
        let (tmp_a, tmp_b) = veth_names();
        ip(&["link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b])?;
        let mine = self.add_port(&tmp_a)?;
        other.add_port(&tmp_b)?;
        Ok(mine)
    }

    /// Sets one of this switch's ports up or down.
    pub fn set_port(&self, port: &str, up: bool) {
        self.ns.set_link(port, up);
    }
}
