//! Request builders: pure functions from typed parameters to the exact
//! attribute bytes the kernel expects, in the order iw 5.19 sends them (so a
//! capture of iw is a golden reference; see `tests/golden.rs`).

use std::fmt;
use std::str::FromStr;

use crate::MacAddr;
use crate::consts::{attr, chan, cmd, ctrl, iftype, mesh_setup, plink_action, rtnl};
use crate::meshconf::MeshParams;
use crate::wire::{AttrWriter, GenlRequest, NLM_F_ACK, NLM_F_REQUEST, emit_nlmsg};

/// A request whose parameters cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

/// Channel width and HT mode for a join, as iw's `mesh join ... freq F [MODE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelWidth {
    /// 20 MHz without HT (iw's default when no mode is given).
    #[default]
    NoHt20,
    /// HT20.
    Ht20,
    /// HT40 with the secondary channel below.
    Ht40Minus,
    /// HT40 with the secondary channel above.
    Ht40Plus,
    /// VHT 80 MHz (5 GHz only).
    Vht80,
}

impl FromStr for ChannelWidth {
    type Err = RequestError;

    /// Accepts iw's names (`NOHT`, `HT20`, `HT40-`, `HT40+`, `80MHz`) and
    /// the short forms `20-noht`, `20`, `40-`, `40+`, `80`, case-insensitive.
    fn from_str(s: &str) -> Result<Self, RequestError> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "20-noht" | "noht" | "no-ht" => Self::NoHt20,
            "20" | "ht20" => Self::Ht20,
            "40-" | "ht40-" => Self::Ht40Minus,
            "40+" | "ht40+" => Self::Ht40Plus,
            "80" | "80mhz" | "vht80" => Self::Vht80,
            _ => {
                return Err(RequestError(format!(
                    "unknown channel width {s:?}: use 20-noht, 20, 40-, 40+ or 80"
                )));
            }
        })
    }
}

impl fmt::Display for ChannelWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoHt20 => "20-noht",
            Self::Ht20 => "20",
            Self::Ht40Minus => "40-",
            Self::Ht40Plus => "40+",
            Self::Vht80 => "80",
        })
    }
}

/// 5 GHz 80 MHz blocks: (first control channel MHz, last, center).
const VHT80_BLOCKS: &[(u32, u32, u32)] = &[
    (5180, 5240, 5210),
    (5260, 5320, 5290),
    (5500, 5560, 5530),
    (5580, 5640, 5610),
    (5660, 5720, 5690),
    (5745, 5805, 5775),
    (5825, 5885, 5855),
];

impl ChannelWidth {
    /// (`CHANNEL_WIDTH`, legacy `WIPHY_CHANNEL_TYPE` if any, `CENTER_FREQ1`)
    /// for control frequency `freq`, as iw's `parse_freqchan`/`put_chandef`
    /// compute them.
    pub fn chandef(self, freq: u32) -> Result<(u32, Option<u32>, u32), RequestError> {
        Ok(match self {
            Self::NoHt20 => (chan::WIDTH_20_NOHT, Some(chan::NO_HT), freq),
            Self::Ht20 => (chan::WIDTH_20, Some(chan::HT20), freq),
            Self::Ht40Minus => (chan::WIDTH_40, Some(chan::HT40MINUS), freq - 10),
            Self::Ht40Plus => (chan::WIDTH_40, Some(chan::HT40PLUS), freq + 10),
            Self::Vht80 => {
                let (_, _, c) = VHT80_BLOCKS
                    .iter()
                    .find(|(lo, hi, _)| (*lo..=*hi).contains(&freq))
                    .ok_or_else(|| RequestError(format!("{freq} MHz is not in a 5 GHz 80 MHz block")))?;
                (chan::WIDTH_80, None, *c)
            }
        })
    }
}

/// Everything `JOIN_MESH` carries. Build with [`JoinParams::new`] and set
/// the optional fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinParams {
    /// Mesh id, 1 to 32 bytes.
    pub mesh_id: String,
    /// Control channel frequency, MHz (2412 = channel 1).
    pub freq_mhz: u32,
    /// Width / HT mode.
    pub width: ChannelWidth,
    /// Beacon interval, TU.
    pub beacon_interval_tu: Option<u32>,
    /// DTIM period.
    pub dtim_period: Option<u32>,
    /// Multicast rate, in 100 kbit/s units (60 = 6 Mbit/s).
    pub mcast_rate_100kbps: Option<u32>,
    /// Basic rates, in 500 kbit/s units (12 = 6 Mbit/s).
    pub basic_rates: Vec<u8>,
    /// Mesh parameters applied in the same JOIN message.
    pub params: MeshParams,
}

impl JoinParams {
    /// A join on `freq_mhz`, 20 MHz no-HT, no other settings.
    pub fn new(mesh_id: &str, freq_mhz: u32) -> Self {
        JoinParams {
            mesh_id: mesh_id.to_owned(),
            freq_mhz,
            width: ChannelWidth::default(),
            beacon_interval_tu: None,
            dtim_period: None,
            mcast_rate_100kbps: None,
            basic_rates: Vec::new(),
            params: MeshParams::new(),
        }
    }
}

fn check_mesh_id(id: &str) -> Result<(), RequestError> {
    if id.is_empty() || id.len() > 32 {
        return Err(RequestError(format!("mesh id must be 1 to 32 bytes, {:?} has {}", id, id.len())));
    }
    Ok(())
}

/// Checks an interface name as the kernel does (`dev_valid_name`).
pub fn check_ifname(name: &str) -> Result<(), RequestError> {
    if name.is_empty()
        || name.len() >= 16
        || name == "."
        || name == ".."
        || name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        return Err(RequestError(format!(
            "invalid interface name {name:?}: 1 to 15 bytes, no '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// `CTRL_CMD_GETFAMILY` for `name` (sent to `GENL_ID_CTRL`).
pub fn get_family(name: &str) -> GenlRequest {
    let mut w = AttrWriter::new();
    w.string_nul(ctrl::ATTR_FAMILY_NAME, name);
    GenlRequest { cmd: ctrl::CMD_GETFAMILY, version: 1, dump: false, attrs: w.finish() }
}

/// `GET_WIPHY` dump, split (`ATTR_SPLIT_WIPHY_DUMP`), as `iw list` asks.
pub fn get_wiphy_dump() -> GenlRequest {
    let mut w = AttrWriter::new();
    w.flag(attr::SPLIT_WIPHY_DUMP);
    GenlRequest { cmd: cmd::GET_WIPHY, version: 0, dump: true, attrs: w.finish() }
}

/// `GET_INTERFACE` dump (`iw dev`).
pub fn get_interface_dump() -> GenlRequest {
    GenlRequest { cmd: cmd::GET_INTERFACE, version: 0, dump: true, attrs: Vec::new() }
}

/// `NEW_INTERFACE` of type mesh point on `wiphy`, **without** a mesh id: an
/// interface created with one auto-joins when set up, and the explicit
/// JOIN (which carries the channel and parameters) then fails with EALREADY.
/// `mac` sets its address at creation (`iw ... interface add X type mp addr M`).
pub fn new_mesh_interface(
    wiphy: u32,
    ifname: &str,
    mac: Option<MacAddr>,
) -> Result<GenlRequest, RequestError> {
    check_ifname(ifname)?;
    let mut w = AttrWriter::new();
    w.u32(attr::WIPHY, wiphy).string_nul(attr::IFNAME, ifname).u32(attr::IFTYPE, iftype::MESH_POINT);
    if let Some(m) = mac {
        w.bytes(attr::MAC, &m.0);
    }
    Ok(GenlRequest { cmd: cmd::NEW_INTERFACE, version: 0, dump: false, attrs: w.finish() })
}

/// `DEL_INTERFACE`.
pub fn del_interface(ifindex: u32) -> GenlRequest {
    ifindex_only(cmd::DEL_INTERFACE, ifindex, false)
}

fn ifindex_only(c: u8, ifindex: u32, dump: bool) -> GenlRequest {
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, ifindex);
    GenlRequest { cmd: c, version: 0, dump, attrs: w.finish() }
}

/// `JOIN_MESH`: ifindex, mesh id, channel definition, rates, beacon
/// interval, DTIM period and, if any parameters are set, a `MESH_CONFIG`
/// nest, in iw's order (golden: `tests/golden/join_full.txt`).
pub fn join_mesh(ifindex: u32, p: &JoinParams) -> Result<GenlRequest, RequestError> {
    join_mesh_with_setup(ifindex, p, None)
}

/// Like [`join_mesh`], with `MESH_SETUP_ENABLE_VENDOR_SYNC` in the setup
/// nest when `vendor_sync` is given (`iw ... mesh join ... vendor_sync on`).
pub fn join_mesh_with_setup(
    ifindex: u32,
    p: &JoinParams,
    vendor_sync: Option<bool>,
) -> Result<GenlRequest, RequestError> {
    check_mesh_id(&p.mesh_id)?;
    let (width, chan_type, cf1) = p.width.chandef(p.freq_mhz)?;
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, ifindex).bytes(attr::MESH_ID, p.mesh_id.as_bytes());
    w.u32(attr::WIPHY_FREQ, p.freq_mhz).u32(attr::CHANNEL_WIDTH, width);
    if let Some(t) = chan_type {
        w.u32(attr::WIPHY_CHANNEL_TYPE, t);
    }
    w.u32(attr::CENTER_FREQ1, cf1);
    if !p.basic_rates.is_empty() {
        w.bytes(attr::BSS_BASIC_RATES, &p.basic_rates);
    }
    if let Some(r) = p.mcast_rate_100kbps {
        w.u32(attr::MCAST_RATE, r);
    }
    if let Some(b) = p.beacon_interval_tu {
        w.u32(attr::BEACON_INTERVAL, b);
    }
    if let Some(d) = p.dtim_period {
        w.u32(attr::DTIM_PERIOD, d);
    }
    if let Some(on) = vendor_sync {
        w.nest(attr::MESH_SETUP, |n| {
            n.u8(mesh_setup::ENABLE_VENDOR_SYNC, on as u8);
        });
    }
    if !p.params.is_empty() {
        w.nest(attr::MESH_CONFIG, |n| p.params.emit(n));
    }
    Ok(GenlRequest { cmd: cmd::JOIN_MESH, version: 0, dump: false, attrs: w.finish() })
}

/// `LEAVE_MESH` (only the ifindex, as iw sends it).
pub fn leave_mesh(ifindex: u32) -> GenlRequest {
    ifindex_only(cmd::LEAVE_MESH, ifindex, false)
}

/// `GET_MESH_CONFIG`.
pub fn get_mesh_config(ifindex: u32) -> GenlRequest {
    ifindex_only(cmd::GET_MESH_CONFIG, ifindex, false)
}

/// `SET_MESH_CONFIG` with a `MESH_CONFIG` nest (`iw dev X set mesh_param ...`).
pub fn set_mesh_config(ifindex: u32, params: &MeshParams) -> Result<GenlRequest, RequestError> {
    if params.is_empty() {
        return Err(RequestError("no mesh parameters to set".into()));
    }
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, ifindex).nest(attr::MESH_CONFIG, |n| params.emit(n));
    Ok(GenlRequest { cmd: cmd::SET_MESH_CONFIG, version: 0, dump: false, attrs: w.finish() })
}

/// `GET_STATION` dump (`iw dev X station dump`).
pub fn get_station_dump(ifindex: u32) -> GenlRequest {
    ifindex_only(cmd::GET_STATION, ifindex, true)
}

/// `GET_MPATH` dump (`iw dev X mpath dump`).
pub fn get_mpath_dump(ifindex: u32) -> GenlRequest {
    ifindex_only(cmd::GET_MPATH, ifindex, true)
}

/// `SET_STATION` with `STA_PLINK_ACTION`: block (or re-open) the peer link
/// to `mac` (`iw dev X station set M plink_action block|open`).
pub fn set_plink_action(ifindex: u32, mac: MacAddr, blocked: bool) -> GenlRequest {
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, ifindex)
        .bytes(attr::MAC, &mac.0)
        .u8(attr::STA_PLINK_ACTION, if blocked { plink_action::BLOCK } else { plink_action::OPEN });
    GenlRequest { cmd: cmd::SET_STATION, version: 0, dump: false, attrs: w.finish() }
}

/// rtnetlink `RTM_NEWLINK` changing the UP flag and/or the MAC address of
/// `ifindex`, as `ip link set DEV up|down [address M]` sends it. The whole
/// message, ready for a `NETLINK_ROUTE` socket.
pub fn rtnl_set_link(ifindex: u32, up: Option<bool>, mac: Option<MacAddr>, seq: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(rtnl::IFINFOMSG_LEN + 12);
    p.extend_from_slice(&[0, 0]); // ifi_family AF_UNSPEC, pad
    p.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    p.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    let (flags, change) = match up {
        Some(true) => (rtnl::IFF_UP, rtnl::IFF_UP),
        Some(false) => (0, rtnl::IFF_UP),
        None => (0, 0),
    };
    p.extend_from_slice(&flags.to_ne_bytes());
    p.extend_from_slice(&change.to_ne_bytes());
    if let Some(m) = mac {
        let mut w = AttrWriter::new();
        w.bytes(rtnl::IFLA_ADDRESS, &m.0);
        p.extend_from_slice(&w.finish());
    }
    emit_nlmsg(rtnl::RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chandefs() {
        assert_eq!(ChannelWidth::NoHt20.chandef(2412).unwrap(), (0, Some(0), 2412));
        assert_eq!(ChannelWidth::Ht40Plus.chandef(2412).unwrap(), (2, Some(3), 2422));
        assert_eq!(ChannelWidth::Ht40Minus.chandef(2437).unwrap(), (2, Some(2), 2427));
        assert_eq!(ChannelWidth::Vht80.chandef(5180).unwrap(), (3, None, 5210));
        assert!(ChannelWidth::Vht80.chandef(2412).is_err());
        assert_eq!("HT40+".parse::<ChannelWidth>().unwrap(), ChannelWidth::Ht40Plus);
        assert!("41".parse::<ChannelWidth>().is_err());
    }

    #[test]
    fn bad_names_and_ids_are_refused() {
        assert!(new_mesh_interface(0, "", None).is_err());
        assert!(new_mesh_interface(0, "a-name-that-is-too-long", None).is_err());
        assert!(new_mesh_interface(0, "a/b", None).is_err());
        assert!(join_mesh(3, &JoinParams::new("", 2412)).is_err());
        assert!(join_mesh(3, &JoinParams::new(&"x".repeat(33), 2412)).is_err());
        assert!(set_mesh_config(3, &MeshParams::new()).is_err());
    }

    #[test]
    fn vendor_sync_fills_the_setup_nest() {
        let p = JoinParams::new("m", 2412);
        let plain = join_mesh(3, &p).unwrap().attrs;
        let sync = join_mesh_with_setup(3, &p, Some(true)).unwrap().attrs;
        assert_eq!(sync.len(), plain.len() + 12);
        assert_eq!(&sync[sync.len() - 12..], &[12, 0, 112, 0x80, 5, 0, 6, 0, 1, 0, 0, 0]);
    }
}
