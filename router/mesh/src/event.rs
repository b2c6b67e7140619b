//! Events from the nl80211 `mlme` multicast group that matter to a mesh
//! node: a peer station appeared or went away, or (with userspace
//! authentication only) a new peer candidate was heard.

use serde::Serialize;

use crate::MacAddr;
use crate::consts::{attr, cmd};
use crate::station::Station;
use crate::wire::{GenlMsg, WireError, WireResult};

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `NEW_STATION`: a peer station was added (carries its station info).
    NewStation {
        /// The interface.
        ifindex: u32,
        /// The station as the event reports it.
        station: Station,
    },
    /// `DEL_STATION`: a peer station was removed.
    DelStation {
        /// The interface.
        ifindex: u32,
        /// The peer.
        mac: MacAddr,
    },
    /// `NEW_PEER_CANDIDATE`: only sent when userspace runs peering
    /// (MESH_SETUP with USERSPACE_AUTH/AMPE/MPM, i.e. wpa_supplicant with SAE).
    NewPeerCandidate {
        /// The interface.
        ifindex: u32,
        /// The candidate.
        mac: MacAddr,
        /// Received signal, dBm.
        #[serde(skip_serializing_if = "Option::is_none")]
        signal_dbm: Option<i32>,
    },
    /// Any other message on the group (kept so callers can log it).
    Other {
        /// The nl80211 command.
        cmd: u8,
        /// The interface, if the message names one.
        #[serde(skip_serializing_if = "Option::is_none")]
        ifindex: Option<u32>,
    },
}

impl Event {
    /// The interface the event is about, if any.
    pub fn ifindex(&self) -> Option<u32> {
        match self {
            Event::NewStation { ifindex, .. }
            | Event::DelStation { ifindex, .. }
            | Event::NewPeerCandidate { ifindex, .. } => Some(*ifindex),
            Event::Other { ifindex, .. } => *ifindex,
        }
    }

    /// Parses one generic netlink message received on the group.
    pub fn parse(msg: &GenlMsg<'_>) -> WireResult<Event> {
        let (mut ifindex, mut mac, mut signal) = (None, None, None);
        for a in msg.attrs() {
            let a = a?;
            match a.kind {
                attr::IFINDEX => ifindex = Some(a.u32("ATTR_IFINDEX")?),
                attr::MAC => mac = Some(a.mac("ATTR_MAC")?),
                attr::RX_SIGNAL_DBM => signal = Some(a.i32("ATTR_RX_SIGNAL_DBM")?),
                _ => {}
            }
        }
        let need_if = || ifindex.ok_or(WireError::Missing { what: "event ATTR_IFINDEX" });
        let need_mac = || mac.ok_or(WireError::Missing { what: "event ATTR_MAC" });
        Ok(match msg.cmd {
            cmd::NEW_STATION => {
                Event::NewStation { ifindex: need_if()?, station: Station::parse(msg.attrs())? }
            }
            cmd::DEL_STATION => Event::DelStation { ifindex: need_if()?, mac: need_mac()? },
            cmd::NEW_PEER_CANDIDATE => {
                Event::NewPeerCandidate { ifindex: need_if()?, mac: need_mac()?, signal_dbm: signal }
            }
            c => Event::Other { cmd: c, ifindex },
        })
    }
}
