//! Mesh stations (peers): the reply to `GET_STATION` dumps and the body of
//! `NEW_STATION` events.

use std::fmt;

use serde::Serialize;

use crate::MacAddr;
use crate::consts::{attr, rate_info, sta_info};
use crate::wire::{Attr, Attrs, WireError, WireResult};

/// Peer link state (`NL80211_PLINK_*`), as the mesh peering management
/// state machine (IEEE 802.11-2016 14.3) names them. Unknown future values
/// are kept, not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlinkState {
    /// No peering attempt yet.
    Listen,
    /// We sent a Mesh Peering Open.
    OpnSnt,
    /// We received an Open.
    OpnRcvd,
    /// We received a Confirm.
    CnfRcvd,
    /// Established: frames flow.
    Estab,
    /// Closing.
    Holding,
    /// Blocked by us (plink_action block).
    Blocked,
    /// A value this code does not know.
    Unknown(u8),
}

impl PlinkState {
    /// From the kernel's u8.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Listen,
            1 => Self::OpnSnt,
            2 => Self::OpnRcvd,
            3 => Self::CnfRcvd,
            4 => Self::Estab,
            5 => Self::Holding,
            6 => Self::Blocked,
            n => Self::Unknown(n),
        }
    }

    /// The name `iw station dump` prints ("ESTAB", "BLOCKED", ...).
    pub fn name(&self) -> String {
        match self {
            Self::Listen => "LISTEN".into(),
            Self::OpnSnt => "OPN_SNT".into(),
            Self::OpnRcvd => "OPN_RCVD".into(),
            Self::CnfRcvd => "CNF_RCVD".into(),
            Self::Estab => "ESTAB".into(),
            Self::Holding => "HOLDING".into(),
            Self::Blocked => "BLOCKED".into(),
            Self::Unknown(n) => format!("UNKNOWN({n})"),
        }
    }
}

impl fmt::Display for PlinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl Serialize for PlinkState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// One station (mesh peer) on an interface. Every field but the MAC is
/// optional because drivers report different subsets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Station {
    /// The interface it was seen on.
    pub ifindex: Option<u32>,
    /// The peer's MAC address.
    pub mac: MacAddr,
    /// Peer link state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plink_state: Option<PlinkState>,
    /// Local link id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llid: Option<u16>,
    /// Peer link id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plid: Option<u16>,
    /// Last signal, dBm (the kernel sends a u8 holding an s8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_dbm: Option<i8>,
    /// Average signal, dBm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_avg_dbm: Option<i8>,
    /// 802.11s airtime link metric (u32; lower is better; hwsim: 8193).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub airtime_metric: Option<u32>,
    /// Milliseconds since the last frame from this peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inactive_ms: Option<u32>,
    /// Expected throughput, kbit/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_throughput_kbps: Option<u32>,
    /// Last TX bitrate, in 100 kbit/s units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bitrate_100kbps: Option<u32>,
    /// Seconds since the station was added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_secs: Option<u32>,
    /// Received bytes (64-bit counter when the kernel gives one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    /// Transmitted bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    /// Received packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_packets: Option<u32>,
    /// Transmitted packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_packets: Option<u32>,
    /// Failed transmissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_failed: Option<u32>,
    /// The peer announces a connection to a mesh gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_to_gate: Option<bool>,
}

impl Station {
    /// Parses the attributes of a `NEW_STATION` message (dump reply or event).
    pub fn parse(attrs: Attrs<'_>) -> WireResult<Station> {
        let mut s = Station::default();
        let mut mac = None;
        for a in attrs {
            let a = a?;
            match a.kind {
                attr::IFINDEX => s.ifindex = Some(a.u32("ATTR_IFINDEX")?),
                attr::MAC => mac = Some(a.mac("ATTR_MAC")?),
                attr::STA_INFO => s.parse_info(a)?,
                _ => {}
            }
        }
        s.mac = mac.ok_or(WireError::Missing { what: "station ATTR_MAC" })?;
        Ok(s)
    }

    fn parse_info(&mut self, info: Attr<'_>) -> WireResult<()> {
        let (mut bytes32, mut bytes64) = ((None, None), (None, None));
        for a in info.nested() {
            let a = a?;
            match a.kind {
                sta_info::INACTIVE_TIME => self.inactive_ms = Some(a.u32("STA_INFO_INACTIVE_TIME")?),
                sta_info::RX_BYTES => bytes32.0 = Some(a.u32("STA_INFO_RX_BYTES")? as u64),
                sta_info::TX_BYTES => bytes32.1 = Some(a.u32("STA_INFO_TX_BYTES")? as u64),
                sta_info::RX_BYTES64 => bytes64.0 = Some(a.u64("STA_INFO_RX_BYTES64")?),
                sta_info::TX_BYTES64 => bytes64.1 = Some(a.u64("STA_INFO_TX_BYTES64")?),
                sta_info::LLID => self.llid = Some(a.u16("STA_INFO_LLID")?),
                sta_info::PLID => self.plid = Some(a.u16("STA_INFO_PLID")?),
                sta_info::PLINK_STATE => {
                    self.plink_state = Some(PlinkState::from_u8(a.u8("STA_INFO_PLINK_STATE")?))
                }
                sta_info::SIGNAL => self.signal_dbm = Some(a.i8("STA_INFO_SIGNAL")?),
                sta_info::SIGNAL_AVG => self.signal_avg_dbm = Some(a.i8("STA_INFO_SIGNAL_AVG")?),
                sta_info::TX_BITRATE => self.tx_bitrate_100kbps = parse_bitrate(a)?,
                sta_info::RX_PACKETS => self.rx_packets = Some(a.u32("STA_INFO_RX_PACKETS")?),
                sta_info::TX_PACKETS => self.tx_packets = Some(a.u32("STA_INFO_TX_PACKETS")?),
                sta_info::TX_FAILED => self.tx_failed = Some(a.u32("STA_INFO_TX_FAILED")?),
                sta_info::CONNECTED_TIME => self.connected_secs = Some(a.u32("STA_INFO_CONNECTED_TIME")?),
                sta_info::EXPECTED_THROUGHPUT => {
                    self.expected_throughput_kbps = Some(a.u32("STA_INFO_EXPECTED_THROUGHPUT")?)
                }
                sta_info::AIRTIME_LINK_METRIC => {
                    self.airtime_metric = Some(a.u32("STA_INFO_AIRTIME_LINK_METRIC")?)
                }
                sta_info::CONNECTED_TO_GATE => {
                    self.connected_to_gate = Some(a.u8("STA_INFO_CONNECTED_TO_GATE")? != 0)
                }
                _ => {}
            }
        }
        self.rx_bytes = bytes64.0.or(bytes32.0);
        self.tx_bytes = bytes64.1.or(bytes32.1);
        Ok(())
    }
}

/// `STA_INFO_TX_BITRATE`: the 32-bit rate if present, else the 16-bit one.
fn parse_bitrate(rate: Attr<'_>) -> WireResult<Option<u32>> {
    let (mut r16, mut r32) = (None, None);
    for a in rate.nested() {
        let a = a?;
        match a.kind {
            rate_info::BITRATE => r16 = Some(a.u16("RATE_INFO_BITRATE")? as u32),
            rate_info::BITRATE32 => r32 = Some(a.u32("RATE_INFO_BITRATE32")?),
            _ => {}
        }
    }
    Ok(r32.or(r16))
}
