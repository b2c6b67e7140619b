//! The synchronous nl80211 client: sends the requests built in [`crate::msg`]
//! over a generic netlink socket (neli's `NlSocket`) and parses the replies.
//!
//! Requests are quick (sub-millisecond on a real kernel; JOIN a few ms), so
//! a tokio daemon can call them inline or from `spawn_blocking`; only the
//! event socket needs to be polled, and it exposes its fd for `AsyncFd`.
//! A reply that does not come within [`REPLY_TIMEOUT`] is an error rather
//! than a hang.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use crate::MacAddr;
use crate::consts::ctrl;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::meshconf::MeshParams;
use crate::mpath::MeshPath;
use crate::msg::{self, JoinParams};
use crate::phy::{Interface, Wiphy};
use crate::station::Station;
use crate::wire::{
    Attrs, GenlMsg, GenlRequest, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NlError, NlMsgs, WireError,
    WireResult,
};

/// How long a request waits for the kernel's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer: large enough for any single nl80211 dump datagram
/// (the kernel caps them at 32 KiB).
const RECV_BUF: usize = 64 * 1024;
/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 3;

/// The interface index of `name` in this network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface(name.to_owned()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 { Err(Error::NoSuchInterface(name.to_owned())) } else { Ok(i) }
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { op, source }
}

fn wire(op: &'static str) -> impl FnOnce(WireError) -> Error {
    move |source| Error::Wire { op, source }
}

fn set_int_opt(fd: RawFd, level: i32, name: i32, v: i32) {
    // SAFETY: plain setsockopt with a pointer to a live i32; failure is
    // harmless (older kernels lack the option) and deliberately ignored.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// A netlink socket used for request/reply exchanges.
struct ReqSocket {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
}

impl ReqSocket {
    fn open(proto: NlFamily) -> std::io::Result<ReqSocket> {
        let sock = NlSocket::connect(proto, None, Groups::empty())?;
        let fd = sock.as_raw_fd();
        let tv = libc::timeval { tv_sec: REPLY_TIMEOUT.as_secs() as _, tv_usec: 0 };
        // SAFETY: setsockopt with a pointer to a live timeval of the right size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Extended acks carry the kernel's reason ("invalid channel"); capped
        // acks keep error replies small.
        set_int_opt(fd, libc::SOL_NETLINK, libc::NETLINK_EXT_ACK, 1);
        set_int_opt(fd, libc::SOL_NETLINK, libc::NETLINK_CAP_ACK, 1);
        Ok(ReqSocket { sock, seq: std::process::id().wrapping_mul(7919), buf: vec![0; RECV_BUF] })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends a complete message and collects the payloads of the replies
    /// with its sequence number until the ack (or `NLMSG_DONE` of a dump).
    /// Returns the payloads and whether the dump was interrupted.
    fn transact(&mut self, bytes: &[u8], seq: u32, op: &'static str) -> Result<(Vec<Vec<u8>>, bool)> {
        self.sock.send(bytes, Msg::empty()).map_err(io(op))?;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let (n, _) = self.sock.recv(&mut self.buf[..], Msg::TRUNC).map_err(|e| {
                if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                    Error::Io {
                        op,
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("no reply from the kernel within {} s", REPLY_TIMEOUT.as_secs()),
                        ),
                    }
                } else {
                    Error::Io { op, source: e }
                }
            })?;
            if n > self.buf.len() {
                return Err(Error::Wire {
                    op,
                    source: WireError::Truncated { what: "netlink datagram", need: n, have: self.buf.len() },
                });
            }
            for m in NlMsgs::new(&self.buf[..n]) {
                let m = m.map_err(wire(op))?;
                if m.seq != seq {
                    continue; // a late reply to an earlier, timed-out request
                }
                if m.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match m.ty {
                    NLMSG_ERROR => {
                        let e = NlError::parse(m.flags, m.payload).map_err(wire(op))?;
                        if e.error == 0 {
                            return Ok((replies, interrupted));
                        }
                        return Err(Error::Kernel { op, errno: -e.error, message: e.message });
                    }
                    NLMSG_DONE => {
                        let code = m.payload.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if let Some(c) = code.filter(|c| *c < 0) {
                            return Err(Error::Kernel { op, errno: -c, message: None });
                        }
                        return Ok((replies, interrupted));
                    }
                    _ => replies.push(m.payload.to_vec()),
                }
            }
        }
    }
}

/// A connection to nl80211 (and, lazily, rtnetlink for link up/down).
pub struct Nl80211 {
    genl: ReqSocket,
    route: Option<ReqSocket>,
    family: u16,
    mcast_groups: Vec<(String, u32)>,
}

/// Parses a `CTRL_CMD_NEWFAMILY` reply: the family id and its multicast
/// groups (name, id).
pub fn parse_family(attrs: Attrs<'_>) -> WireResult<(u16, Vec<(String, u32)>)> {
    let (mut id, mut groups) = (None, Vec::new());
    for a in attrs {
        let a = a?;
        match a.kind {
            ctrl::ATTR_FAMILY_ID => id = Some(a.u16("CTRL_ATTR_FAMILY_ID")?),
            ctrl::ATTR_MCAST_GROUPS => {
                for g in a.nested() {
                    let (mut name, mut gid) = (None, None);
                    for f in g?.nested() {
                        let f = f?;
                        match f.kind {
                            ctrl::ATTR_MCAST_GRP_NAME => name = Some(f.string("CTRL_ATTR_MCAST_GRP_NAME")?),
                            ctrl::ATTR_MCAST_GRP_ID => gid = Some(f.u32("CTRL_ATTR_MCAST_GRP_ID")?),
                            _ => {}
                        }
                    }
                    if let (Some(n), Some(i)) = (name, gid) {
                        groups.push((n, i));
                    }
                }
            }
            _ => {}
        }
    }
    Ok((id.ok_or(WireError::Missing { what: "CTRL_ATTR_FAMILY_ID" })?, groups))
}

impl Nl80211 {
    /// Opens a generic netlink socket and resolves the "nl80211" family.
    pub fn connect() -> Result<Nl80211> {
        let op = "connect to nl80211";
        let mut genl = ReqSocket::open(NlFamily::Generic).map_err(io(op))?;
        let seq = genl.next_seq();
        let bytes = msg::get_family("nl80211").encode(ctrl::GENL_ID_CTRL, seq, 0);
        let (replies, _) = match genl.transact(&bytes, seq, op) {
            Err(Error::Kernel { errno: libc::ENOENT, .. }) => return Err(Error::NoNl80211),
            r => r?,
        };
        let first = replies.first().ok_or(Error::NoNl80211)?;
        let g = GenlMsg::parse(first).map_err(wire(op))?;
        let (family, mcast_groups) = parse_family(g.attrs()).map_err(wire(op))?;
        Ok(Nl80211 { genl, route: None, family, mcast_groups })
    }

    /// The nl80211 family id.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// nl80211's multicast groups (name, id): "config", "mlme", ...
    pub fn multicast_groups(&self) -> &[(String, u32)] {
        &self.mcast_groups
    }

    fn call(&mut self, req: &GenlRequest, op: &'static str) -> Result<Vec<Vec<u8>>> {
        for _ in 0..DUMP_RETRIES {
            let seq = self.genl.next_seq();
            let bytes = req.encode(self.family, seq, 0);
            let (replies, interrupted) = self.genl.transact(&bytes, seq, op)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        Err(Error::Io {
            op,
            source: std::io::Error::other(format!(
                "dump interrupted {DUMP_RETRIES} times by concurrent changes"
            )),
        })
    }

    /// Runs `req` and parses each reply's attributes with `f`.
    fn call_parse<T>(
        &mut self,
        req: &GenlRequest,
        op: &'static str,
        mut f: impl FnMut(Attrs<'_>) -> WireResult<T>,
    ) -> Result<Vec<T>> {
        let replies = self.call(req, op)?;
        let mut out = Vec::with_capacity(replies.len());
        for r in &replies {
            let g = GenlMsg::parse(r).map_err(wire(op))?;
            out.push(f(g.attrs()).map_err(wire(op))?);
        }
        Ok(out)
    }

    /// All wireless devices with their supported interface types.
    pub fn phys(&mut self) -> Result<Vec<Wiphy>> {
        let op = "list phys";
        let replies = self.call(&msg::get_wiphy_dump(), op)?;
        let mut list = Vec::new();
        for r in &replies {
            let g = GenlMsg::parse(r).map_err(wire(op))?;
            Wiphy::merge_dump_message(&mut list, g.attrs()).map_err(wire(op))?;
        }
        list.sort_by_key(|w| w.index);
        Ok(list)
    }

    /// A phy by name (`phy0`) or index (`0`).
    pub fn phy(&mut self, spec: &str) -> Result<Wiphy> {
        let idx: Option<u32> = spec.parse().ok();
        self.phys()?
            .into_iter()
            .find(|w| w.name == spec || Some(w.index) == idx)
            .ok_or_else(|| Error::NoSuchPhy(spec.to_owned()))
    }

    /// All wireless interfaces in this network namespace.
    pub fn interfaces(&mut self) -> Result<Vec<Interface>> {
        self.call_parse(&msg::get_interface_dump(), "list interfaces", Interface::parse)
    }

    /// A wireless interface by name (for attach mode: check it is a mesh point).
    pub fn interface(&mut self, name: &str) -> Result<Interface> {
        self.interfaces()?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| Error::NoSuchInterface(name.to_owned()))
    }

    /// Creates a mesh point interface `ifname` on `phy`, without a mesh id
    /// (join explicitly with [`Nl80211::join`]). `mac` sets its address.
    /// Fails with [`Error::MeshNotSupported`] if the driver cannot do it.
    pub fn create_mesh_interface(
        &mut self,
        phy: &Wiphy,
        ifname: &str,
        mac: Option<MacAddr>,
    ) -> Result<Interface> {
        if !phy.supports_mesh() {
            return Err(Error::MeshNotSupported(phy.name.clone()));
        }
        let req = msg::new_mesh_interface(phy.index, ifname, mac)?;
        let mut got = self.call_parse(&req, "create interface", Interface::parse)?;
        match got.pop() {
            Some(i) => Ok(i),
            // Old kernels only ack; look it up.
            None => self.interface(ifname),
        }
    }

    /// Deletes an interface.
    pub fn delete_interface(&mut self, ifindex: u32) -> Result<()> {
        self.call(&msg::del_interface(ifindex), "delete interface").map(drop)
    }

    fn rtnl(&mut self, bytes_for_seq: impl FnOnce(u32) -> Vec<u8>, op: &'static str) -> Result<()> {
        if self.route.is_none() {
            self.route = Some(ReqSocket::open(NlFamily::Route).map_err(io(op))?);
        }
        let route = self.route.as_mut().expect("opened above");
        let seq = route.next_seq();
        route.transact(&bytes_for_seq(seq), seq, op).map(drop)
    }

    /// Brings the interface up or down (rtnetlink, as `ip link set up`).
    pub fn set_up(&mut self, ifindex: u32, up: bool) -> Result<()> {
        self.rtnl(|seq| msg::rtnl_set_link(ifindex, Some(up), None, seq), "set link up/down")
    }

    /// Sets the interface's MAC address (the interface must be down).
    pub fn set_mac(&mut self, ifindex: u32, mac: MacAddr) -> Result<()> {
        self.rtnl(|seq| msg::rtnl_set_link(ifindex, None, Some(mac), seq), "set MAC address")
    }

    /// Joins a mesh: mesh id, channel, rates and mesh parameters in one
    /// `JOIN_MESH`. The interface must be up.
    pub fn join(&mut self, ifindex: u32, params: &JoinParams) -> Result<()> {
        let req = msg::join_mesh(ifindex, params)?;
        self.call(&req, "join mesh").map(drop)
    }

    /// Leaves the mesh.
    pub fn leave(&mut self, ifindex: u32) -> Result<()> {
        self.call(&msg::leave_mesh(ifindex), "leave mesh").map(drop)
    }

    /// Reads all mesh parameters (`GET_MESH_CONFIG`; the interface must be joined).
    pub fn mesh_params(&mut self, ifindex: u32) -> Result<MeshParams> {
        let op = "get mesh config";
        let mut got = self.call_parse(&msg::get_mesh_config(ifindex), op, |attrs| {
            for a in attrs {
                let a = a?;
                if a.kind == crate::consts::attr::MESH_CONFIG {
                    return MeshParams::parse(a.nested());
                }
            }
            Err(WireError::Missing { what: "ATTR_MESH_CONFIG" })
        })?;
        got.pop().ok_or(Error::Wire { op, source: WireError::Missing { what: "GET_MESH_CONFIG reply" } })
    }

    /// Changes mesh parameters on a joined interface (`SET_MESH_CONFIG`).
    pub fn set_mesh_params(&mut self, ifindex: u32, params: &MeshParams) -> Result<()> {
        let req = msg::set_mesh_config(ifindex, params)?;
        self.call(&req, "set mesh config").map(drop)
    }

    /// All stations (mesh peers) of an interface.
    pub fn stations(&mut self, ifindex: u32) -> Result<Vec<Station>> {
        self.call_parse(&msg::get_station_dump(ifindex), "dump stations", Station::parse)
    }

    /// All HWMP mesh paths of an interface.
    pub fn mesh_paths(&mut self, ifindex: u32) -> Result<Vec<MeshPath>> {
        self.call_parse(&msg::get_mpath_dump(ifindex), "dump mesh paths", MeshPath::parse)
    }

    /// Blocks (or re-opens) the peer link to `mac`. Blocking a peer that is
    /// not yet a station fails with ENOENT: block after it appears (or on
    /// its `NewStation` event).
    pub fn set_peer_blocked(&mut self, ifindex: u32, mac: MacAddr, blocked: bool) -> Result<()> {
        self.call(&msg::set_plink_action(ifindex, mac, blocked), "set peer link action").map(drop)
    }

    /// Opens a socket subscribed to the `mlme` multicast group.
    pub fn events(&self) -> Result<EventSocket> {
        let op = "subscribe to nl80211 events";
        let id =
            self.mcast_groups.iter().find(|(n, _)| n == "mlme").map(|(_, i)| *i).ok_or(Error::Wire {
                op,
                source: WireError::Missing { what: "nl80211 mlme multicast group" },
            })?;
        let sock = NlSocket::connect(NlFamily::Generic, None, Groups::empty()).map_err(io(op))?;
        sock.add_mcast_membership(Groups::new_groups(&[id])).map_err(io(op))?;
        sock.nonblock().map_err(io(op))?;
        Ok(EventSocket { sock, family: self.family, buf: vec![0; RECV_BUF] })
    }
}

/// A non-blocking socket receiving nl80211 `mlme` events. Poll its fd (or
/// wrap it in tokio's `AsyncFd`) and call [`EventSocket::recv`].
///
/// If the daemon reads too slowly the kernel drops events and `recv`
/// returns an ENOBUFS error: re-read the station list to resynchronise.
pub struct EventSocket {
    sock: NlSocket,
    family: u16,
    buf: Vec<u8>,
}

/// An event or, for a message that did not parse, why (kept so nothing is
/// silently lost).
pub type EventResult = std::result::Result<Event, (u8, WireError)>;

impl EventSocket {
    /// Waits up to `timeout` (forever with `None`, not at all with
    /// `Some(Duration::ZERO)`) for events, then returns all that are queued.
    /// An empty list means the wait timed out.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Vec<EventResult>> {
        let op = "receive nl80211 events";
        let ms = timeout.map(|t| t.as_millis().min(i32::MAX as u128) as i32).unwrap_or(-1);
        let mut pfd = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(Error::Io { op, source: e });
        }
        let mut out = Vec::new();
        loop {
            let n = match self.sock.recv(&mut self.buf[..], Msg::DONTWAIT | Msg::TRUNC) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::Io { op, source: e }),
            };
            let n = n.min(self.buf.len());
            out.extend(parse_events(&self.buf[..n], self.family));
        }
        Ok(out)
    }
}

/// Parses one datagram from the event socket: nl80211 messages only (other
/// families' messages on the socket are ignored).
pub fn parse_events(datagram: &[u8], family: u16) -> Vec<EventResult> {
    let mut out = Vec::new();
    for m in NlMsgs::new(datagram) {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                out.push(Err((0, e)));
                break;
            }
        };
        if m.ty != family {
            continue;
        }
        match GenlMsg::parse(m.payload) {
            Ok(g) => out.push(Event::parse(&g).map_err(|e| (g.cmd, e))),
            Err(e) => out.push(Err((0, e))),
        }
    }
    out
}

impl AsRawFd for EventSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// [`EventSocket`] on tokio's reactor: `recv().await` resolves when events
/// are queued. Create it inside a tokio runtime.
#[cfg(feature = "tokio")]
pub struct AsyncEventSocket {
    fd: tokio::io::unix::AsyncFd<EventSocket>,
}

#[cfg(feature = "tokio")]
impl AsyncEventSocket {
    /// Registers `sock` with the current tokio runtime.
    pub fn new(sock: EventSocket) -> Result<AsyncEventSocket> {
        // SAFETY: the EventSocket owns its fd (neli's NlSocket closes it on
        // drop) and `as_raw_fd` always returns that same fd, so it stays open
        // and unchanged for as long as the AsyncFd owns the socket.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(sock) }
            .map_err(|e| Error::Io { op: "register the event socket with tokio", source: e.into() })?;
        Ok(AsyncEventSocket { fd })
    }

    /// Waits for events and returns all that are queued (never empty).
    pub async fn recv(&mut self) -> Result<Vec<EventResult>> {
        loop {
            let mut guard = self
                .fd
                .readable_mut()
                .await
                .map_err(|e| Error::Io { op: "wait for nl80211 events", source: e })?;
            // Drains until EAGAIN, so readiness can be cleared; tokio keeps
            // any readiness that arrived after this guard was taken.
            let events = guard.get_inner_mut().recv(Some(Duration::ZERO))?;
            guard.clear_ready();
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}
