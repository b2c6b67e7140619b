//! meshpay's class-of-service block: a bundle's priority.
//!
//! RFC 9171 dropped BPv6's class-of-service flags and has no priority field. meshpay carries one
//! in an extension block of type [`CLASS_OF_SERVICE_BLOCK`] (200), in the range 192–255 that
//! RFC 9171 §4.3.2 leaves for private and experimental use. Its data is one CBOR unsigned
//! integer: 0 bulk, 1 normal, 2 expedited. Other values are refused (a later meaning would get a
//! new block type rather than reuse this one).
//!
//! meshpay writes the block with no processing control flags set, so an implementation that does
//! not know it keeps it and forwards it unchanged (RFC 9171 §5.6 step 4). A bundle without the
//! block is [`Priority::Normal`]. The block is not covered by the bundle id, so changing a
//! bundle's priority does not make it a different bundle.

use crate::cbor::{self, Reader};
use crate::error::Error;

/// Block type code of meshpay's class-of-service block (private use range).
pub const CLASS_OF_SERVICE_BLOCK: u64 = 200;

/// How urgently a bundle should be forwarded, and how late it should be evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Forwarded last, evicted first (bulk sync, gossip).
    Bulk,
    /// The default.
    #[default]
    Normal,
    /// Forwarded first, evicted last (votes, certificates).
    Expedited,
}

impl Priority {
    /// The value on the wire (0, 1, 2: higher is more urgent).
    pub fn code(self) -> u8 {
        match self {
            Priority::Bulk => 0,
            Priority::Normal => 1,
            Priority::Expedited => 2,
        }
    }

    pub fn from_code(code: u64) -> Option<Priority> {
        match code {
            0 => Some(Priority::Bulk),
            1 => Some(Priority::Normal),
            2 => Some(Priority::Expedited),
            _ => None,
        }
    }
}

impl From<Priority> for u8 {
    fn from(p: Priority) -> u8 {
        p.code()
    }
}

impl TryFrom<u8> for Priority {
    type Error = u8;

    /// The priority for a code, or the code back if it is not 0, 1 or 2.
    fn try_from(code: u8) -> Result<Priority, u8> {
        Priority::from_code(code.into()).ok_or(code)
    }
}

pub(crate) fn decode(data: &[u8], base: usize, number: u64) -> Result<Priority, Error> {
    let field = "class-of-service block data";
    let mut r = Reader::with_base(data, base);
    let code = r.uint(field)?;
    r.finish(field)?;
    Priority::from_code(code).ok_or(Error::InvalidBlockData {
        number,
        block_type: CLASS_OF_SERVICE_BLOCK,
        reason: "class of service must be 0 (bulk), 1 (normal) or 2 (expedited)",
    })
}

pub(crate) fn encode(out: &mut Vec<u8>, priority: Priority) {
    cbor::uint(out, priority.code().into());
}
