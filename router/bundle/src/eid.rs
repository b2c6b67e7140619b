//! Endpoint IDs (RFC 9171 §4.2.5.1): `dtn:none`, `dtn://node/demux` and `ipn:node.service`.
//!
//! On the wire an EID is a CBOR array `[scheme, ssp]`: `[1, 0]` for `dtn:none`, `[1,
//! "//node/demux"]` for the dtn scheme, `[2, [node, service]]` for the ipn scheme.
//!
//! meshpay names its nodes by their Ed25519 public key: a node is `dtn://<64 lowercase hex>/`
//! and its services live under it (`dtn://<hex>/quorum`). Groups of nodes (such as the
//! committee's authorities) are non-singleton endpoints.
//!
//! Validation follows the RFC's grammar strictly: a node name is an RFC 3986 `reg-name`
//! (unreserved characters, sub-delims and percent-encodings), non-empty; a demux is visible
//! ASCII (`*VCHAR`). Both are capped at 255 bytes: meshpay's names are short, and a cap keeps a
//! hostile bundle from parking kilobytes of "address" in every store it reaches.

use core::fmt;
use core::str::FromStr;

use crate::cbor::{self, Reader};
use crate::error::{Error, Problem};

/// URI scheme code of the dtn scheme (RFC 9171 §9.6).
pub const SCHEME_DTN: u64 = 1;
/// URI scheme code of the ipn scheme.
pub const SCHEME_IPN: u64 = 2;
/// Longest node name accepted, in bytes.
pub const MAX_NODE_NAME_LEN: usize = 255;
/// Longest demux accepted, in bytes.
pub const MAX_DEMUX_LEN: usize = 255;

/// An endpoint ID (owned).
///
/// Build one with [`Eid::dtn`], [`Eid::ipn`], [`Eid::for_node_key`] or `str::parse`, which
/// validate; a value built directly from the variants is checked by [`Eid::validate`] (the
/// bundle [`Builder`](crate::Builder) does so).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Eid {
    /// `dtn:none`, the null endpoint: no members; used as an anonymous source or an absent
    /// report-to.
    None,
    /// `dtn://node/demux`. An empty demux names the node itself (its administrative endpoint).
    Dtn { node: String, demux: String },
    /// `ipn:node.service`. Service 0 names the node itself.
    Ipn { node: u64, service: u64 },
}

/// An endpoint ID borrowed from a bundle's bytes (see [`BundleView`](crate::BundleView)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EidRef<'a> {
    None,
    Dtn { node: &'a str, demux: &'a str },
    Ipn { node: u64, service: u64 },
}

/// Why an endpoint ID is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EidError {
    /// Neither `dtn:` nor `ipn:`.
    UnknownScheme,
    /// A scheme code other than 1 (dtn) and 2 (ipn) on the wire.
    UnsupportedSchemeCode(u64),
    /// A dtn scheme-specific part that is neither `none` nor starts with `//`.
    MissingSlashes,
    /// `dtn:///...`.
    EmptyNodeName,
    /// `dtn://node` without the `/` that separates the node name from the demux.
    MissingNameDelimiter,
    NodeNameTooLong {
        len: usize,
    },
    DemuxTooLong {
        len: usize,
    },
    /// A byte not allowed in a node name (RFC 3986 reg-name).
    InvalidNodeNameChar {
        byte: u8,
        index: usize,
    },
    /// A `%` not followed by two hex digits.
    InvalidPercentEncoding {
        index: usize,
    },
    /// A byte not allowed in a demux (visible ASCII only).
    InvalidDemuxChar {
        byte: u8,
        index: usize,
    },
    /// An ipn number that is not decimal digits without leading zeros, or exceeds 2^64-1.
    InvalidIpnNumber,
    /// `ipn:0.n` with n ≠ 0: node number 0 only occurs in the null endpoint `ipn:0.0`.
    IpnNodeZero,
    /// `[1, n]` with n ≠ 0: the dtn scheme's only integer SSP is 0 (`dtn:none`).
    DtnNoneNotZero(u64),
    /// `dtn:none` where a node is required (a previous node).
    NullEndpoint,
}

impl fmt::Display for EidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EidError::UnknownScheme => f.write_str("unknown scheme (expected dtn: or ipn:)"),
            EidError::UnsupportedSchemeCode(code) => {
                write!(f, "unsupported URI scheme code {code} (expected 1 for dtn, 2 for ipn)")
            }
            EidError::MissingSlashes => f.write_str("dtn endpoint must be dtn:none or start with dtn://"),
            EidError::EmptyNodeName => f.write_str("empty node name"),
            EidError::MissingNameDelimiter => {
                f.write_str("missing '/' after the node name (a node itself is dtn://node/)")
            }
            EidError::NodeNameTooLong { len } => {
                write!(f, "node name of {len} bytes, longer than {MAX_NODE_NAME_LEN}")
            }
            EidError::DemuxTooLong { len } => write!(f, "demux of {len} bytes, longer than {MAX_DEMUX_LEN}"),
            EidError::InvalidNodeNameChar { byte, index } => {
                write!(f, "byte 0x{byte:02x} at {index} is not allowed in a node name")
            }
            EidError::InvalidPercentEncoding { index } => {
                write!(f, "'%' at {index} in the node name is not followed by two hex digits")
            }
            EidError::InvalidDemuxChar { byte, index } => {
                write!(f, "byte 0x{byte:02x} at {index} is not allowed in a demux (visible ASCII only)")
            }
            EidError::InvalidIpnNumber => f.write_str(
                "ipn numbers must be decimal digits without leading zeros and at most 18446744073709551615",
            ),
            EidError::IpnNodeZero => f.write_str("ipn node number 0 is only valid in ipn:0.0"),
            EidError::DtnNoneNotZero(n) => {
                write!(f, "dtn scheme-specific part is the integer {n}, only 0 (dtn:none) is valid")
            }
            EidError::NullEndpoint => f.write_str("dtn:none is not a node"),
        }
    }
}

impl std::error::Error for EidError {}

const fn is_sub_delim(b: u8) -> bool {
    matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes a node name may hold as they are (unreserved and sub-delims), by
/// value: one lookup per byte, for every EID of every bundle parsed.
const NODE_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

fn check_node_name(node: &[u8]) -> Result<(), EidError> {
    if node.is_empty() {
        return Err(EidError::EmptyNodeName);
    }
    if node.len() > MAX_NODE_NAME_LEN {
        return Err(EidError::NodeNameTooLong { len: node.len() });
    }
    // The common case: no percent-encoding, every byte allowed as it is.
    if node.iter().all(|&b| NODE_NAME_BYTE[usize::from(b)]) {
        return Ok(());
    }
    let mut i = 0;
    while i < node.len() {
        let b = node[i];
        if b == b'%' {
            match node.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return Err(EidError::InvalidPercentEncoding { index: i }),
            }
        } else if NODE_NAME_BYTE[usize::from(b)] {
            i += 1;
        } else {
            return Err(EidError::InvalidNodeNameChar { byte: b, index: i });
        }
    }
    Ok(())
}

fn check_demux(demux: &[u8]) -> Result<(), EidError> {
    if demux.len() > MAX_DEMUX_LEN {
        return Err(EidError::DemuxTooLong { len: demux.len() });
    }
    match demux.iter().position(|&b| !(0x21..=0x7e).contains(&b)) {
        Some(index) => Err(EidError::InvalidDemuxChar { byte: demux[index], index }),
        None => Ok(()),
    }
}

fn check_ipn(node: u64, service: u64) -> Result<(), EidError> {
    if node == 0 && service != 0 { Err(EidError::IpnNodeZero) } else { Ok(()) }
}

/// Whether every byte is one a node name may hold as it is, without an early
/// exit: a branch-free pass (the common case, a 64-digit meshpay node name,
/// took a mispredicted branch per byte otherwise).
fn plain_node_name(node: &[u8]) -> bool {
    node.iter().fold(true, |ok, &b| ok & NODE_NAME_BYTE[usize::from(b)])
}

/// Whether every byte is a visible ASCII character, branch-free.
fn plain_demux(demux: &[u8]) -> bool {
    demux.iter().fold(true, |ok, &b| ok & (0x21..=0x7e).contains(&b))
}

/// Splits a dtn SSP `//node/demux` into validated node name and demux.
///
/// Runs for every endpoint of every bundle parsed (three or four per
/// bundle, at every hop), so the common case (valid UTF-8, a plain node
/// name and demux) takes a fast path: `str::find` for the delimiter and
/// branch-free checks. Anything else goes the careful way, which names the
/// problem.
fn split_dtn_ssp(ssp: &[u8]) -> Result<(&str, &str), EidError> {
    if let Some(rest) = ssp.strip_prefix(b"//")
        && let Ok(text) = core::str::from_utf8(rest)
        && let Some(slash) = text.find('/')
    {
        let (node, demux) = (&text[..slash], &text[slash + 1..]);
        if !node.is_empty()
            && node.len() <= MAX_NODE_NAME_LEN
            && demux.len() <= MAX_DEMUX_LEN
            && plain_node_name(node.as_bytes())
            && plain_demux(demux.as_bytes())
        {
            return Ok((node, demux));
        }
    }
    split_dtn_ssp_checked(ssp)
}

/// [`split_dtn_ssp`] byte by byte, reporting the first problem found.
fn split_dtn_ssp_checked(ssp: &[u8]) -> Result<(&str, &str), EidError> {
    let rest = ssp.strip_prefix(b"//").ok_or(EidError::MissingSlashes)?;
    let slash = rest.iter().position(|&b| b == b'/').ok_or_else(|| {
        // Report the more telling problem of a name without delimiter.
        check_node_name(rest).err().unwrap_or(EidError::MissingNameDelimiter)
    })?;
    let (node, demux) = (&rest[..slash], &rest[slash + 1..]);
    check_node_name(node)?;
    check_demux(demux)?;
    // Both are ASCII now, so these conversions cannot fail.
    let node =
        core::str::from_utf8(node).map_err(|_| EidError::InvalidNodeNameChar { byte: 0x80, index: 0 })?;
    let demux =
        core::str::from_utf8(demux).map_err(|_| EidError::InvalidDemuxChar { byte: 0x80, index: 0 })?;
    Ok((node, demux))
}

/// Parses an ipn number: `1*DIGIT`, no leading zeros (so that text and value correspond one to
/// one), within u64.
fn parse_ipn_number(s: &str) -> Result<u64, EidError> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(EidError::InvalidIpnNumber);
    }
    s.parse().map_err(|_| EidError::InvalidIpnNumber)
}

fn hex_key(node: &str) -> Option<[u8; 32]> {
    let bytes = node.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut key = [0u8; 32];
    for (k, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
        *k = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(key)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

impl Eid {
    /// `dtn://node/demux`, validated.
    pub fn dtn(node: &str, demux: &str) -> Result<Eid, EidError> {
        check_node_name(node.as_bytes())?;
        check_demux(demux.as_bytes())?;
        Ok(Eid::Dtn { node: node.to_owned(), demux: demux.to_owned() })
    }

    /// `ipn:node.service`, validated.
    pub fn ipn(node: u64, service: u64) -> Result<Eid, EidError> {
        check_ipn(node, service)?;
        Ok(Eid::Ipn { node, service })
    }

    /// The node ID of the meshpay node with this Ed25519 public key: `dtn://<64 hex>/`.
    pub fn for_node_key(key: &[u8; 32]) -> Eid {
        Eid::Dtn { node: to_hex(key), demux: String::new() }
    }

    /// The same node with another demux (dtn) — `dtn://<node>/<demux>`. For ipn endpoints and
    /// `dtn:none` there is no textual demux: `UnknownScheme`.
    pub fn with_demux(&self, demux: &str) -> Result<Eid, EidError> {
        match self {
            Eid::Dtn { node, .. } => Eid::dtn(node, demux),
            Eid::None | Eid::Ipn { .. } => Err(EidError::UnknownScheme),
        }
    }

    /// A borrowed view of this EID.
    pub fn view(&self) -> EidRef<'_> {
        match self {
            Eid::None => EidRef::None,
            Eid::Dtn { node, demux } => EidRef::Dtn { node, demux },
            Eid::Ipn { node, service } => EidRef::Ipn { node: *node, service: *service },
        }
    }

    /// Checks the grammar and the length caps.
    pub fn validate(&self) -> Result<(), EidError> {
        self.view().validate()
    }

    /// Whether the endpoint always has exactly one member.
    ///
    /// False for `dtn:none` and `ipn:0.0` (no members), for dtn EIDs whose demux starts with `~`
    /// (RFC 9171 §4.2.5.1.1), and — a meshpay convention — for dtn EIDs whose node name starts
    /// with `~`: group endpoints such as `dtn://~authorities/quorum`.
    pub fn is_singleton(&self) -> bool {
        self.view().is_singleton()
    }

    /// Whether this EID names a node itself (`dtn://node/`, `ipn:n.0`).
    pub fn is_node_id(&self) -> bool {
        self.view().is_node_id()
    }

    /// The node part: `dtn://node/` or `ipn:n.0` — a node's id on the mesh. `dtn:none` for
    /// `dtn:none` (which names no node: check [`is_singleton`](Self::is_singleton) first).
    pub fn node_endpoint(&self) -> Eid {
        self.view().node_endpoint()
    }

    /// The Ed25519 public key of a meshpay node, when the dtn node name is 64 lowercase hex digits.
    pub fn node_key(&self) -> Option<[u8; 32]> {
        self.view().node_key()
    }
}

impl<'a> EidRef<'a> {
    /// Parses EID text (`dtn://node/demux`, `dtn:none`, `ipn:n.s`), validated as
    /// [`Eid::from_str`](std::str::FromStr) does, borrowing the names from `s`: no allocation,
    /// for the per-bundle paths that only look at an endpoint kept as text.
    pub fn parse(s: &'a str) -> Result<EidRef<'a>, EidError> {
        if let Some(ssp) = s.strip_prefix("dtn:") {
            if ssp == "none" {
                return Ok(EidRef::None);
            }
            let (node, demux) = split_dtn_ssp(ssp.as_bytes())?;
            Ok(EidRef::Dtn { node, demux })
        } else if let Some(ssp) = s.strip_prefix("ipn:") {
            let (node, service) = ssp.split_once('.').ok_or(EidError::InvalidIpnNumber)?;
            let (node, service) = (parse_ipn_number(node)?, parse_ipn_number(service)?);
            check_ipn(node, service)?;
            Ok(EidRef::Ipn { node, service })
        } else {
            Err(EidError::UnknownScheme)
        }
    }

    /// The EID as text, like `to_string()` but allocated once at its final size (`Display`
    /// through `to_string` grows the string a piece at a time; this runs for every bundle
    /// received).
    pub fn to_text(self) -> String {
        match self {
            EidRef::Dtn { node, demux } => {
                let mut s = String::with_capacity(7 + node.len() + demux.len());
                s.push_str("dtn://");
                s.push_str(node);
                s.push('/');
                s.push_str(demux);
                s
            }
            other => other.to_string(),
        }
    }

    pub fn to_eid(self) -> Eid {
        match self {
            EidRef::None => Eid::None,
            EidRef::Dtn { node, demux } => Eid::Dtn { node: node.to_owned(), demux: demux.to_owned() },
            EidRef::Ipn { node, service } => Eid::Ipn { node, service },
        }
    }

    /// See [`Eid::validate`].
    pub fn validate(self) -> Result<(), EidError> {
        match self {
            EidRef::None => Ok(()),
            EidRef::Dtn { node, demux } => {
                check_node_name(node.as_bytes())?;
                check_demux(demux.as_bytes())
            }
            EidRef::Ipn { node, service } => check_ipn(node, service),
        }
    }

    /// See [`Eid::is_singleton`].
    pub fn is_singleton(self) -> bool {
        match self {
            EidRef::None => false,
            EidRef::Dtn { node, demux } => !node.starts_with('~') && !demux.starts_with('~'),
            EidRef::Ipn { node, service } => !(node == 0 && service == 0),
        }
    }

    /// See [`Eid::is_node_id`].
    pub fn is_node_id(self) -> bool {
        match self {
            EidRef::None => false,
            EidRef::Dtn { demux, .. } => demux.is_empty(),
            EidRef::Ipn { node, service } => node != 0 && service == 0,
        }
    }

    /// See [`Eid::node_endpoint`].
    pub fn node_endpoint(self) -> Eid {
        match self {
            EidRef::None => Eid::None,
            EidRef::Dtn { node, .. } => Eid::Dtn { node: node.to_owned(), demux: String::new() },
            EidRef::Ipn { node, .. } => Eid::Ipn { node, service: 0 },
        }
    }

    /// Whether both name the same node (`dtn://a/x` and `dtn://a/y` do).
    pub fn same_node(self, other: EidRef<'_>) -> bool {
        match (self, other) {
            (EidRef::Dtn { node: a, .. }, EidRef::Dtn { node: b, .. }) => a == b,
            (EidRef::Ipn { node: a, .. }, EidRef::Ipn { node: b, .. }) => a == b,
            _ => false,
        }
    }

    /// See [`Eid::node_key`].
    pub fn node_key(self) -> Option<[u8; 32]> {
        match self {
            EidRef::Dtn { node, .. } => hex_key(node),
            _ => None,
        }
    }
}

impl PartialEq<EidRef<'_>> for Eid {
    fn eq(&self, other: &EidRef<'_>) -> bool {
        self.view() == *other
    }
}

impl PartialEq<Eid> for EidRef<'_> {
    fn eq(&self, other: &Eid) -> bool {
        *self == other.view()
    }
}

impl fmt::Display for EidRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EidRef::None => f.write_str("dtn:none"),
            EidRef::Dtn { node, demux } => write!(f, "dtn://{node}/{demux}"),
            EidRef::Ipn { node, service } => write!(f, "ipn:{node}.{service}"),
        }
    }
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.view().fmt(f)
    }
}

impl FromStr for Eid {
    type Err = EidError;

    fn from_str(s: &str) -> Result<Eid, EidError> {
        EidRef::parse(s).map(EidRef::to_eid)
    }
}

/// Decodes `[scheme, ssp]`, borrowing dtn names from the input.
pub(crate) fn decode<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<EidRef<'a>, Error> {
    let invalid = |error| Error::InvalidEid { field, error };
    r.array(&[2], "2 ([scheme, ssp])", field)?;
    match r.uint(field)? {
        SCHEME_DTN => match r.peek().map(|b| b >> 5) {
            Some(cbor::MAJOR_UINT) => match r.uint(field)? {
                0 => Ok(EidRef::None),
                n => Err(invalid(EidError::DtnNoneNotZero(n))),
            },
            Some(cbor::MAJOR_TEXT) => {
                let ssp = r.text(field)?;
                let (node, demux) = split_dtn_ssp(ssp).map_err(invalid)?;
                Ok(EidRef::Dtn { node, demux })
            }
            Some(major) => Err(Error::Malformed {
                at: r.at(),
                field,
                problem: Problem::UnexpectedType {
                    expected: "text string or 0",
                    found: cbor::major_name(major),
                },
            }),
            None => Err(Error::Truncated { at: r.at(), field }),
        },
        SCHEME_IPN => {
            r.array(&[2], "2 ([node, service])", field)?;
            let node = r.uint(field)?;
            let service = r.uint(field)?;
            check_ipn(node, service).map_err(invalid)?;
            Ok(EidRef::Ipn { node, service })
        }
        code => Err(invalid(EidError::UnsupportedSchemeCode(code))),
    }
}

pub(crate) fn encode(out: &mut Vec<u8>, eid: EidRef<'_>) {
    cbor::array(out, 2);
    match eid {
        EidRef::None => {
            cbor::uint(out, SCHEME_DTN);
            cbor::uint(out, 0);
        }
        EidRef::Dtn { node, demux } => {
            cbor::uint(out, SCHEME_DTN);
            cbor::head(out, cbor::MAJOR_TEXT, (3 + node.len() + demux.len()) as u64);
            out.extend_from_slice(b"//");
            out.extend_from_slice(node.as_bytes());
            out.push(b'/');
            out.extend_from_slice(demux.as_bytes());
        }
        EidRef::Ipn { node, service } => {
            cbor::uint(out, SCHEME_IPN);
            cbor::array(out, 2);
            cbor::uint(out, node);
            cbor::uint(out, service);
        }
    }
}

pub(crate) fn encoded_len(eid: EidRef<'_>) -> usize {
    2 + match eid {
        EidRef::None => 1,
        EidRef::Dtn { node, demux } => {
            let len = 3 + node.len() + demux.len();
            cbor::head_len(len as u64) + len
        }
        EidRef::Ipn { node, service } => 1 + cbor::head_len(node) + cbor::head_len(service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Eid, EidError> {
        s.parse()
    }

    #[test]
    fn text_forms_round_trip() {
        for s in [
            "dtn:none",
            "dtn://node/",
            "dtn://node/demux",
            "dtn://node/a/b/c~",
            "dtn://~authorities/quorum",
            "dtn://n%41me.x_y-z!$&'()*+,;=/~group",
            "ipn:0.0",
            "ipn:1.2",
            "ipn:18446744073709551615.18446744073709551615",
        ] {
            let eid = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(eid.to_string(), s);
            // The borrowed parse and the one-allocation text form agree with both.
            assert_eq!(EidRef::parse(s).unwrap(), eid.view(), "{s}");
            assert_eq!(EidRef::parse(s).unwrap().to_text(), s);
            let mut wire = Vec::new();
            encode(&mut wire, eid.view());
            assert_eq!(wire.len(), encoded_len(eid.view()), "{s}");
            let mut r = Reader::new(&wire);
            assert_eq!(decode(&mut r, "eid").unwrap(), eid, "{s}");
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn invalid_text_forms_are_refused_with_the_reason() {
        for (s, err) in [
            ("", EidError::UnknownScheme),
            ("DTN://a/", EidError::UnknownScheme),
            ("dtn:a/b", EidError::MissingSlashes),
            ("dtn://", EidError::EmptyNodeName),
            ("dtn:///x", EidError::EmptyNodeName),
            ("dtn://node", EidError::MissingNameDelimiter),
            ("dtn://no de/", EidError::InvalidNodeNameChar { byte: b' ', index: 2 }),
            ("dtn://a@b/", EidError::InvalidNodeNameChar { byte: b'@', index: 1 }),
            ("dtn://a:1/", EidError::InvalidNodeNameChar { byte: b':', index: 1 }),
            ("dtn://a%4/", EidError::InvalidPercentEncoding { index: 1 }),
            ("dtn://a/b c", EidError::InvalidDemuxChar { byte: b' ', index: 1 }),
            ("dtn://a/b\n", EidError::InvalidDemuxChar { byte: b'\n', index: 1 }),
            ("dtn://a/\u{e9}", EidError::InvalidDemuxChar { byte: 0xc3, index: 0 }),
            ("dtn://a/\x7f", EidError::InvalidDemuxChar { byte: 0x7f, index: 0 }),
            ("ipn:1", EidError::InvalidIpnNumber),
            ("ipn:1.", EidError::InvalidIpnNumber),
            ("ipn:01.2", EidError::InvalidIpnNumber),
            ("ipn:+1.2", EidError::InvalidIpnNumber),
            ("ipn:1.2.3", EidError::InvalidIpnNumber),
            ("ipn:18446744073709551616.1", EidError::InvalidIpnNumber),
            ("ipn:0.7", EidError::IpnNodeZero),
        ] {
            assert_eq!(parse(s), Err(err), "{s:?}");
        }
        let long = format!("dtn://{}/", "a".repeat(MAX_NODE_NAME_LEN + 1));
        assert_eq!(parse(&long), Err(EidError::NodeNameTooLong { len: MAX_NODE_NAME_LEN + 1 }));
        let long = format!("dtn://a/{}", "d".repeat(MAX_DEMUX_LEN + 1));
        assert_eq!(parse(&long), Err(EidError::DemuxTooLong { len: MAX_DEMUX_LEN + 1 }));
        assert!(parse(&format!("dtn://{}/{}", "a".repeat(255), "d".repeat(255))).is_ok());
    }

    #[test]
    fn singleton_node_and_key_queries() {
        let key = [0xabu8; 32];
        let node = Eid::for_node_key(&key);
        assert_eq!(node.to_string(), format!("dtn://{}/", "ab".repeat(32)));
        assert_eq!(node.node_key(), Some(key));
        let quorum = node.with_demux("quorum").unwrap();
        assert_eq!(quorum.node_key(), Some(key));
        assert_eq!(quorum.node_endpoint(), node);
        assert!(node.is_node_id() && !quorum.is_node_id());
        assert!(quorum.is_singleton());
        assert!(quorum.view().same_node(node.view()));

        // Uppercase hex or a wrong length is not a meshpay node key.
        assert_eq!(parse(&format!("dtn://{}/", "AB".repeat(32))).unwrap().node_key(), None);
        assert_eq!(parse(&format!("dtn://{}/", "ab".repeat(31))).unwrap().node_key(), None);
        assert_eq!(parse("ipn:1.0").unwrap().node_key(), None);

        assert!(!parse("dtn://~authorities/quorum").unwrap().is_singleton());
        assert!(!parse("dtn://node/~group").unwrap().is_singleton());
        assert!(parse("dtn://node/x~").unwrap().is_singleton());
        assert!(!Eid::None.is_singleton());
        assert!(!parse("ipn:0.0").unwrap().is_singleton());
        assert!(parse("ipn:5.1").unwrap().is_singleton());
        assert_eq!(parse("ipn:5.1").unwrap().node_endpoint(), Eid::Ipn { node: 5, service: 0 });
        assert_eq!(Eid::None.node_endpoint(), Eid::None);
    }

    #[test]
    fn wire_forms_are_checked() {
        let cases: [(&[u8], &str); 6] = [
            (&[0x82, 0x01, 0x01], "dtn scheme-specific part is the integer 1, only 0 (dtn:none) is valid"),
            (&[0x82, 0x03, 0x00], "unsupported URI scheme code 3"),
            (&[0x83, 0x01, 0x00, 0x00], "array of 3 items"),
            (&[0x82, 0x01, 0x62, b'/', b'/'], "empty node name"),
            (&[0x82, 0x02, 0x83, 0x00, 0x01, 0x02], "array of 3 items"),
            (&[0x82, 0x01, 0x41, 0x00], "expected text string or 0, found byte string"),
        ];
        for (bytes, msg) in cases {
            let err = decode(&mut Reader::new(bytes), "destination").unwrap_err();
            assert!(err.to_string().contains(msg), "{bytes:02x?}: {err}");
        }
    }
}
