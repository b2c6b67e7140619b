//! Link frames: what meshpay nodes send each other over a transport.
//!
//! After smoltcp's `wire` modules: [`Frame`] is a zero-copy, checked view of
//! a buffer; [`FrameRepr`] is the plain high-level form; `parse` and `emit`
//! are symmetric and tested by round-trip.
//!
//! ```text
//!  0      2      3      4
//!  +------+------+------+------------------+
//!  | "MP" | ver  | type | payload ...      |
//!  +------+------+------+------------------+
//! ```
//! Every field is big-endian. An unknown version or type is an error the
//! engine counts and drops, never a panic.

use core::fmt;

/// First two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"MP";
/// The link protocol version this engine speaks.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 4;

/// Frame types.
pub mod frame_type {
    /// "I am node K": sent on every new link, answered with a HELLO.
    pub const HELLO: u8 = 1;
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
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => write!(f, "frame shorter than its header"),
            Error::BadMagic => write!(f, "not a meshpay frame (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported link protocol version {v}"),
            Error::UnknownType(t) => write!(f, "unknown frame type {t}"),
            Error::BadLength => write!(f, "payload length does not match the frame type"),
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

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    fn set_header(&mut self, frame_type: u8) {
        let b = self.buffer.as_mut();
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = VERSION;
        b[3] = frame_type;
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The high-level form of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameRepr {
    /// The sender's node key. Unauthenticated: it names the neighbour for
    /// routing; everything that matters (bundles, votes) is signed itself.
    Hello { node_key: [u8; 32] },
}

impl FrameRepr {
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<FrameRepr, Error> {
        frame.check()?;
        let p = frame.payload();
        match frame.frame_type() {
            frame_type::HELLO => {
                let node_key: [u8; 32] = p.try_into().map_err(|_| Error::BadLength)?;
                Ok(FrameRepr::Hello { node_key })
            }
            t => Err(Error::UnknownType(t)),
        }
    }

    /// Length of the emitted frame.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                FrameRepr::Hello { .. } => 32,
            }
    }

    /// Writes the frame into a buffer of exactly `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        match self {
            FrameRepr::Hello { node_key } => {
                frame.set_header(frame_type::HELLO);
                frame.payload_mut().copy_from_slice(node_key);
            }
        }
    }

    /// Emits into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut f = Frame::new_unchecked(vec![0u8; self.buffer_len()]);
        self.emit(&mut f);
        f.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let repr = FrameRepr::Hello { node_key: [7; 32] };
        let bytes = repr.to_vec();
        assert_eq!(&bytes[..4], b"MP\x01\x01");
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(FrameRepr::parse(&frame).unwrap(), repr);
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(Frame::new_checked(&b"MP"[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Frame::new_checked(&b"XX\x01\x01"[..]).unwrap_err(), Error::BadMagic);
        assert_eq!(Frame::new_checked(&b"MP\x09\x01"[..]).unwrap_err(), Error::UnsupportedVersion(9));
        let f = Frame::new_checked(&b"MP\x01\xee"[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::UnknownType(0xee));
        let f = Frame::new_checked(&b"MP\x01\x01short"[..]).unwrap();
        assert_eq!(FrameRepr::parse(&f).unwrap_err(), Error::BadLength);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics() {
        // A cheap exhaustive sweep over short buffers.
        for len in 0..40usize {
            for seed in 0..64u8 {
                let buf: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
                if let Ok(f) = Frame::new_checked(&buf[..]) {
                    let _ = FrameRepr::parse(&f);
                }
            }
        }
    }
}
