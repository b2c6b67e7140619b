//! Why a bundle was refused.
//!
//! Every error says where (a byte offset and the field being read, or the block number) and
//! what was wrong, so an operator reading a log line can tell a corrupt link from a hostile peer
//! from a bundle that is merely of a kind meshpay does not carry (fragments).

use core::fmt;

use crate::crc::CrcType;
use crate::eid::EidError;

/// A bundle that cannot be parsed, built, or forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input is longer than [`Limits::max_bundle_bytes`](crate::Limits::max_bundle_bytes).
    TooLarge { len: usize, max: usize },
    /// The bundle has more canonical blocks than [`Limits::max_blocks`](crate::Limits::max_blocks).
    TooManyBlocks { max: usize },
    /// The input ends inside `field`.
    Truncated { at: usize, field: &'static str },
    /// A string's length points past the end of the input (checked before anything is copied).
    LengthPastEnd { at: usize, field: &'static str, claimed: u64, available: usize },
    /// A CBOR item is malformed, or is not the item BPv7 puts here.
    Malformed { at: usize, field: &'static str, problem: Problem },
    /// The primary block's version is not 7.
    UnsupportedVersion { version: u64 },
    /// The bundle is a fragment: meshpay neither fragments nor reassembles bundles.
    Fragment,
    /// A CRC type code other than 0, 1 or 2 (RFC 9171 §4.2.1 allows no others).
    UnknownCrcType { at: usize, field: &'static str, code: u64 },
    /// A block's CRC does not match its contents. `block` is the block number (0: primary).
    CrcMismatch { block: u64, crc_type: CrcType, computed: u32, received: u32 },
    /// The primary block has no CRC and no Block Integrity Block protects it (RFC 9171 §4.3.1).
    MissingPrimaryCrc,
    /// An endpoint ID is invalid.
    InvalidEid { field: &'static str, error: EidError },
    /// The destination is `dtn:none`, which by definition has no members.
    NullDestination,
    /// Flags that RFC 9171 forbids together (§4.2.3, §4.2.4).
    FlagConflict { reason: &'static str },
    /// A canonical block numbered 0 (the primary block's number) or a non-payload block numbered
    /// 1 (the payload block's number).
    ReservedBlockNumber { number: u64, block_type: u64 },
    /// The payload block's number is not 1.
    PayloadBlockNumber { number: u64 },
    /// Two blocks share a block number.
    DuplicateBlockNumber { number: u64 },
    /// Two blocks of a type that may occur only once (payload, previous node, age, hop count,
    /// class of service).
    DuplicateBlockType { block_type: u64 },
    /// A block follows the payload block.
    PayloadNotLast { block_number: u64 },
    /// The bundle has no payload block.
    MissingPayload,
    /// An extension block meshpay cannot process, flagged "delete bundle if block can't be
    /// processed" (RFC 9171 §5.6 step 4).
    UnprocessableBlock { number: u64, block_type: u64 },
    /// The data of a block meshpay understands is invalid.
    InvalidBlockData { number: u64, block_type: u64, reason: &'static str },
    /// Bytes follow the bundle's closing break code.
    TrailingBytes { at: usize, count: usize },
    /// The hop count exceeds the hop limit (on receipt), or would after this hop (on forwarding).
    HopLimitExceeded { limit: u8, count: u64 },
    /// The creation time is 0 (the source has no clock) but there is no bundle age block
    /// (RFC 9171 §4.4.2).
    MissingAgeBlock,
    /// The bundle age does not fit in 64 bits of milliseconds after adding this hop's residence.
    AgeOverflow,
    /// Forwarding: the bundle age block says the bundle has outlived its lifetime (RFC 9171 §5.5).
    Expired { age_ms: u64, lifetime_ms: u64 },
}

/// What is wrong with a CBOR item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Another major type than the one BPv7 requires here.
    UnexpectedType { expected: &'static str, found: &'static str },
    /// An integer or length encoded in more bytes than needed (RFC 8949 §4.2.1).
    NonMinimal,
    /// An indefinite-length item where meshpay requires a definite one.
    Indefinite,
    /// Additional information 28..=30, reserved in RFC 8949.
    ReservedAdditionalInfo(u8),
    /// An array with another number of items than this structure has.
    WrongArrayLength { expected: &'static str, found: u64 },
    /// A definite-length outer array: RFC 9171 §4.1 requires an indefinite-length one.
    DefiniteBundleArray,
    /// A CRC byte string of the wrong length for the CRC type.
    WrongCrcLength { expected: usize, found: usize },
    /// Bytes left over inside a block's data after its value.
    TrailingData { count: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge { len, max } => {
                write!(f, "bundle of {len} bytes exceeds the limit of {max} bytes")
            }
            Error::TooManyBlocks { max } => write!(f, "bundle has more than {max} canonical blocks"),
            Error::Truncated { at, field } => write!(f, "input ends at byte {at} inside {field}"),
            Error::LengthPastEnd { at, field, claimed, available } => write!(
                f,
                "{field} at byte {at} claims {claimed} bytes but only {available} remain in the input"
            ),
            Error::Malformed { at, field, problem } => write!(f, "{field} at byte {at}: {problem}"),
            Error::UnsupportedVersion { version } => {
                write!(f, "primary block version is {version}, only version 7 is supported")
            }
            Error::Fragment => {
                f.write_str("bundle is a fragment: meshpay does not fragment bundles and refuses fragments")
            }
            Error::UnknownCrcType { at, field, code } => {
                write!(f, "{field} at byte {at}: unknown CRC type {code} (valid: 0, 1, 2)")
            }
            Error::CrcMismatch { block, crc_type, computed, received } => {
                let width = if *crc_type == CrcType::Crc16 { 4 } else { 8 };
                let name = if *block == 0 { "primary block".to_string() } else { format!("block {block}") };
                write!(
                    f,
                    "{name}: {crc_type} mismatch: received {received:0width$x}, computed {computed:0width$x}"
                )
            }
            Error::MissingPrimaryCrc => f.write_str(
                "primary block has CRC type 0 but no Block Integrity Block protects it (RFC 9171 4.3.1)",
            ),
            Error::InvalidEid { field, error } => write!(f, "{field}: {error}"),
            Error::NullDestination => f.write_str("destination is dtn:none, which has no members"),
            Error::FlagConflict { reason } => write!(f, "processing control flags: {reason}"),
            Error::ReservedBlockNumber { number, block_type } => write!(
                f,
                "block of type {block_type} has block number {number}, reserved for the {}",
                if *number == 0 { "primary block" } else { "payload block" }
            ),
            Error::PayloadBlockNumber { number } => {
                write!(f, "payload block has block number {number}, must be 1")
            }
            Error::DuplicateBlockNumber { number } => write!(f, "two blocks have block number {number}"),
            Error::DuplicateBlockType { block_type } => {
                write!(f, "more than one block of type {block_type}, which may occur only once")
            }
            Error::PayloadNotLast { block_number } => {
                write!(f, "block {block_number} follows the payload block, which must be last")
            }
            Error::MissingPayload => f.write_str("bundle has no payload block"),
            Error::UnprocessableBlock { number, block_type } => write!(
                f,
                "block {number} has unknown type {block_type} and is flagged \"delete bundle if block can't be processed\""
            ),
            Error::InvalidBlockData { number, block_type, reason } => {
                write!(f, "block {number} (type {block_type}): {reason}")
            }
            Error::TrailingBytes { at, count } => {
                write!(f, "{count} bytes follow the end of the bundle at byte {at}")
            }
            Error::HopLimitExceeded { limit, count } => {
                write!(f, "hop count {count} exceeds the hop limit {limit}")
            }
            Error::MissingAgeBlock => {
                f.write_str("creation time is 0 (source has no clock) but the bundle has no bundle age block")
            }
            Error::AgeOverflow => f.write_str("bundle age overflows 64 bits of milliseconds"),
            Error::Expired { age_ms, lifetime_ms } => {
                write!(f, "bundle age {age_ms} ms exceeds its lifetime of {lifetime_ms} ms")
            }
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::UnexpectedType { expected, found } => write!(f, "expected {expected}, found {found}"),
            Problem::NonMinimal => f.write_str("integer or length not in its shortest encoding"),
            Problem::Indefinite => f.write_str("indefinite-length item where a definite length is required"),
            Problem::ReservedAdditionalInfo(ai) => write!(f, "reserved CBOR additional information {ai}"),
            Problem::WrongArrayLength { expected, found } => {
                write!(f, "array of {found} items, expected {expected}")
            }
            Problem::DefiniteBundleArray => {
                f.write_str("bundle is a definite-length array, RFC 9171 requires an indefinite-length one")
            }
            Problem::WrongCrcLength { expected, found } => {
                write!(f, "CRC of {found} bytes, expected {expected}")
            }
            Problem::TrailingData { count } => write!(f, "{count} bytes left over after the value"),
        }
    }
}
