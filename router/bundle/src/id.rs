//! The bundle id: what de-duplication, the store and routing key bundles by.
//!
//! `BundleId = BLAKE3-256(encoded primary block ‖ payload data)`.
//!
//! - It does not change as the bundle hops: the primary block is immutable (RFC 9171 §4.3.1) and
//!   the payload is never rewritten, while everything that changes per hop (hop count, age,
//!   previous node) lives in other blocks.
//! - Two different bundles do not share it: the primary block carries source, destination,
//!   creation timestamp and lifetime, and the payload is hashed in full, so two bundles with the
//!   same id would need a BLAKE3 collision. The primary block's CBOR encoding determines its own
//!   length, so the concatenation is unambiguous.
//! - RFC 9171's own identity (source, creation timestamp) is not enough in meshpay: a node
//!   without a clock (creation time 0) or a careless one could reuse it, and a hostile node
//!   could send a different payload under someone else's identity to shadow the real bundle in
//!   everyone's de-duplication table. Hashing the payload closes both.

use core::fmt;
use core::str::FromStr;

/// A bundle's content id (32 bytes; displayed as 64 lowercase hex digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId(pub [u8; 32]);

impl BundleId {
    pub(crate) fn compute(primary_block: &[u8], payload: &[u8]) -> BundleId {
        let mut hasher = blake3::Hasher::new();
        hasher.update(primary_block);
        hasher.update(payload);
        BundleId(*hasher.finalize().as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for BundleId {
    fn from(bytes: [u8; 32]) -> Self {
        BundleId(bytes)
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BundleId({self})")
    }
}

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseBundleIdError;

impl fmt::Display for ParseBundleIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bundle id is 64 hexadecimal digits")
    }
}

impl std::error::Error for ParseBundleIdError {}

impl FromStr for BundleId {
    type Err = ParseBundleIdError;

    /// Accepts 64 hex digits in either case.
    fn from_str(s: &str) -> Result<BundleId, ParseBundleIdError> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return Err(ParseBundleIdError);
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8).ok_or(ParseBundleIdError);
        let mut id = [0u8; 32];
        for (b, pair) in id.iter_mut().zip(s.chunks_exact(2)) {
            *b = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(BundleId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BundleId::compute(b"primary", b"payload");
        let s = id.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(s.parse::<BundleId>(), Ok(id));
        assert_eq!(s.to_uppercase().parse::<BundleId>(), Ok(id));
        assert_eq!(s[1..].parse::<BundleId>(), Err(ParseBundleIdError));
        assert_eq!(format!("{}g", &s[1..]).parse::<BundleId>(), Err(ParseBundleIdError));
        assert_eq!(format!("+{}", &s[1..]).parse::<BundleId>(), Err(ParseBundleIdError));
        // The definition: plain BLAKE3 of the concatenation.
        assert_eq!(id.0, *blake3::hash(b"primarypayload").as_bytes());
    }
}
