//! Keys, hashes, hex and wallet addresses.
//!
//! Every Ed25519 public key that enters the ledger (committee members,
//! genesis accounts, senders, recipients, gateways) goes through
//! [`check_key`] first. The host's single `verify` refuses weak keys, but
//! the cofactored batch equation does not (a small-order key "verifies" a
//! forged signature there), and a recipient key is never verified at all: a
//! payment to a small-order key would be money nobody can ever spend.

use ed25519_dalek::VerifyingKey;

/// An Ed25519 public key: an account (wallet) or an authority (node).
pub type Key = [u8; 32];
/// An Ed25519 signature.
pub type Sig = [u8; 64];
/// A BLAKE3-256 digest.
pub type Hash = [u8; 32];

/// Why a key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not the canonical encoding of a point on the curve.
    NotAPoint,
    /// A small-order ("weak") point: signatures under it prove nothing.
    Weak,
}

impl core::fmt::Display for KeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            KeyError::NotAPoint => "not a valid Ed25519 public key",
            KeyError::Weak => "a weak (small-order) Ed25519 key",
        })
    }
}

/// The field prime p = 2^255 - 19, little-endian.
const P: Key = {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// Whether the y coordinate (the low 255 bits) is below p: decompression
/// would silently reduce a non-canonical one.
fn canonical_y(key: &Key) -> bool {
    let mut y = *key;
    y[31] &= 0x7f;
    // Little-endian comparison, most significant byte first.
    y.iter().rev().cmp(P.iter().rev()) == core::cmp::Ordering::Less
}

/// Accepts only canonical encodings of points that are not of small order.
/// (The two points with x = 0 also have an encoding with the sign bit set;
/// both are of small order, so they are refused as weak either way.)
pub fn check_key(key: &Key) -> Result<(), KeyError> {
    if !canonical_y(key) {
        return Err(KeyError::NotAPoint);
    }
    let k = VerifyingKey::from_bytes(key).map_err(|_| KeyError::NotAPoint)?;
    if k.is_weak() {
        return Err(KeyError::Weak);
    }
    Ok(())
}

/// A bounded set of keys that passed [`check_key`]: decompressing a point
/// costs about as much as a fifth of a signature check, and the same
/// accounts come back all the time. Forgets everything when full.
#[derive(Debug, Default)]
pub struct CheckedKeys {
    set: std::sync::Mutex<std::collections::HashSet<Key>>,
}

impl CheckedKeys {
    /// Most keys remembered (32 bytes each, plus the set's overhead).
    pub const CAPACITY: usize = 1 << 16;

    pub fn check(&self, key: &Key) -> Result<(), KeyError> {
        let known = |s: &std::collections::HashSet<Key>| s.contains(key);
        if self.set.lock().map(|s| known(&s)).unwrap_or(false) {
            return Ok(());
        }
        check_key(key)?;
        if let Ok(mut s) = self.set.lock() {
            if s.len() >= Self::CAPACITY {
                s.clear();
            }
            s.insert(*key);
        }
        Ok(())
    }
}

/// BLAKE3 over the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses hex (either case) of exactly `N` bytes; the error names `field`.
pub fn parse_hex<const N: usize>(field: &str, s: &str) -> Result<[u8; N], String> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return Err(format!("{field}: expected {} hex digits, got {}", 2 * N, b.len()));
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = digit(pair[0]).ok_or_else(|| format!("{field}: not hex"))?;
        let lo = digit(pair[1]).ok_or_else(|| format!("{field}: not hex"))?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

/// Parses hex of any even length up to `max` bytes.
pub fn parse_hex_vec(field: &str, s: &str, max: usize) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) || b.len() > 2 * max {
        return Err(format!("{field}: expected an even number of hex digits, at most {}", 2 * max));
    }
    b.chunks_exact(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!("{field}: not hex")),
        })
        .collect()
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses a public key given in hex and checks it ([`check_key`]).
pub fn parse_key(field: &str, s: &str) -> Result<Key, String> {
    let k = parse_hex::<32>(field, s)?;
    check_key(&k).map_err(|e| format!("{field}: {e}"))?;
    Ok(k)
}

/// A wallet address as the wallet prints it: `<account hex>@<home node hex>`.
/// The home node is where receipts for the account are delivered; it is a
/// delivery hint, not part of what the sender signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    pub account: Key,
    pub home: Option<Key>,
}

impl Address {
    /// Parses `<account>` or `<account>@<home>`; both keys are checked.
    pub fn parse(field: &str, s: &str) -> Result<Address, String> {
        match s.split_once('@') {
            Some((a, h)) => Ok(Address {
                account: parse_key(field, a)?,
                home: Some(parse_key(&format!("{field} (home node)"), h)?),
            }),
            None => Ok(Address { account: parse_key(field, s)?, home: None }),
        }
    }
}

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&hex(&self.account))?;
        if let Some(h) = &self.home {
            write!(f, "@{}", hex(h))?;
        }
        Ok(())
    }
}

/// The plugin's endpoint on node `key`: `dtn://<hex>/quorum`.
pub fn quorum_endpoint(key: &Key) -> String {
    format!("dtn://{}/quorum", hex(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_key(seed: u8) -> Key {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes()
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        assert_eq!(check_key(&real_key(1)), Ok(()));
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(check_key(&identity), Err(KeyError::Weak));
        // y = 0 has order 4.
        assert_eq!(check_key(&[0u8; 32]), Err(KeyError::Weak));
        // y = 2 is not on the curve.
        let mut off = [0u8; 32];
        off[0] = 2;
        assert_eq!(check_key(&off), Err(KeyError::NotAPoint));
        // Non-canonical encodings: y = p + 1 (the identity reduced), and
        // y = p + 9 (the canonical encoding of a valid point is y = 9... if
        // it is one; either way the non-canonical form is refused).
        let mut noncanon = [0xffu8; 32];
        noncanon[0] = 0xee;
        noncanon[31] = 0x7f;
        assert_eq!(check_key(&noncanon), Err(KeyError::NotAPoint));
        // A valid key with 2^255 - 19 added to y cannot be encoded in 255
        // bits unless y < 19: take such a point if there is one.
        for y in 0u8..19 {
            let mut canon = [0u8; 32];
            canon[0] = y;
            let mut alias = P;
            alias[0] = 0xed + y;
            if check_key(&canon).is_ok() {
                assert_eq!(check_key(&alias), Err(KeyError::NotAPoint), "y = {y}");
            }
        }
        let cache = CheckedKeys::default();
        assert_eq!(cache.check(&real_key(4)), Ok(()));
        assert_eq!(cache.check(&real_key(4)), Ok(()));
        assert_eq!(cache.check(&[0u8; 32]), Err(KeyError::Weak));
        assert_eq!(cache.check(&[0u8; 32]), Err(KeyError::Weak), "refusals are not cached");
    }

    #[test]
    fn hex_round_trips_and_addresses_parse() {
        let k = real_key(2);
        assert_eq!(parse_hex::<32>("k", &hex(&k)).unwrap(), k);
        assert_eq!(parse_hex::<32>("k", &hex(&k).to_uppercase()).unwrap(), k);
        assert!(parse_hex::<32>("k", "zz").unwrap_err().starts_with("k:"));
        assert_eq!(parse_hex_vec("d", "00ff", 4).unwrap(), vec![0, 255]);
        assert!(parse_hex_vec("d", "0", 4).is_err());
        let home = real_key(3);
        let a = Address::parse("recipient", &format!("{}@{}", hex(&k), hex(&home))).unwrap();
        assert_eq!(a, Address { account: k, home: Some(home) });
        assert_eq!(Address::parse("r", &a.to_string()).unwrap(), a);
        assert!(Address::parse("r", &format!("{}@", hex(&k))).is_err());
        assert!(Address::parse("r", &hex(&[0u8; 32])).unwrap_err().contains("weak"));
    }
}
