//! Canonical blocks (RFC 9171 §4.3.2) and the data of the extension blocks meshpay processes.
//!
//! ```text
//! [block type, block number, block processing control flags, CRC type,
//!  block-type-specific data (a definite-length byte string), (CRC)]
//! ```
//!
//! Known block types: payload (1), previous node (6, data: a node ID), bundle age (7, data: ms
//! as an unsigned integer), hop count (10, data: `[limit, count]`), and meshpay's
//! class-of-service block (200, see [`crate::priority`]). Every other type is an "extension
//! block" kept byte for byte.

use crate::cbor::{self, Reader};
use crate::crc::{self, CrcType};
use crate::eid::{self, EidRef};
use crate::error::{Error, Problem};
use crate::flags::BlockFlags;
use crate::primary::{Crcs, check_crc, crc_field_len, push_crc_placeholder, read_crc};

/// Block type of the payload block.
pub const PAYLOAD_BLOCK: u64 = 1;
/// Block type of the previous node block (RFC 9171 §4.4.1).
pub const PREVIOUS_NODE_BLOCK: u64 = 6;
/// Block type of the bundle age block (§4.4.2).
pub const BUNDLE_AGE_BLOCK: u64 = 7;
/// Block type of the hop count block (§4.4.3).
pub const HOP_COUNT_BLOCK: u64 = 10;
/// Block type of the BPSec Block Integrity Block (RFC 9172), which may stand in for the primary
/// block's CRC. meshpay does not verify it (it is an extension block here).
pub const BLOCK_INTEGRITY_BLOCK: u64 = 11;
/// The payload block's block number, always.
pub const PAYLOAD_BLOCK_NUMBER: u64 = 1;

/// Whether meshpay processes blocks of this type (and so represents them by their meaning, not
/// as extension blocks).
pub fn is_known_type(block_type: u64) -> bool {
    matches!(
        block_type,
        PAYLOAD_BLOCK
            | PREVIOUS_NODE_BLOCK
            | BUNDLE_AGE_BLOCK
            | HOP_COUNT_BLOCK
            | crate::CLASS_OF_SERVICE_BLOCK
    )
}

/// The hop count block's data: the bundle may be forwarded `limit` times; it has been `count`
/// times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopCount {
    /// 1..=255 (RFC 9171 §4.4.3).
    pub limit: u8,
    /// Never above `limit` in a bundle that parses.
    pub count: u8,
}

/// A canonical block borrowed from a bundle's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockView<'a> {
    pub block_type: u64,
    pub number: u64,
    pub flags: BlockFlags,
    pub crc_type: CrcType,
    /// Block-type-specific data (for the payload block, the payload).
    pub data: &'a [u8],
    /// The whole encoded block, CRC included.
    pub raw: &'a [u8],
    /// Offset of `data` in the bundle (for error positions).
    pub(crate) data_at: usize,
}

impl BlockView<'_> {
    pub fn to_extension(&self) -> ExtensionBlock {
        ExtensionBlock {
            block_type: self.block_type,
            number: self.number,
            flags: self.flags,
            crc_type: self.crc_type,
            data: self.data.to_vec(),
        }
    }
}

/// An extension block meshpay does not process, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionBlock {
    pub block_type: u64,
    /// Unique in the bundle; not 0 (primary) nor 1 (payload).
    pub number: u64,
    pub flags: BlockFlags,
    pub crc_type: CrcType,
    /// Block-type-specific data.
    pub data: Vec<u8>,
}

const F_BLOCK: &str = "canonical block";
const F_TYPE: &str = "canonical block: block type";
const F_NUMBER: &str = "canonical block: block number";
const F_FLAGS: &str = "canonical block: processing control flags";
const F_CRC_TYPE: &str = "canonical block: CRC type";
const F_DATA: &str = "canonical block: block-type-specific data";
const F_CRC: &str = "canonical block: CRC";

/// Parses one canonical block at the reader's position (whose base must be 0: the bundle's
/// start) and checks its CRC. Block data is not interpreted here.
pub(crate) fn parse<'a>(r: &mut Reader<'a>, crcs: Crcs) -> Result<BlockView<'a>, Error> {
    let start = r.pos();
    let len = r.array(&[5, 6], "5 or 6", F_BLOCK)?;
    let block_type = r.uint(F_TYPE)?;
    let number = r.uint(F_NUMBER)?;
    let flags = BlockFlags(r.uint(F_FLAGS)?);
    let crc_at = r.at();
    let code = r.uint(F_CRC_TYPE)?;
    let crc_type =
        CrcType::from_code(code).ok_or(Error::UnknownCrcType { at: crc_at, field: F_CRC_TYPE, code })?;
    let expected = if crc_type == CrcType::None { 5 } else { 6 };
    if len != expected {
        return Err(Error::Malformed {
            at: start,
            field: F_BLOCK,
            problem: Problem::WrongArrayLength {
                expected: if crc_type == CrcType::None { "5 (no CRC)" } else { "6 (with CRC)" },
                found: len,
            },
        });
    }
    let data = r.bytes(F_DATA)?;
    let data_at = r.at() - data.len();
    read_crc(r, crc_type, F_CRC)?;
    let raw = r.since(start);
    check_crc(crcs, crc_type, raw, number)?;
    Ok(BlockView { block_type, number, flags, crc_type, data, raw, data_at })
}

/// The length of a canonical block with `data_len` bytes of data.
pub(crate) fn encoded_len(
    block_type: u64,
    number: u64,
    flags: BlockFlags,
    crc: CrcType,
    data_len: usize,
) -> usize {
    1 + cbor::head_len(block_type)
        + cbor::head_len(number)
        + cbor::head_len(flags.bits())
        + 1
        + cbor::head_len(data_len as u64)
        + data_len
        + crc_field_len(crc)
}

/// Appends a block's header and data head; the caller then appends exactly `data_len` bytes of
/// data and calls [`end`] with the returned start.
pub(crate) fn begin(
    out: &mut Vec<u8>,
    block_type: u64,
    number: u64,
    flags: BlockFlags,
    crc: CrcType,
    data_len: usize,
) -> usize {
    let start = out.len();
    cbor::array(out, if crc == CrcType::None { 5 } else { 6 });
    cbor::uint(out, block_type);
    cbor::uint(out, number);
    cbor::uint(out, flags.bits());
    cbor::uint(out, crc.code());
    cbor::head(out, cbor::MAJOR_BYTES, data_len as u64);
    start
}

/// Appends the CRC of the block started at `start`.
pub(crate) fn end(out: &mut Vec<u8>, start: usize, crc: CrcType) {
    push_crc_placeholder(out, crc);
    crc::seal(crc, out, start);
}

/// Appends a whole block with the given data.
pub(crate) fn emit(
    out: &mut Vec<u8>,
    block_type: u64,
    number: u64,
    flags: BlockFlags,
    crc: CrcType,
    data: &[u8],
) {
    let start = begin(out, block_type, number, flags, crc, data.len());
    out.extend_from_slice(data);
    end(out, start, crc);
}

fn invalid(number: u64, block_type: u64, reason: &'static str) -> Error {
    Error::InvalidBlockData { number, block_type, reason }
}

// --- Hop count -------------------------------------------------------------------------------

const F_HOP: &str = "hop count block data";

pub(crate) fn decode_hop_count(b: &BlockView<'_>) -> Result<HopCount, Error> {
    let mut r = Reader::with_base(b.data, b.data_at);
    r.array(&[2], "2 ([limit, count])", F_HOP)?;
    let limit = r.uint(F_HOP)?;
    let count = r.uint(F_HOP)?;
    r.finish(F_HOP)?;
    let limit = u8::try_from(limit).ok().filter(|&l| l >= 1).ok_or(invalid(
        b.number,
        HOP_COUNT_BLOCK,
        "hop limit must be 1 to 255",
    ))?;
    if count > u64::from(limit) {
        return Err(Error::HopLimitExceeded { limit, count });
    }
    Ok(HopCount { limit, count: count as u8 })
}

pub(crate) fn hop_count_data_len(h: HopCount) -> usize {
    1 + cbor::head_len(h.limit.into()) + cbor::head_len(h.count.into())
}

pub(crate) fn encode_hop_count(out: &mut Vec<u8>, h: HopCount) {
    cbor::array(out, 2);
    cbor::uint(out, h.limit.into());
    cbor::uint(out, h.count.into());
}

// --- Bundle age ------------------------------------------------------------------------------

const F_AGE: &str = "bundle age block data";

pub(crate) fn decode_age(b: &BlockView<'_>) -> Result<u64, Error> {
    let mut r = Reader::with_base(b.data, b.data_at);
    let age = r.uint(F_AGE)?;
    r.finish(F_AGE)?;
    Ok(age)
}

// --- Previous node ---------------------------------------------------------------------------

const F_PREV: &str = "previous node block data";

pub(crate) fn decode_previous_node<'a>(b: &BlockView<'a>) -> Result<EidRef<'a>, Error> {
    let mut r = Reader::with_base(b.data, b.data_at);
    let eid = eid::decode(&mut r, F_PREV)?;
    r.finish(F_PREV)?;
    if eid == EidRef::None {
        return Err(Error::InvalidEid { field: F_PREV, error: eid::EidError::NullEndpoint });
    }
    Ok(eid)
}
