//! [`Bundle`]: the owned Repr, its encoder, and the [`Builder`] for bundles this node creates.

use crate::block::{
    self, BUNDLE_AGE_BLOCK, ExtensionBlock, HOP_COUNT_BLOCK, HopCount, PAYLOAD_BLOCK, PAYLOAD_BLOCK_NUMBER,
    PREVIOUS_NODE_BLOCK,
};
use crate::cbor;
use crate::crc::CrcType;
use crate::eid::{self, Eid};
use crate::error::Error;
use crate::flags::{BlockFlags, BundleFlags};
use crate::id::BundleId;
use crate::primary::{self, CreationTimestamp, PrimaryFields};
use crate::priority::{self, CLASS_OF_SERVICE_BLOCK, Priority};
use crate::view::BundleView;
use crate::{BLOCK_INTEGRITY_BLOCK, Limits};

/// An owned bundle.
///
/// The blocks meshpay processes (payload, previous node, age, hop count, class of service) are
/// held by their meaning; the encoder frames them in a canonical way: block numbers are the
/// smallest free numbers from 2 up (payload: 1), flags are 0, the CRC type is
/// `block_crc_type`, and they come first, then `extensions` in order, then the payload.
/// So `Bundle::parse(&b.emit()) == b` for every valid `b`, but a bundle received from elsewhere
/// and re-emitted through this Repr may have its known blocks renumbered (its primary block,
/// payload and id never change). To relay a bundle byte for byte, use [`forward`](crate::forward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub flags: BundleFlags,
    /// The primary block's CRC type. Must not be `None` unless an extension block of type 11
    /// (BPSec BIB) is present.
    pub crc_type: CrcType,
    pub destination: Eid,
    pub source: Eid,
    pub report_to: Eid,
    pub creation: CreationTimestamp,
    pub lifetime_ms: u64,
    pub hop_count: Option<HopCount>,
    pub age_ms: Option<u64>,
    pub previous_node: Option<Eid>,
    /// meshpay's class of service; absent means [`Priority::Normal`].
    pub priority: Option<Priority>,
    pub payload: Vec<u8>,
    /// CRC type of the payload block and of the known extension blocks.
    pub block_crc_type: CrcType,
    /// Blocks meshpay does not process, kept verbatim.
    pub extensions: Vec<ExtensionBlock>,
}

/// Default lifetime of bundles built here: one day.
pub const DEFAULT_LIFETIME_MS: u64 = 24 * 60 * 60 * 1000;
/// Default hop limit of bundles built here.
pub const DEFAULT_HOP_LIMIT: u8 = 32;

impl Bundle {
    /// Starts a bundle from `source` (this node's endpoint) to `destination`.
    pub fn builder(source: Eid, destination: Eid) -> Builder {
        Builder::new(source, destination)
    }

    /// Parses and checks an encoded bundle into an owned Repr.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Bundle, Error> {
        Ok(BundleView::parse(bytes, limits)?.to_bundle())
    }

    fn primary_fields(&self) -> PrimaryFields<'_> {
        PrimaryFields {
            flags: self.flags,
            crc_type: self.crc_type,
            destination: self.destination.view(),
            source: self.source.view(),
            report_to: self.report_to.view(),
            creation: self.creation,
            lifetime_ms: self.lifetime_ms,
        }
    }

    /// The encoded primary block.
    pub fn primary_block(&self) -> Vec<u8> {
        let fields = self.primary_fields();
        let mut out = Vec::with_capacity(primary::encoded_len(&fields));
        primary::emit(&mut out, &fields);
        out
    }

    /// The bundle id (see [`BundleId`]); equal to the id of the emitted bytes.
    pub fn id(&self) -> BundleId {
        BundleId::compute(&self.primary_block(), &self.payload)
    }

    /// Block numbers of the known extension blocks that are present: previous node, age, hop
    /// count, class of service — the smallest numbers from 2 up that no extension block uses.
    fn known_block_numbers(&self) -> [Option<u64>; 4] {
        let present = [
            self.previous_node.is_some(),
            self.age_ms.is_some(),
            self.hop_count.is_some(),
            self.priority.is_some(),
        ];
        let mut numbers = [None; 4];
        let mut next = 2u64;
        for (slot, present) in numbers.iter_mut().zip(present) {
            if present {
                while self.extensions.iter().any(|e| e.number == next) {
                    next += 1;
                }
                *slot = Some(next);
                next += 1;
            }
        }
        numbers
    }

    /// The exact length of [`emit`](Self::emit)'s output.
    pub fn encoded_len(&self) -> usize {
        let [prev, age, hop, prio] = self.known_block_numbers();
        let crc = self.block_crc_type;
        let flags = BlockFlags::empty();
        let mut len = 2 + primary::encoded_len(&self.primary_fields());
        if let (Some(n), Some(eid)) = (prev, &self.previous_node) {
            len += block::encoded_len(PREVIOUS_NODE_BLOCK, n, flags, crc, eid::encoded_len(eid.view()));
        }
        if let (Some(n), Some(age)) = (age, self.age_ms) {
            len += block::encoded_len(BUNDLE_AGE_BLOCK, n, flags, crc, cbor::head_len(age));
        }
        if let (Some(n), Some(h)) = (hop, self.hop_count) {
            len += block::encoded_len(HOP_COUNT_BLOCK, n, flags, crc, block::hop_count_data_len(h));
        }
        if let (Some(n), Some(p)) = (prio, self.priority) {
            len += block::encoded_len(CLASS_OF_SERVICE_BLOCK, n, flags, crc, cbor::head_len(p.code().into()));
        }
        for e in &self.extensions {
            len += block::encoded_len(e.block_type, e.number, e.flags, e.crc_type, e.data.len());
        }
        len + block::encoded_len(PAYLOAD_BLOCK, PAYLOAD_BLOCK_NUMBER, flags, crc, self.payload.len())
    }

    /// Encodes the bundle.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.emit_into(&mut out);
        out
    }

    /// Appends the encoded bundle to `out`. Emits whatever the Repr holds; a bundle that fails
    /// [`validate`](Self::validate) gives bytes that [`parse`](Self::parse) refuses.
    pub fn emit_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let [prev, age, hop, prio] = self.known_block_numbers();
        let crc = self.block_crc_type;
        let flags = BlockFlags::empty();
        out.push(cbor::INDEFINITE_ARRAY);
        primary::emit(out, &self.primary_fields());
        if let (Some(n), Some(eid)) = (prev, &self.previous_node) {
            let start = block::begin(out, PREVIOUS_NODE_BLOCK, n, flags, crc, eid::encoded_len(eid.view()));
            eid::encode(out, eid.view());
            block::end(out, start, crc);
        }
        if let (Some(n), Some(age)) = (age, self.age_ms) {
            let start = block::begin(out, BUNDLE_AGE_BLOCK, n, flags, crc, cbor::head_len(age));
            cbor::uint(out, age);
            block::end(out, start, crc);
        }
        if let (Some(n), Some(h)) = (hop, self.hop_count) {
            let start = block::begin(out, HOP_COUNT_BLOCK, n, flags, crc, block::hop_count_data_len(h));
            block::encode_hop_count(out, h);
            block::end(out, start, crc);
        }
        if let (Some(n), Some(p)) = (prio, self.priority) {
            let start =
                block::begin(out, CLASS_OF_SERVICE_BLOCK, n, flags, crc, cbor::head_len(p.code().into()));
            priority::encode(out, p);
            block::end(out, start, crc);
        }
        for e in &self.extensions {
            block::emit(out, e.block_type, e.number, e.flags, e.crc_type, &e.data);
        }
        block::emit(out, PAYLOAD_BLOCK, PAYLOAD_BLOCK_NUMBER, flags, crc, &self.payload);
        out.push(cbor::BREAK);
    }

    /// Checks everything [`parse`](Self::parse) would check of the emitted bytes, so that a
    /// valid bundle survives `parse(emit(b))` unchanged.
    pub fn validate(&self, limits: &Limits) -> Result<(), Error> {
        let eid_ok = |field, eid: &Eid| eid.validate().map_err(|error| Error::InvalidEid { field, error });
        // The same field names as the parser's, so both report the same error.
        eid_ok("primary block: destination", &self.destination)?;
        eid_ok("primary block: source", &self.source)?;
        eid_ok("primary block: report-to", &self.report_to)?;
        if self.destination == Eid::None {
            return Err(Error::NullDestination);
        }
        primary::check_flags(self.flags, self.source.view())?;
        if let Some(prev) = &self.previous_node {
            eid_ok("previous node block data", prev)?;
            if *prev == Eid::None {
                return Err(Error::InvalidEid {
                    field: "previous node block data",
                    error: eid::EidError::NullEndpoint,
                });
            }
        }
        if let Some(h) = self.hop_count {
            if h.limit == 0 {
                return Err(Error::InvalidBlockData {
                    number: 0,
                    block_type: HOP_COUNT_BLOCK,
                    reason: "hop limit must be 1 to 255",
                });
            }
            if h.count > h.limit {
                return Err(Error::HopLimitExceeded { limit: h.limit, count: h.count.into() });
            }
        }
        if self.creation.dtn_time_ms == 0 && self.age_ms.is_none() {
            return Err(Error::MissingAgeBlock);
        }
        let no_reports = self.flags.contains(BundleFlags::ADMIN_RECORD) || self.source == Eid::None;
        for (i, e) in self.extensions.iter().enumerate() {
            let held = match e.block_type {
                PAYLOAD_BLOCK => true,
                PREVIOUS_NODE_BLOCK => self.previous_node.is_some(),
                BUNDLE_AGE_BLOCK => self.age_ms.is_some(),
                HOP_COUNT_BLOCK => self.hop_count.is_some(),
                CLASS_OF_SERVICE_BLOCK => self.priority.is_some(),
                _ => false,
            };
            if held {
                return Err(Error::DuplicateBlockType { block_type: e.block_type });
            }
            if block::is_known_type(e.block_type) {
                return Err(Error::InvalidBlockData {
                    number: e.number,
                    block_type: e.block_type,
                    reason: "meshpay processes this block type: set it through its own field, not as an extension block",
                });
            }
            if e.number <= PAYLOAD_BLOCK_NUMBER {
                return Err(Error::ReservedBlockNumber { number: e.number, block_type: e.block_type });
            }
            if self.extensions[..i].iter().any(|o| o.number == e.number) {
                return Err(Error::DuplicateBlockNumber { number: e.number });
            }
            if e.flags.contains(BlockFlags::DELETE_BUNDLE_IF_UNPROCESSABLE) {
                return Err(Error::UnprocessableBlock { number: e.number, block_type: e.block_type });
            }
            if no_reports && e.flags.contains(BlockFlags::REPORT_IF_UNPROCESSABLE) {
                return Err(Error::FlagConflict {
                    reason: "a block of an administrative record or an anonymous bundle must not request a status report",
                });
            }
        }
        if self.crc_type == CrcType::None
            && !self.extensions.iter().any(|e| e.block_type == BLOCK_INTEGRITY_BLOCK)
        {
            return Err(Error::MissingPrimaryCrc);
        }
        let blocks = 1
            + self.extensions.len()
            + usize::from(self.previous_node.is_some())
            + usize::from(self.age_ms.is_some())
            + usize::from(self.hop_count.is_some())
            + usize::from(self.priority.is_some());
        if blocks > limits.max_blocks {
            return Err(Error::TooManyBlocks { max: limits.max_blocks });
        }
        let len = self.encoded_len();
        if len > limits.max_bundle_bytes {
            return Err(Error::TooLarge { len, max: limits.max_bundle_bytes });
        }
        Ok(())
    }
}

/// Builds a bundle originating at this node.
///
/// Defaults: empty payload, lifetime [`DEFAULT_LIFETIME_MS`], creation timestamp 0/0 (no clock:
/// a bundle age block starting at 0 is added), hop limit [`DEFAULT_HOP_LIMIT`], no
/// class-of-service block (normal priority), report-to `dtn:none`, flags "must not fragment"
/// (meshpay refuses fragments, so it asks other implementations not to make any), CRC-32C on
/// every block.
#[derive(Debug, Clone)]
pub struct Builder {
    bundle: Bundle,
    limits: Limits,
}

impl Builder {
    pub fn new(source: Eid, destination: Eid) -> Builder {
        Builder {
            bundle: Bundle {
                flags: BundleFlags::MUST_NOT_FRAGMENT,
                crc_type: CrcType::Crc32c,
                destination,
                source,
                report_to: Eid::None,
                creation: CreationTimestamp::default(),
                lifetime_ms: DEFAULT_LIFETIME_MS,
                hop_count: Some(HopCount { limit: DEFAULT_HOP_LIMIT, count: 0 }),
                age_ms: None,
                previous_node: None,
                priority: None,
                payload: Vec::new(),
                block_crc_type: CrcType::Crc32c,
                extensions: Vec::new(),
            },
            limits: Limits::default(),
        }
    }

    pub fn payload(mut self, payload: Vec<u8>) -> Self {
        self.bundle.payload = payload;
        self
    }

    pub fn lifetime_ms(mut self, lifetime_ms: u64) -> Self {
        self.bundle.lifetime_ms = lifetime_ms;
        self
    }

    /// The creation timestamp; the caller reads the clock (DTN time 0: no clock).
    pub fn creation(mut self, creation: CreationTimestamp) -> Self {
        self.bundle.creation = creation;
        self
    }

    /// The hop limit (1..=255), or `None` for no hop count block.
    pub fn hop_limit(mut self, limit: Option<u8>) -> Self {
        self.bundle.hop_count = limit.map(|limit| HopCount { limit, count: 0 });
        self
    }

    /// Adds a class-of-service block.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.bundle.priority = Some(priority);
        self
    }

    pub fn report_to(mut self, report_to: Eid) -> Self {
        self.bundle.report_to = report_to;
        self
    }

    /// Replaces the processing control flags.
    pub fn flags(mut self, flags: BundleFlags) -> Self {
        self.bundle.flags = flags;
        self
    }

    /// The CRC type of every block (primary included).
    pub fn crc_type(mut self, crc: CrcType) -> Self {
        self.bundle.crc_type = crc;
        self.bundle.block_crc_type = crc;
        self
    }

    /// Adds a bundle age block with this initial age.
    pub fn age_ms(mut self, age_ms: u64) -> Self {
        self.bundle.age_ms = Some(age_ms);
        self
    }

    /// Adds an extension block meshpay does not process itself.
    pub fn extension(mut self, block: ExtensionBlock) -> Self {
        self.bundle.extensions.push(block);
        self
    }

    /// The limits the bundle must fit (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Validates and returns the bundle.
    pub fn build(mut self) -> Result<Bundle, Error> {
        let b = &mut self.bundle;
        if b.creation.dtn_time_ms == 0 && b.age_ms.is_none() {
            b.age_ms = Some(0);
        }
        b.validate(&self.limits)?;
        Ok(self.bundle)
    }
}
