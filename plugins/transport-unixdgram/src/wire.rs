//! The unixdgram wire format, shared with the C example.
//!
//! Every datagram is `"MPU1"` (magic), one type byte, and for data the frame:
//!
//! | type | name  | rest of the datagram        |
//! |------|-------|-----------------------------|
//! | 0    | probe | nothing (exactly 5 bytes)   |
//! | 1    | data  | the frame, 0..=[`MTU`] bytes |

/// First four bytes of every datagram.
pub const MAGIC: [u8; 4] = *b"MPU1";
/// Magic plus type.
pub const HEADER_LEN: usize = 5;
/// "I am here"; no payload.
pub const TYPE_PROBE: u8 = 0;
/// A frame follows the header.
pub const TYPE_DATA: u8 = 1;
/// Largest frame carried, reported as the link MTU.
pub const MTU: usize = 65000;
/// Receive buffer size: one byte more than the largest valid datagram, so an
/// oversized datagram is recognised (the kernel truncates it to the buffer).
pub const RX_BUF: usize = HEADER_LEN + MTU + 1;

/// A valid datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datagram<'a> {
    Probe,
    Data(&'a [u8]),
}

/// Parses a received datagram, or says why it is dropped.
pub fn parse(datagram: &[u8]) -> Result<Datagram<'_>, &'static str> {
    if datagram.len() < HEADER_LEN {
        return Err("shorter than the header");
    }
    if datagram[..4] != MAGIC {
        return Err("bad magic");
    }
    if datagram.len() > HEADER_LEN + MTU {
        return Err("longer than the MTU");
    }
    match datagram[4] {
        TYPE_PROBE if datagram.len() == HEADER_LEN => Ok(Datagram::Probe),
        TYPE_PROBE => Err("probe with a payload"),
        TYPE_DATA => Ok(Datagram::Data(&datagram[HEADER_LEN..])),
        _ => Err("unknown type"),
    }
}

/// Writes a datagram of `kind` carrying `frame` into `out` (cleared first;
/// reused between sends to avoid an allocation per frame).
pub fn encode(out: &mut Vec<u8>, kind: u8, frame: &[u8]) {
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.push(kind);
    out.extend_from_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut buf = Vec::new();
        encode(&mut buf, TYPE_DATA, b"hi");
        assert_eq!(buf, b"MPU1\x01hi");
        assert_eq!(parse(&buf), Ok(Datagram::Data(b"hi")));
        encode(&mut buf, TYPE_PROBE, b"");
        assert_eq!(parse(&buf), Ok(Datagram::Probe));
        assert_eq!(parse(b"MPU1\x01"), Ok(Datagram::Data(b"")));
        assert_eq!(parse(b"MPU1"), Err("shorter than the header"));
        assert_eq!(parse(b"MPU2\x01x"), Err("bad magic"));
        assert_eq!(parse(b"MPU1\x00x"), Err("probe with a payload"));
        assert_eq!(parse(b"MPU1\x07"), Err("unknown type"));
        let mut big = b"MPU1\x01".to_vec();
        big.resize(HEADER_LEN + MTU, 0);
        assert!(parse(&big).is_ok());
        big.push(0);
        assert_eq!(parse(&big), Err("longer than the MTU"));
    }
}
