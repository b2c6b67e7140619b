//! Forwarding: the bytes the next hop gets (see [`forward`]).

use crate::Limits;
use crate::block::{
    self, BLOCK_INTEGRITY_BLOCK, BUNDLE_AGE_BLOCK, HOP_COUNT_BLOCK, HopCount, PAYLOAD_BLOCK,
    PREVIOUS_NODE_BLOCK,
};
use crate::cbor;
use crate::crc::CrcType;
use crate::eid::{self, Eid, EidError};
use crate::error::Error;
use crate::flags::BlockFlags;
use crate::view::BundleView;

/// Parses `bytes` and returns the bundle as the next hop should receive it.
///
/// The primary block, the payload block and every block meshpay does not process are copied
/// byte for byte, so the bundle id does not change. Only three blocks are rewritten, each keeping
/// its block number, flags and CRC type:
///
/// - hop count: count + 1; refused with [`Error::HopLimitExceeded`] once that passes the limit.
///   A bundle without a hop count block gets none.
/// - bundle age: age + `added_age_ms` (this node's residence time plus the link's delay, as
///   the caller measures them); refused with [`Error::Expired`] once the age exceeds the
///   lifetime. A bundle without an age block gets none (its creation time is then non-zero: the
///   parser made sure).
/// - previous node: set to `previous` (this node); added just before the payload block if
///   missing, with the smallest free block number and the primary block's CRC type.
///
/// Unknown blocks flagged "discard block if it can't be processed" are dropped, as RFC 9171 §5.6
/// step 4 requires of a receiving node — except a BPSec Block Integrity Block when the primary
/// block has no CRC: that BIB is what makes the primary block acceptable (§4.3.1).
pub fn forward(bytes: &[u8], added_age_ms: u64, previous: &Eid, limits: &Limits) -> Result<Vec<u8>, Error> {
    BundleView::parse(bytes, limits)?.forward(added_age_ms, previous, limits)
}

impl BundleView<'_> {
    /// [`forward`] for a bundle already parsed.
    pub fn forward(&self, added_age_ms: u64, previous: &Eid, limits: &Limits) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.bytes().len() + 16 + eid::encoded_len(previous.view()));
        self.forward_into(&mut out, added_age_ms, previous, limits)?;
        Ok(out)
    }

    /// [`forward`] appending to `out`; on error `out` is left as it was.
    pub fn forward_into(
        &self,
        out: &mut Vec<u8>,
        added_age_ms: u64,
        previous: &Eid,
        limits: &Limits,
    ) -> Result<(), Error> {
        previous.validate().map_err(|error| Error::InvalidEid { field: "previous node", error })?;
        if *previous == Eid::None {
            return Err(Error::InvalidEid { field: "previous node", error: EidError::NullEndpoint });
        }
        // Everything that can fail is decided before writing.
        let hop_count = match self.hop_count() {
            Some(h) if h.count >= h.limit => {
                return Err(Error::HopLimitExceeded { limit: h.limit, count: u64::from(h.count) + 1 });
            }
            Some(h) => Some(HopCount { limit: h.limit, count: h.count + 1 }),
            None => None,
        };
        let age_ms = match self.age_ms() {
            Some(age) => {
                let age = age.checked_add(added_age_ms).ok_or(Error::AgeOverflow)?;
                if age > self.lifetime_ms() {
                    return Err(Error::Expired { age_ms: age, lifetime_ms: self.lifetime_ms() });
                }
                Some(age)
            }
            None => None,
        };
        // A BIB standing in for the primary block's CRC is kept even if flagged for discarding:
        // without it the next hop would (rightly) refuse the bundle.
        let keep_bibs = self.primary.crc_type == CrcType::None;
        let discarded = |block_type: u64, flags: BlockFlags| {
            let processed = block::is_known_type(block_type);
            let needed = keep_bibs && block_type == BLOCK_INTEGRITY_BLOCK;
            flags.contains(BlockFlags::DISCARD_IF_UNPROCESSABLE) && !processed && !needed
        };
        let kept = self.blocks.iter().filter(|b| !discarded(b.block_type, b.flags)).count();
        let add_previous = self.previous_node().is_none();
        if kept + usize::from(add_previous) > limits.max_blocks {
            return Err(Error::TooManyBlocks { max: limits.max_blocks });
        }

        let start = out.len();
        let prev_len = eid::encoded_len(previous.view());
        out.push(cbor::INDEFINITE_ARRAY);
        out.extend_from_slice(self.primary_raw);
        for b in &self.blocks {
            match b.block_type {
                PAYLOAD_BLOCK => {
                    if add_previous {
                        let number = self.free_block_number();
                        let crc = self.primary.crc_type;
                        let s = block::begin(
                            out,
                            PREVIOUS_NODE_BLOCK,
                            number,
                            BlockFlags::empty(),
                            crc,
                            prev_len,
                        );
                        eid::encode(out, previous.view());
                        block::end(out, s, crc);
                    }
                    out.extend_from_slice(b.raw);
                }
                PREVIOUS_NODE_BLOCK => {
                    let s = block::begin(out, b.block_type, b.number, b.flags, b.crc_type, prev_len);
                    eid::encode(out, previous.view());
                    block::end(out, s, b.crc_type);
                }
                BUNDLE_AGE_BLOCK => {
                    let age = age_ms.unwrap_or_default(); // present: this block was parsed
                    let s =
                        block::begin(out, b.block_type, b.number, b.flags, b.crc_type, cbor::head_len(age));
                    cbor::uint(out, age);
                    block::end(out, s, b.crc_type);
                }
                HOP_COUNT_BLOCK => {
                    let h = hop_count.unwrap_or(HopCount { limit: 1, count: 1 }); // present: parsed
                    let len = block::hop_count_data_len(h);
                    let s = block::begin(out, b.block_type, b.number, b.flags, b.crc_type, len);
                    block::encode_hop_count(out, h);
                    block::end(out, s, b.crc_type);
                }
                t if discarded(t, b.flags) => {}
                _ => out.extend_from_slice(b.raw),
            }
        }
        out.push(cbor::BREAK);
        let len = out.len() - start;
        if len > limits.max_bundle_bytes {
            out.truncate(start);
            return Err(Error::TooLarge { len, max: limits.max_bundle_bytes });
        }
        Ok(())
    }

    /// The smallest block number from 2 up that no block uses.
    fn free_block_number(&self) -> u64 {
        (2u64..).find(|n| self.blocks.iter().all(|b| b.number != *n)).unwrap_or(u64::MAX)
    }
}
