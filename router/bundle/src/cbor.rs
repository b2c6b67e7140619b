//! Minimal CBOR (RFC 8949) for exactly what BPv7 uses: unsigned integers, byte strings, text
//! strings and arrays.
//!
//! Why not a CBOR crate: the reader must be zero-copy (payloads are borrowed, never copied), must
//! refuse what RFC 9171 §4.1 forbids (non-minimal integers and lengths: the core deterministic
//! encoding), and must refuse what meshpay chooses not to accept (indefinite-length items inside
//! blocks, which RFC 9171 tolerates but no BPv7 implementation we know of emits, and which would
//! make the primary block's bytes depend on the encoder). General decoders accept both. The whole
//! thing is a few dozen lines.
//!
//! The reader never allocates and never trusts a length before comparing it with the bytes that
//! are actually there.

use crate::error::{Error, Problem};

pub(crate) const MAJOR_UINT: u8 = 0;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;

/// Start of an indefinite-length array (major type 4, additional information 31).
pub(crate) const INDEFINITE_ARRAY: u8 = 0x9f;
/// The "break" stop code that ends an indefinite-length item.
pub(crate) const BREAK: u8 = 0xff;

pub(crate) fn major_name(major: u8) -> &'static str {
    match major {
        0 => "unsigned integer",
        1 => "negative integer",
        2 => "byte string",
        3 => "text string",
        4 => "array",
        5 => "map",
        6 => "tag",
        _ => "simple value or float",
    }
}

/// A cursor over borrowed bytes. Positions in errors are absolute: `base` is the offset of
/// `buf[0]` in the whole bundle, so errors inside a block's data still point at the right byte.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, base: 0 }
    }

    /// A reader over `buf`, which starts at byte `base` of the bundle.
    pub(crate) fn with_base(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    /// Position in `buf`.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Position in the bundle.
    pub(crate) fn at(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(crate) fn byte(&mut self, field: &'static str) -> Result<u8, Error> {
        let b = self.peek().ok_or(Error::Truncated { at: self.at(), field })?;
        self.pos += 1;
        Ok(b)
    }

    /// `buf[from..self.pos]`.
    pub(crate) fn since(&self, from: usize) -> &'a [u8] {
        &self.buf[from..self.pos]
    }

    fn malformed(&self, at: usize, field: &'static str, problem: Problem) -> Error {
        Error::Malformed { at: self.base + at, field, problem }
    }

    /// Reads an item head of major type `major` and returns its argument, refusing indefinite
    /// lengths, reserved additional information and non-minimal encodings.
    pub(crate) fn head(&mut self, major: u8, field: &'static str) -> Result<u64, Error> {
        let start = self.pos;
        let initial = self.byte(field)?;
        let (found, ai) = (initial >> 5, initial & 0x1f);
        if found != major {
            return Err(self.malformed(
                start,
                field,
                Problem::UnexpectedType { expected: major_name(major), found: major_name(found) },
            ));
        }
        let (len, min) = match ai {
            0..=23 => return Ok(u64::from(ai)),
            24 => (1, 24),
            25 => (2, 0x100),
            26 => (4, 0x1_0000),
            27 => (8, 0x1_0000_0000),
            31 => return Err(self.malformed(start, field, Problem::Indefinite)),
            _ => return Err(self.malformed(start, field, Problem::ReservedAdditionalInfo(ai))),
        };
        let bytes =
            self.buf.get(self.pos..self.pos + len).ok_or(Error::Truncated { at: self.at(), field })?;
        self.pos += len;
        let value = bytes.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
        if value < min {
            return Err(self.malformed(start, field, Problem::NonMinimal));
        }
        Ok(value)
    }

    pub(crate) fn uint(&mut self, field: &'static str) -> Result<u64, Error> {
        self.head(MAJOR_UINT, field)
    }

    /// Reads a definite-length array head and checks its length is one of `allowed`.
    pub(crate) fn array(
        &mut self,
        allowed: &[u64],
        expected: &'static str,
        field: &'static str,
    ) -> Result<u64, Error> {
        let start = self.pos;
        let len = self.head(MAJOR_ARRAY, field)?;
        if !allowed.contains(&len) {
            return Err(self.malformed(start, field, Problem::WrongArrayLength { expected, found: len }));
        }
        Ok(len)
    }

    fn string(&mut self, major: u8, field: &'static str) -> Result<&'a [u8], Error> {
        let start = self.pos;
        let claimed = self.head(major, field)?;
        let available = self.remaining();
        let len = usize::try_from(claimed)
            .ok()
            .filter(|&len| len <= available)
            .ok_or(Error::LengthPastEnd { at: self.base + start, field, claimed, available })?;
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], Error> {
        self.string(MAJOR_BYTES, field)
    }

    /// A text string as raw bytes; the caller validates them (endpoint IDs are ASCII).
    pub(crate) fn text(&mut self, field: &'static str) -> Result<&'a [u8], Error> {
        self.string(MAJOR_TEXT, field)
    }

    /// Refuses anything left in `buf` (used for the data inside a block).
    pub(crate) fn finish(&self, field: &'static str) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.malformed(self.pos, field, Problem::TrailingData { count })),
        }
    }
}

/// Appends an item head in its shortest form.
pub(crate) fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    if value < 24 {
        out.push(m | value as u8);
    } else if value <= 0xff {
        out.extend_from_slice(&[m | 24, value as u8]);
    } else if value <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// The length of an item head with argument `value`.
pub(crate) fn head_len(value: u64) -> usize {
    match value {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

pub(crate) fn uint(out: &mut Vec<u8>, value: u64) {
    head(out, MAJOR_UINT, value);
}

pub(crate) fn array(out: &mut Vec<u8>, len: u64) {
    head(out, MAJOR_ARRAY, len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        uint(&mut out, v);
        out
    }

    #[test]
    fn integers_round_trip_in_shortest_form() {
        for (v, len) in [
            (0, 1),
            (23, 1),
            (24, 2),
            (255, 2),
            (256, 3),
            (65535, 3),
            (65536, 5),
            (u32::MAX as u64, 5),
            (u32::MAX as u64 + 1, 9),
            (u64::MAX, 9),
        ] {
            let bytes = enc(v);
            assert_eq!(bytes.len(), len, "{v}");
            assert_eq!(head_len(v), len, "{v}");
            let mut r = Reader::new(&bytes);
            assert_eq!(r.uint("x").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
        // RFC 8949 Appendix A examples.
        assert_eq!(enc(10), [0x0a]);
        assert_eq!(enc(100), [0x18, 0x64]);
        assert_eq!(enc(1000), [0x19, 0x03, 0xe8]);
        assert_eq!(enc(1_000_000), [0x1a, 0x00, 0x0f, 0x42, 0x40]);
        assert_eq!(enc(1_000_000_000_000), [0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00]);
    }

    #[test]
    fn non_minimal_integers_are_refused() {
        for bytes in [
            &[0x18, 0x17][..],
            &[0x19, 0x00, 0xff],
            &[0x1a, 0, 0, 0xff, 0xff],
            &[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        ] {
            let err = Reader::new(bytes).uint("f").unwrap_err();
            assert!(
                matches!(err, Error::Malformed { problem: Problem::NonMinimal, .. }),
                "{bytes:02x?}: {err}"
            );
        }
    }

    #[test]
    fn reserved_indefinite_and_wrong_types_are_refused() {
        let err = Reader::new(&[0x1c]).uint("f").unwrap_err();
        assert!(matches!(err, Error::Malformed { problem: Problem::ReservedAdditionalInfo(28), .. }));
        let err = Reader::new(&[0x5f, 0x41, 0x00, 0xff]).bytes("f").unwrap_err();
        assert!(matches!(err, Error::Malformed { problem: Problem::Indefinite, .. }));
        let err = Reader::new(&[0x20]).uint("f").unwrap_err();
        assert_eq!(err.to_string(), "f at byte 0: expected unsigned integer, found negative integer");
    }

    #[test]
    fn lengths_past_the_end_are_refused_before_slicing() {
        // A byte string claiming 2^64-1 bytes.
        let bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        let err = Reader::with_base(&bytes, 100).bytes("payload").unwrap_err();
        assert_eq!(err, Error::LengthPastEnd { at: 100, field: "payload", claimed: u64::MAX, available: 1 });
        let err = Reader::new(&[0x19, 0x01]).uint("f").unwrap_err();
        assert_eq!(err, Error::Truncated { at: 1, field: "f" });
    }
}
