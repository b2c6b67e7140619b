//! A small in-test host for driving transport plugins through their C
//! tables (`MpTransportV1`), beside the real host in `router/host`.
//!
//! It does what a POLL_FD host does, deterministically and on one thread:
//!
//! * `now_ms` is a virtual clock shared by all nodes of a [`Lab`]; it only
//!   moves when the lab fires the next timer, so tests never sleep;
//! * `set_timer`/`cancel_timer` record timers, which [`Lab::advance`] fires;
//! * `watch_fd`/`unwatch_fd` record fds, which [`Lab::pump`] polls with
//!   `libc::poll` (timeout 0: a Unix datagram is in the receiver's queue when
//!   `sendto` returns) and hands to `on_fd` until the plugin says drained;
//! * `deliver`/`link_event` append to a `Mutex<Vec<Event>>`;
//! * anything the ABI forbids that the host can see (a string that is not
//!   UTF-8, an event while the instance is not running, an unknown link
//!   kind) is recorded as a violation, which [`Node::assert_clean`] reports.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshpay_abi::*;

/// What a plugin reported through its transport host.
#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    Up { peer: String, mtu: u32 },
    Down { peer: String },
    Frame { peer: String, frame: Vec<u8> },
}

impl std::fmt::Debug for Event {
    /// Frames as length and first bytes: a 60000-byte frame in a failure
    /// message helps nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Up { peer, mtu } => write!(f, "Up({peer}, mtu {mtu})"),
            Event::Down { peer } => write!(f, "Down({peer})"),
            Event::Frame { peer, frame } => {
                let head = &frame[..frame.len().min(12)];
                write!(f, "Frame({peer}, {} bytes, {head:02x?}...)", frame.len())
            }
        }
    }
}

/// The host side of one instance: what its `ctx` points to.
pub struct HostState {
    pub name: String,
    clock: Arc<AtomicU64>,
    /// Timer id → due time (virtual ms).
    timers: Mutex<BTreeMap<u64, u64>>,
    /// fd → `MP_FD_*` interest.
    fds: Mutex<BTreeMap<i32, u32>>,
    events: Mutex<Vec<Event>>,
    logs: Mutex<Vec<(MpLogLevel, String)>>,
    violations: Mutex<Vec<String>>,
    /// Between `start` being called and `stop` returning.
    running: AtomicBool,
}

impl HostState {
    pub fn logs(&self) -> Vec<(MpLogLevel, String)> {
        self.logs.lock().unwrap().clone()
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    fn event(&self, event: Event) {
        if !self.running.load(Ordering::SeqCst) {
            self.violation(format!("{event:?} while the instance is not running"));
        }
        self.events.lock().unwrap().push(event);
    }
}

/// # Safety
/// `ctx` is the `Arc<HostState>` pointer a [`Node`] put in its tables.
unsafe fn state<'a>(ctx: *mut c_void) -> &'a HostState {
    unsafe { &*(ctx as *const HostState) }
}

unsafe extern "C" fn host_log(ctx: *mut c_void, level: MpLogLevel, message: MpStr) {
    let s = unsafe { state(ctx) };
    match unsafe { message.to_str() } {
        Ok(m) => s.logs.lock().unwrap().push((level, m.to_owned())),
        Err(_) => s.violation("log line is not UTF-8".into()),
    }
}

unsafe extern "C" fn host_now_ms(ctx: *mut c_void) -> u64 {
    unsafe { state(ctx) }.clock.load(Ordering::SeqCst)
}

unsafe extern "C" fn host_set_timer(ctx: *mut c_void, id: u64, delay_ms: u64) -> MpStatus {
    let s = unsafe { state(ctx) };
    let due = s.clock.load(Ordering::SeqCst) + delay_ms;
    s.timers.lock().unwrap().insert(id, due);
    MP_OK
}

unsafe extern "C" fn host_cancel_timer(ctx: *mut c_void, id: u64) -> MpStatus {
    match unsafe { state(ctx) }.timers.lock().unwrap().remove(&id) {
        Some(_) => MP_OK,
        None => MP_ERR_NOT_FOUND,
    }
}

unsafe extern "C" fn host_watch_fd(ctx: *mut c_void, fd: i32, events: u32) -> MpStatus {
    let s = unsafe { state(ctx) };
    if fd < 0 || events == 0 || events & !(MP_FD_READABLE | MP_FD_WRITABLE) != 0 {
        s.violation(format!("watch_fd({fd}, {events:#x})"));
        return MP_ERR_INVALID;
    }
    s.fds.lock().unwrap().insert(fd, events);
    MP_OK
}

unsafe extern "C" fn host_unwatch_fd(ctx: *mut c_void, fd: i32) -> MpStatus {
    match unsafe { state(ctx) }.fds.lock().unwrap().remove(&fd) {
        Some(_) => MP_OK,
        None => MP_ERR_NOT_FOUND,
    }
}

unsafe extern "C" fn host_deliver(ctx: *mut c_void, peer: MpStr, frame: MpBytes) -> MpStatus {
    let s = unsafe { state(ctx) };
    let Ok(peer) = (unsafe { peer.to_str() }) else {
        s.violation("deliver: peer is not UTF-8".into());
        return MP_ERR_INVALID;
    };
    // Copied here: the frame is only borrowed for the call.
    let frame = unsafe { frame.as_slice() }.to_vec();
    s.event(Event::Frame { peer: peer.to_owned(), frame });
    MP_OK
}

unsafe extern "C" fn host_link_event(ctx: *mut c_void, event: *const MpLinkEvent) -> MpStatus {
    let s = unsafe { state(ctx) };
    let event = match unsafe { LinkEvent::from_raw(event) } {
        Ok(e) => e,
        Err(e) => {
            s.violation(format!("link_event: {e}"));
            return MP_ERR_INVALID;
        }
    };
    let peer = event.peer.to_owned();
    match event.kind {
        MP_LINK_UP => s.event(Event::Up { peer, mtu: event.mtu.unwrap_or(0) }),
        MP_LINK_DOWN => s.event(Event::Down { peer }),
        other => s.violation(format!("link_event: unexpected kind {other}")),
    }
    MP_OK
}

/// A transport plugin's tables, from a loaded library or a linked-in rlib.
#[derive(Clone)]
pub struct Plugin {
    pub entry: MpPluginEntry,
    pub vtable: MpTransportV1,
    /// Keeps a dlopen'ed library mapped while any node uses its code.
    _library: Option<Arc<libloading::Library>>,
}

impl Plugin {
    /// Checks the descriptor and fetches the transport table.
    ///
    /// # Safety
    /// `entry` must be a plugin's descriptor, valid while `library` (if any)
    /// stays loaded.
    pub unsafe fn from_entry(
        entry: *const MpPluginEntry,
        library: Option<Arc<libloading::Library>>,
    ) -> Plugin {
        let entry = unsafe { read_sized(entry) }.expect("plugin descriptor");
        assert_eq!(entry.abi.major, MP_ABI_MAJOR, "descriptor ABI major");
        assert_ne!(entry.kinds & MP_KIND_TRANSPORT, 0, "descriptor kinds");
        let get_interface = entry.get_interface.expect("get_interface is required");
        let table = unsafe { get_interface(MpStr::new(INTERFACE_TRANSPORT_V1)) };
        assert!(!table.is_null(), "the plugin serves no {INTERFACE_TRANSPORT_V1}");
        let vtable = unsafe { read_sized(table as *const MpTransportV1) }.expect("transport table");
        Plugin { entry, vtable, _library: library }
    }

    pub fn id(&self) -> String {
        unsafe { self.entry.id.to_str() }.unwrap().to_owned()
    }
}

/// One plugin instance with its own host tables.
pub struct Node {
    plugin: Plugin,
    pub state: Arc<HostState>,
    /// The tables the plugin got in `create`; boxed so they do not move.
    _tables: Box<(MpHost, MpTransportHost)>,
    instance: *mut c_void,
}

fn tables(state: &Arc<HostState>) -> Box<(MpHost, MpTransportHost)> {
    let ctx = Arc::as_ptr(state) as *mut c_void;
    let host = MpHost {
        struct_size: table_size::<MpHost>(),
        abi: ABI_VERSION,
        ctx,
        log: Some(host_log),
        now_ms: Some(host_now_ms),
        set_timer: Some(host_set_timer),
        cancel_timer: Some(host_cancel_timer),
        node_key: None,
        node_endpoint: None,
        sign: None,
        verify: None,
        verify_batch: None,
        emit_bundle: None,
        watch_fd: Some(host_watch_fd),
        unwatch_fd: Some(host_unwatch_fd),
        get_extension: None,
    };
    let link = MpTransportHost {
        struct_size: table_size::<MpTransportHost>(),
        ctx,
        deliver: Some(host_deliver),
        link_event: Some(host_link_event),
    };
    Box::new((host, link))
}

impl Node {
    /// Calls `create`. On failure returns the status and the host state (for
    /// its log).
    pub fn create(
        plugin: &Plugin,
        name: &str,
        clock: &Arc<AtomicU64>,
        config: &[u8],
    ) -> Result<Node, (MpStatus, Arc<HostState>)> {
        let state = Arc::new(HostState {
            name: name.to_owned(),
            clock: clock.clone(),
            timers: Mutex::default(),
            fds: Mutex::default(),
            events: Mutex::default(),
            logs: Mutex::default(),
            violations: Mutex::default(),
            running: AtomicBool::new(false),
        });
        let tables = tables(&state);
        let create = plugin.vtable.create.expect("create is required");
        let mut instance = std::ptr::null_mut();
        let status = unsafe { create(&tables.0, &tables.1, MpBytes::new(config), &mut instance) };
        if status != MP_OK {
            assert!(instance.is_null(), "{name}: create failed but wrote an instance");
            return Err((status, state));
        }
        assert!(!instance.is_null(), "{name}: create returned MP_OK without an instance");
        Ok(Node { plugin: plugin.clone(), state, _tables: tables, instance })
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn start(&self) -> MpStatus {
        self.state.running.store(true, Ordering::SeqCst);
        let status = unsafe { self.plugin.vtable.start.unwrap()(self.instance) };
        if status != MP_OK {
            self.state.running.store(false, Ordering::SeqCst);
        }
        status
    }

    pub fn stop(&self) -> MpStatus {
        let status = unsafe { self.plugin.vtable.stop.unwrap()(self.instance) };
        self.state.running.store(false, Ordering::SeqCst);
        status
    }

    pub fn send(&self, peer: &str, frame: &[u8]) -> MpStatus {
        let send = self.plugin.vtable.send.unwrap();
        unsafe { send(self.instance, MpStr::new(peer), MpBytes::new(frame)) }
    }

    fn on_fd(&self, fd: i32, events: u32) -> MpStatus {
        unsafe { self.plugin.vtable.on_fd.expect("POLL_FD needs on_fd")(self.instance, fd, events) }
    }

    fn on_timer(&self, id: u64) -> MpStatus {
        match self.plugin.vtable.on_timer {
            Some(f) => unsafe { f(self.instance, id) },
            None => MP_OK,
        }
    }

    pub fn watched_fds(&self) -> Vec<i32> {
        self.state.fds.lock().unwrap().keys().copied().collect()
    }

    pub fn armed_timers(&self) -> Vec<u64> {
        self.state.timers.lock().unwrap().keys().copied().collect()
    }

    pub fn events(&self) -> Vec<Event> {
        self.state.events.lock().unwrap().clone()
    }

    /// Frames delivered from `peer`, in order.
    pub fn frames_from(&self, peer: &str) -> Vec<Vec<u8>> {
        let events = self.state.events.lock().unwrap();
        let frames = events.iter().filter_map(|e| match e {
            Event::Frame { peer: p, frame } if p == peer => Some(frame.clone()),
            _ => None,
        });
        frames.collect()
    }

    /// Whether `peer` is up: its last link event was `Up`.
    pub fn is_up(&self, peer: &str) -> bool {
        let events = self.state.events.lock().unwrap();
        let last = events.iter().rev().find_map(|e| match e {
            Event::Up { peer: p, .. } if p == peer => Some(true),
            Event::Down { peer: p } if p == peer => Some(false),
            _ => None,
        });
        last == Some(true)
    }

    pub fn logs(&self) -> Vec<(MpLogLevel, String)> {
        self.state.logs.lock().unwrap().clone()
    }

    /// Fails on any ABI violation the host saw.
    pub fn assert_clean(&self) {
        let v = self.state.violations.lock().unwrap();
        assert!(v.is_empty(), "{}: ABI violations: {v:#?}", self.name());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        unsafe { self.plugin.vtable.destroy.unwrap()(self.instance) }
    }
}

/// Nodes sharing one virtual clock, driven on the test's thread.
pub struct Lab {
    pub clock: Arc<AtomicU64>,
    pub nodes: Vec<Node>,
}

impl std::ops::Index<usize> for Lab {
    type Output = Node;
    fn index(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

/// Longest a test waits for something, in real time.
const DEADLINE: Duration = Duration::from_secs(20);

impl Lab {
    pub fn new() -> Lab {
        Lab { clock: Arc::new(AtomicU64::new(1_000_000)), nodes: Vec::new() }
    }

    /// Creates a node (panics if `create` fails) and returns its index.
    pub fn add(&mut self, plugin: &Plugin, name: &str, config: &str) -> usize {
        match Node::create(plugin, name, &self.clock, config.as_bytes()) {
            Ok(node) => self.nodes.push(node),
            Err((status, state)) => panic!(
                "{name}: create failed with {}; log: {:#?}",
                status_name(status),
                state.logs.lock().unwrap()
            ),
        }
        self.nodes.len() - 1
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    /// Polls every watched fd once (without waiting) and runs `on_fd` on the
    /// ready ones until each says drained. Returns how many were ready.
    pub fn pump(&self) -> usize {
        let mut polled: Vec<(usize, libc::pollfd)> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for fd in node.watched_fds() {
                polled.push((i, libc::pollfd { fd, events: libc::POLLIN, revents: 0 }));
            }
        }
        let mut fds: Vec<libc::pollfd> = polled.iter().map(|(_, p)| *p).collect();
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        let mut ready = 0;
        for ((i, _), p) in polled.iter().zip(&fds) {
            if p.revents != 0 {
                ready += 1;
                self.drain(&self.nodes[*i], p.fd);
            }
        }
        ready
    }

    /// Calls `on_fd` until `MP_ERR_AGAIN`; `MP_OK` means "call again".
    fn drain(&self, node: &Node, fd: i32) {
        for _ in 0..1000 {
            match node.on_fd(fd, MP_FD_READABLE) {
                MP_ERR_AGAIN => return,
                MP_OK => continue,
                other => panic!("{}: on_fd returned {}", node.name(), status_name(other)),
            }
        }
        panic!("{}: on_fd never reported drained", node.name());
    }

    /// Moves the clock to the earliest armed timer and fires every timer due
    /// by then. Returns false if no timer is armed.
    pub fn advance(&self) -> bool {
        let next =
            self.nodes.iter().filter_map(|n| n.state.timers.lock().unwrap().values().min().copied()).min();
        let Some(due) = next else { return false };
        if due > self.now() {
            self.clock.store(due, Ordering::SeqCst);
        }
        let now = self.now();
        for node in &self.nodes {
            let fired: Vec<u64> = {
                let mut timers = node.state.timers.lock().unwrap();
                let ids: Vec<u64> = timers.iter().filter(|(_, d)| **d <= now).map(|(id, _)| *id).collect();
                ids.iter().for_each(|id| {
                    timers.remove(id);
                });
                ids
            };
            for id in fired {
                let status = node.on_timer(id);
                assert_eq!(status, MP_OK, "{}: on_timer({id})", node.name());
            }
        }
        true
    }

    /// Delivers everything in flight, then lets virtual time pass timer by
    /// timer, until `done` holds. Fails after [`DEADLINE`] of real time.
    pub fn run_until(&self, what: &str, done: impl Fn(&Lab) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if start.elapsed() > DEADLINE {
                let events: Vec<_> = self.nodes.iter().map(|n| (n.name(), n.events())).collect();
                panic!("timed out waiting for {what} (virtual clock {}); events: {events:#?}", self.now());
            }
            if self.pump() == 0 && !self.advance() {
                panic!("waiting for {what}, but nothing is in flight and no timer is armed");
            }
        }
    }

    /// Delivers everything in flight, without moving the clock.
    pub fn settle(&self) {
        let start = Instant::now();
        while self.pump() > 0 {
            assert!(start.elapsed() < DEADLINE, "sockets never drained");
        }
    }
}
