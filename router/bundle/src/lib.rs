//! Bundle wire format after BPv7 (RFC 9171): zero-copy views, Repr structs, endpoints, content ids.
//!
//! A bundle is a CBOR indefinite-length array of blocks: the primary block (version 7, flags,
//! CRC type, destination, source, report-to, creation timestamp, lifetime, CRC), then canonical
//! blocks (type, number, flags, CRC type, data, CRC), the payload block (type 1, number 1) last.
//!
//! - [`BundleView`] parses and checks an encoded bundle without copying it (the engine's hot
//!   path: every received bundle is parsed once).
//! - [`Bundle`] is the owned Repr; [`Bundle::emit`] and [`Bundle::parse`] are inverse on valid
//!   bundles; [`Builder`] makes bundles at this node.
//! - [`forward`] gives the bytes the next hop gets (hop count, age, previous node updated; the
//!   rest byte for byte).
//! - [`BundleId`] is the content id used for de-duplication: BLAKE3 of the primary block and the
//!   payload.
//! - [`Eid`] / [`EidRef`]: endpoint IDs.
//!
//! Refused, each with its own [`Error`]: fragments (meshpay does not fragment bundles), versions
//! other than 7, bad CRCs, a primary block without CRC (unless a BPSec BIB is present), unknown
//! CRC types, duplicate block numbers, duplicate previous-node/age/hop-count/class-of-service
//! blocks, a payload block that is not last or not numbered 1, unknown blocks flagged "delete
//! bundle if block can't be processed", trailing bytes, lengths past the input, non-minimal
//! integers and lengths, indefinite-length items other than the bundle array itself, a
//! definite-length bundle array, a hop count past its limit, creation time 0 without a bundle age
//! block, invalid endpoint IDs (and ID schemes other than dtn and ipn), `dtn:none` as
//! destination, and the flag combinations RFC 9171 §4.2.3/§4.2.4 forbid. See README.md.
//!
//! The parser never panics and never allocates according to a length read from the input; the
//! only allocation is the list of block headers, one entry per block actually present, at most
//! [`Limits::max_blocks`].

mod block;
mod bundle;
mod cbor;
pub mod crc;
mod eid;
mod error;
mod flags;
mod forward;
mod id;
mod primary;
pub mod priority;
mod view;

pub use block::{
    BLOCK_INTEGRITY_BLOCK, BUNDLE_AGE_BLOCK, BlockView, ExtensionBlock, HOP_COUNT_BLOCK, HopCount,
    PAYLOAD_BLOCK, PAYLOAD_BLOCK_NUMBER, PREVIOUS_NODE_BLOCK, is_known_type,
};
pub use bundle::{Builder, Bundle, DEFAULT_HOP_LIMIT, DEFAULT_LIFETIME_MS};
pub use crc::CrcType;
pub use eid::{Eid, EidError, EidRef, MAX_DEMUX_LEN, MAX_NODE_NAME_LEN, SCHEME_DTN, SCHEME_IPN};
pub use error::{Error, Problem};
pub use flags::{BlockFlags, BundleFlags};
pub use forward::forward;
pub use id::{BundleId, ParseBundleIdError};
pub use primary::{CreationTimestamp, DTN_EPOCH_UNIX_MS, VERSION};
pub use priority::{CLASS_OF_SERVICE_BLOCK, Priority};
pub use view::BundleView;

/// Bounds on what the parser accepts, checked before any work proportional to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded bundle accepted (default 1 MiB).
    pub max_bundle_bytes: usize,
    /// Most canonical blocks accepted, payload included (default 32).
    pub max_blocks: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { max_bundle_bytes: 1 << 20, max_blocks: 32 };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
