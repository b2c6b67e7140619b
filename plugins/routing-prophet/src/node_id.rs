//! Node identities as PRoPHET keeps them: the 32-byte Ed25519 key that
//! names a meshpay node (`dtn://<64 hex digits>/`).
//!
//! Keys rather than URI strings keep the table and the control messages
//! small (34 bytes an entry on the wire). A node whose name is not a key
//! has no predictability: PRoPHET never forwards towards it except when it
//! is itself in contact (the shared "destination always served" rule).

use core::fmt;

use crate::destination::node_name;

/// A node's Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// From a node name of 64 hex digits (either case).
    pub fn from_name(name: &str) -> Option<NodeId> {
        let bytes = name.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (out, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
            *out = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(NodeId(key))
    }

    /// From a `dtn://<hex key>/...` endpoint.
    pub fn from_endpoint(endpoint: &str) -> Option<NodeId> {
        NodeId::from_name(node_name(endpoint)?)
    }

    /// The node endpoint, `dtn://<hex key>/`, as the daemon spells it.
    pub fn endpoint(&self) -> String {
        format!("dtn://{self}/")
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for NodeId {
    /// All 64 hex digits, lower case.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for NodeId {
    /// The first 8 hex digits: enough to tell nodes apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0[..4].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        f.write_str("…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_round_trip_and_odd_names_are_refused() {
        let id = NodeId(core::array::from_fn(|i| i as u8 * 7));
        let e = id.endpoint();
        assert_eq!(NodeId::from_endpoint(&e), Some(id));
        assert_eq!(NodeId::from_endpoint(&format!("{e}wallet")), Some(id));
        assert_eq!(NodeId::from_endpoint(&e.to_uppercase().replace("DTN", "dtn")), Some(id));
        assert_eq!(format!("{id:?}"), "00070e15…");
        for bad in ["dtn://b/", "dtn://~authorities/quorum", "dtn:none", ""] {
            assert_eq!(NodeId::from_endpoint(bad), None, "{bad}");
        }
        let mut not_hex = id.to_string();
        not_hex.replace_range(10..11, "g");
        assert_eq!(NodeId::from_name(&not_hex), None);
        assert_eq!(NodeId::from_name(&id.to_string()[..62]), None);
        // 64 bytes, but a multi-byte character: no slicing panic.
        let accented = format!("é{}", &id.to_string()[2..]);
        assert_eq!(accented.len(), 64);
        assert_eq!(NodeId::from_name(&accented), None);
    }
}
