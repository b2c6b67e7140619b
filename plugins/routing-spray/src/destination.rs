//! Bundle destinations as routing sees them: one node, or a group.
//!
//! meshpay endpoints are `dtn://<node name>/<service>`. A node's own endpoint
//! is `dtn://<node name>/`, and a meshpay node's name is its Ed25519 public
//! key in hex, so a neighbour (known by its node endpoint) *is* a bundle's
//! destination when the two node names match. A node name that starts with
//! `~` names a group (`dtn://~authorities/quorum`): every member needs a
//! copy, and routing does not know who the members are.
//!
//! (The same small module lives in each of the three routing plugins; it
//! belongs in a shared endpoint type once `meshpay-bundle` has one.)

/// What a bundle's destination is, for forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination<'a> {
    /// A singleton endpoint on the node with this name.
    Node(&'a str),
    /// A group endpoint: membership is unknown to routing.
    Group,
    /// No node name to route on (`dtn:none`, another URI scheme).
    Unroutable,
}

impl<'a> Destination<'a> {
    /// Classifies a destination endpoint URI.
    pub fn of(endpoint: &'a str) -> Destination<'a> {
        match node_name(endpoint) {
            Some(name) if name.starts_with('~') => Destination::Group,
            Some(name) => Destination::Node(name),
            None => Destination::Unroutable,
        }
    }

    /// Whether the neighbour with node endpoint `peer_node` is this
    /// destination's node.
    pub fn is_node(&self, peer_node: &str) -> bool {
        match (self, node_name(peer_node)) {
            (Destination::Node(name), Some(peer)) => same_name(name, peer),
            _ => false,
        }
    }
}

/// The node name of a `dtn://` endpoint: what lies between `dtn://` and the
/// next `/`. `None` for other schemes and for an empty name.
pub fn node_name(endpoint: &str) -> Option<&str> {
    let rest = endpoint.strip_prefix("dtn://")?;
    let name = rest.split('/').next().unwrap_or("");
    (!name.is_empty()).then_some(name)
}

/// Node names compare exactly, except that a key in hex matches in either
/// case (`ABCD...` and `abcd...` are the same key).
fn same_name(a: &str, b: &str) -> bool {
    a == b || (a.len() == 64 && a.bytes().all(|c| c.is_ascii_hexdigit()) && a.eq_ignore_ascii_case(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn singletons_groups_and_the_rest() {
        let service = format!("dtn://{KEY}/wallet");
        assert_eq!(Destination::of(&service), Destination::Node(KEY));
        let bare = format!("dtn://{KEY}");
        assert_eq!(Destination::of(&bare), Destination::Node(KEY));
        assert_eq!(Destination::of("dtn://~authorities/quorum"), Destination::Group);
        for odd in ["dtn:none", "dtn://", "dtn:///x", "ipn:1.2", "", "DTN://x/"] {
            assert_eq!(Destination::of(odd), Destination::Unroutable, "{odd}");
        }
    }

    #[test]
    fn a_neighbour_is_the_destination_when_node_names_match() {
        let wallet = format!("dtn://{KEY}/wallet");
        let d = Destination::of(&wallet);
        assert!(d.is_node(&format!("dtn://{KEY}/")));
        assert!(d.is_node(&format!("dtn://{}/", KEY.to_uppercase())));
        assert!(!d.is_node(&format!("dtn://{}/", &KEY[..63])));
        assert!(!d.is_node("dtn://other/"));
        assert!(!Destination::Group.is_node("dtn://~authorities/"));
        assert!(!Destination::of("dtn://short/x").is_node("dtn://SHORT/"));
        assert!(Destination::of("dtn://short/x").is_node("dtn://short/"));
    }
}
