//! A small network lab for the UDP transport: network namespaces joined by a
//! veth pair (made with `ip`, removed on drop), and plugin instances run on
//! their own threads inside those namespaces, each driven through the real
//! `meshpay_host` by a test host that services timers and fds with
//! `libc::poll`, beside the real daemon.
//!
//! Used by the UDP transport's own tests and throughput example, and by
//! the router's hostile-peer test (which plays a misbehaving neighbour with
//! the real transport).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use meshpay_abi::{LinkEvent, MP_FD_READABLE, MP_FD_WRITABLE, MP_LINK_DOWN, MP_LINK_UP, MP_LINK_UPDATE};
use meshpay_host::{
    CallError, FdState, HostError, HostServices, InstanceId, InstanceLabel, Level, Plugin, Transport,
    TransportEvents,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------ namespaces

/// Runs a command; its stdout, or why it failed.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out =
        Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two namespaces, `a` and `b`, each with an interface `mesh0`, the two ends
/// of one veth pair; IPv6 duplicate address detection off, so link-local
/// addresses work at once. Removed on drop.
pub struct Pair {
    pub a: String,
    pub b: String,
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

impl Pair {
    /// Creates the pair, or says why the kernel (or the machine) refused: the
    /// caller skips with that message.
    ///
    /// Only a refused `ip netns add` (no privilege, a kernel without network
    /// namespaces) is an `Err`; a missing `ip` or any later failure panics.
    pub fn new() -> Result<Pair, String> {
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}x{n}", std::process::id() % 100_000);
        let pair = Pair { a: format!("mpudp-{id}-a"), b: format!("mpudp-{id}-b") };
        match Command::new("ip").args(["netns", "add", &pair.a]).output() {
            Err(e) => panic!("cannot run `ip` ({e}): install iproute2 (Debian: `apt-get install iproute2`)"),
            Ok(out) if !out.status.success() => {
                std::mem::forget(pair); // nothing to delete
                return Err(format!(
                    "`ip netns add` refused: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(_) => {}
        }
        if let Err(e) = pair.setup(&id) {
            drop(pair);
            panic!("setting up the namespaces: {e}");
        }
        Ok(pair)
    }

    fn setup(&self, id: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", &self.b])?;
        let (va, vb) = (format!("mpu{id}a"), format!("mpu{id}b"));
        run(&["ip", "link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        for (ns, v) in [(&self.a, &va), (&self.b, &vb)] {
            run(&["ip", "link", "set", v, "netns", ns])?;
            run(&["ip", "-n", ns, "link", "set", v, "name", "mesh0"])?;
            let dad = "for f in all default mesh0; do echo 0 > /proc/sys/net/ipv6/conf/$f/accept_dad; done";
            run(&["ip", "netns", "exec", ns, "sh", "-c", dad])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", ns, "link", "set", "mesh0", "up"])?;
        }
        // Wait for the link-local addresses (no DAD: they come with link up).
        let deadline = Instant::now() + Duration::from_secs(10);
        for ns in [&self.a, &self.b] {
            while self.link_local(ns).is_none() {
                if Instant::now() > deadline {
                    return Err(format!("no usable link-local address on mesh0 in {ns}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// The link-local address of `mesh0` in `ns`, once it is usable.
    pub fn link_local(&self, ns: &str) -> Option<String> {
        let out = run(&["ip", "-n", ns, "-6", "addr", "show", "dev", "mesh0", "scope", "link"]).ok()?;
        let line = out.lines().find(|l| l.contains("inet6 fe80") && !l.contains("tentative"))?;
        let addr = line.split_whitespace().nth(1)?;
        Some(addr.split('/').next()?.to_owned())
    }

    /// `ip -n ns ...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "-n", ns];
        all.extend_from_slice(args);
        run(&all)
    }

    /// Gives `mesh0` the IPv4 addresses 10.77.0.1/24 (a) and 10.77.0.2/24 (b),
    /// with broadcast 10.77.0.255.
    pub fn add_ipv4(&self) -> Result<(), String> {
        self.ip(&self.a, &["addr", "add", "10.77.0.1/24", "broadcast", "+", "dev", "mesh0"])?;
        self.ip(&self.b, &["addr", "add", "10.77.0.2/24", "broadcast", "+", "dev", "mesh0"])?;
        Ok(())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it (and so the pair).
        for ns in [&self.a, &self.b] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter_netns(ns: &str) -> Result<(), String> {
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: a valid fd; setns only changes this thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

// ------------------------------------------------------------ recording

/// What an instance reported.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    Up { peer: String, mtu: u32 },
    Down { peer: String },
    Update { peer: String, mtu: u32 },
    Frame { peer: String, frame: Vec<u8> },
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Up { peer, mtu } => write!(f, "Up({peer}, mtu {mtu})"),
            Event::Down { peer } => write!(f, "Down({peer})"),
            Event::Update { peer, mtu } => write!(f, "Update({peer}, mtu {mtu})"),
            Event::Frame { peer, frame } => write!(f, "Frame({peer}, {} bytes)", frame.len()),
        }
    }
}

/// Records link events, frames and log lines, with a time stamp, and lets
/// the test thread wait for them.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<(Instant, Event)>>,
    logs: Mutex<Vec<(Level, String)>>,
    changed: Condvar,
    /// Frames are not kept (only counted) when set: for floods.
    pub count_only: std::sync::atomic::AtomicBool,
    pub frames: std::sync::atomic::AtomicU64,
    pub bytes: std::sync::atomic::AtomicU64,
}

impl Recorder {
    fn push(&self, event: Event) {
        lock(&self.events).push((Instant::now(), event));
        self.changed.notify_all();
    }

    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).iter().map(|(_, e)| e.clone()).collect()
    }

    /// Events with their time stamps.
    pub fn timed_events(&self) -> Vec<(Instant, Event)> {
        lock(&self.events).clone()
    }

    pub fn logs(&self) -> Vec<(Level, String)> {
        lock(&self.logs).clone()
    }

    /// Waits until `done` holds for the events, or the timeout passes.
    /// `done` runs without the lock held, so it may look at the recorder.
    pub fn wait(&self, timeout: Duration, done: impl Fn(&[Event]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (events, seen) = {
                let guard = lock(&self.events);
                (
                    guard.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
                    self.frames.load(Ordering::Relaxed),
                )
            };
            if done(&events) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let guard = lock(&self.events);
            if guard.len() == events.len() && self.frames.load(Ordering::Relaxed) == seen {
                // Nothing new since we looked: sleep until something is.
                let wait = (deadline - now).min(Duration::from_millis(100));
                drop(self.changed.wait_timeout(guard, wait).unwrap_or_else(|e| e.into_inner()));
            }
        }
    }

    /// Frames from `peer`, in order.
    pub fn frames_from(&self, peer: &str) -> Vec<Vec<u8>> {
        lock(&self.events)
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Frame { peer: p, frame } if p == peer => Some(frame.clone()),
                _ => None,
            })
            .collect()
    }

    /// The peers whose last link event is `Up`.
    pub fn up_peers(&self) -> Vec<String> {
        up_peers(&self.events())
    }

    /// The counters of the last `stats:` log line, by name.
    pub fn last_stats(&self) -> HashMap<String, u64> {
        let logs = self.logs();
        let Some((_, line)) = logs.iter().rev().find(|(_, l)| l.starts_with("stats:")) else {
            return HashMap::new();
        };
        parse_stats(line)
    }
}

/// `name=value` pairs of a stats line.
pub fn parse_stats(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// The peers whose last link event in `events` is `Up`.
pub fn up_peers(events: &[Event]) -> Vec<String> {
    let mut state: Vec<(String, bool)> = Vec::new();
    for e in events {
        let (peer, up) = match e {
            Event::Up { peer, .. } => (peer, true),
            Event::Down { peer } => (peer, false),
            _ => continue,
        };
        match state.iter_mut().find(|(p, _)| p == peer) {
            Some(s) => s.1 = up,
            None => state.push((peer.clone(), up)),
        }
    }
    state.into_iter().filter(|(_, up)| *up).map(|(p, _)| p).collect()
}

impl TransportEvents for Recorder {
    fn deliver(&self, _instance: InstanceId, peer: &str, frame: &[u8]) -> Result<(), HostError> {
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        if !self.count_only.load(Ordering::Relaxed) {
            self.push(Event::Frame { peer: peer.to_owned(), frame: frame.to_vec() });
        } else {
            // Copied as the daemon does (into its queue), then dropped.
            std::hint::black_box(frame.to_vec());
        }
        Ok(())
    }

    fn link_event(&self, _instance: InstanceId, event: &LinkEvent<'_>) -> Result<(), HostError> {
        let peer = event.peer.to_owned();
        let mtu = event.mtu.unwrap_or(0);
        self.push(match event.kind {
            MP_LINK_UP => Event::Up { peer, mtu },
            MP_LINK_DOWN => Event::Down { peer },
            MP_LINK_UPDATE => Event::Update { peer, mtu },
            _ => return Err(HostError::Invalid),
        });
        Ok(())
    }
}

// ------------------------------------------------------------ the test host

/// Timers and fds of the instances on one node thread; real time.
struct Services {
    epoch: Instant,
    timers: Mutex<HashMap<(InstanceId, u64), Instant>>,
    fds: Mutex<HashMap<(InstanceId, RawFd), u32>>,
    recorder: Arc<Recorder>,
    echo_logs: bool,
}

impl HostServices for Services {
    fn log(&self, instance: &InstanceLabel, level: Level, message: &str) {
        if self.echo_logs && level <= Level::Info {
            eprintln!("# {instance}: {level:?}: {message}");
        }
        lock(&self.recorder.logs).push((level, message.to_owned()));
    }
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    fn node_key(&self) -> [u8; 32] {
        [7; 32]
    }
    fn node_endpoint(&self) -> String {
        "dtn://lab/".into()
    }
    fn sign(&self, _message: &[u8]) -> [u8; 64] {
        [0; 64]
    }
    fn set_timer(&self, instance: InstanceId, timer_id: u64, delay_ms: u64) -> Result<(), HostError> {
        lock(&self.timers).insert((instance, timer_id), Instant::now() + Duration::from_millis(delay_ms));
        Ok(())
    }
    fn cancel_timer(&self, instance: InstanceId, timer_id: u64) -> bool {
        lock(&self.timers).remove(&(instance, timer_id)).is_some()
    }
    fn watch_fd(&self, instance: InstanceId, fd: RawFd, events: u32) -> Result<(), HostError> {
        lock(&self.fds).insert((instance, fd), events);
        Ok(())
    }
    fn unwatch_fd(&self, instance: InstanceId, fd: RawFd) -> Result<(), HostError> {
        lock(&self.fds).remove(&(instance, fd)).map(|_| ()).ok_or(HostError::NotFound)
    }
}

/// Runs on every loop turn of a node; returns whether it wants the next turn
/// at once.
pub type IdleHook = Box<dyn FnMut(&mut dyn Transport) -> bool + Send>;

/// What a command on the node thread gets.
pub struct Ctx {
    pub transport: Option<Box<dyn Transport>>,
    plugin: Arc<Plugin>,
    services: Arc<Services>,
    events: Arc<dyn TransportEvents>,
    config: String,
    /// Called on every loop turn while set; returns whether it wants the
    /// next turn at once (a sender that is not done).
    pub idle: Option<IdleHook>,
    quit: bool,
}

impl Ctx {
    /// Creates (or re-creates, with a new instance) the transport from the
    /// node's configuration, and starts it.
    pub fn create_and_start(&mut self) -> Result<(), CallError> {
        self.destroy();
        let mut t = self.plugin.create_transport(
            "udp",
            self.config.as_bytes(),
            self.services.clone(),
            self.events.clone(),
        )?;
        t.start()?;
        self.transport = Some(t);
        Ok(())
    }

    /// Destroys the instance (without `stop`: like a crash, nothing is
    /// reported) and forgets its timers and fds.
    pub fn destroy(&mut self) {
        if let Some(t) = self.transport.take() {
            let id = t.id();
            drop(t);
            lock(&self.services.timers).retain(|(i, _), _| *i != id);
            lock(&self.services.fds).retain(|(i, _), _| *i != id);
        }
    }

    pub fn transport(&mut self) -> &mut dyn Transport {
        self.transport.as_deref_mut().expect("the node has a transport")
    }
}

type Cmd = Box<dyn FnOnce(&mut Ctx) + Send>;

/// A plugin instance on its own thread, inside a namespace.
pub struct Node {
    pub recorder: Arc<Recorder>,
    commands: mpsc::Sender<Cmd>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts a thread in `ns`, creates the instance with `config` (JSON)
    /// and starts it. Fails with the plugin's error (and its log).
    pub fn spawn(ns: &str, config: &str) -> Result<Node, String> {
        Self::spawn_with(ns, config, Arc::new(Recorder::default()), false)
    }

    pub fn spawn_with(
        ns: &str,
        config: &str,
        recorder: Arc<Recorder>,
        echo_logs: bool,
    ) -> Result<Node, String> {
        let (tx, rx) = mpsc::channel::<Cmd>();
        // SAFETY: eventfd returns a new fd or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(efd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh fd we own.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        let (ready_tx, ready_rx) = mpsc::channel();
        let (ns, config, rec, wake2) = (ns.to_owned(), config.to_owned(), recorder.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name(format!("node-{ns}"))
            .spawn(move || {
                if let Err(e) = enter_netns(&ns) {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let services = Arc::new(Services {
                    epoch: Instant::now(),
                    timers: Mutex::default(),
                    fds: Mutex::default(),
                    recorder: rec.clone(),
                    echo_logs,
                });
                let plugin =
                    Plugin::builtin(meshpay_transport_udp::plugin_entry).expect("the plugin validates");
                let events: Arc<dyn TransportEvents> = rec.clone();
                let mut ctx =
                    Ctx { transport: None, plugin, services, events, config, idle: None, quit: false };
                if let Err(e) = ctx.create_and_start() {
                    let logs: Vec<String> = rec.logs().into_iter().map(|(_, l)| l).collect();
                    let _ = ready_tx.send(Err(format!("{e}; log: {logs:?}")));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                event_loop(&mut ctx, &rx, wake2.as_raw_fd());
                if let Some(t) = ctx.transport.as_mut() {
                    let _ = t.stop();
                }
                ctx.destroy();
            })
            .expect("spawn a node thread");
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Node { recorder, commands: tx, wake, thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err("the node thread died".into())
            }
        }
    }

    /// Runs `f` on the node thread and returns its result.
    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Ctx) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        let cmd: Cmd = Box::new(move |ctx| {
            let _ = tx.send(f(ctx));
        });
        self.commands.send(cmd).expect("node thread alive");
        let one: u64 = 1;
        // SAFETY: writes 8 bytes to an eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const _, 8) };
        rx.recv().expect("node thread answered")
    }

    /// Sends a frame, retrying while the transport says "again" (up to 10 s).
    pub fn send(&self, peer: &str, frame: &[u8]) -> Result<(), CallError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (p, f) = (peer.to_owned(), frame.to_vec());
            match self.call(move |ctx| ctx.transport().send(&p, &f)) {
                Err(CallError::Again) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                r => return r,
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let cmd: Cmd = Box::new(|ctx| ctx.quit = true);
            if self.commands.send(cmd).is_ok() {
                let one: u64 = 1;
                // SAFETY: as in `call`.
                unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const _, 8) };
            }
            let _ = thread.join();
        }
    }
}

/// The node thread's loop: commands, `poll` over the watched fds and the
/// wake-up eventfd with the next timer as timeout, then `on_fd` and
/// `on_timer` as due.
fn event_loop(ctx: &mut Ctx, commands: &mpsc::Receiver<Cmd>, wake: RawFd) {
    loop {
        while let Ok(cmd) = commands.try_recv() {
            cmd(ctx);
            if ctx.quit {
                return;
            }
        }
        let mut busy = false;
        if let (Some(idle), Some(t)) = (ctx.idle.as_mut(), ctx.transport.as_deref_mut()) {
            busy = idle(t);
        }
        let watched: Vec<((InstanceId, RawFd), u32)> =
            lock(&ctx.services.fds).iter().map(|(k, v)| (*k, *v)).collect();
        let next_timer = lock(&ctx.services.timers).values().min().copied();
        let now = Instant::now();
        // A waiting idle hook (a sender with a full window) looks again
        // every millisecond.
        let cap = if ctx.idle.is_some() { 1 } else { 1000 };
        let timeout_ms = if busy {
            0
        } else {
            next_timer.map_or(cap, |t| t.saturating_duration_since(now).as_millis().min(cap as u128) as i32)
        };
        let mut pollfds = vec![libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 }];
        for ((_, fd), interest) in &watched {
            let mut events = 0;
            if interest & MP_FD_READABLE != 0 {
                events |= libc::POLLIN;
            }
            if interest & MP_FD_WRITABLE != 0 {
                events |= libc::POLLOUT;
            }
            pollfds.push(libc::pollfd { fd: *fd, events, revents: 0 });
        }
        // SAFETY: a valid array of pollfds.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        if pollfds[0].revents != 0 {
            let mut buf = 0u64;
            // SAFETY: reads 8 bytes from the eventfd (resetting it).
            unsafe { libc::read(wake, &mut buf as *mut u64 as *mut _, 8) };
        }
        for (i, ((instance, fd), _)) in watched.iter().enumerate() {
            let revents = pollfds[i + 1].revents;
            if revents == 0 {
                continue;
            }
            let mut events = 0;
            if revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
                events |= MP_FD_READABLE;
            }
            if revents & libc::POLLOUT != 0 {
                events |= MP_FD_WRITABLE;
            }
            for _ in 0..64 {
                let Some(t) = ctx.transport.as_deref_mut().filter(|t| t.id() == *instance) else { break };
                match t.on_fd(*fd, events) {
                    Ok(FdState::More) => continue,
                    Ok(FdState::Drained) => break,
                    Err(e) => panic!("on_fd: {e}"),
                }
            }
        }
        let now = Instant::now();
        let due: Vec<(InstanceId, u64)> = {
            let mut timers = lock(&ctx.services.timers);
            let due: Vec<_> = timers.iter().filter(|(_, t)| **t <= now).map(|(k, _)| *k).collect();
            for k in &due {
                timers.remove(k);
            }
            due
        };
        for (instance, timer) in due {
            if let Some(t) = ctx.transport.as_deref_mut().filter(|t| t.id() == instance) {
                t.on_timer(timer).unwrap_or_else(|e| panic!("on_timer({timer}): {e}"));
            }
        }
    }
}
