//! # udp: meshpay nodes linked over UDP, with neighbour discovery
//!
//! A POLL_FD transport plugin (no threads of its own): one UDP socket, watched
//! with [`Host::watch_fd`] and served in `on_fd`; timers from the host; time
//! only from [`Host::now_ms`]. See `README.md` beside this crate for the wire
//! format, the configuration and the behaviour in full.
//!
//! * **Discovery** ([`peers`]): every `beacon_interval_ms` the instance sends
//!   a beacon to [`BEACON_GROUP_V6`] on each interface (and to the IPv4
//!   broadcast address with `ipv4_broadcast`), and by unicast to static
//!   peers. A peer is up from its first valid beacon or frame and down after
//!   `peer_timeout_ms` of silence; a new instance nonce is down then up.
//! * **Frames** ([`txqueue`], [`reassembly`]): a frame is split into
//!   fragments of `fragment_payload_bytes`, queued per peer and sent in
//!   batches (`sendmmsg`, UDP GSO where the kernel has it); fragments are
//!   received in batches (`recvmmsg`, UDP GRO) and reassembled with strict
//!   checks and bounded memory.
//! * **Wire format**: [`wire`]. **Config**: [`config`]. **System calls**:
//!   [`sys`].
//!
//! This crate is an `rlib` for linking into the router; the loadable
//! `libmeshpay_plugin_udp.so` is built by the wrapper crate in `so/`.

pub mod addr;
pub mod config;
pub mod peers;
pub mod reassembly;
pub mod stats;
pub mod sys;
pub mod txqueue;
pub mod wire;

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use meshpay_abi::sdk::{FdState, Host, Level, PluginError, TransportHost, TransportMode, TransportPlugin};
use meshpay_abi::{
    LinkEvent, MP_ERR_NOT_FOUND, MP_FD_READABLE, MP_FD_WRITABLE, MP_LINK_DOWN, MP_LINK_UP, MP_LINK_UPDATE,
};
use socket2::{SockAddr, Socket};

pub use config::Config;
use peers::{Change, PeerId, Peers};
use reassembly::{Class, Limits, Outcome, Reassembler};
use stats::Stats;
use sys::{Family, RxBatch, TxMsg};
use txqueue::Pool;
use wire::{Beacon, BeaconRepr, FLAG_UNICAST, Fragment, FragmentRepr, Kind};

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.transport.udp",
    name: "UDP transport",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "Links meshpay nodes over UDP: beacons on link-local multicast (and IPv4 broadcast) find neighbours; frames up to 16 MiB are fragmented",
    transport: Udp,
}

/// The link-local group beacons go to: `ff02::6d70:6179` ("mpay"), outside
/// the groups IANA has assigned in `ff02::/16` and outside the
/// solicited-node range `ff02::1:ff00:0/104`.
pub const BEACON_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0x6d70, 0x6179);

/// Timer ids (chosen by the plugin, per instance).
const TIMER_BEACON: u64 = 1;
const TIMER_EXPIRE: u64 = 2;
const TIMER_FLUSH: u64 = 3;

/// `on_fd` returns "call me again" after this many datagrams, so a flood
/// cannot starve the router's loop.
const RX_BUDGET: usize = 64;
/// `send` flushes at once when a peer has this much queued, or when nothing
/// was flushed yet in this millisecond (so a lone frame leaves without
/// delay); otherwise frames wait for the flush timer (0 ms: the host's next
/// turn), so that the many sends of a busy turn go out together.
const FLUSH_DATAGRAMS: usize = 64;
const FLUSH_BYTES: usize = 64 * 1024;

/// One configured interface.
#[derive(Debug)]
struct Iface {
    name: String,
    /// 0 while the interface does not exist.
    index: u32,
    /// Member of [`BEACON_GROUP_V6`] on `index`.
    joined: bool,
    /// Joining failed on `index` (logged once per index).
    join_failed: bool,
}

/// A static peer and, once its interface is known, its key.
#[derive(Debug)]
struct StaticSlot {
    spec: addr::StaticAddr,
    id: Option<PeerId>,
    addr: Option<SocketAddr>,
}

/// The socket and what came with it; `Some` between `start` and `stop`.
struct Io {
    socket: Socket,
    fd: RawFd,
    family: Family,
    gso: bool,
    /// Watching for writability: a send hit EAGAIN with datagrams left.
    want_write: bool,
}

/// One UDP transport instance.
pub struct Udp {
    host: Host,
    link: TransportHost,
    config: Config,
    /// This run's instance nonce (new on every `start`).
    nonce: u64,
    next_frame_id: u32,
    io: Option<Io>,
    /// Taken out of `self` while its datagrams are handled.
    rx: Option<Box<RxBatch>>,
    peers: Peers,
    reassembler: Reassembler,
    interfaces: Vec<Iface>,
    statics: Vec<StaticSlot>,
    pool: Pool,
    /// Bytes queued to all peers.
    queued: usize,
    changes: Vec<Change>,
    stats: Stats,
    logged: Stats,
    flush_armed: bool,
    /// Host time of the last flush.
    last_flush_ms: u64,
    expire_armed: bool,
    /// Round-robin start for flushing.
    rr: usize,
    rng: u64,
}

impl TransportPlugin for Udp {
    const MODE: TransportMode = TransportMode::PollFd;

    fn create(host: Host, link: TransportHost, config: &[u8]) -> Result<Self, PluginError> {
        let config = Config::parse(config)?;
        let limits = Limits::for_max_frame(config.max_frame_bytes as usize, config.peer_timeout_ms.into());
        let interfaces = config
            .interfaces
            .iter()
            .map(|name| Iface { name: name.clone(), index: 0, joined: false, join_failed: false })
            .collect();
        let statics = config
            .static_peers
            .iter()
            .map(|spec| StaticSlot { spec: spec.clone(), id: None, addr: None })
            .collect();
        let seed = sys::random_u64();
        Ok(Udp {
            host,
            link,
            peers: Peers::new(config.peer_timeout_ms.into(), config.max_frame_bytes),
            config,
            nonce: 0,
            next_frame_id: seed as u32,
            io: None,
            rx: None,
            reassembler: Reassembler::new(limits),
            interfaces,
            statics,
            pool: Pool::default(),
            queued: 0,
            changes: Vec::new(),
            stats: Stats::default(),
            logged: Stats::default(),
            flush_armed: false,
            last_flush_ms: u64::MAX,
            expire_armed: false,
            rr: 0,
            rng: seed | 1,
        })
    }

    /// Opens and watches the socket, joins the beacon group, beacons at once
    /// and arms the beacon timer.
    fn start(&mut self) -> Result<(), PluginError> {
        if self.io.is_some() {
            return Err(PluginError::invalid("already started"));
        }
        let c = &self.config;
        let need_v6 = c.ipv6 || c.static_peers.iter().any(|p| p.ip.is_ipv6());
        let (socket, opened) = sys::open(
            c.port,
            need_v6,
            c.ipv4_broadcast,
            c.send_buffer_bytes as usize,
            c.recv_buffer_bytes as usize,
            c.gro,
        )
        .map_err(|e| PluginError::failed(format!("cannot open UDP port {}: {e}", c.port)))?;
        let fd = socket.as_raw_fd();
        self.host.watch_fd(fd, MP_FD_READABLE)?;
        self.nonce = sys::random_u64();
        // With GRO each slot may take a whole train (up to 64 KiB, all of it
        // resident once used): fewer slots hold as many datagrams per call.
        let slots = if opened.gro { sys::GRO_RX_SLOTS.min(c.batch as usize) } else { c.batch as usize };
        self.rx.get_or_insert_with(|| Box::new(RxBatch::new(slots)));
        self.io = Some(Io { socket, fd, family: opened.family, gso: opened.gso && c.gso, want_write: false });
        for iface in &mut self.interfaces {
            (iface.index, iface.joined, iface.join_failed) = (0, false, false);
        }
        for s in &mut self.statics {
            (s.id, s.addr) = (None, None);
        }
        self.refresh_interfaces();
        let message = format!(
            "listening on UDP port {} ({}), interfaces {:?}, {} static peers; GSO {}, GRO {}; \
             buffers send {} recv {}{}",
            self.config.port,
            if opened.family == Family::V6 { "IPv6 and IPv4" } else { "IPv4 only" },
            self.config.interfaces,
            self.config.static_peers.len(),
            on_off(opened.gso && self.config.gso),
            on_off(opened.gro),
            opened.send_buffer,
            opened.recv_buffer,
            if opened.forced { " (forced)" } else { "" },
        );
        self.host.log(Level::Info, &message);
        if let Err(e) = self.beacon_tick() {
            let _ = self.stop();
            return Err(e);
        }
        Ok(())
    }

    /// Reports every up peer down, drops what is queued and partial, and
    /// closes the socket. Nothing is delivered after this returns.
    fn stop(&mut self) -> Result<(), PluginError> {
        let Some(io) = self.io.take() else { return Ok(()) };
        for timer in [TIMER_BEACON, TIMER_EXPIRE, TIMER_FLUSH] {
            self.host.cancel_timer(timer);
        }
        (self.flush_armed, self.expire_armed) = (false, false);
        let _ = self.host.unwatch_fd(io.fd);
        drop(io);
        self.peers.all_down(&mut self.changes);
        self.apply_changes();
        self.reassembler.clear();
        self.host.log(Level::Info, &format!("stopped; {}", self.stats.line()));
        Ok(())
    }

    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        let Some(io) = &self.io else {
            return Err(PluginError::failed("send: not started"));
        };
        let want_write = io.want_write;
        let Some(id) = self.peers.by_name(peer) else {
            return Err(
                PluginError::new(MP_ERR_NOT_FOUND, format!("send: no peer {peer:?}")).at(Level::Debug)
            );
        };
        let p = self.peers.get_mut(id).expect("indexed peers exist");
        if !p.up && !p.is_static {
            return Err(PluginError::new(MP_ERR_NOT_FOUND, format!("send: {peer} is down")).at(Level::Debug));
        }
        let limit = p.max_frame.min(self.config.max_frame_bytes) as usize;
        if frame.len() > limit {
            return Err(PluginError::invalid(format!(
                "send: a frame of {} bytes exceeds the link MTU to {peer} ({limit})",
                frame.len()
            )));
        }
        let max = self.config.max_frame_bytes as usize;
        if p.tx.bytes() >= 2 * max || self.queued >= 8 * max {
            self.stats.tx_again += 1;
            return Err(PluginError::again());
        }
        let before = p.tx.bytes();
        let frame_id = self.next_frame_id;
        self.next_frame_id = frame_id.wrapping_add(1);
        p.tx.push_frame(frame_id, frame, self.config.fragment_payload_bytes as usize, &mut self.pool);
        self.queued += p.tx.bytes() - before;
        self.stats.tx_frames += 1;
        if want_write {
            return Ok(()); // flushed when the socket is writable again
        }
        if p.tx.datagrams() >= FLUSH_DATAGRAMS
            || p.tx.bytes() >= FLUSH_BYTES
            || self.host.now_ms() != self.last_flush_ms
        {
            self.flush();
        } else if !self.flush_armed {
            self.flush_armed = self.host.set_timer(TIMER_FLUSH, 0).is_ok();
            if !self.flush_armed {
                self.flush();
            }
        }
        Ok(())
    }

    /// Reads until the socket is drained (`Drained`) or the budget is used
    /// (`More`), and flushes queued frames when writable.
    fn on_fd(&mut self, fd: RawFd, events: u32) -> Result<FdState, PluginError> {
        let Some(io) = self.io.as_ref().filter(|io| io.fd == fd) else {
            return Ok(FdState::Drained); // not ours (any more)
        };
        if events & MP_FD_WRITABLE != 0 && io.want_write {
            self.flush();
        }
        if events & MP_FD_READABLE == 0 {
            return Ok(FdState::Drained);
        }
        let state = self.receive(fd);
        if self.queued > 0 && !self.io.as_ref().is_some_and(|io| io.want_write) {
            self.flush(); // answers and forwards produced while receiving
        }
        Ok(state)
    }

    fn on_timer(&mut self, timer_id: u64) -> Result<(), PluginError> {
        if self.io.is_none() {
            return Ok(()); // a late timer after stop
        }
        match timer_id {
            TIMER_BEACON => self.beacon_tick()?,
            TIMER_EXPIRE => {
                self.expire_armed = false;
                self.expire_peers();
            }
            TIMER_FLUSH => {
                self.flush_armed = false;
                self.flush();
            }
            _ => {}
        }
        Ok(())
    }
}

/// Errors a GSO send gets where the device or path cannot take it: no
/// checksum offload (EIO), a segment over the MTU (EMSGSIZE), a size or
/// count the kernel refuses (EINVAL), no support (EOPNOTSUPP, ENOPROTOOPT).
fn is_gso_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EMSGSIZE | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// The name of a (normalized) peer address, naming link-local scopes after
/// the configured interfaces first.
fn peer_name(interfaces: &[Iface], addr: &SocketAddr) -> String {
    addr::name(addr, |index| {
        interfaces.iter().find(|i| i.index == index).map(|i| i.name.clone()).or_else(|| sys::if_name(index))
    })
}

impl Udp {
    // ------------------------------------------------------------ receiving

    /// Receives batches until EAGAIN or the budget.
    fn receive(&mut self, fd: RawFd) -> FdState {
        let Some(mut rx) = self.rx.take() else { return FdState::Drained };
        let now = self.host.now_ms();
        let mut handled = 0;
        let state = loop {
            match rx.recv(fd, self.config.batch as usize) {
                Ok(n) => {
                    for i in 0..n {
                        handled += self.handle_message(&rx, i, now);
                    }
                    if handled >= RX_BUDGET {
                        break FdState::More;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break FdState::Drained,
                Err(e) => {
                    // Nothing a datagram socket reports here is worth more
                    // than a log line; the next readiness tries again.
                    self.host.log(Level::Warn, &format!("recvmmsg: {e}"));
                    break FdState::Drained;
                }
            }
        };
        self.rx = Some(rx);
        state
    }

    /// Handles message `i` of a batch: one datagram, or with GRO a train of
    /// them. Returns how many datagrams it held.
    fn handle_message(&mut self, rx: &RxBatch, i: usize, now: u64) -> usize {
        let meta = *rx.meta(i);
        let data = rx.data(i);
        let segment = if meta.segment > 0 { meta.segment } else { data.len().max(1) };
        let datagrams = data.len().div_ceil(segment).max(1);
        self.stats.rx_datagrams += datagrams as u64;
        self.stats.rx_trains += u64::from(datagrams > 1);
        if meta.truncated {
            self.stats.drop_too_large += datagrams as u64;
            return datagrams;
        }
        let Some(source) = meta.source.map(addr::normalize) else {
            self.stats.drop_foreign += datagrams as u64;
            return datagrams;
        };
        let on_interface = meta.ifindex != 0 && self.interfaces.iter().any(|i| i.index == meta.ifindex);
        if !on_interface && !self.is_static(&source) {
            self.stats.drop_foreign += datagrams as u64;
            return datagrams;
        }
        if data.is_empty() {
            self.stats.drop_truncated += 1;
            return 1;
        }
        for datagram in data.chunks(segment) {
            self.handle_datagram(source, datagram, now);
        }
        datagrams
    }

    fn is_static(&self, source: &SocketAddr) -> bool {
        self.peers.by_addr(source).and_then(|id| self.peers.get(id)).is_some_and(|p| p.is_static)
    }

    fn handle_datagram(&mut self, source: SocketAddr, datagram: &[u8], now: u64) {
        match wire::classify(datagram) {
            Ok(Kind::Beacon) => self.on_beacon(source, datagram, now),
            Ok(Kind::Fragment) => self.on_fragment(source, datagram, now),
            Err(e) => self.stats.wire_error(e),
        }
    }

    fn on_beacon(&mut self, source: SocketAddr, datagram: &[u8], now: u64) {
        let beacon = match Beacon::new_checked(datagram) {
            Ok(b) => BeaconRepr::parse(&b),
            Err(e) => return self.stats.wire_error(e),
        };
        self.stats.rx_beacons += 1;
        if beacon.nonce == self.nonce {
            self.stats.own_beacons += 1; // looped back (broadcast)
            return;
        }
        // The peer is where it listens (which is also where it sends from).
        let mut addr = source;
        addr.set_port(beacon.port);
        let interfaces = &self.interfaces;
        match self.peers.on_beacon(addr, &beacon, now, || peer_name(interfaces, &addr), &mut self.changes) {
            Ok((id, true)) => {
                // New: answer at once, so it need not wait for our next tick.
                self.apply_changes();
                self.unicast_beacon(id);
            }
            Ok((_, false)) => self.apply_changes(),
            Err(peers::Refused::Full) => self.stats.drop_peers_full += 1,
            Err(peers::Refused::Alias) => {
                self.stats.alias_beacons += 1;
                self.apply_changes();
            }
        }
    }

    fn on_fragment(&mut self, source: SocketAddr, datagram: &[u8], now: u64) {
        let fragment = match Fragment::new_checked(datagram) {
            Ok(f) => f,
            Err(e) => return self.stats.wire_error(e),
        };
        let header = FragmentRepr::parse(&fragment);
        if header.total_len > self.config.max_frame_bytes {
            self.stats.drop_too_large += 1;
            return;
        }
        if header.count == 1 {
            return self.frame_complete(source, fragment.payload(), now);
        }
        self.peers.on_traffic(&source, now);
        let class = if self.peers.is_known(&source) { Class::Peer } else { Class::Stranger };
        match self.reassembler.push(source, class, &header, fragment.payload(), now) {
            Outcome::Pending => {}
            Outcome::Complete(frame) => {
                self.frame_complete(source, &frame, now);
                self.reassembler.recycle(frame);
            }
            Outcome::Dropped(why) => self.stats.reassembly_drop(why),
        }
    }

    /// A whole frame from `source`: the sender is up; the router gets it.
    fn frame_complete(&mut self, source: SocketAddr, frame: &[u8], now: u64) {
        let interfaces = &self.interfaces;
        let id = match self.peers.on_frame(source, now, || peer_name(interfaces, &source), &mut self.changes)
        {
            Ok(id) => id,
            Err(_) => {
                self.stats.drop_peers_full += 1;
                return;
            }
        };
        self.apply_changes();
        let name = &self.peers.get(id).expect("just seen").name;
        // Borrowed by the host for the call; it copies the frame.
        match self.link.deliver(name, frame) {
            Ok(()) => self.stats.rx_frames += 1,
            Err(_) => self.stats.drop_deliver += 1,
        }
    }

    /// Reports queued peer changes to the router and drops what died with a
    /// contact (queued frames, partial frames).
    fn apply_changes(&mut self) {
        if self.changes.is_empty() {
            return;
        }
        let mut arm_expire = false;
        for change in std::mem::take(&mut self.changes) {
            let (kind, name, mtu) = match change {
                Change::Up { name, mtu, .. } => {
                    arm_expire = true;
                    (MP_LINK_UP, name, Some(mtu))
                }
                Change::Down { addr, name } => {
                    self.reassembler.forget(&addr);
                    (MP_LINK_DOWN, name, None)
                }
                Change::Mtu { name, mtu, .. } => (MP_LINK_UPDATE, name, Some(mtu)),
            };
            let event = LinkEvent { kind, peer: &name, metric: None, signal_dbm: None, mtu };
            if let Err(e) = self.link.link_event(&event) {
                self.host.log(Level::Warn, &format!("link_event for {name}: {e}"));
            }
        }
        for mut queue in self.peers.take_released() {
            self.queued -= queue.bytes();
            queue.clear(&mut self.pool);
        }
        if arm_expire && !self.expire_armed && self.io.is_some() {
            self.expire_armed = self.host.set_timer(TIMER_EXPIRE, self.config.peer_timeout_ms.into()).is_ok();
        }
    }

    fn expire_peers(&mut self) {
        let now = self.host.now_ms();
        let next = self.peers.expire(now, &mut self.changes);
        self.apply_changes();
        if let Some(due) = next
            && !self.expire_armed
        {
            self.expire_armed = self.host.set_timer(TIMER_EXPIRE, due.saturating_sub(now).max(1)).is_ok();
        }
    }

    // ---------------------------------------------------------------- sending

    /// Sends queued datagrams until every queue is empty or the socket is
    /// full (then waits for writability).
    fn flush(&mut self) {
        self.last_flush_ms = self.host.now_ms();
        loop {
            let Some(io) = self.io.as_ref() else { return };
            let (max_segments, max_bytes) =
                if io.gso { (sys::GSO_MAX_SEGMENTS, sys::GSO_MAX_BYTES) } else { (1, usize::MAX) };
            // Destinations of the peers with something queued, round robin.
            let n = self.peers.iter().count().max(1);
            self.rr = self.rr.wrapping_add(1);
            let start = self.rr % n;
            let mut pending: Vec<(PeerId, SockAddr)> = Vec::new();
            for (id, p) in self.peers.iter().skip(start).chain(self.peers.iter().take(start)) {
                if !p.tx.is_empty() {
                    // An IPv4-only socket cannot reach an IPv6 peer (which it
                    // cannot have heard from either): sent to its own family,
                    // which fails below and drops the datagrams.
                    let dest = sys::dest(io.family, p.addr).unwrap_or_else(|| SockAddr::from(p.addr));
                    pending.push((id, dest));
                }
            }
            if pending.is_empty() {
                if io.want_write {
                    let fd = io.fd;
                    self.io.as_mut().expect("checked").want_write = false;
                    let _ = self.host.watch_fd(fd, MP_FD_READABLE);
                }
                return;
            }
            let mut msgs: Vec<TxMsg<'_>> = Vec::with_capacity(sys::BATCH);
            let mut owners: Vec<(PeerId, usize, usize)> = Vec::with_capacity(sys::BATCH);
            'fill: for (id, dest) in &pending {
                let p = self.peers.get(*id).expect("listed peers exist");
                for m in p.tx.messages(max_segments, max_bytes) {
                    let segment = if m.datagrams() > 1 { m.segment as u16 } else { 0 };
                    msgs.push(TxMsg { dest, data: m.data, segment });
                    owners.push((*id, m.data.len(), m.datagrams()));
                    if msgs.len() == self.config.batch as usize {
                        break 'fill;
                    }
                }
            }
            let Some(first_gso) = msgs.first().map(|m| m.segment > 0) else { return };
            let result = sys::send_batch(io.fd, &msgs);
            drop(msgs);
            match result {
                Ok(sent) => {
                    for &(id, bytes, datagrams) in &owners[..sent] {
                        self.consume(id, bytes);
                        self.stats.tx_datagrams += datagrams as u64;
                        self.stats.tx_trains += u64::from(datagrams > 1);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let io = self.io.as_mut().expect("checked");
                    if !io.want_write {
                        io.want_write = true;
                        let fd = io.fd;
                        let _ = self.host.watch_fd(fd, MP_FD_READABLE | MP_FD_WRITABLE);
                    }
                    return;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Out of kernel memory: no readiness to wait for; retry soon.
                    self.flush_armed = self.host.set_timer(TIMER_FLUSH, 1).is_ok();
                    return;
                }
                Err(e) if first_gso && is_gso_error(&e) => {
                    // EIO (no checksum offload), EINVAL or EMSGSIZE (segment
                    // over the device MTU): send datagrams one by one.
                    self.io.as_mut().expect("checked").gso = false;
                    let message =
                        format!("UDP GSO send failed ({e}); sending datagrams one by one from now on");
                    self.host.log(Level::Warn, &message);
                }
                Err(e) => {
                    let (id, bytes, datagrams) = owners[0];
                    self.consume(id, bytes);
                    self.stats.tx_errors += datagrams as u64;
                    if self.stats.tx_errors.is_power_of_two() {
                        let to = &self.peers.get(id).expect("listed").name;
                        let message =
                            format!("send to {to}: {e} ({} datagrams lost so far)", self.stats.tx_errors);
                        self.host.log(Level::Debug, &message);
                    }
                }
            }
        }
    }

    fn consume(&mut self, id: PeerId, bytes: usize) {
        if let Some(p) = self.peers.get_mut(id) {
            p.tx.advance(bytes, &mut self.pool);
            self.queued -= bytes;
        }
    }

    // ---------------------------------------------------------------- beacons

    /// The beacon timer: refresh interfaces, beacon, expire partial frames,
    /// log counters, re-arm (with ±10% jitter so nodes do not beacon in step).
    fn beacon_tick(&mut self) -> Result<(), PluginError> {
        self.refresh_interfaces();
        self.send_beacons();
        let now = self.host.now_ms();
        let expired = self.reassembler.expire(now);
        self.stats.drop_expired += expired as u64;
        self.stats.drop_evicted = self.reassembler.stats.evicted;
        self.stats.partial_frames = self.reassembler.frames_in_use() as u64;
        self.stats.partial_bytes = self.reassembler.bytes_in_use() as u64;
        if self.stats.without_beacons() != self.logged.without_beacons() {
            self.host.log(Level::Debug, &self.stats.line());
            self.logged = self.stats;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let interval = u64::from(self.config.beacon_interval_ms);
        let delay = interval * 9 / 10 + self.rng % (interval / 5).max(1);
        self.host.set_timer(TIMER_BEACON, delay)
    }

    /// Looks the interfaces up (they may appear, vanish or come back with a
    /// new index), joins the beacon group where needed, and keys the static
    /// peers.
    fn refresh_interfaces(&mut self) {
        let Some(io) = &self.io else { return };
        for iface in &mut self.interfaces {
            let index = sys::if_index(&iface.name).unwrap_or(0);
            if index != iface.index {
                if index == 0 {
                    self.host.log(Level::Warn, &format!("interface {} is gone; waiting for it", iface.name));
                } else {
                    self.host.log(Level::Info, &format!("interface {} is index {index}", iface.name));
                }
                (iface.index, iface.joined, iface.join_failed) = (index, false, false);
            }
            if self.config.ipv6 && io.family == Family::V6 && index != 0 && !iface.joined {
                match sys::join_v6(&io.socket, &BEACON_GROUP_V6, index) {
                    Ok(()) => iface.joined = true,
                    Err(e) if !iface.join_failed => {
                        iface.join_failed = true;
                        let message = format!(
                            "cannot join {BEACON_GROUP_V6} on {}: {e}; retrying every beacon",
                            iface.name
                        );
                        self.host.log(Level::Warn, &message);
                    }
                    Err(_) => {}
                }
            }
        }
        for i in 0..self.statics.len() {
            let spec = &self.statics[i].spec;
            let addr = match (spec.ip, &spec.interface) {
                (IpAddr::V4(v4), _) => Some(SocketAddr::from((v4, spec.port))),
                (IpAddr::V6(v6), None) => Some(SocketAddr::V6(SocketAddrV6::new(v6, spec.port, 0, 0))),
                (IpAddr::V6(v6), Some(ifname)) => sys::if_index(ifname)
                    .map(|index| SocketAddr::V6(SocketAddrV6::new(v6, spec.port, 0, index))),
            };
            if addr == self.statics[i].addr {
                continue;
            }
            if let Some(old) = self.statics[i].id.take() {
                self.peers.remove(old, &mut self.changes);
            }
            self.statics[i].addr = addr;
            if let Some(addr) = addr {
                let name = peer_name(&self.interfaces, &addr);
                match self.peers.add_static(addr, name) {
                    Ok(id) => self.statics[i].id = Some(id),
                    Err(_) => self.stats.drop_peers_full += 1,
                }
            }
        }
        self.apply_changes();
    }

    fn beacon(&self, flags: u8) -> [u8; wire::BEACON_LEN] {
        let mut buf = [0u8; wire::BEACON_LEN];
        let repr = BeaconRepr {
            nonce: self.nonce,
            port: self.config.port,
            flags,
            max_frame: self.config.max_frame_bytes,
        };
        repr.emit(&mut buf);
        buf
    }

    /// Beacons to the group on every interface, to broadcast addresses, and
    /// by unicast to static peers and peers that asked for it.
    fn send_beacons(&mut self) {
        let Some(io) = &self.io else { return };
        let group = self.beacon(0);
        let mut sent = 0;
        let mut failures = Vec::new();
        for iface in self.interfaces.iter().filter(|i| i.index != 0) {
            if self.config.ipv6 && iface.joined {
                let dest =
                    SockAddr::from(SocketAddrV6::new(BEACON_GROUP_V6, self.config.port, 0, iface.index));
                match sys::send_one(&io.socket, io.family, &dest, &group, Some(iface.index)) {
                    Ok(()) => sent += 1,
                    Err(e) => failures.push(format!("beacon to {BEACON_GROUP_V6} on {}: {e}", iface.name)),
                }
            }
            if self.config.ipv4_broadcast {
                for broadcast in sys::ipv4_broadcasts(&iface.name) {
                    let Some(dest) = sys::dest(io.family, SocketAddr::from((broadcast, self.config.port)))
                    else {
                        continue;
                    };
                    match sys::send_one(&io.socket, io.family, &dest, &group, Some(iface.index)) {
                        Ok(()) => sent += 1,
                        Err(e) => failures.push(format!("beacon to {broadcast} on {}: {e}", iface.name)),
                    }
                }
            }
        }
        self.stats.tx_beacons += sent;
        for failure in failures {
            self.host.log(Level::Debug, &failure);
        }
        let unicast: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.is_static || (p.up && p.wants_unicast))
            .map(|(id, _)| id)
            .collect();
        for id in unicast {
            self.unicast_beacon(id);
        }
    }

    /// A beacon to one peer; [`FLAG_UNICAST`] if it is static for us (we
    /// cannot count on its group beacons reaching us).
    fn unicast_beacon(&mut self, id: PeerId) {
        let (Some(io), Some(p)) = (&self.io, self.peers.get(id)) else { return };
        let Some(dest) = sys::dest(io.family, p.addr) else { return };
        let beacon = self.beacon(if p.is_static { FLAG_UNICAST } else { 0 });
        match sys::send_one(&io.socket, io.family, &dest, &beacon, None) {
            Ok(()) => self.stats.tx_beacons += 1,
            Err(e) => self.host.log(Level::Trace, &format!("beacon to {}: {e}", p.name)),
        }
    }
}

impl Drop for Udp {
    /// The host calls `stop` before `destroy`; if it did not, the socket is
    /// unwatched and closed here (without link events).
    fn drop(&mut self) {
        if let Some(io) = self.io.take() {
            let _ = self.host.unwatch_fd(io.fd);
        }
    }
}
