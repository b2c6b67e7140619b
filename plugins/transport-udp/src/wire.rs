//! The wire format: every UDP datagram is one beacon or one fragment.
//!
//! In the style of smoltcp's `wire` module: a zero-copy view over a buffer
//! ([`Beacon`], [`Fragment`]) with checked construction and field accessors,
//! and a plain representation ([`BeaconRepr`], [`FragmentRepr`]) with
//! symmetric `parse`/`emit`. All integers are big-endian.
//!
//! ```text
//! every datagram (4 bytes)
//!  0      2         3      4
//!  +------+---------+------+
//!  | "mp" | version | type |      version = 1; type 0 = beacon, 1 = fragment
//!  +------+---------+------+
//!
//! beacon (type 0, at least 20 bytes; longer beacons are accepted and the
//! extra bytes ignored, so a later minor revision can append fields)
//!  4              12     14      15         16            20
//!  +--------------+------+-------+----------+-------------+
//!  | nonce (u64)  | port | flags | reserved | max_frame   |
//!  +--------------+------+-------+----------+-------------+
//!  port: the UDP port the sender listens on and sends from (not 0)
//!
//! fragment (type 1, 16 bytes of header, then the payload)
//!  4             8             10            12            16
//!  +-------------+-------------+-------------+-------------+---------
//!  | frame id    | index (u16) | count (u16) | total (u32) | payload
//!  +-------------+-------------+-------------+-------------+---------
//! ```
//!
//! A frame of `total` bytes goes out as `count` fragments; fragment `index`
//! carries bytes `index * P ..` of the frame, where `P` (the sender's
//! fragment payload size) is the payload length of every fragment but the
//! last. The receiver learns `P` from the fragments themselves (see
//! [`crate::reassembly`]), so sender and receiver need not agree on it.

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"mp";
/// The protocol version this crate speaks; datagrams of another version are
/// dropped (a new version is a new, incompatible protocol).
pub const VERSION: u8 = 1;
/// "I am here": discovery and liveness.
pub const TYPE_BEACON: u8 = 0;
/// A piece of a frame.
pub const TYPE_FRAGMENT: u8 = 1;
/// Magic, version, type.
pub const PREAMBLE_LEN: usize = 4;
/// The beacon of this version; longer ones are accepted.
pub const BEACON_LEN: usize = 20;
/// Preamble plus the fragment fields.
pub const FRAGMENT_HEADER_LEN: usize = 16;

/// Beacon flag: "this beacon was sent to you alone; keep sending me unicast
/// beacons while I am up". Set on the periodic beacons to static peers, whose
/// group beacons may never reach each other. Unknown flags are ignored.
pub const FLAG_UNICAST: u8 = 0x01;

/// Why a datagram is not valid. Each variant is a drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header of its kind.
    Truncated,
    BadMagic,
    BadVersion,
    UnknownType,
    /// A fragment header that cannot be true on its own: count 0, index not
    /// below count, a payload longer than the frame, an empty payload in a
    /// multi-fragment frame, a single fragment that is not the whole frame.
    BadFragment,
    /// A beacon with port 0.
    BadBeacon,
}

impl Error {
    pub fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadMagic => "bad magic",
            Error::BadVersion => "unknown version",
            Error::UnknownType => "unknown type",
            Error::BadFragment => "impossible fragment header",
            Error::BadBeacon => "impossible beacon",
        }
    }
}

/// The kind of a datagram, after the preamble has been checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Beacon,
    Fragment,
}

/// Checks the preamble and says what the datagram is.
pub fn classify(datagram: &[u8]) -> Result<Kind, Error> {
    if datagram.len() < PREAMBLE_LEN {
        return Err(Error::Truncated);
    }
    if datagram[..2] != MAGIC {
        return Err(Error::BadMagic);
    }
    if datagram[2] != VERSION {
        return Err(Error::BadVersion);
    }
    match datagram[3] {
        TYPE_BEACON => Ok(Kind::Beacon),
        TYPE_FRAGMENT => Ok(Kind::Fragment),
        _ => Err(Error::UnknownType),
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn write_preamble(b: &mut [u8], kind: u8) {
    b[..2].copy_from_slice(&MAGIC);
    b[2] = VERSION;
    b[3] = kind;
}

// ------------------------------------------------------------------ beacon

/// A view of a beacon datagram.
#[derive(Debug, Clone, Copy)]
pub struct Beacon<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Beacon<T> {
    /// Wraps a buffer without checks (for emitting into a fresh buffer).
    pub fn new_unchecked(buffer: T) -> Self {
        Beacon { buffer }
    }

    /// Wraps a received datagram: the preamble says beacon and it is long
    /// enough for every field.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if classify(buffer.as_ref())? != Kind::Beacon {
            return Err(Error::UnknownType);
        }
        if buffer.as_ref().len() < BEACON_LEN {
            return Err(Error::Truncated);
        }
        let beacon = Beacon { buffer };
        if beacon.port() == 0 {
            return Err(Error::BadBeacon);
        }
        Ok(beacon)
    }

    /// The sender's instance nonce: new on every start of an instance.
    pub fn nonce(&self) -> u64 {
        be64(self.buffer.as_ref(), 4)
    }

    /// The UDP port the sender listens on (and sends from).
    pub fn port(&self) -> u16 {
        be16(self.buffer.as_ref(), 12)
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[14]
    }

    /// The largest frame the sender accepts.
    pub fn max_frame(&self) -> u32 {
        be32(self.buffer.as_ref(), 16)
    }
}

/// The fields of a beacon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeaconRepr {
    pub nonce: u64,
    pub port: u16,
    pub flags: u8,
    pub max_frame: u32,
}

impl BeaconRepr {
    pub fn parse<T: AsRef<[u8]>>(beacon: &Beacon<T>) -> BeaconRepr {
        BeaconRepr {
            nonce: beacon.nonce(),
            port: beacon.port(),
            flags: beacon.flags(),
            max_frame: beacon.max_frame(),
        }
    }

    pub const fn buffer_len(&self) -> usize {
        BEACON_LEN
    }

    /// Writes the beacon into the first [`BEACON_LEN`] bytes of `buffer`.
    pub fn emit(&self, buffer: &mut [u8]) {
        let b = &mut buffer[..BEACON_LEN];
        write_preamble(b, TYPE_BEACON);
        b[4..12].copy_from_slice(&self.nonce.to_be_bytes());
        b[12..14].copy_from_slice(&self.port.to_be_bytes());
        b[14] = self.flags;
        b[15] = 0;
        b[16..20].copy_from_slice(&self.max_frame.to_be_bytes());
    }
}

// ---------------------------------------------------------------- fragment

/// A view of a fragment datagram.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Fragment<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Fragment { buffer }
    }

    /// Wraps a received datagram and checks everything a fragment can be
    /// checked for on its own (see [`Error::BadFragment`]).
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if classify(buffer.as_ref())? != Kind::Fragment {
            return Err(Error::UnknownType);
        }
        if buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let f = Fragment { buffer };
        let (count, index, total, len) =
            (f.count(), f.index(), f.total_len() as u64, f.payload().len() as u64);
        let ok =
            count >= 1 && index < count && len <= total && if count == 1 { len == total } else { len > 0 };
        if ok { Ok(f) } else { Err(Error::BadFragment) }
    }

    /// The sender's id for the frame, the same in all its fragments.
    pub fn frame_id(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// 0-based position of this fragment in the frame.
    pub fn index(&self) -> u16 {
        be16(self.buffer.as_ref(), 8)
    }

    /// How many fragments the frame has.
    pub fn count(&self) -> u16 {
        be16(self.buffer.as_ref(), 10)
    }

    /// Length of the whole frame in bytes.
    pub fn total_len(&self) -> u32 {
        be32(self.buffer.as_ref(), 12)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[FRAGMENT_HEADER_LEN..]
    }
}

/// The header fields of a fragment (the payload travels beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentRepr {
    pub frame_id: u32,
    pub index: u16,
    pub count: u16,
    pub total_len: u32,
}

impl FragmentRepr {
    pub fn parse<T: AsRef<[u8]>>(fragment: &Fragment<T>) -> FragmentRepr {
        FragmentRepr {
            frame_id: fragment.frame_id(),
            index: fragment.index(),
            count: fragment.count(),
            total_len: fragment.total_len(),
        }
    }

    /// Header length; the datagram is this plus the payload.
    pub const fn header_len(&self) -> usize {
        FRAGMENT_HEADER_LEN
    }

    /// Writes the header into the first [`FRAGMENT_HEADER_LEN`] bytes.
    pub fn emit(&self, buffer: &mut [u8]) {
        let b = &mut buffer[..FRAGMENT_HEADER_LEN];
        write_preamble(b, TYPE_FRAGMENT);
        b[4..8].copy_from_slice(&self.frame_id.to_be_bytes());
        b[8..10].copy_from_slice(&self.index.to_be_bytes());
        b[10..12].copy_from_slice(&self.count.to_be_bytes());
        b[12..16].copy_from_slice(&self.total_len.to_be_bytes());
    }
}

/// How many fragments of `payload_size` bytes a frame of `len` bytes needs
/// (an empty frame is one empty fragment).
pub fn fragment_count(len: usize, payload_size: usize) -> usize {
    len.div_ceil(payload_size).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacon_round_trip() {
        let repr =
            BeaconRepr { nonce: 0x0102_0304_0506_0708, port: 4556, flags: FLAG_UNICAST, max_frame: 1 << 20 };
        let mut buf = [0xAAu8; BEACON_LEN];
        repr.emit(&mut buf);
        assert_eq!(&buf[..4], b"mp\x01\x00");
        assert_eq!(buf[15], 0, "reserved byte is zero");
        let view = Beacon::new_checked(&buf[..]).unwrap();
        assert_eq!(BeaconRepr::parse(&view), repr);
        // Longer beacons (a later revision's extra fields) still parse.
        let mut longer = buf.to_vec();
        longer.extend_from_slice(b"future");
        assert_eq!(BeaconRepr::parse(&Beacon::new_checked(&longer[..]).unwrap()), repr);
        assert_eq!(Beacon::new_checked(&buf[..BEACON_LEN - 1]).unwrap_err(), Error::Truncated);
        BeaconRepr { port: 0, ..repr }.emit(&mut buf);
        assert_eq!(Beacon::new_checked(&buf[..]).unwrap_err(), Error::BadBeacon);
    }

    #[test]
    fn fragment_round_trip() {
        let repr = FragmentRepr { frame_id: 0xDEAD_BEEF, index: 2, count: 3, total_len: 2900 };
        let mut buf = vec![0u8; FRAGMENT_HEADER_LEN + 100];
        repr.emit(&mut buf);
        buf[FRAGMENT_HEADER_LEN..].fill(7);
        let view = Fragment::new_checked(&buf[..]).unwrap();
        assert_eq!(FragmentRepr::parse(&view), repr);
        assert_eq!(view.payload(), &[7u8; 100][..]);
    }

    fn fragment(index: u16, count: u16, total: u32, payload: usize) -> Vec<u8> {
        let mut buf = vec![0u8; FRAGMENT_HEADER_LEN + payload];
        FragmentRepr { frame_id: 1, index, count, total_len: total }.emit(&mut buf);
        buf
    }

    #[test]
    fn impossible_fragments_are_refused() {
        for (index, count, total, payload) in [
            (0, 0, 10, 10), // no fragments
            (3, 3, 10, 1),  // index past the end
            (0, 1, 10, 9),  // a lone fragment that is not the frame
            (0, 2, 10, 0),  // empty piece of a larger frame
            (0, 2, 10, 11), // piece larger than the frame
        ] {
            let buf = fragment(index, count, total, payload);
            assert_eq!(Fragment::new_checked(&buf[..]).unwrap_err(), Error::BadFragment, "{index}/{count}");
        }
        assert!(Fragment::new_checked(&fragment(0, 1, 0, 0)[..]).is_ok(), "the empty frame");
    }

    #[test]
    fn preamble_errors() {
        assert_eq!(classify(b"mp\x01"), Err(Error::Truncated));
        assert_eq!(classify(b"MP\x01\x00"), Err(Error::BadMagic));
        assert_eq!(classify(b"mp\x02\x00"), Err(Error::BadVersion));
        assert_eq!(classify(b"mp\x01\x07"), Err(Error::UnknownType));
        assert_eq!(classify(b"mp\x01\x01"), Ok(Kind::Fragment));
        assert_eq!(Fragment::new_checked(&b"mp\x01\x01short"[..]).unwrap_err(), Error::Truncated);
        assert_eq!(
            Fragment::new_checked(&b"mp\x01\x00xxxxxxxxxxxxxxxxxxxx"[..]).unwrap_err(),
            Error::UnknownType
        );
    }

    #[test]
    fn counts() {
        assert_eq!(fragment_count(0, 1436), 1);
        assert_eq!(fragment_count(1, 1436), 1);
        assert_eq!(fragment_count(1436, 1436), 1);
        assert_eq!(fragment_count(1437, 1436), 2);
        assert_eq!(fragment_count(65536, 1436), 46);
    }
}
