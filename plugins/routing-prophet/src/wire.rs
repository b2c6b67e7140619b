//! The control messages PRoPHET instances on neighbouring nodes exchange
//! (through `RoutingHost::send_control` / `on_control`): this node's
//! delivery predictabilities, for the neighbour's transitivity update
//! (RFC 6693 Eq. 3) and its forwarding decisions (GRTR).
//!
//! After smoltcp's `wire` modules: [`Message`] is a checked zero-copy view
//! of a buffer, [`MessageRepr`] its plain form; `parse` and `emit` are
//! symmetric (round-trip tested, also over arbitrary input).
//!
//! ```text
//!  0         1        2        3                5
//!  +---------+--------+--------+----------------+------------------------+
//!  | version | type   | flags  | count (u16 BE) | count × entry          |
//!  +---------+--------+--------+----------------+------------------------+
//!  entry (34 bytes): node key (32 bytes) | predictability (u16 BE)
//! ```
//!
//! * `version` is 1. A new layout gets a new version; a receiver refuses
//!   versions it does not know (the sender's plugin is then too new or too
//!   old: the log says which).
//! * `type` 1 is a predictability vector. No other type exists yet.
//! * `flags` bit 0, `FIRST`: this message starts a full exchange, so the
//!   receiver forgets what the sender told it before. A table too large for
//!   one message continues in messages without the flag. Other bits are
//!   reserved and must be 0.
//! * A predictability P is sent as `round(P × 65535)`: 16 bits keep it to
//!   ±0.0000077, far below any meaningful difference in PRoPHET, and halve
//!   the size of an `f32`.
//! * The length must be exactly `5 + 34 × count`, `count` at most
//!   [`MAX_ENTRIES`], and no node may appear twice: anything else is
//!   refused whole (a neighbour that sends garbage gets no say).

use core::fmt;

use crate::node_id::NodeId;

pub const VERSION: u8 = 1;
/// A predictability vector.
pub const TYPE_VECTOR: u8 = 1;
/// This message starts a full exchange.
pub const FLAG_FIRST: u8 = 1;
pub const HEADER_LEN: usize = 5;
pub const ENTRY_LEN: usize = 34;
/// Most entries one message may carry.
pub const MAX_ENTRIES: usize = 4096;

/// The length of a message with `entries` entries.
pub const fn message_len(entries: usize) -> usize {
    HEADER_LEN + ENTRY_LEN * entries
}

/// Why a buffer is not a valid message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Truncated,
    UnsupportedVersion(u8),
    UnknownType(u8),
    ReservedFlags(u8),
    TooManyEntries(usize),
    /// The length does not match the entry count.
    BadLength {
        expected: usize,
        got: usize,
    },
    /// Entry `index` repeats an earlier node.
    DuplicateNode {
        index: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "shorter than the {HEADER_LEN}-byte header"),
            Error::UnsupportedVersion(v) => {
                write!(f, "unsupported version {v} (this plugin speaks {VERSION})")
            }
            Error::UnknownType(t) => write!(f, "unknown message type {t}"),
            Error::ReservedFlags(b) => write!(f, "reserved flag bits set ({b:#04x})"),
            Error::TooManyEntries(n) => write!(f, "{n} entries (at most {MAX_ENTRIES})"),
            Error::BadLength { expected, got } => {
                write!(f, "{got} bytes where the entry count needs {expected}")
            }
            Error::DuplicateNode { index } => write!(f, "entry {index} repeats an earlier node"),
        }
    }
}

impl std::error::Error for Error {}

/// A predictability sent as `u16`.
pub fn quantize(p: f64) -> u16 {
    (p.clamp(0.0, 1.0) * 65535.0).round() as u16
}

/// The predictability a `u16` stands for.
pub fn dequantize(q: u16) -> f64 {
    f64::from(q) / 65535.0
}

/// A checked, zero-copy view of a message.
#[derive(Clone, Debug)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer after checking everything [`Error`] lists.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let m = Message { buffer };
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] != VERSION {
            return Err(Error::UnsupportedVersion(b[0]));
        }
        if b[1] != TYPE_VECTOR {
            return Err(Error::UnknownType(b[1]));
        }
        if b[2] & !FLAG_FIRST != 0 {
            return Err(Error::ReservedFlags(b[2] & !FLAG_FIRST));
        }
        let count = self.count();
        if count > MAX_ENTRIES {
            return Err(Error::TooManyEntries(count));
        }
        if b.len() != message_len(count) {
            return Err(Error::BadLength { expected: message_len(count), got: b.len() });
        }
        let mut nodes: Vec<&[u8]> = self.raw_entries().map(|e| &e[..32]).collect();
        nodes.sort_unstable();
        if let Some(dup) = nodes.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]) {
            let index =
                self.raw_entries().enumerate().filter(|(_, e)| &e[..32] == dup).nth(1).map(|(i, _)| i);
            return Err(Error::DuplicateNode { index: index.unwrap_or(0) });
        }
        Ok(())
    }

    /// `FLAG_FIRST` is set.
    pub fn first(&self) -> bool {
        self.buffer.as_ref()[2] & FLAG_FIRST != 0
    }

    pub fn count(&self) -> usize {
        let b = self.buffer.as_ref();
        usize::from(u16::from_be_bytes([b[3], b[4]]))
    }

    fn raw_entries(&self) -> impl Iterator<Item = &[u8]> {
        self.buffer.as_ref()[HEADER_LEN..].chunks_exact(ENTRY_LEN)
    }

    /// The entries, in message order.
    pub fn entries(&self) -> impl Iterator<Item = (NodeId, u16)> + '_ {
        self.raw_entries().map(|e| {
            let mut key = [0u8; 32];
            key.copy_from_slice(&e[..32]);
            (NodeId(key), u16::from_be_bytes([e[32], e[33]]))
        })
    }
}

/// A message in plain form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRepr {
    pub first: bool,
    /// (node, quantized predictability), at most [`MAX_ENTRIES`], no node twice.
    pub entries: Vec<(NodeId, u16)>,
}

impl MessageRepr {
    /// Checks and reads a received message.
    pub fn parse(data: &[u8]) -> Result<MessageRepr, Error> {
        let m = Message::new_checked(data)?;
        Ok(MessageRepr { first: m.first(), entries: m.entries().collect() })
    }

    pub fn buffer_len(&self) -> usize {
        message_len(self.entries.len())
    }

    /// Appends the message to `out`.
    ///
    /// # Panics
    /// With more than [`MAX_ENTRIES`] entries (a bug in the caller, which
    /// splits larger tables).
    pub fn emit(&self, out: &mut Vec<u8>) {
        assert!(self.entries.len() <= MAX_ENTRIES, "a message carries at most {MAX_ENTRIES} entries");
        out.reserve(self.buffer_len());
        out.extend_from_slice(&[VERSION, TYPE_VECTOR, if self.first { FLAG_FIRST } else { 0 }]);
        out.extend_from_slice(&(self.entries.len() as u16).to_be_bytes());
        for (node, p) in &self.entries {
            out.extend_from_slice(&node.0);
            out.extend_from_slice(&p.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(b: u8) -> NodeId {
        NodeId([b; 32])
    }

    fn emit(r: &MessageRepr) -> Vec<u8> {
        let mut out = Vec::new();
        r.emit(&mut out);
        out
    }

    #[test]
    fn layout_is_as_documented() {
        let r = MessageRepr { first: true, entries: vec![(node(0xab), 0x1234)] };
        let bytes = emit(&r);
        assert_eq!(bytes.len(), r.buffer_len());
        assert_eq!(&bytes[..5], &[1, 1, 1, 0, 1]);
        assert_eq!(&bytes[5..37], &[0xab; 32]);
        assert_eq!(&bytes[37..], &[0x12, 0x34]);
        assert_eq!(MessageRepr::parse(&bytes), Ok(r));
        let empty = MessageRepr { first: false, entries: vec![] };
        assert_eq!(emit(&empty), [1, 1, 0, 0, 0]);
    }

    #[test]
    fn refusals_say_why() {
        let good = emit(&MessageRepr { first: true, entries: vec![(node(1), 7), (node(2), 9)] });
        let with = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            b
        };
        assert_eq!(MessageRepr::parse(&good[..4]), Err(Error::Truncated));
        assert_eq!(MessageRepr::parse(&[]), Err(Error::Truncated));
        assert_eq!(MessageRepr::parse(&with(0, 2)), Err(Error::UnsupportedVersion(2)));
        assert_eq!(MessageRepr::parse(&with(1, 0)), Err(Error::UnknownType(0)));
        assert_eq!(MessageRepr::parse(&with(2, 0x81)), Err(Error::ReservedFlags(0x80)));
        assert_eq!(MessageRepr::parse(&with(4, 3)), Err(Error::BadLength { expected: 107, got: 73 }));
        assert_eq!(MessageRepr::parse(&good[..72]), Err(Error::BadLength { expected: 73, got: 72 }));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(MessageRepr::parse(&long), Err(Error::BadLength { .. })));
        let mut too_many = vec![1, 1, 0, 0x10, 0x01];
        too_many.resize(message_len(4097), 0);
        assert_eq!(MessageRepr::parse(&too_many), Err(Error::TooManyEntries(4097)));
        let dup = emit(&MessageRepr { first: true, entries: vec![(node(1), 7), (node(2), 9), (node(1), 8)] });
        assert_eq!(MessageRepr::parse(&dup), Err(Error::DuplicateNode { index: 2 }));
        assert!(Error::DuplicateNode { index: 2 }.to_string().contains("entry 2"));
    }

    #[test]
    fn quantization_is_within_half_a_step() {
        for p in [0.0, 1.0, 0.5, 0.225, 0.1, 1e-9, 0.99] {
            assert!((dequantize(quantize(p)) - p).abs() <= 0.5 / 65535.0, "{p}");
        }
        assert_eq!(quantize(-1.0), 0);
        assert_eq!(quantize(2.0), 65535);
        assert_eq!(quantize(f64::NAN), 0);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(r) = MessageRepr::parse(&data) {
                prop_assert_eq!(emit(&r), data);
            }
        }

        #[test]
        fn arbitrary_headers_over_valid_lengths_never_panic(
            head in proptest::array::uniform5(any::<u8>()),
            body in proptest::collection::vec(any::<u8>(), 0..(34 * 6)),
        ) {
            let mut data = head.to_vec();
            data.extend_from_slice(&body);
            if let Ok(r) = MessageRepr::parse(&data) {
                prop_assert_eq!(emit(&r), data);
            }
        }

        #[test]
        fn emit_then_parse_round_trips(
            first in any::<bool>(),
            entries in proptest::collection::btree_map(any::<[u8; 32]>(), any::<u16>(), 0..50),
        ) {
            let r = MessageRepr { first, entries: entries.into_iter().map(|(k, p)| (NodeId(k), p)).collect() };
            prop_assert_eq!(MessageRepr::parse(&emit(&r)), Ok(r));
        }
    }
}
