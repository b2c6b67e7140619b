//! Netlink wire format: message headers, generic netlink headers and
//! attributes (TLVs), as zero-copy views for parsing and a small writer for
//! building.
//!
//! Why our own codec instead of neli's typed messages: the kernel's nl80211
//! replies carry dozens of attributes whose widths differ (u8 signal, u16
//! llid, u32 airtime metric, u64 byte counters), and a reader that guesses a
//! width wrong fails the whole station (that is the wl-nl80211 bug). Here
//! every read names the attribute and checks the exact width, unknown
//! attributes are skipped, and a malformed buffer becomes a [`WireError`],
//! never a panic. The builders are pure functions over bytes, so golden-byte
//! tests need no kernel. neli still provides the socket (see `client`).
//!
//! Layout (all integers in host byte order, which is little-endian on every
//! target meshpay ships for; netlink itself is host-endian):
//!
//! ```text
//! nlmsghdr  len:u32 type:u16 flags:u16 seq:u32 pid:u32     (16 bytes)
//! genlmsghdr cmd:u8 version:u8 reserved:u16                (4 bytes)
//! nlattr    len:u16 type:u16 payload[len-4] pad-to-4
//! ```

use std::fmt;

/// Netlink message header length.
pub const NLMSG_HDRLEN: usize = 16;
/// Generic netlink header length.
pub const GENL_HDRLEN: usize = 4;
/// Attribute header length.
pub const NLA_HDRLEN: usize = 4;

/// `NLMSG_ERROR`: an ack (error 0) or an error.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a dump.
pub const NLMSG_DONE: u16 = 3;

/// Request flags.
pub const NLM_F_REQUEST: u16 = 0x1;
/// Part of a multi-part (dump) reply.
pub const NLM_F_MULTI: u16 = 0x2;
/// Ask for an ack.
pub const NLM_F_ACK: u16 = 0x4;
/// The dump changed while it was read; the caller should retry.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_ROOT | NLM_F_MATCH`.
pub const NLM_F_DUMP: u16 = 0x300;
/// In an `NLMSG_ERROR`: the original request was not echoed in full.
pub const NLM_F_CAPPED: u16 = 0x100;
/// In an `NLMSG_ERROR`: extended-ack TLVs follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;
/// Extended ack attribute: a human-readable message from the kernel.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// Rounds up to the 4-byte netlink alignment.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A malformed or unexpected piece of a netlink message. `what` names the
/// header or attribute (e.g. `"STA_INFO_SIGNAL"`), so the error says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the header or declared length needs.
    #[error("{what}: truncated: need {need} bytes, have {have}")]
    Truncated { what: &'static str, need: usize, have: usize },
    /// A length field smaller than its own header.
    #[error("{what}: bad length field {len}")]
    BadLength { what: &'static str, len: usize },
    /// An attribute whose payload is not the width the kernel uses for it.
    #[error("{what}: expected {expected} bytes, got {got}")]
    Width { what: &'static str, expected: usize, got: usize },
    /// A string attribute that is not UTF-8.
    #[error("{what}: not valid UTF-8")]
    BadString { what: &'static str },
    /// A required attribute is absent.
    #[error("{what}: missing")]
    Missing { what: &'static str },
    /// A value outside what the field can hold.
    #[error("{what}: value {value} out of range")]
    Range { what: &'static str, value: i64 },
}

/// Result for wire parsing.
pub type WireResult<T> = Result<T, WireError>;

fn take<'a>(buf: &'a [u8], n: usize, what: &'static str) -> WireResult<&'a [u8]> {
    buf.get(..n).ok_or(WireError::Truncated { what, need: n, have: buf.len() })
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_ne_bytes([b[0], b[1]])
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

// ---------------------------------------------------------------------------
// Netlink messages

/// One netlink message inside a receive buffer (zero-copy view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlMsg<'a> {
    /// `nlmsg_type`: the generic netlink family id, or `NLMSG_ERROR`/`NLMSG_DONE`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_pid` (port id).
    pub pid: u32,
    /// Everything after the 16-byte header, without trailing padding.
    pub payload: &'a [u8],
}

/// Iterates over the netlink messages in one `recv` buffer. After the first
/// malformed header it yields that error and stops.
#[derive(Debug, Clone)]
pub struct NlMsgs<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> NlMsgs<'a> {
    /// Views `buf` as a sequence of netlink messages.
    pub fn new(buf: &'a [u8]) -> Self {
        NlMsgs { buf, failed: false }
    }
}

impl<'a> Iterator for NlMsgs<'a> {
    type Item = WireResult<NlMsg<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let r = (|| {
            let hdr = take(self.buf, NLMSG_HDRLEN, "nlmsghdr")?;
            let len = le_u32(&hdr[0..4]) as usize;
            if len < NLMSG_HDRLEN {
                return Err(WireError::BadLength { what: "nlmsghdr", len });
            }
            let whole = take(self.buf, len, "netlink message")?;
            let msg = NlMsg {
                ty: le_u16(&hdr[4..6]),
                flags: le_u16(&hdr[6..8]),
                seq: le_u32(&hdr[8..12]),
                pid: le_u32(&hdr[12..16]),
                payload: &whole[NLMSG_HDRLEN..],
            };
            self.buf = self.buf.get(align4(len)..).unwrap_or(&[]);
            Ok(msg)
        })();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Writes a netlink header followed by `payload` (padded to 4 bytes).
pub fn emit_nlmsg(ty: u16, flags: u16, seq: u32, pid: u32, payload: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + payload.len();
    let mut out = Vec::with_capacity(align4(len));
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&pid.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(align4(len), 0);
    out
}

/// The content of an `NLMSG_ERROR` message: 0 is an ack, otherwise a
/// negative errno, plus the kernel's extended-ack text if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlError {
    /// 0 (ack) or a negative errno.
    pub error: i32,
    /// `NLMSGERR_ATTR_MSG`, e.g. "invalid channel".
    pub message: Option<String>,
}

impl NlError {
    /// Parses the payload of an `NLMSG_ERROR` message (`flags` from its header).
    pub fn parse(flags: u16, payload: &[u8]) -> WireResult<NlError> {
        let e = take(payload, 4, "nlmsgerr")?;
        let error = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
        let mut message = None;
        if flags & NLM_F_ACK_TLVS != 0 {
            // The echoed request: only its header when capped, else all of it.
            let orig = payload.get(4..).unwrap_or(&[]);
            let echoed = if flags & NLM_F_CAPPED != 0 || orig.len() < NLMSG_HDRLEN {
                NLMSG_HDRLEN
            } else {
                le_u32(&orig[0..4]) as usize
            };
            if let Some(tlvs) = payload.get(4 + align4(echoed)..) {
                for a in Attrs::new(tlvs) {
                    let Ok(a) = a else { break };
                    if a.kind == NLMSGERR_ATTR_MSG {
                        message = a.string("NLMSGERR_ATTR_MSG").ok();
                    }
                }
            }
        }
        Ok(NlError { error, message })
    }
}

// ---------------------------------------------------------------------------
// Generic netlink

/// A generic netlink message (zero-copy view of an `NlMsg` payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenlMsg<'a> {
    /// The command (e.g. `NL80211_CMD_NEW_STATION`).
    pub cmd: u8,
    /// The family version.
    pub version: u8,
    /// The attribute stream.
    pub attrs: &'a [u8],
}

impl<'a> GenlMsg<'a> {
    /// Parses the generic netlink header at the start of `payload`.
    pub fn parse(payload: &'a [u8]) -> WireResult<GenlMsg<'a>> {
        let h = take(payload, GENL_HDRLEN, "genlmsghdr")?;
        Ok(GenlMsg { cmd: h[0], version: h[1], attrs: &payload[GENL_HDRLEN..] })
    }

    /// The attributes as an iterator.
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs::new(self.attrs)
    }
}

/// A generic netlink request before it gets its family id and sequence
/// number: what the builders in `msg` return. Pure data, so tests compare
/// its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenlRequest {
    /// Generic netlink command.
    pub cmd: u8,
    /// Family version in the genl header: 0 for nl80211 (as iw sends it),
    /// 1 for the controller (as libnl's `genl_ctrl_resolve` sends it).
    pub version: u8,
    /// `NLM_F_DUMP` request (the reply is a multi-part dump).
    pub dump: bool,
    /// Encoded attributes.
    pub attrs: Vec<u8>,
}

impl GenlRequest {
    /// The complete message as sent: `NLM_F_REQUEST | NLM_F_ACK` (plus
    /// `NLM_F_DUMP` for dumps, as libnl/iw send them).
    pub fn encode(&self, family: u16, seq: u32, pid: u32) -> Vec<u8> {
        let mut flags = NLM_F_REQUEST | NLM_F_ACK;
        if self.dump {
            flags |= NLM_F_DUMP;
        }
        let mut payload = Vec::with_capacity(GENL_HDRLEN + self.attrs.len());
        payload.extend_from_slice(&[self.cmd, self.version, 0, 0]);
        payload.extend_from_slice(&self.attrs);
        emit_nlmsg(family, flags, seq, pid, &payload)
    }
}

// ---------------------------------------------------------------------------
// Attributes

/// One attribute (zero-copy view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Type with the `NLA_F_NESTED`/`NLA_F_NET_BYTEORDER` bits masked off.
    pub kind: u16,
    /// The payload (without padding).
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    fn exact(&self, n: usize, what: &'static str) -> WireResult<&'a [u8]> {
        if self.payload.len() == n {
            Ok(self.payload)
        } else {
            Err(WireError::Width { what, expected: n, got: self.payload.len() })
        }
    }

    /// A u8 payload.
    pub fn u8(&self, what: &'static str) -> WireResult<u8> {
        Ok(self.exact(1, what)?[0])
    }

    /// A signed 8-bit payload (signal strengths in dBm).
    pub fn i8(&self, what: &'static str) -> WireResult<i8> {
        Ok(self.exact(1, what)?[0] as i8)
    }

    /// A u16 payload.
    pub fn u16(&self, what: &'static str) -> WireResult<u16> {
        Ok(le_u16(self.exact(2, what)?))
    }

    /// A u32 payload.
    pub fn u32(&self, what: &'static str) -> WireResult<u32> {
        Ok(le_u32(self.exact(4, what)?))
    }

    /// A signed 32-bit payload.
    pub fn i32(&self, what: &'static str) -> WireResult<i32> {
        Ok(self.u32(what)? as i32)
    }

    /// A u64 payload.
    pub fn u64(&self, what: &'static str) -> WireResult<u64> {
        let b = self.exact(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_ne_bytes(a))
    }

    /// A 6-byte MAC address.
    pub fn mac(&self, what: &'static str) -> WireResult<crate::MacAddr> {
        let b = self.exact(6, what)?;
        let mut a = [0u8; 6];
        a.copy_from_slice(b);
        Ok(crate::MacAddr(a))
    }

    /// A string, with or without its trailing NUL.
    pub fn string(&self, what: &'static str) -> WireResult<String> {
        let mut b = self.payload;
        while let [rest @ .., 0] = b {
            b = rest;
        }
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| WireError::BadString { what })
    }

    /// The nested attributes inside this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }
}

/// Iterates over an attribute stream. After the first malformed attribute it
/// yields that error and stops; a caller that wants to keep what came
/// before can.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Attrs<'a> {
    /// Views `buf` as attributes.
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { buf, failed: false }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = WireResult<Attr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let r = (|| {
            let h = take(self.buf, NLA_HDRLEN, "nlattr")?;
            let len = le_u16(&h[0..2]) as usize;
            if len < NLA_HDRLEN {
                return Err(WireError::BadLength { what: "nlattr", len });
            }
            let whole = take(self.buf, len, "nlattr payload")?;
            let a = Attr { kind: le_u16(&h[2..4]) & NLA_TYPE_MASK, payload: &whole[NLA_HDRLEN..] };
            self.buf = self.buf.get(align4(len)..).unwrap_or(&[]);
            Ok(a)
        })();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Builds an attribute stream. Nests are written in place and their length
/// patched when the closure returns, as libnl's `nla_nest_start/end` do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttrWriter {
    buf: Vec<u8>,
}

impl AttrWriter {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Raw payload.
    pub fn bytes(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = NLA_HDRLEN + payload.len();
        assert!(len <= u16::MAX as usize, "netlink attribute too long");
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// u8 payload.
    pub fn u8(&mut self, kind: u16, v: u8) -> &mut Self {
        self.bytes(kind, &[v])
    }

    /// u16 payload.
    pub fn u16(&mut self, kind: u16, v: u16) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    /// u32 payload.
    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    /// u64 payload.
    pub fn u64(&mut self, kind: u16, v: u64) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    /// s32 payload.
    pub fn i32(&mut self, kind: u16, v: i32) -> &mut Self {
        self.bytes(kind, &v.to_ne_bytes())
    }

    /// NUL-terminated string (`NLA_PUT_STRING`).
    pub fn string_nul(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut p = Vec::with_capacity(s.len() + 1);
        p.extend_from_slice(s.as_bytes());
        p.push(0);
        self.bytes(kind, &p)
    }

    /// A flag (empty payload).
    pub fn flag(&mut self, kind: u16) -> &mut Self {
        self.bytes(kind, &[])
    }

    /// A nested attribute whose content `f` writes. The type carries
    /// `NLA_F_NESTED`, as iw (libnl 3.7) sends it (seen in the captures).
    pub fn nest(&mut self, kind: u16, f: impl FnOnce(&mut AttrWriter)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        let mut inner = AttrWriter { buf: std::mem::take(&mut self.buf) };
        f(&mut inner);
        self.buf = inner.buf;
        let len = self.buf.len() - start;
        assert!(len <= u16::MAX as usize, "netlink nest too long");
        self.buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self
    }
}

/// Hex dump helper for error messages and golden tests: `"0a 00 ff"`.
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(if i % 16 == 0 { "\n" } else { " " })?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_roundtrip_and_padding() {
        let mut w = AttrWriter::new();
        w.u8(1, 7).u16(2, 0x1234).u32(3, 8193).string_nul(4, "mesh0").nest(5, |n| {
            n.u8(6, 1);
        });
        let b = w.finish();
        assert_eq!(b.len() % 4, 0);
        let v: Vec<_> = Attrs::new(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(v[0].u8("a").unwrap(), 7);
        assert_eq!(v[1].u16("b").unwrap(), 0x1234);
        assert_eq!(v[2].u32("c").unwrap(), 8193);
        assert_eq!(v[3].string("d").unwrap(), "mesh0");
        let inner: Vec<_> = v[4].nested().collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].kind, 6);
        assert_eq!(v[4].payload.len(), 8);
    }

    #[test]
    fn width_mismatch_is_an_error_naming_the_attribute() {
        let mut w = AttrWriter::new();
        w.u32(41, 8193);
        let b = w.finish();
        let a = Attrs::new(&b).next().unwrap().unwrap();
        let e = a.u16("STA_INFO_AIRTIME_LINK_METRIC").unwrap_err();
        assert_eq!(e.to_string(), "STA_INFO_AIRTIME_LINK_METRIC: expected 2 bytes, got 4");
    }

    #[test]
    fn truncated_attribute_stops_iteration_with_error() {
        // Declares 8 bytes, only 6 present.
        let b = [8u8, 0, 1, 0, 0xaa, 0xbb];
        let mut it = Attrs::new(&b);
        assert!(matches!(it.next(), Some(Err(WireError::Truncated { .. }))));
        assert!(it.next().is_none());
        // Length smaller than the header.
        let b = [2u8, 0, 1, 0];
        assert!(matches!(Attrs::new(&b).next(), Some(Err(WireError::BadLength { .. }))));
    }

    #[test]
    fn nested_flag_is_masked() {
        let b = [8u8, 0, 0x23, 0x80, 5, 0, 1, 0];
        let a = Attrs::new(&b).next().unwrap().unwrap();
        assert_eq!(a.kind, 0x23);
    }

    #[test]
    fn nlmsg_iteration_and_error_with_ext_ack() {
        // NLMSG_ERROR, capped + ack TLVs: error -95, echoed header, MSG "nope".
        let mut p = Vec::new();
        p.extend_from_slice(&(-95i32).to_ne_bytes());
        p.extend_from_slice(&emit_nlmsg(0x1c, 5, 9, 0, &[])[..16]);
        let mut w = AttrWriter::new();
        w.string_nul(NLMSGERR_ATTR_MSG, "nope");
        p.extend_from_slice(&w.finish());
        let mut buf = emit_nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 9, 0, &p);
        buf.extend_from_slice(&emit_nlmsg(NLMSG_DONE, 0, 10, 0, &0i32.to_ne_bytes()));
        let msgs: Vec<_> = NlMsgs::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        let e = NlError::parse(msgs[0].flags, msgs[0].payload).unwrap();
        assert_eq!(e, NlError { error: -95, message: Some("nope".into()) });
        assert_eq!(msgs[1].ty, NLMSG_DONE);
    }
}
