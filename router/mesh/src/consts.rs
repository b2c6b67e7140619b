//! Numbers from `linux/nl80211.h`, `linux/genetlink.h` and
//! `linux/rtnetlink.h` (Debian linux-libc-dev 6.1; the nl80211 ones are
//! listed in `shared/notes/nl80211-numbers.txt`). These are kernel ABI and
//! never change meaning.
#![allow(missing_docs)]

/// Generic netlink controller (resolves "nl80211" to a family id).
pub mod ctrl {
    pub const GENL_ID_CTRL: u16 = 0x10;
    pub const CMD_GETFAMILY: u8 = 3;
    pub const ATTR_FAMILY_ID: u16 = 1;
    pub const ATTR_FAMILY_NAME: u16 = 2;
    pub const ATTR_MCAST_GROUPS: u16 = 7;
    pub const ATTR_MCAST_GRP_NAME: u16 = 1;
    pub const ATTR_MCAST_GRP_ID: u16 = 2;
}

/// `NL80211_CMD_*`.
pub mod cmd {
    pub const GET_WIPHY: u8 = 1;
    pub const NEW_WIPHY: u8 = 3;
    pub const GET_INTERFACE: u8 = 5;
    pub const NEW_INTERFACE: u8 = 7;
    pub const DEL_INTERFACE: u8 = 8;
    pub const GET_STATION: u8 = 17;
    pub const SET_STATION: u8 = 18;
    pub const NEW_STATION: u8 = 19;
    pub const DEL_STATION: u8 = 20;
    pub const GET_MPATH: u8 = 21;
    pub const NEW_MPATH: u8 = 23;
    pub const GET_MESH_CONFIG: u8 = 28;
    pub const SET_MESH_CONFIG: u8 = 29;
    pub const JOIN_MESH: u8 = 68;
    pub const LEAVE_MESH: u8 = 69;
    pub const NEW_PEER_CANDIDATE: u8 = 72;
}

/// `NL80211_ATTR_*`.
pub mod attr {
    pub const WIPHY: u16 = 1;
    pub const WIPHY_NAME: u16 = 2;
    pub const IFINDEX: u16 = 3;
    pub const IFNAME: u16 = 4;
    pub const IFTYPE: u16 = 5;
    pub const MAC: u16 = 6;
    pub const BEACON_INTERVAL: u16 = 12;
    pub const DTIM_PERIOD: u16 = 13;
    pub const STA_INFO: u16 = 21;
    pub const MESH_ID: u16 = 24;
    pub const STA_PLINK_ACTION: u16 = 25;
    pub const MPATH_NEXT_HOP: u16 = 26;
    pub const MPATH_INFO: u16 = 27;
    pub const SUPPORTED_IFTYPES: u16 = 32;
    pub const MESH_CONFIG: u16 = 35;
    pub const BSS_BASIC_RATES: u16 = 36;
    pub const WIPHY_FREQ: u16 = 38;
    pub const WIPHY_CHANNEL_TYPE: u16 = 39;
    pub const GENERATION: u16 = 46;
    pub const MCAST_RATE: u16 = 107;
    pub const MESH_SETUP: u16 = 112;
    pub const RX_SIGNAL_DBM: u16 = 151;
    pub const CHANNEL_WIDTH: u16 = 159;
    pub const CENTER_FREQ1: u16 = 160;
    pub const CENTER_FREQ2: u16 = 161;
    pub const SPLIT_WIPHY_DUMP: u16 = 174;
}

/// `NL80211_IFTYPE_*`.
pub mod iftype {
    pub const ADHOC: u32 = 1;
    pub const STATION: u32 = 2;
    pub const AP: u32 = 3;
    pub const MONITOR: u32 = 6;
    pub const MESH_POINT: u32 = 7;
}

/// `NL80211_CHAN_WIDTH_*` and `NL80211_CHAN_*` (legacy channel type).
pub mod chan {
    pub const WIDTH_20_NOHT: u32 = 0;
    pub const WIDTH_20: u32 = 1;
    pub const WIDTH_40: u32 = 2;
    pub const WIDTH_80: u32 = 3;
    pub const NO_HT: u32 = 0;
    pub const HT20: u32 = 1;
    pub const HT40MINUS: u32 = 2;
    pub const HT40PLUS: u32 = 3;
}

/// `NL80211_STA_INFO_*` (nested in `ATTR_STA_INFO`).
pub mod sta_info {
    pub const INACTIVE_TIME: u16 = 1;
    pub const RX_BYTES: u16 = 2;
    pub const TX_BYTES: u16 = 3;
    pub const LLID: u16 = 4;
    pub const PLID: u16 = 5;
    pub const PLINK_STATE: u16 = 6;
    pub const SIGNAL: u16 = 7;
    pub const TX_BITRATE: u16 = 8;
    pub const RX_PACKETS: u16 = 9;
    pub const TX_PACKETS: u16 = 10;
    pub const TX_FAILED: u16 = 12;
    pub const SIGNAL_AVG: u16 = 13;
    pub const CONNECTED_TIME: u16 = 16;
    pub const RX_BYTES64: u16 = 23;
    pub const TX_BYTES64: u16 = 24;
    pub const EXPECTED_THROUGHPUT: u16 = 27;
    pub const CONNECTED_TO_GATE: u16 = 38;
    pub const AIRTIME_LINK_METRIC: u16 = 41;
    pub const CONNECTED_TO_AS: u16 = 43;
}

/// `NL80211_RATE_INFO_*` (nested in `STA_INFO_TX_BITRATE`).
pub mod rate_info {
    pub const BITRATE: u16 = 1;
    pub const BITRATE32: u16 = 5;
}

/// `NL80211_PLINK_ACTION_*`.
pub mod plink_action {
    pub const OPEN: u8 = 1;
    pub const BLOCK: u8 = 2;
}

/// `NL80211_MPATH_INFO_*` (nested in `ATTR_MPATH_INFO`).
pub mod mpath_info {
    pub const FRAME_QLEN: u16 = 1;
    pub const SN: u16 = 2;
    pub const METRIC: u16 = 3;
    pub const EXPTIME: u16 = 4;
    pub const FLAGS: u16 = 5;
    pub const DISCOVERY_TIMEOUT: u16 = 6;
    pub const DISCOVERY_RETRIES: u16 = 7;
    pub const HOP_COUNT: u16 = 8;
    pub const PATH_CHANGE: u16 = 9;
}

/// `NL80211_MESH_SETUP_*` (nested in `ATTR_MESH_SETUP`).
pub mod mesh_setup {
    pub const ENABLE_VENDOR_SYNC: u16 = 6;
}

/// rtnetlink (`NETLINK_ROUTE`), for bringing links up and setting MACs.
pub mod rtnl {
    pub const RTM_NEWLINK: u16 = 16;
    pub const IFLA_ADDRESS: u16 = 1;
    pub const IFF_UP: u32 = 0x1;
    /// `sizeof(struct ifinfomsg)`.
    pub const IFINFOMSG_LEN: usize = 16;
}
