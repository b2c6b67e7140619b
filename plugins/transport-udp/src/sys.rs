//! The system calls: the socket and its options, batched send and receive
//! (`sendmmsg`/`recvmmsg`) with their control messages (UDP GSO segment size,
//! UDP GRO segment size, packet info), and interface lookups.
//!
//! Everything unsafe in the crate's I/O is here, behind small safe
//! functions; the rest of the crate only sees byte slices and addresses.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use libc::{c_int, c_void};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

#[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "mips32r6", target_arch = "mips64r6"))]
mod force {
    pub const SO_SNDBUFFORCE: libc::c_int = 31;
    pub const SO_RCVBUFFORCE: libc::c_int = 33;
}
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
mod force {
    pub const SO_SNDBUFFORCE: libc::c_int = 0x100a;
    pub const SO_RCVBUFFORCE: libc::c_int = 0x100b;
}
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "mips32r6",
    target_arch = "mips64r6",
    target_arch = "sparc",
    target_arch = "sparc64"
)))]
mod force {
    pub const SO_SNDBUFFORCE: libc::c_int = 32;
    pub const SO_RCVBUFFORCE: libc::c_int = 33;
}

/// `linux/udp.h`; not in every libc target.
const UDP_SEGMENT: c_int = 103;
const UDP_GRO: c_int = 104;

/// Messages per `sendmmsg`/`recvmmsg` call.
pub const BATCH: usize = 64;
/// Receive buffer per message: the largest UDP payload, which is also the
/// largest train of segments GRO hands over in one piece.
pub const RX_BUF: usize = 65_536;
/// Receive slots when GRO is on. A slot then takes a train of up to 64
/// datagrams, and the trains fill their 64 KiB: 64 slots made 4 MiB of
/// heap resident per instance, 16 make 1 MiB, and still take up to 1 024
/// datagrams per call. (Without GRO a slot holds one datagram, so only its
/// first pages are ever touched: `batch` slots cost little.)
pub const GRO_RX_SLOTS: usize = 16;
/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 on
/// older kernels, 128 on newer ones).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: under 65535 less the IPv4/IPv6 and UDP headers.
pub const GSO_MAX_BYTES: usize = 65_000;

/// Which address family the socket has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Dual-stack IPv6: IPv4 peers appear as `::ffff:a.b.c.d`.
    V6,
    /// IPv4 only (a kernel without IPv6).
    V4,
}

/// What `open` managed to set up.
#[derive(Clone, Copy, Debug)]
pub struct Opened {
    pub family: Family,
    /// The kernel takes `UDP_SEGMENT` (whether a device takes it is only
    /// known at the first send).
    pub gso: bool,
    /// `UDP_GRO` is on.
    pub gro: bool,
    pub send_buffer: usize,
    pub recv_buffer: usize,
    /// The sizes were forced past `net.core.[rw]mem_max`.
    pub forced: bool,
}

fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the given size.
    let r = unsafe {
        libc::setsockopt(fd, level, name, &value as *const c_int as *const c_void, size_of::<c_int>() as _)
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Opens the non-blocking UDP socket bound to `port` on every address:
/// IPv6 dual-stack when the kernel has IPv6, else IPv4 if `need_v6` is false.
pub fn open(
    port: u16,
    need_v6: bool,
    broadcast: bool,
    send_buffer: usize,
    recv_buffer: usize,
    want_gro: bool,
) -> io::Result<(Socket, Opened)> {
    let ty = Type::DGRAM.nonblocking().cloexec();
    let (socket, family) = match Socket::new(Domain::IPV6, ty, Some(Protocol::UDP)) {
        Ok(s) => (s, Family::V6),
        Err(e) if !need_v6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            (Socket::new(Domain::IPV4, ty, Some(Protocol::UDP))?, Family::V4)
        }
        Err(e) => return Err(e),
    };
    let fd = socket.as_raw_fd();
    let bind: SocketAddr = match family {
        Family::V6 => {
            socket.set_only_v6(false)?;
            // The arrival interface of every datagram (also IPv4 ones on a
            // dual-stack socket), to accept only the configured interfaces.
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            socket.set_multicast_loop_v6(false)?;
            socket.set_multicast_hops_v6(1)?;
            (Ipv6Addr::UNSPECIFIED, port).into()
        }
        Family::V4 => {
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            (Ipv4Addr::UNSPECIFIED, port).into()
        }
    };
    if broadcast {
        socket.set_broadcast(true)?;
    }
    // Root (CAP_NET_ADMIN) may go past net.core.[rw]mem_max; others get
    // what the sysctl allows.
    let forced = setsockopt_int(fd, libc::SOL_SOCKET, force::SO_SNDBUFFORCE, clamp_int(send_buffer)).is_ok()
        & setsockopt_int(fd, libc::SOL_SOCKET, force::SO_RCVBUFFORCE, clamp_int(recv_buffer)).is_ok();
    if !forced {
        socket.set_send_buffer_size(send_buffer)?;
        socket.set_recv_buffer_size(recv_buffer)?;
    }
    // Probe for GSO: a segment size of 0 is "off", accepted by every kernel
    // that knows the option (4.18+).
    let gso = setsockopt_int(fd, libc::SOL_UDP, UDP_SEGMENT, 0).is_ok();
    let gro = want_gro && setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, 1).is_ok();
    socket.bind(&SockAddr::from(bind))?;
    let opened = Opened {
        family,
        gso,
        gro,
        send_buffer: socket.send_buffer_size()?,
        recv_buffer: socket.recv_buffer_size()?,
        forced,
    };
    Ok((socket, opened))
}

fn clamp_int(n: usize) -> c_int {
    n.min(c_int::MAX as usize) as c_int
}

/// The socket address to send to `addr` from a socket of `family`, or None
/// if the family cannot reach it (IPv6 from an IPv4-only socket).
pub fn dest(family: Family, addr: SocketAddr) -> Option<SockAddr> {
    match (family, addr) {
        (Family::V6, a) => Some(SockAddr::from(crate::addr::to_v6_socket(a))),
        (Family::V4, a @ SocketAddr::V4(_)) => Some(SockAddr::from(a)),
        (Family::V4, SocketAddr::V6(_)) => None,
    }
}

/// Joins an IPv6 multicast group on an interface; joining twice is fine.
pub fn join_v6(socket: &Socket, group: &Ipv6Addr, ifindex: u32) -> io::Result<()> {
    match socket.join_multicast_v6(group, ifindex) {
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(()),
        r => r,
    }
}

// ------------------------------------------------------------------ sending

/// One message of a batch: a datagram, or with `segment > 0` a train of
/// datagrams of `segment` bytes (the last may be shorter) sent with GSO.
#[derive(Clone, Copy, Debug)]
pub struct TxMsg<'a> {
    pub dest: &'a SockAddr,
    pub data: &'a [u8],
    pub segment: u16,
}

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgSpace([u8; 64]);

/// Sends up to [`BATCH`] messages with one `sendmmsg`. Returns how many
/// went out (at least one), or the error of the first.
pub fn send_batch(fd: RawFd, msgs: &[TxMsg<'_>]) -> io::Result<usize> {
    let n = msgs.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: plain C structs; all-zero is a valid initial state.
    let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    let mut cmsgs = [CmsgSpace([0; 64]); BATCH];
    for (i, m) in msgs[..n].iter().enumerate() {
        iov[i] = libc::iovec { iov_base: m.data.as_ptr() as *mut c_void, iov_len: m.data.len() };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = m.dest.as_ptr() as *mut c_void;
        h.msg_namelen = m.dest.len();
        h.msg_iov = &mut iov[i];
        h.msg_iovlen = 1;
        if m.segment > 0 {
            h.msg_control = cmsgs[i].0.as_mut_ptr() as *mut c_void;
            // SAFETY: CMSG_SPACE is a pure computation.
            h.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
            // SAFETY: the control buffer is large enough and aligned; the
            // header and data written are within it.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, m.segment);
            }
        }
    }
    loop {
        // SAFETY: every header points to live buffers borrowed from `msgs`
        // and to the arrays above, which outlive the call.
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as _, libc::MSG_DONTWAIT as _) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends one datagram, out of `ifindex` if given (for beacons to a group or
/// a broadcast address, whose interface the destination does not say).
pub fn send_one(
    socket: &Socket,
    family: Family,
    dest: &SockAddr,
    data: &[u8],
    ifindex: Option<u32>,
) -> io::Result<()> {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut c_void, iov_len: data.len() };
    // SAFETY: zeroed msghdr, then the fields set below.
    let mut h: libc::msghdr = unsafe { zeroed() };
    h.msg_name = dest.as_ptr() as *mut c_void;
    h.msg_namelen = dest.len();
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    let mut space = CmsgSpace([0; 64]);
    if let Some(index) = ifindex {
        h.msg_control = space.0.as_mut_ptr() as *mut c_void;
        // SAFETY: the buffer holds either pktinfo with room to spare; all
        // writes stay inside it.
        unsafe {
            match family {
                Family::V6 => {
                    let mut info: libc::in6_pktinfo = zeroed();
                    info.ipi6_ifindex = index;
                    if dest.is_ipv6()
                        && dest
                            .as_socket()
                            .is_some_and(|a| matches!(crate::addr::normalize(a), SocketAddr::V4(_)))
                    {
                        // IPv4 through a dual-stack socket: the kernel wants
                        // a v4-mapped (here: any) source address.
                        info.ipi6_addr.s6_addr[10] = 0xff;
                        info.ipi6_addr.s6_addr[11] = 0xff;
                    }
                    h.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as _;
                    let c = libc::CMSG_FIRSTHDR(&h);
                    (*c).cmsg_level = libc::IPPROTO_IPV6;
                    (*c).cmsg_type = libc::IPV6_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in6_pktinfo, info);
                }
                Family::V4 => {
                    let mut info: libc::in_pktinfo = zeroed();
                    info.ipi_ifindex = index as c_int;
                    h.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as _;
                    let c = libc::CMSG_FIRSTHDR(&h);
                    (*c).cmsg_level = libc::IPPROTO_IP;
                    (*c).cmsg_type = libc::IP_PKTINFO;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::in_pktinfo, info);
                }
            }
        }
    }
    loop {
        // SAFETY: the header points to live buffers for the call.
        let r = unsafe { libc::sendmsg(socket.as_raw_fd(), &h, libc::MSG_DONTWAIT) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

// ---------------------------------------------------------------- receiving

/// What the kernel said about one received message.
#[derive(Clone, Copy, Debug, Default)]
pub struct RxMeta {
    pub len: usize,
    /// The sender, if the kernel gave an IP address.
    pub source: Option<SocketAddr>,
    /// Arrival interface (0 if unknown).
    pub ifindex: u32,
    /// With GRO: the size of each datagram in the message (the last may be
    /// shorter); 0 means the message is one datagram.
    pub segment: usize,
    /// Longer than the buffer: cut, and dropped.
    pub truncated: bool,
}

/// Buffers for one `recvmmsg` of up to [`BATCH`] messages (as many as the
/// instance's `batch` setting: each slot is [`RX_BUF`] bytes).
pub struct RxBatch {
    bufs: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    cmsgs: Box<[CmsgSpace]>,
    iov: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    meta: Box<[RxMeta]>,
}

// SAFETY: the raw pointers in `iov`/`hdrs` point only into the batch's own
// boxed buffers, which move with it (boxes do not move their contents).
unsafe impl Send for RxBatch {}

impl Default for RxBatch {
    fn default() -> Self {
        Self::new(BATCH)
    }
}

impl RxBatch {
    /// Buffers for `slots` messages per call (1 to [`BATCH`]).
    pub fn new(slots: usize) -> RxBatch {
        let slots = slots.clamp(1, BATCH);
        // SAFETY: C structs, valid when zeroed.
        let zero_name: libc::sockaddr_storage = unsafe { zeroed() };
        let zero_iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 };
        let zero_hdr: libc::mmsghdr = unsafe { zeroed() };
        let mut b = RxBatch {
            bufs: vec![0u8; slots * RX_BUF].into_boxed_slice(),
            names: vec![zero_name; slots].into_boxed_slice(),
            cmsgs: vec![CmsgSpace([0; 64]); slots].into_boxed_slice(),
            iov: vec![zero_iov; slots].into_boxed_slice(),
            hdrs: vec![zero_hdr; slots].into_boxed_slice(),
            meta: vec![RxMeta::default(); slots].into_boxed_slice(),
        };
        for i in 0..slots {
            b.iov[i].iov_base = b.bufs[i * RX_BUF..].as_mut_ptr() as *mut c_void;
            b.iov[i].iov_len = RX_BUF;
        }
        b
    }

    /// Receives what is queued, up to `max` (at most the batch's slots)
    /// messages, without waiting. `Ok(0)` never happens: an empty queue is
    /// `WouldBlock`.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> io::Result<usize> {
        let max = max.clamp(1, self.hdrs.len());
        for i in 0..max {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.names[i] as *mut _ as *mut c_void;
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].0.as_mut_ptr() as *mut c_void;
            h.msg_controllen = 64;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let n = loop {
            // SAFETY: every header points into this batch's buffers.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    max as _,
                    libc::MSG_DONTWAIT as _,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        for i in 0..n {
            self.meta[i] = self.parse(i);
        }
        Ok(n)
    }

    fn parse(&self, i: usize) -> RxMeta {
        let hdr = &self.hdrs[i];
        let h = &hdr.msg_hdr;
        let mut meta = RxMeta {
            len: (hdr.msg_len as usize).min(RX_BUF),
            truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            ..RxMeta::default()
        };
        // SAFETY: the kernel wrote a sockaddr of `msg_namelen` bytes.
        meta.source =
            unsafe { SockAddr::new(std::ptr::read(&self.names[i] as *const _ as *const _), h.msg_namelen) }
                .as_socket();
        // SAFETY: walking the control messages the kernel wrote, with the
        // libc macros, reading their payloads unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        meta.ifindex =
                            std::ptr::read_unaligned(data as *const libc::in6_pktinfo).ipi6_ifindex;
                    }
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        meta.ifindex =
                            std::ptr::read_unaligned(data as *const libc::in_pktinfo).ipi_ifindex as u32;
                    }
                    (libc::SOL_UDP, UDP_GRO) => {
                        meta.segment = std::ptr::read_unaligned(data as *const c_int).max(0) as usize;
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        if meta.segment >= meta.len {
            meta.segment = 0;
        }
        meta
    }

    pub fn meta(&self, i: usize) -> &RxMeta {
        &self.meta[i]
    }

    /// The bytes of message `i` of the last `recv`.
    pub fn data(&self, i: usize) -> &[u8] {
        &self.bufs[i * RX_BUF..i * RX_BUF + self.meta[i].len]
    }
}

// --------------------------------------------------------------- interfaces

/// The index of an interface, if it exists.
pub fn if_index(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of an interface index, if it exists.
pub fn if_name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as required.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    name.to_str().ok().map(str::to_owned)
}

/// The IPv4 broadcast addresses of an interface (one per IPv4 address
/// that has one).
pub fn ipv4_broadcasts(name: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut p = list;
        while !p.is_null() {
            let ifa = &*p;
            p = ifa.ifa_next;
            let broadcast = ifa.ifa_ifu;
            if ifa.ifa_flags & libc::IFF_BROADCAST as u32 == 0
                || ifa.ifa_addr.is_null()
                || broadcast.is_null()
            {
                continue;
            }
            if i32::from((*ifa.ifa_addr).sa_family) != libc::AF_INET
                || i32::from((*broadcast).sa_family) != libc::AF_INET
            {
                continue;
            }
            if std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() != name.as_bytes() {
                continue;
            }
            let sin = std::ptr::read_unaligned(broadcast as *const libc::sockaddr_in);
            out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        }
        libc::freeifaddrs(list);
    }
    out
}

/// 64 random bits from the kernel (falls back to the clock and address-space
/// layout if getrandom is unavailable: the nonce must differ between runs,
/// it need not be secret).
pub fn random_u64() -> u64 {
    let mut x = 0u64;
    // SAFETY: writes at most 8 bytes into `x`.
    let r = unsafe { libc::getrandom(&mut x as *mut u64 as *mut c_void, 8, libc::GRND_NONBLOCK) };
    if r == 8 {
        return x;
    }
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((&x as *const u64 as u64).rotate_left(32)) ^ u64::from(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_with_fewer_slots_receives_at_most_its_slots_per_call_and_loses_nothing() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..40u8 {
            tx.send_to(&[i; 100], rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = RxBatch::new(GRO_RX_SLOTS);
        let mut got = Vec::new();
        loop {
            match batch.recv(rx.as_raw_fd(), BATCH) {
                Ok(n) => {
                    assert!(n <= GRO_RX_SLOTS, "{n} messages in a batch of {GRO_RX_SLOTS} slots");
                    got.extend((0..n).map(|i| batch.data(i).to_vec()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        let want: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100]).collect();
        assert_eq!(got, want);
    }
}
