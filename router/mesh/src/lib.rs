//! IEEE 802.11s mesh control over nl80211 (generic netlink), for the
//! meshpay router and the `meshctl` tool.
//!
//! Two layers:
//!
//! * **Sans-IO wire code**: [`msg`] builds requests as bytes, [`station`],
//!   [`mpath`], [`phy`], [`event`] and [`meshconf`] parse kernel messages
//!   with every attribute width checked ([`wire`]). Pure functions: the unit
//!   tests compare them with bytes captured from `iw` on a real kernel.
//! * **[`Nl80211`]**, a small synchronous client that sends those requests
//!   over a netlink socket (neli's `NlSocket`), and [`EventSocket`] for the
//!   `mlme` multicast group (a pollable fd; with feature `tokio`,
//!   `AsyncEventSocket` puts it on tokio's reactor).
//!
//! The life of a managed mesh interface, as the daemon drives it:
//!
//! ```no_run
//! use meshpay_mesh::{JoinParams, Nl80211};
//! # fn main() -> meshpay_mesh::Result<()> {
//! let mut nl = Nl80211::connect()?;
//! let phy = nl.phy("phy0")?;
//! let iface = nl.create_mesh_interface(&phy, "mesh0", None)?; // refuses a phy without mesh point
//! nl.set_up(iface.ifindex, true)?;
//! let mut join = JoinParams::new("meshpay", 2412);
//! join.params.set("mesh_fwding", 1).expect("valid parameter");
//! nl.join(iface.ifindex, &join)?;
//! for sta in nl.stations(iface.ifindex)? {
//!     println!("{} {:?} metric {:?}", sta.mac, sta.plink_state, sta.airtime_metric);
//! }
//! nl.leave(iface.ifindex)?;
//! nl.delete_interface(iface.ifindex)?;
//! # Ok(()) }
//! ```
//!
//! Everything that changes state needs CAP_NET_ADMIN; dumps do not.

pub mod client;
pub mod consts;
pub mod error;
pub mod event;
pub mod meshconf;
pub mod mpath;
pub mod msg;
pub mod phy;
pub mod station;
pub mod wire;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[cfg(feature = "tokio")]
pub use client::AsyncEventSocket;
pub use client::{EventSocket, Nl80211, ifindex};
pub use error::{Error, ErrorKind, Result};
pub use event::Event;
pub use meshconf::MeshParams;
pub use mpath::MeshPath;
pub use msg::{ChannelWidth, JoinParams};
pub use phy::{Interface, Wiphy};
pub use station::{PlinkState, Station};

/// A 48-bit MAC address, printed and parsed as `02:00:00:00:01:00`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", a[0], a[1], a[2], a[3], a[4], a[5])
    }
}

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex bytes like 02:00:00:00:01:00")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;

    fn from_str(s: &str) -> std::result::Result<Self, BadMac> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(|| BadMac(s.to_owned()))?;
            if p.len() != 2 {
                return Err(BadMac(s.to_owned()));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| BadMac(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(BadMac(s.to_owned()));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_print() {
        let m: MacAddr = "42:00:00:00:01:0A".parse().unwrap();
        assert_eq!(m.to_string(), "42:00:00:00:01:0a");
        for bad in ["", "42:00:00:00:01", "42:00:00:00:01:00:00", "4:00:00:00:01:00", "zz:00:00:00:01:00"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
