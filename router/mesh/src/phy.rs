//! Wireless devices (`GET_WIPHY`) and network interfaces on them
//! (`GET_INTERFACE`, and the reply to `NEW_INTERFACE`).

use serde::Serialize;

use crate::MacAddr;
use crate::consts::{attr, iftype};
use crate::wire::{Attrs, WireError, WireResult};

/// The name of an `NL80211_IFTYPE_*` value ("mesh point", "managed", ...).
pub fn iftype_name(t: u32) -> &'static str {
    match t {
        0 => "unspecified",
        iftype::ADHOC => "IBSS",
        iftype::STATION => "managed",
        iftype::AP => "AP",
        4 => "AP/VLAN",
        5 => "WDS",
        iftype::MONITOR => "monitor",
        iftype::MESH_POINT => "mesh point",
        8 => "P2P-client",
        9 => "P2P-GO",
        10 => "P2P-device",
        11 => "outside context of a BSS",
        12 => "NAN",
        _ => "unknown",
    }
}

/// A wireless device (phy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Wiphy {
    /// Wiphy index (`phyN` has index N unless renamed).
    pub index: u32,
    /// Name, e.g. `phy0`.
    pub name: String,
    /// Supported interface types (`NL80211_IFTYPE_*`).
    pub iftypes: Vec<u32>,
}

impl Wiphy {
    /// True when the driver can create mesh point interfaces.
    pub fn supports_mesh(&self) -> bool {
        self.iftypes.contains(&iftype::MESH_POINT)
    }

    /// Merges one message of a (split) wiphy dump into `list`: the kernel
    /// sends each wiphy in several messages, all carrying `ATTR_WIPHY`.
    pub fn merge_dump_message(list: &mut Vec<Wiphy>, attrs: Attrs<'_>) -> WireResult<()> {
        let (mut index, mut name, mut types) = (None, None, Vec::new());
        for a in attrs {
            let a = a?;
            match a.kind {
                attr::WIPHY => index = Some(a.u32("ATTR_WIPHY")?),
                attr::WIPHY_NAME => name = Some(a.string("ATTR_WIPHY_NAME")?),
                // A nest of flag attributes whose types are the iftypes.
                attr::SUPPORTED_IFTYPES => {
                    for t in a.nested() {
                        types.push(t?.kind as u32);
                    }
                }
                _ => {}
            }
        }
        let index = index.ok_or(WireError::Missing { what: "ATTR_WIPHY" })?;
        let w = match list.iter_mut().position(|w| w.index == index) {
            Some(i) => &mut list[i],
            None => {
                list.push(Wiphy { index, ..Wiphy::default() });
                list.last_mut().expect("just pushed")
            }
        };
        if let Some(n) = name {
            w.name = n;
        }
        for t in types {
            if !w.iftypes.contains(&t) {
                w.iftypes.push(t);
            }
        }
        Ok(())
    }
}

/// A network interface on a wiphy. (Linux 6.1 reports no mesh id here, nor
/// in GET_MESH_CONFIG: attach mode cannot read which mesh an interface joined.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Interface {
    /// Kernel interface index.
    pub ifindex: u32,
    /// Name, e.g. `mesh0`.
    pub name: String,
    /// `NL80211_IFTYPE_*`.
    pub iftype: u32,
    /// The wiphy it belongs to.
    pub wiphy: u32,
    /// Its MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
}

impl Interface {
    /// Parses a `NEW_INTERFACE` message (dump reply, or the reply to our own
    /// `NEW_INTERFACE` request).
    pub fn parse(attrs: Attrs<'_>) -> WireResult<Interface> {
        let mut i = Interface::default();
        let (mut ifindex, mut name, mut ty, mut wiphy) = (None, None, None, None);
        for a in attrs {
            let a = a?;
            match a.kind {
                attr::IFINDEX => ifindex = Some(a.u32("ATTR_IFINDEX")?),
                attr::IFNAME => name = Some(a.string("ATTR_IFNAME")?),
                attr::IFTYPE => ty = Some(a.u32("ATTR_IFTYPE")?),
                attr::WIPHY => wiphy = Some(a.u32("ATTR_WIPHY")?),
                attr::MAC => i.mac = Some(a.mac("ATTR_MAC")?),
                _ => {}
            }
        }
        i.ifindex = ifindex.ok_or(WireError::Missing { what: "interface ATTR_IFINDEX" })?;
        i.name = name.ok_or(WireError::Missing { what: "interface ATTR_IFNAME" })?;
        i.iftype = ty.ok_or(WireError::Missing { what: "interface ATTR_IFTYPE" })?;
        i.wiphy = wiphy.ok_or(WireError::Missing { what: "interface ATTR_WIPHY" })?;
        Ok(i)
    }

    /// True for a mesh point interface.
    pub fn is_mesh(&self) -> bool {
        self.iftype == iftype::MESH_POINT
    }
}
