//! [`BundleView`]: a checked, zero-copy view of an encoded bundle — the engine's hot path.
//!
//! Parsing walks the block headers once, checks every CRC and every rule in the crate docs, and
//! borrows the payload and endpoint names from the input. Its cost is the headers plus the CRCs;
//! the id hash is computed on demand.

use crate::block::{
    self, BUNDLE_AGE_BLOCK, BlockView, HOP_COUNT_BLOCK, HopCount, PAYLOAD_BLOCK, PAYLOAD_BLOCK_NUMBER,
    PREVIOUS_NODE_BLOCK,
};
use crate::bundle::Bundle;
use crate::cbor::{self, Reader};
use crate::crc::CrcType;
use crate::eid::EidRef;
use crate::error::{Error, Problem};
use crate::flags::{BlockFlags, BundleFlags};
use crate::id::BundleId;
use crate::primary::{self, Crcs, CreationTimestamp, PrimaryFields};
use crate::priority::{self, CLASS_OF_SERVICE_BLOCK, Priority};
use crate::{BLOCK_INTEGRITY_BLOCK, Limits};

/// A parsed bundle borrowing from its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleView<'a> {
    bytes: &'a [u8],
    pub(crate) primary: PrimaryFields<'a>,
    pub(crate) primary_raw: &'a [u8],
    /// Every canonical block in wire order; the payload block is last.
    pub(crate) blocks: Vec<BlockView<'a>>,
    hop_count: Option<HopCount>,
    age_ms: Option<u64>,
    previous_node: Option<EidRef<'a>>,
    priority: Option<Priority>,
}

impl<'a> BundleView<'a> {
    /// Parses and checks `bytes` (one whole bundle, nothing after it).
    pub fn parse(bytes: &'a [u8], limits: &Limits) -> Result<BundleView<'a>, Error> {
        Self::parse_with(bytes, limits, Crcs::Check)
    }

    /// [`parse`](Self::parse) for bytes this node has already parsed and
    /// checked (a bundle it built, or read back from its own store): every
    /// rule is checked as by `parse` except the blocks' CRCs, which are read
    /// but not recomputed. For a 64 KiB payload a CRC-32C pass is about
    /// 12 µs, and a node re-reads each bundle it forwards. The CRC values
    /// stay in the bytes and travel on unchanged, so if the stored copy was
    /// damaged, the next hop's `parse` still refuses it.
    pub fn parse_trusted(bytes: &'a [u8], limits: &Limits) -> Result<BundleView<'a>, Error> {
        Self::parse_with(bytes, limits, Crcs::Trust)
    }

    fn parse_with(bytes: &'a [u8], limits: &Limits, crcs: Crcs) -> Result<BundleView<'a>, Error> {
        if bytes.len() > limits.max_bundle_bytes {
            return Err(Error::TooLarge { len: bytes.len(), max: limits.max_bundle_bytes });
        }
        let mut r = Reader::new(bytes);
        match r.peek() {
            Some(cbor::INDEFINITE_ARRAY) => r.byte("bundle")?,
            Some(b) if b >> 5 == cbor::MAJOR_ARRAY => {
                return Err(Error::Malformed {
                    at: 0,
                    field: "bundle",
                    problem: Problem::DefiniteBundleArray,
                });
            }
            Some(b) => {
                return Err(Error::Malformed {
                    at: 0,
                    field: "bundle",
                    problem: Problem::UnexpectedType { expected: "array", found: cbor::major_name(b >> 5) },
                });
            }
            None => return Err(Error::Truncated { at: 0, field: "bundle" }),
        };
        let (primary, primary_raw) = primary::parse(&mut r, crcs)?;
        // Canonical blocks must not ask for a status report when no report may be sent (§4.2.4).
        let no_reports = primary.flags.contains(BundleFlags::ADMIN_RECORD) || primary.source == EidRef::None;

        let mut view = BundleView {
            bytes,
            primary,
            primary_raw,
            blocks: Vec::new(),
            hop_count: None,
            age_ms: None,
            previous_node: None,
            priority: None,
        };
        let mut has_bib = false;
        let mut payload_seen = false;
        loop {
            match r.peek() {
                None => {
                    return Err(Error::Truncated {
                        at: r.at(),
                        field: "bundle (no break code after the blocks)",
                    });
                }
                Some(cbor::BREAK) => break,
                Some(_) => {}
            }
            if view.blocks.len() == limits.max_blocks {
                return Err(Error::TooManyBlocks { max: limits.max_blocks });
            }
            let b = block::parse(&mut r, crcs)?;
            if payload_seen {
                return Err(Error::PayloadNotLast { block_number: b.number });
            }
            if b.number == 0 || (b.number == PAYLOAD_BLOCK_NUMBER && b.block_type != PAYLOAD_BLOCK) {
                return Err(Error::ReservedBlockNumber { number: b.number, block_type: b.block_type });
            }
            if view.blocks.iter().any(|o| o.number == b.number) {
                return Err(Error::DuplicateBlockNumber { number: b.number });
            }
            if no_reports && b.flags.contains(BlockFlags::REPORT_IF_UNPROCESSABLE) {
                return Err(Error::FlagConflict {
                    reason: "a block of an administrative record or an anonymous bundle must not request a status report",
                });
            }
            let duplicate = Error::DuplicateBlockType { block_type: b.block_type };
            match b.block_type {
                PAYLOAD_BLOCK => {
                    if b.number != PAYLOAD_BLOCK_NUMBER {
                        return Err(Error::PayloadBlockNumber { number: b.number });
                    }
                    payload_seen = true;
                }
                PREVIOUS_NODE_BLOCK => {
                    let eid = block::decode_previous_node(&b)?;
                    if view.previous_node.replace(eid).is_some() {
                        return Err(duplicate);
                    }
                }
                BUNDLE_AGE_BLOCK => {
                    if view.age_ms.replace(block::decode_age(&b)?).is_some() {
                        return Err(duplicate);
                    }
                }
                HOP_COUNT_BLOCK => {
                    if view.hop_count.replace(block::decode_hop_count(&b)?).is_some() {
                        return Err(duplicate);
                    }
                }
                CLASS_OF_SERVICE_BLOCK => {
                    if view.priority.replace(priority::decode(b.data, b.data_at, b.number)?).is_some() {
                        return Err(duplicate);
                    }
                }
                other => {
                    if b.flags.contains(BlockFlags::DELETE_BUNDLE_IF_UNPROCESSABLE) {
                        return Err(Error::UnprocessableBlock { number: b.number, block_type: other });
                    }
                    has_bib |= other == BLOCK_INTEGRITY_BLOCK;
                }
            }
            view.blocks.push(b);
        }
        r.byte("bundle")?; // the break code
        if r.remaining() != 0 {
            return Err(Error::TrailingBytes { at: r.at(), count: r.remaining() });
        }
        if !payload_seen {
            return Err(Error::MissingPayload);
        }
        if view.primary.crc_type == CrcType::None && !has_bib {
            return Err(Error::MissingPrimaryCrc);
        }
        if view.primary.creation.dtn_time_ms == 0 && view.age_ms.is_none() {
            return Err(Error::MissingAgeBlock);
        }
        Ok(view)
    }

    /// The whole encoded bundle.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The encoded primary block (immutable for the bundle's life; half of the id).
    pub fn primary_block(&self) -> &'a [u8] {
        self.primary_raw
    }

    pub fn flags(&self) -> BundleFlags {
        self.primary.flags
    }

    /// The primary block's CRC type.
    pub fn crc_type(&self) -> CrcType {
        self.primary.crc_type
    }

    pub fn destination(&self) -> EidRef<'a> {
        self.primary.destination
    }

    pub fn source(&self) -> EidRef<'a> {
        self.primary.source
    }

    pub fn report_to(&self) -> EidRef<'a> {
        self.primary.report_to
    }

    pub fn creation(&self) -> CreationTimestamp {
        self.primary.creation
    }

    pub fn lifetime_ms(&self) -> u64 {
        self.primary.lifetime_ms
    }

    pub fn hop_count(&self) -> Option<HopCount> {
        self.hop_count
    }

    pub fn age_ms(&self) -> Option<u64> {
        self.age_ms
    }

    pub fn previous_node(&self) -> Option<EidRef<'a>> {
        self.previous_node
    }

    /// The bundle's priority: its class-of-service block's, or [`Priority::Normal`] without one.
    pub fn priority(&self) -> Priority {
        self.priority.unwrap_or_default()
    }

    /// The class-of-service block's priority, if the bundle has one.
    pub fn priority_block(&self) -> Option<Priority> {
        self.priority
    }

    /// The payload, borrowed.
    pub fn payload(&self) -> &'a [u8] {
        self.payload_block().data
    }

    /// The payload block (always present, always last).
    pub fn payload_block(&self) -> &BlockView<'a> {
        // parse() refuses bundles without a payload block, and it is the last one pushed.
        &self.blocks[self.blocks.len() - 1]
    }

    /// Every canonical block in wire order, payload last.
    pub fn blocks(&self) -> &[BlockView<'a>] {
        &self.blocks
    }

    /// The blocks meshpay does not process, in wire order.
    pub fn extensions(&self) -> impl Iterator<Item = &BlockView<'a>> {
        self.blocks.iter().filter(|b| !block::is_known_type(b.block_type))
    }

    /// The bundle id, hashed from the borrowed bytes.
    pub fn id(&self) -> BundleId {
        BundleId::compute(self.primary_raw, self.payload())
    }

    /// An owned copy. Known blocks are represented by their meaning (see [`Bundle`]).
    pub fn to_bundle(&self) -> Bundle {
        let p = &self.primary;
        Bundle {
            flags: p.flags,
            crc_type: p.crc_type,
            destination: p.destination.to_eid(),
            source: p.source.to_eid(),
            report_to: p.report_to.to_eid(),
            creation: p.creation,
            lifetime_ms: p.lifetime_ms,
            hop_count: self.hop_count,
            age_ms: self.age_ms,
            previous_node: self.previous_node.map(EidRef::to_eid),
            priority: self.priority,
            payload: self.payload().to_vec(),
            block_crc_type: self.payload_block().crc_type,
            extensions: self.extensions().map(BlockView::to_extension).collect(),
        }
    }
}
