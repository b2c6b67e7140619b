//! Link frames: what meshpay nodes send each other over a transport.
//!
//! After smoltcp's `wire` modules: [`Frame`] is a zero-copy, checked view of
//! a buffer; [`FrameRepr`] is the plain high-level form (borrowing bundle
//! bytes and control data from the buffer); `parse` and `emit` are
//! symmetric and tested by round-trip.
//!
//! ```text
//!  0      2      3      4
//!  +------+------+------+------------------+
//!  | "MP" | ver  | type | payload ...      |
//!  +------+------+------+------------------+
//!
//!  HELLO    node key (32)
//!  SUMMARY  flags (1: bit 0 = more follow) | count (u16) | count × id prefix (u64)
//!  BUNDLE   copies (u32) | bundle (BPv7 bytes)
//!  ACK      count × (id (32) | status (1)), count ≥ 1
//!  CONTROL  routing plugin data
//! ```
//! One ACK frame answers up to [`MAX_ACKS_PER_FRAME`] bundles: a relay
//! receiving a window of bundles answers with a frame per 40 of them, not a
//! frame (and a system call at each end) per bundle. A one-entry ACK is the
//! same bytes as before ACKs were grouped.
//!
//! Integers are big-endian. An unknown version or type, or a length that
//! does not fit, is an error the engine counts and drops, never a panic.

use core::fmt;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"MP";
/// The link protocol version this engine speaks.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 4;
/// Most id prefixes in one SUMMARY frame (64 KiB of prefixes).
pub const MAX_SUMMARY_IDS: usize = 8192;

/// Frame types.
pub mod frame_type {
    /// "I am node K": sent on every new link, answered with a HELLO.
    pub const HELLO: u8 = 1;
    /// The ids of the bundles the sender holds, as 8-byte prefixes.
    pub const SUMMARY: u8 = 2;
    /// One bundle, with the copies handed over.
    pub const BUNDLE: u8 = 3;
    /// What the receiver did with a bundle, sent after it is durable.
    pub const ACK: u8 = 4;
    /// Routing plugin control data.
    pub const CONTROL: u8 = 5;
}

/// What a receiver did with a bundle (in ACK frames).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AckStatus {
    /// Stored (or delivered) and durable.
    Stored = 0,
    /// Already held or seen.
    Duplicate = 1,
    /// Refused for now (rate limit, store full): try again later.
    Later = 2,
    /// Refused for good (malformed, expired, too large, hop limit).
    Refused = 3,
}

impl AckStatus {
    fn from_u8(v: u8) -> Option<AckStatus> {
        Some(match v {
            0 => AckStatus::Stored,
            1 => AckStatus::Duplicate,
            2 => AckStatus::Later,
            3 => AckStatus::Refused,
            _ => return None,
        })
    }
}

/// Why a buffer is not a valid frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Truncated,
    BadMagic,
    UnsupportedVersion(u8),
    UnknownType(u8),
    /// The payload length does not fit the type.
    BadLength,
    /// A field holds a value the type does not allow.
    BadValue,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "frame shorter than its header"),
            Error::BadMagic => write!(f, "not a meshpay frame (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported link protocol version {v}"),
            Error::UnknownType(t) => write!(f, "unknown frame type {t}"),
            Error::BadLength => write!(f, "payload length does not match the frame type"),
            Error::BadValue => write!(f, "a field holds a value its frame type does not allow"),
        }
    }
}

impl std::error::Error for Error {}

/// A checked, zero-copy view of a frame buffer.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer after checking the header.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let f = Frame { buffer };
        f.check()?;
        Ok(f)
    }

    fn check(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0..2] != MAGIC {
            return Err(Error::BadMagic);
        }
        if b[2] != VERSION {
            return Err(Error::UnsupportedVersion(b[2]));
        }
        Ok(())
    }

    pub fn frame_type(&self) -> u8 {
        self.buffer.as_ref()[3]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// The entries of an ACK frame, checked: `count × (id (32) | status (1))`,
/// at least one, each status known. Borrowed from the frame (zero-copy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acks<'a>(&'a [u8]);

/// Most entries in one ACK frame: the frame stays within one 1500-byte
/// datagram (4 + 40 × 33 = 1324 bytes).
pub const MAX_ACKS_PER_FRAME: usize = 40;

impl<'a> Acks<'a> {
    /// Bytes per entry.
    pub const ENTRY_LEN: usize = 33;

    /// Checks `entries` (as [`Acks::push`] writes them).
    pub fn new(entries: &'a [u8]) -> Result<Acks<'a>, Error> {
        if entries.is_empty() || !entries.len().is_multiple_of(Self::ENTRY_LEN) {
            return Err(Error::BadLength);
        }
        if entries.chunks_exact(Self::ENTRY_LEN).any(|e| AckStatus::from_u8(e[32]).is_none()) {
            return Err(Error::BadValue);
        }
        Ok(Acks(entries))
    }

    /// Appends one entry to an encoding buffer.
    pub fn push(buf: &mut Vec<u8>, id: &[u8; 32], status: AckStatus) {
        buf.extend_from_slice(id);
        buf.push(status as u8);
    }

    pub fn len(&self) -> usize {
        self.0.len() / Self::ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = ([u8; 32], AckStatus)> + 'a {
        self.0.chunks_exact(Self::ENTRY_LEN).map(|e| {
            let status = AckStatus::from_u8(e[32]).expect("checked in Acks::new");
            (e[..32].try_into().expect("32 bytes"), status)
        })
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// The high-level form of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameRepr<'a> {
    /// The sender's node key. Unauthenticated: it names the neighbour for
    /// routing; everything that matters (payments) is signed itself.
    Hello {
        node_key: [u8; 32],
    },
    /// Part of the sender's summary vector; `more` while parts follow.
    Summary {
        more: bool,
        prefixes: Vec<u64>,
    },
    /// A bundle and the copies handed over with it.
    Bundle {
        copies: u32,
        bundle: &'a [u8],
    },
    Ack {
        acks: Acks<'a>,
    },
    Control {
        data: &'a [u8],
    },
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b.try_into().expect("4 bytes"))
}

impl<'a> FrameRepr<'a> {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &'a Frame<&'a T>) -> Result<FrameRepr<'a>, Error> {
        frame.check()?;
        let p: &'a [u8] = &frame.buffer.as_ref()[HEADER_LEN..];
        match frame.frame_type() {
            frame_type::HELLO => {
                let node_key: [u8; 32] = p.try_into().map_err(|_| Error::BadLength)?;
                Ok(FrameRepr::Hello { node_key })
            }
            frame_type::SUMMARY => {
                if p.len() < 3 {
                    return Err(Error::BadLength);
                }
                if p[0] & !1 != 0 {
                    return Err(Error::BadValue);
                }
                let count = u16::from_be_bytes([p[1], p[2]]) as usize;
                if count > MAX_SUMMARY_IDS {
                    return Err(Error::BadValue);
                }
                let ids = &p[3..];
                if ids.len() != count * 8 {
                    return Err(Error::BadLength);
                }
                let prefixes =
                    ids.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect();
                Ok(FrameRepr::Summary { more: p[0] & 1 != 0, prefixes })
            }
            frame_type::BUNDLE => {
                if p.len() < 5 {
                    return Err(Error::BadLength);
                }
                Ok(FrameRepr::Bundle { copies: be_u32(&p[..4]), bundle: &p[4..] })
            }
            frame_type::ACK => Ok(FrameRepr::Ack { acks: Acks::new(p)? }),
            frame_type::CONTROL => Ok(FrameRepr::Control { data: p }),
            t => Err(Error::UnknownType(t)),
        }
    }

    fn frame_type(&self) -> u8 {
        match self {
            FrameRepr::Hello { .. } => frame_type::HELLO,
            FrameRepr::Summary { .. } => frame_type::SUMMARY,
            FrameRepr::Bundle { .. } => frame_type::BUNDLE,
            FrameRepr::Ack { .. } => frame_type::ACK,
            FrameRepr::Control { .. } => frame_type::CONTROL,
        }
    }

    /// Length of the emitted frame.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                FrameRepr::Hello { .. } => 32,
                FrameRepr::Summary { prefixes, .. } => 3 + 8 * prefixes.len(),
                FrameRepr::Bundle { bundle, .. } => 4 + bundle.len(),
                FrameRepr::Ack { acks } => acks.as_bytes().len(),
                FrameRepr::Control { data } => data.len(),
            }
    }

    /// Appends the frame to `out`.
    pub fn emit_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.buffer_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.frame_type());
        match self {
            FrameRepr::Hello { node_key } => out.extend_from_slice(node_key),
            FrameRepr::Summary { more, prefixes } => {
                debug_assert!(prefixes.len() <= MAX_SUMMARY_IDS);
                out.push(u8::from(*more));
                out.extend_from_slice(&(prefixes.len() as u16).to_be_bytes());
                for p in prefixes {
                    out.extend_from_slice(&p.to_be_bytes());
                }
            }
            FrameRepr::Bundle { copies, bundle } => {
                out.extend_from_slice(&copies.to_be_bytes());
                out.extend_from_slice(bundle);
            }
            FrameRepr::Ack { acks } => out.extend_from_slice(acks.as_bytes()),
            FrameRepr::Control { data } => out.extend_from_slice(data),
        }
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit_into(&mut out);
        out
    }
}

/// The summary prefix of a bundle id.
pub fn id_prefix(id: &[u8; 32]) -> u64 {
    u64::from_be_bytes(id[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(repr: &FrameRepr<'_>) {
        let bytes = repr.to_vec();
        assert_eq!(bytes.len(), repr.buffer_len());
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(&FrameRepr::parse(&frame).unwrap(), repr);
    }

    #[test]
    fn every_frame_type_round_trips() {
        round_trip(&FrameRepr::Hello { node_key: [7; 32] });
        round_trip(&FrameRepr::Summary { more: true, prefixes: vec![1, u64::MAX, 42] });
        round_trip(&FrameRepr::Summary { more: false, prefixes: vec![] });
        round_trip(&FrameRepr::Bundle { copies: 4, bundle: b"\x9f\x88bundle" });
        let mut acks = Vec::new();
        Acks::push(&mut acks, &[9; 32], AckStatus::Later);
        round_trip(&FrameRepr::Ack { acks: Acks::new(&acks).unwrap() });
        Acks::push(&mut acks, &[3; 32], AckStatus::Stored);
        round_trip(&FrameRepr::Ack { acks: Acks::new(&acks).unwrap() });
        let one = FrameRepr::Ack { acks: Acks::new(&acks[..33]).unwrap() }.to_vec();
        assert_eq!(&one[4..], &[&[9u8; 32][..], &[2]].concat()[..], "one entry: the ungrouped layout");
        round_trip(&FrameRepr::Control { data: b"prophet" });
        assert_eq!(&FrameRepr::Hello { node_key: [7; 32] }.to_vec()[..4], b"MP\x01\x01");
    }

    #[test]
    fn malformed_frames_are_errors() {
        let parse = |b: &[u8]| Frame::new_checked(b).and_then(|f| FrameRepr::parse(&f).map(|_| ()));
        assert_eq!(parse(b"MP"), Err(Error::Truncated));
        assert_eq!(parse(b"XX\x01\x01"), Err(Error::BadMagic));
        assert_eq!(parse(b"MP\x09\x01"), Err(Error::UnsupportedVersion(9)));
        assert_eq!(parse(b"MP\x01\xee"), Err(Error::UnknownType(0xee)));
        assert_eq!(parse(b"MP\x01\x01short"), Err(Error::BadLength));
        assert_eq!(parse(b"MP\x01\x02\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01"), Err(Error::BadLength));
        assert_eq!(parse(b"MP\x01\x02\x04\x00\x00"), Err(Error::BadValue));
        assert_eq!(parse(b"MP\x01\x03\x00\x00\x00"), Err(Error::BadLength));
        let mut entries = Vec::new();
        Acks::push(&mut entries, &[0; 32], AckStatus::Stored);
        Acks::push(&mut entries, &[1; 32], AckStatus::Duplicate);
        let mut ack = FrameRepr::Ack { acks: Acks::new(&entries).unwrap() }.to_vec();
        *ack.last_mut().unwrap() = 9;
        assert_eq!(parse(&ack), Err(Error::BadValue));
        ack.pop();
        assert_eq!(parse(&ack), Err(Error::BadLength), "a partial entry");
        assert_eq!(parse(b"MP\x01\x04"), Err(Error::BadLength), "no entry");
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..300), prefix in any::<bool>()) {
            if prefix && bytes.len() >= 3 {
                bytes[0] = b'M';
                bytes[1] = b'P';
                bytes[2] = VERSION;
            }
            if let Ok(f) = Frame::new_checked(&bytes[..]) {
                let _ = FrameRepr::parse(&f);
            }
        }

        #[test]
        fn acks_round_trip(entries in proptest::collection::vec((any::<[u8; 32]>(), 0u8..4), 1..=MAX_ACKS_PER_FRAME)) {
            let mut buf = Vec::new();
            for (id, s) in &entries {
                Acks::push(&mut buf, id, AckStatus::from_u8(*s).unwrap());
            }
            let acks = Acks::new(&buf).unwrap();
            prop_assert_eq!(acks.len(), entries.len());
            prop_assert!(acks.iter().map(|(id, s)| (id, s as u8)).eq(entries.iter().copied()));
            round_trip(&FrameRepr::Ack { acks });
        }

        #[test]
        fn summaries_round_trip(more in any::<bool>(), prefixes in proptest::collection::vec(any::<u64>(), 0..100)) {
            round_trip(&FrameRepr::Summary { more, prefixes });
        }
    }
}
