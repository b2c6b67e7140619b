//! # unixdgram: meshpay nodes linked over Unix datagram sockets
//!
//! A POLL_FD transport plugin written with the meshpay SDK. It speaks the
//! same protocol as the C example in `plugins/examples/c-unixdgram`, and the
//! two interoperate (see `tests/interop.rs`).
//!
//! * Each instance binds one `SOCK_DGRAM` socket at its configured `path`;
//!   a datagram's source address (the sender's bound path) says who sent it,
//!   and only configured `peers` are listened to ([`config`]).
//! * Datagrams are `"MPU1"`, a type byte, and for data the frame ([`wire`]).
//! * A peer is up from the first valid datagram it sends, and down after
//!   `peer_timeout_ms` of silence. Every `probe_interval_ms` each peer gets a
//!   probe, so two live nodes keep each other up.
//!
//! Threads and time: every call comes from the host thread (POLL_FD), so the
//! instance needs no locks; the socket is watched with [`Host::watch_fd`] and
//! drained in `on_fd`; the probe tick is a host timer; time is
//! [`Host::now_ms`] only (the host's clock may be virtual).
//!
//! This crate is an `rlib` for linking into the router; the loadable
//! `libmeshpay_plugin_unixdgram.so` is built by the wrapper crate in `so/`.

pub mod config;
pub mod wire;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

use meshpay_abi::sdk::{FdState, Host, Level, PluginError, TransportHost, TransportMode, TransportPlugin};
use meshpay_abi::{LinkEvent, MP_FD_READABLE, MP_LINK_DOWN, MP_LINK_UP};

pub use config::Config;
use wire::Datagram;

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.transport.unixdgram",
    name: "Unix datagram transport",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "Links meshpay nodes on one machine over SOCK_DGRAM Unix sockets",
    transport: UnixDgram,
}

/// Our one timer id (timer ids are chosen by the plugin, per instance).
const PROBE_TIMER: u64 = 1;

/// `on_fd` reads at most this many datagrams per call and then asks to be
/// called again, so a flooding peer cannot starve the host's loop.
const RX_BUDGET: usize = 64;

/// Link state of one configured peer.
#[derive(Debug)]
struct Peer {
    path: String,
    up: bool,
    /// Host clock of the last valid datagram; meaningful while `up`.
    last_seen_ms: u64,
}

/// One unixdgram instance.
pub struct UnixDgram {
    host: Host,
    link: TransportHost,
    config: Config,
    /// In configuration order.
    peers: Vec<Peer>,
    /// `Some` between `start` and `stop`.
    socket: Option<UnixDatagram>,
    rx: Box<[u8]>,
    tx: Vec<u8>,
    /// Invalid datagrams received, ever.
    dropped: u64,
}

impl TransportPlugin for UnixDgram {
    const MODE: TransportMode = TransportMode::PollFd;

    fn create(host: Host, link: TransportHost, config: &[u8]) -> Result<Self, PluginError> {
        let config = Config::parse(config)?;
        let peers =
            config.peers.iter().map(|path| Peer { path: path.clone(), up: false, last_seen_ms: 0 }).collect();
        Ok(UnixDgram {
            host,
            link,
            config,
            peers,
            socket: None,
            rx: vec![0; wire::RX_BUF].into_boxed_slice(),
            tx: Vec::with_capacity(wire::HEADER_LEN + wire::MTU),
            dropped: 0,
        })
    }

    /// Binds the socket (replacing a stale socket file), watches it, arms the
    /// probe timer and probes every peer.
    fn start(&mut self) -> Result<(), PluginError> {
        if self.socket.is_some() {
            return Err(PluginError::invalid("already started"));
        }
        remove_stale_socket(Path::new(&self.config.path))?;
        let socket = bind_nonblocking(&self.config.path)?;
        let fd = socket.as_raw_fd();
        if let Err(e) = self.host.watch_fd(fd, MP_FD_READABLE) {
            drop(socket);
            let _ = std::fs::remove_file(&self.config.path);
            return Err(e);
        }
        self.socket = Some(socket);
        if let Err(e) = self.host.set_timer(PROBE_TIMER, self.config.probe_interval_ms.into()) {
            self.close_socket();
            return Err(e);
        }
        for i in 0..self.peers.len() {
            self.peers[i].up = false;
            self.probe(i);
        }
        let message = format!("listening on {}, {} peers", self.config.path, self.peers.len());
        self.host.log(Level::Info, &message);
        Ok(())
    }

    /// Reports every up peer down, then unwatches, closes and removes the
    /// socket. Nothing is delivered after this returns.
    fn stop(&mut self) -> Result<(), PluginError> {
        if self.socket.is_none() {
            return Ok(());
        }
        self.host.cancel_timer(PROBE_TIMER);
        for i in 0..self.peers.len() {
            if self.peers[i].up {
                self.peers[i].up = false;
                self.report(i, MP_LINK_DOWN);
            }
        }
        self.close_socket();
        Ok(())
    }

    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        let Some(i) = self.peer_index(peer) else {
            return Err(PluginError::invalid(format!("send: {peer:?} is not a configured peer")));
        };
        if frame.len() > wire::MTU {
            return Err(PluginError::invalid(format!(
                "send: frame of {} bytes exceeds the MTU ({})",
                frame.len(),
                wire::MTU
            )));
        }
        let Some(socket) = &self.socket else {
            return Err(PluginError::failed("send: not started"));
        };
        wire::encode(&mut self.tx, wire::TYPE_DATA, frame);
        match send_to(socket, &self.tx, &self.peers[i].path) {
            Ok(()) => Ok(()),
            Err(e) if is_busy(&e) => Err(PluginError::again()),
            Err(e) => Err(PluginError::failed(format!("send to {}: {e}", self.peers[i].path))),
        }
    }

    /// Reads until the socket is drained (`Drained` = `MP_ERR_AGAIN`) or the
    /// budget is used (`More` = `MP_OK`, "call me again").
    fn on_fd(&mut self, fd: RawFd, _events: u32) -> Result<FdState, PluginError> {
        for _ in 0..RX_BUDGET {
            let Some(socket) = self.socket.as_ref().filter(|s| s.as_raw_fd() == fd) else {
                return Ok(FdState::Drained); // not ours (any more)
            };
            match socket.recv_from(&mut self.rx) {
                Ok((n, from)) => self.handle_datagram(n, &from),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(FdState::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(PluginError::failed(format!("recv on {}: {e}", self.config.path)));
                }
            }
        }
        Ok(FdState::More)
    }

    /// The probe tick: expire silent peers, probe everyone, re-arm (host
    /// timers fire once).
    fn on_timer(&mut self, timer_id: u64) -> Result<(), PluginError> {
        if timer_id != PROBE_TIMER || self.socket.is_none() {
            return Ok(()); // a late tick after stop
        }
        self.expire_silent_peers();
        for i in 0..self.peers.len() {
            self.probe(i);
        }
        self.host.set_timer(PROBE_TIMER, self.config.probe_interval_ms.into())
    }
}

impl UnixDgram {
    fn peer_index(&self, path: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.path == path)
    }

    /// The configured peer a datagram came from: its socket's bound path.
    /// Unnamed and abstract senders, and strangers, are nobody.
    fn sender_index(&self, from: &SocketAddr) -> Option<usize> {
        let path = from.as_pathname()?;
        self.peers.iter().position(|p| Path::new(&p.path) == path)
    }

    /// Handles one datagram of `n` bytes in `self.rx`.
    fn handle_datagram(&mut self, n: usize, from: &SocketAddr) {
        let Some(i) = self.sender_index(from) else {
            return self.drop_datagram("an unknown socket", "not a configured peer");
        };
        let is_data = match wire::parse(&self.rx[..n]) {
            Ok(Datagram::Probe) => false,
            Ok(Datagram::Data(_)) => true,
            Err(why) => return self.drop_datagram(&self.peers[i].path.clone(), why),
        };
        self.seen(i);
        if is_data {
            let peer = &self.peers[i].path;
            // Borrowed by the host for the call; it copies the frame.
            if let Err(e) = self.link.deliver(peer, &self.rx[wire::HEADER_LEN..n]) {
                self.host.log(Level::Debug, &format!("deliver from {peer}: {e}"));
            }
        }
    }

    /// A valid datagram came from peer `i`: it is up. On the transition it is
    /// probed back at once, so it learns about us without waiting a tick.
    fn seen(&mut self, i: usize) {
        self.peers[i].last_seen_ms = self.host.now_ms();
        if !self.peers[i].up {
            self.peers[i].up = true;
            self.report(i, MP_LINK_UP);
            self.probe(i);
        }
    }

    fn expire_silent_peers(&mut self) {
        let now = self.host.now_ms();
        let timeout = u64::from(self.config.peer_timeout_ms);
        for i in 0..self.peers.len() {
            let peer = &mut self.peers[i];
            if peer.up && now.saturating_sub(peer.last_seen_ms) >= timeout {
                peer.up = false;
                self.report(i, MP_LINK_DOWN);
            }
        }
    }

    fn report(&self, i: usize, kind: u32) {
        let event = LinkEvent {
            kind,
            peer: &self.peers[i].path,
            metric: None,
            signal_dbm: None,
            mtu: Some(wire::MTU as u32),
        };
        if let Err(e) = self.link.link_event(&event) {
            self.host.log(Level::Warn, &format!("link_event: {e}"));
        }
    }

    /// Sends a probe to peer `i`. "Not there yet" (ENOENT, ECONNREFUSED) and
    /// "busy" are normal and logged at trace only.
    fn probe(&mut self, i: usize) {
        let Some(socket) = &self.socket else { return };
        wire::encode(&mut self.tx, wire::TYPE_PROBE, &[]);
        if let Err(e) = send_to(socket, &self.tx, &self.peers[i].path) {
            self.host.log(Level::Trace, &format!("probe to {}: {e}", self.peers[i].path));
        }
    }

    fn drop_datagram(&mut self, from: &str, why: &str) {
        self.dropped += 1;
        let message = format!("dropped datagram from {from}: {why} ({} dropped so far)", self.dropped);
        self.host.log(Level::Debug, &message);
    }

    /// Unwatches (the host must stop polling an fd before it is closed),
    /// closes and removes the socket.
    fn close_socket(&mut self) {
        if let Some(socket) = self.socket.take() {
            let _ = self.host.unwatch_fd(socket.as_raw_fd());
            drop(socket);
            let _ = std::fs::remove_file(&self.config.path);
        }
    }
}

impl Drop for UnixDgram {
    /// The host calls `stop` before `destroy`; if it did not, the socket is
    /// closed here (without link events).
    fn drop(&mut self) {
        self.close_socket();
    }
}

/// Removes a socket file left by an earlier run. Anything that is not a
/// socket is left alone and refused: a typo in the config must not delete a
/// regular file.
fn remove_stale_socket(path: &Path) -> Result<(), PluginError> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()), // nothing there
        Ok(meta) if meta.file_type().is_socket() => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(PluginError::failed(format!("cannot remove stale {}: {e}", path.display())))
            }
            _ => Ok(()),
        },
        Ok(_) => Err(PluginError::failed(format!("{} exists and is not a socket", path.display()))),
    }
}

fn bind_nonblocking(path: &str) -> Result<UnixDatagram, PluginError> {
    let socket = UnixDatagram::bind(path).map_err(|e| PluginError::failed(format!("bind {path}: {e}")))?;
    socket.set_nonblocking(true).map_err(|e| PluginError::failed(format!("set_nonblocking {path}: {e}")))?;
    Ok(socket)
}

/// One whole datagram, or the error.
fn send_to(socket: &UnixDatagram, datagram: &[u8], path: &str) -> io::Result<()> {
    loop {
        match socket.send_to(datagram, path) {
            Ok(n) if n == datagram.len() => return Ok(()),
            Ok(n) => return Err(io::Error::other(format!("short send: {n} bytes"))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The peer's queue or our send buffer is full: try again later.
fn is_busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)
}
