//! HWMP mesh paths: the reply to `GET_MPATH` dumps (what `iw mpath dump`
//! shows).

use serde::Serialize;

use crate::MacAddr;
use crate::consts::{attr, mpath_info};
use crate::wire::{Attrs, WireError, WireResult};

/// `NL80211_MPATH_FLAG_*` names, by bit.
pub const MPATH_FLAGS: &[(u8, &str)] =
    &[(1, "ACTIVE"), (2, "RESOLVING"), (4, "SN_VALID"), (8, "FIXED"), (16, "RESOLVED")];

/// One mesh path: how this node reaches `dst`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MeshPath {
    /// The interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    /// Destination mesh station.
    pub dst: MacAddr,
    /// The neighbour frames for `dst` are sent to.
    pub next_hop: MacAddr,
    /// Path metric (sum of airtime link metrics).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Hops to `dst` (1 = direct neighbour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop_count: Option<u8>,
    /// Destination sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sn: Option<u32>,
    /// Frames queued waiting for the path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_qlen: Option<u32>,
    /// Milliseconds until the path expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exptime_ms: Option<u32>,
    /// Raw `MPATH_FLAG_*` bits.
    pub flags: u8,
    /// Discovery timeout, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_timeout_ms: Option<u32>,
    /// Discovery retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_retries: Option<u8>,
    /// How many times the path changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_changes: Option<u32>,
}

impl MeshPath {
    /// Parses the attributes of a `NEW_MPATH` (dump reply) message.
    pub fn parse(attrs: Attrs<'_>) -> WireResult<MeshPath> {
        let mut p = MeshPath::default();
        let (mut dst, mut next_hop) = (None, None);
        for a in attrs {
            let a = a?;
            match a.kind {
                attr::IFINDEX => p.ifindex = Some(a.u32("ATTR_IFINDEX")?),
                attr::MAC => dst = Some(a.mac("ATTR_MAC")?),
                attr::MPATH_NEXT_HOP => next_hop = Some(a.mac("ATTR_MPATH_NEXT_HOP")?),
                attr::MPATH_INFO => {
                    for i in a.nested() {
                        let i = i?;
                        match i.kind {
                            mpath_info::FRAME_QLEN => p.frame_qlen = Some(i.u32("MPATH_INFO_FRAME_QLEN")?),
                            mpath_info::SN => p.sn = Some(i.u32("MPATH_INFO_SN")?),
                            mpath_info::METRIC => p.metric = Some(i.u32("MPATH_INFO_METRIC")?),
                            mpath_info::EXPTIME => p.exptime_ms = Some(i.u32("MPATH_INFO_EXPTIME")?),
                            mpath_info::FLAGS => p.flags = i.u8("MPATH_INFO_FLAGS")?,
                            mpath_info::DISCOVERY_TIMEOUT => {
                                p.discovery_timeout_ms = Some(i.u32("MPATH_INFO_DISCOVERY_TIMEOUT")?)
                            }
                            mpath_info::DISCOVERY_RETRIES => {
                                p.discovery_retries = Some(i.u8("MPATH_INFO_DISCOVERY_RETRIES")?)
                            }
                            mpath_info::HOP_COUNT => p.hop_count = Some(i.u8("MPATH_INFO_HOP_COUNT")?),
                            mpath_info::PATH_CHANGE => {
                                p.path_changes = Some(i.u32("MPATH_INFO_PATH_CHANGE")?)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        p.dst = dst.ok_or(WireError::Missing { what: "mpath ATTR_MAC" })?;
        p.next_hop = next_hop.ok_or(WireError::Missing { what: "ATTR_MPATH_NEXT_HOP" })?;
        Ok(p)
    }

    /// The names of the set flags, e.g. `["ACTIVE", "SN_VALID", "RESOLVED"]`.
    pub fn flag_names(&self) -> Vec<&'static str> {
        MPATH_FLAGS.iter().filter(|(bit, _)| self.flags & bit != 0).map(|(_, n)| *n).collect()
    }

    /// True when the path is usable (ACTIVE).
    pub fn is_active(&self) -> bool {
        self.flags & 1 != 0
    }
}
