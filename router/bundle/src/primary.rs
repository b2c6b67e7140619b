//! The primary block (RFC 9171 §4.3.1):
//!
//! ```text
//! [version 7, processing control flags, CRC type, destination, source, report-to,
//!  [creation DTN time ms, sequence], lifetime ms, (fragment offset, total ADU length,) (CRC)]
//! ```
//!
//! The primary block is immutable from creation to delivery, and its bytes are half of the
//! bundle id. Parsing here is strict enough that the encoding is canonical: re-encoding the
//! parsed fields gives back exactly the bytes that were read (minimal integers, definite
//! lengths, the CRC determined by the rest), so a [`Bundle`](crate::Bundle) Repr and a
//! [`BundleView`](crate::BundleView) of the same bundle have the same id.

use crate::cbor::{self, Reader};
use crate::crc::{self, CrcType};
use crate::eid::{self, EidRef};
use crate::error::{Error, Problem};
use crate::flags::BundleFlags;

/// The BPv7 version number.
pub const VERSION: u64 = 7;

/// Milliseconds from the Unix epoch to the DTN epoch (2000-01-01T00:00:00Z).
pub const DTN_EPOCH_UNIX_MS: u64 = 946_684_800_000;

/// When and in which order the source created the bundle (RFC 9171 §4.2.7).
///
/// `dtn_time_ms` counts milliseconds since 2000-01-01T00:00:00Z; 0 means the source has no
/// clock, in which case the bundle carries a bundle age block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CreationTimestamp {
    pub dtn_time_ms: u64,
    pub sequence: u64,
}

impl CreationTimestamp {
    /// DTN time for a Unix time in milliseconds (0 before the DTN epoch). The caller reads the
    /// clock: this crate never does.
    pub fn dtn_time_from_unix_ms(unix_ms: u64) -> u64 {
        unix_ms.saturating_sub(DTN_EPOCH_UNIX_MS)
    }
}

/// The primary block's fields, borrowing endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PrimaryFields<'a> {
    pub flags: BundleFlags,
    pub crc_type: CrcType,
    pub destination: EidRef<'a>,
    pub source: EidRef<'a>,
    pub report_to: EidRef<'a>,
    pub creation: CreationTimestamp,
    pub lifetime_ms: u64,
}

const F_ARRAY: &str = "primary block";
const F_VERSION: &str = "primary block: version";
const F_FLAGS: &str = "primary block: processing control flags";
const F_CRC_TYPE: &str = "primary block: CRC type";
const F_DESTINATION: &str = "primary block: destination";
const F_SOURCE: &str = "primary block: source";
const F_REPORT_TO: &str = "primary block: report-to";
const F_CREATION: &str = "primary block: creation timestamp";
const F_LIFETIME: &str = "primary block: lifetime";
const F_CRC: &str = "primary block: CRC";

/// Reads a CRC value of the length `crc` requires.
pub(crate) fn read_crc(r: &mut Reader<'_>, crc: CrcType, field: &'static str) -> Result<(), Error> {
    if crc == CrcType::None {
        return Ok(());
    }
    let at = r.at();
    let value = r.bytes(field)?;
    if value.len() != crc.value_len() {
        return Err(Error::Malformed {
            at,
            field,
            problem: Problem::WrongCrcLength { expected: crc.value_len(), found: value.len() },
        });
    }
    Ok(())
}

/// Whether a parse recomputes the blocks' CRCs (see `BundleView::parse_trusted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crcs {
    Check,
    Trust,
}

/// Checks a block's CRC (unless `crcs` trusts it); `block` is its whole encoding.
pub(crate) fn check_crc(crcs: Crcs, crc: CrcType, block: &[u8], number: u64) -> Result<(), Error> {
    if crc == CrcType::None || crcs == Crcs::Trust {
        return Ok(());
    }
    let computed = crc::block_crc(crc, block);
    let received = crc::received_crc(crc, block);
    if computed != received {
        return Err(Error::CrcMismatch { block: number, crc_type: crc, computed, received });
    }
    Ok(())
}

/// The flag rules of RFC 9171 §4.2.3 that involve the source.
pub(crate) fn check_flags(flags: BundleFlags, source: EidRef<'_>) -> Result<(), Error> {
    if flags.contains(BundleFlags::IS_FRAGMENT) {
        return Err(Error::Fragment);
    }
    if flags.contains(BundleFlags::ADMIN_RECORD) && flags.intersects(BundleFlags::ANY_REPORT) {
        return Err(Error::FlagConflict {
            reason: "an administrative record must not request status reports",
        });
    }
    if source == EidRef::None
        && (!flags.contains(BundleFlags::MUST_NOT_FRAGMENT) || flags.intersects(BundleFlags::ANY_REPORT))
    {
        return Err(Error::FlagConflict {
            reason: "an anonymous bundle (source dtn:none) must be flagged \"must not be fragmented\" and must not request status reports",
        });
    }
    Ok(())
}

/// Parses the primary block at the reader's position and checks its CRC. Returns the fields and
/// the block's bytes.
pub(crate) fn parse<'a>(r: &mut Reader<'a>, crcs: Crcs) -> Result<(PrimaryFields<'a>, &'a [u8]), Error> {
    let start = r.pos();
    let len = r.array(&[8, 9, 10, 11], "8 or 9", F_ARRAY)?;
    let version = r.uint(F_VERSION)?;
    if version != VERSION {
        return Err(Error::UnsupportedVersion { version });
    }
    let flags = BundleFlags(r.uint(F_FLAGS)?);
    if flags.contains(BundleFlags::IS_FRAGMENT) {
        return Err(Error::Fragment);
    }
    let crc_at = r.at();
    let code = r.uint(F_CRC_TYPE)?;
    let crc_type =
        CrcType::from_code(code).ok_or(Error::UnknownCrcType { at: crc_at, field: F_CRC_TYPE, code })?;
    let expected = if crc_type == CrcType::None { 8 } else { 9 };
    if len != expected {
        return Err(Error::Malformed {
            at: start,
            field: F_ARRAY,
            problem: Problem::WrongArrayLength {
                expected: if crc_type == CrcType::None {
                    "8 (not a fragment, no CRC)"
                } else {
                    "9 (not a fragment, with CRC)"
                },
                found: len,
            },
        });
    }
    let destination = eid::decode(r, F_DESTINATION)?;
    let source = eid::decode(r, F_SOURCE)?;
    let report_to = eid::decode(r, F_REPORT_TO)?;
    r.array(&[2], "2 ([DTN time, sequence])", F_CREATION)?;
    let creation = CreationTimestamp { dtn_time_ms: r.uint(F_CREATION)?, sequence: r.uint(F_CREATION)? };
    let lifetime_ms = r.uint(F_LIFETIME)?;
    read_crc(r, crc_type, F_CRC)?;
    let raw = r.since(start);
    check_crc(crcs, crc_type, raw, 0)?;
    if destination == EidRef::None {
        return Err(Error::NullDestination);
    }
    check_flags(flags, source)?;
    Ok((PrimaryFields { flags, crc_type, destination, source, report_to, creation, lifetime_ms }, raw))
}

/// Appends the primary block, CRC included.
pub(crate) fn emit(out: &mut Vec<u8>, p: &PrimaryFields<'_>) {
    let start = out.len();
    let with_crc = p.crc_type != CrcType::None;
    cbor::array(out, if with_crc { 9 } else { 8 });
    cbor::uint(out, VERSION);
    cbor::uint(out, p.flags.bits());
    cbor::uint(out, p.crc_type.code());
    eid::encode(out, p.destination);
    eid::encode(out, p.source);
    eid::encode(out, p.report_to);
    cbor::array(out, 2);
    cbor::uint(out, p.creation.dtn_time_ms);
    cbor::uint(out, p.creation.sequence);
    cbor::uint(out, p.lifetime_ms);
    push_crc_placeholder(out, p.crc_type);
    crc::seal(p.crc_type, out, start);
}

/// Appends a zeroed CRC value of the type's length (a byte string), to be sealed.
pub(crate) fn push_crc_placeholder(out: &mut Vec<u8>, crc: CrcType) {
    match crc {
        CrcType::None => {}
        CrcType::Crc16 => out.extend_from_slice(&[0x42, 0, 0]),
        CrcType::Crc32c => out.extend_from_slice(&[0x44, 0, 0, 0, 0]),
    }
}

/// The length of a CRC value with its byte string head.
pub(crate) fn crc_field_len(crc: CrcType) -> usize {
    match crc {
        CrcType::None => 0,
        _ => 1 + crc.value_len(),
    }
}

pub(crate) fn encoded_len(p: &PrimaryFields<'_>) -> usize {
    // array head, version, crc type: one byte each.
    3 + cbor::head_len(p.flags.bits())
        + eid::encoded_len(p.destination)
        + eid::encoded_len(p.source)
        + eid::encoded_len(p.report_to)
        + 1
        + cbor::head_len(p.creation.dtn_time_ms)
        + cbor::head_len(p.creation.sequence)
        + cbor::head_len(p.lifetime_ms)
        + crc_field_len(p.crc_type)
}
