//! Building new bundles from this node.

use meshpay_bundle::{Builder, CreationTimestamp, Eid, Limits, Priority};

/// Encodes a new bundle. The creation timestamp is the local wall clock in
/// DTN time plus a sequence number (unique across restarts, since the
/// clock moves on); the age block is added too, so receivers never need to
/// trust this node's clock (RFC 9171 §4.4.2).
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_bundle(
    source: &Eid,
    destination: &Eid,
    payload: &[u8],
    lifetime_ms: u64,
    unix_ms: u64,
    sequence: u64,
    hop_limit: u32,
    priority: u8,
    limits: &Limits,
) -> Result<Vec<u8>, String> {
    let priority =
        Priority::from_code(u64::from(priority)).ok_or_else(|| format!("priority {priority} unknown"))?;
    let creation =
        CreationTimestamp { dtn_time_ms: CreationTimestamp::dtn_time_from_unix_ms(unix_ms), sequence };
    Builder::new(source.clone(), destination.clone())
        .payload(payload.to_vec())
        .lifetime_ms(lifetime_ms)
        .creation(creation)
        .hop_limit(Some(hop_limit.clamp(1, 255) as u8))
        .priority(priority)
        .age_ms(0)
        .limits(*limits)
        .build()
        .map(|b| b.emit())
        .map_err(|e| e.to_string())
}
