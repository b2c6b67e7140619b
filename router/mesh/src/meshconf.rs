//! Mesh parameters (`NL80211_ATTR_MESH_CONFIG`, nested `NL80211_MESHCONF_*`):
//! a table mapping iw's names to attribute numbers and widths, like iw's
//! `_mesh_param_descrs` in `mesh.c`, so a name typed by an operator or read
//! from a config file becomes the exact attribute the kernel validates.
//!
//! The widths are the kernel's (`nl80211_meshconf_params_policy`): sending a
//! u32 where it wants a u8 is refused with EINVAL, and reading one as the
//! other would misreport the value, so both directions go through this table.

use std::fmt;

use serde::Serialize;

use crate::wire::{AttrWriter, Attrs, WireError, WireResult};

/// The width (and signedness) of a mesh parameter on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Width {
    /// u8 (also booleans: 0 or 1).
    U8,
    /// u16.
    U16,
    /// u32.
    U32,
    /// s32 (RSSI threshold, dBm).
    S32,
}

impl Width {
    fn range(self) -> (i64, i64) {
        match self {
            Width::U8 => (0, u8::MAX as i64),
            Width::U16 => (0, u16::MAX as i64),
            Width::U32 => (0, u32::MAX as i64),
            Width::S32 => (i32::MIN as i64, i32::MAX as i64),
        }
    }
}

/// One mesh parameter: its iw name, attribute number, width and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDesc {
    /// iw's name (`iw dev X set mesh_param NAME VALUE`).
    pub name: &'static str,
    /// `NL80211_MESHCONF_*`.
    pub attr: u16,
    /// Width the kernel accepts in SET_MESH_CONFIG / JOIN_MESH (its policy).
    pub width: Width,
    /// Width the kernel uses in GET_MESH_CONFIG replies. Equal to `width`
    /// except for `mesh_ht_opmode`: policy u16, reply u32 (Linux 6.1
    /// `nl80211_get_mesh_config` uses `nla_put_u32`; seen in the goldens).
    pub reply_width: Width,
    /// Unit or meaning, for help texts: "TU", "ms", "bool", "dBm", ...
    pub unit: &'static str,
}

const fn p(name: &'static str, attr: u16, width: Width, unit: &'static str) -> ParamDesc {
    ParamDesc { name, attr, width, reply_width: width, unit }
}

/// Every mesh parameter the 6.1 kernel knows, in attribute order. Names are
/// iw 5.19's (including its `mesh_sync_offset_max_neighor` spelling), plus
/// `mesh_ht_opmode` and `mesh_hwmp_perr_min_interval`, which iw's table
/// lacks but the kernel reports in GET_MESH_CONFIG.
pub const PARAMS: &[ParamDesc] = &[
    p("mesh_retry_timeout", 1, Width::U16, "TU"),
    p("mesh_confirm_timeout", 2, Width::U16, "TU"),
    p("mesh_holding_timeout", 3, Width::U16, "TU"),
    p("mesh_max_peer_links", 4, Width::U16, "count"),
    p("mesh_max_retries", 5, Width::U8, "count"),
    p("mesh_ttl", 6, Width::U8, "hops"),
    p("mesh_auto_open_plinks", 7, Width::U8, "bool"),
    p("mesh_hwmp_max_preq_retries", 8, Width::U8, "count"),
    p("mesh_path_refresh_time", 9, Width::U32, "ms"),
    p("mesh_min_discovery_timeout", 10, Width::U16, "ms"),
    p("mesh_hwmp_active_path_timeout", 11, Width::U32, "TU"),
    p("mesh_hwmp_preq_min_interval", 12, Width::U16, "TU"),
    p("mesh_hwmp_net_diameter_traversal_time", 13, Width::U16, "TU"),
    p("mesh_hwmp_rootmode", 14, Width::U8, "0-4"),
    p("mesh_element_ttl", 15, Width::U8, "hops"),
    p("mesh_hwmp_rann_interval", 16, Width::U16, "TU"),
    p("mesh_gate_announcements", 17, Width::U8, "bool"),
    p("mesh_hwmp_perr_min_interval", 18, Width::U16, "TU"),
    p("mesh_fwding", 19, Width::U8, "bool"),
    p("mesh_rssi_threshold", 20, Width::S32, "dBm"),
    p("mesh_sync_offset_max_neighor", 21, Width::U32, "count"),
    ParamDesc { name: "mesh_ht_opmode", attr: 22, width: Width::U16, reply_width: Width::U32, unit: "flags" },
    p("mesh_hwmp_active_path_to_root_timeout", 23, Width::U32, "TU"),
    p("mesh_hwmp_root_interval", 24, Width::U16, "TU"),
    p("mesh_hwmp_confirmation_interval", 25, Width::U16, "TU"),
    p("mesh_power_mode", 26, Width::U32, "1-3"),
    p("mesh_awake_window", 27, Width::U16, "TU"),
    p("mesh_plink_timeout", 28, Width::U32, "s"),
    p("mesh_connected_to_gate", 29, Width::U8, "bool"),
    p("mesh_nolearn", 30, Width::U8, "bool"),
    p("mesh_connected_to_as", 31, Width::U8, "bool"),
];

/// Looks a parameter up by name; the `mesh_` prefix is optional
/// (`ttl` = `mesh_ttl`), and `mesh_forwarding` is accepted for `mesh_fwding`.
pub fn by_name(name: &str) -> Option<&'static ParamDesc> {
    let full = if name.starts_with("mesh_") { name.to_owned() } else { format!("mesh_{name}") };
    let full = if full == "mesh_forwarding" { "mesh_fwding".to_owned() } else { full };
    PARAMS.iter().find(|d| d.name == full)
}

/// Looks a parameter up by attribute number.
pub fn by_attr(attr: u16) -> Option<&'static ParamDesc> {
    PARAMS.iter().find(|d| d.attr == attr)
}

/// Every parameter name, without the `mesh_` prefix, comma-separated.
fn param_names() -> String {
    PARAMS.iter().map(|d| d.name.trim_start_matches("mesh_")).collect::<Vec<_>>().join(", ")
}

/// A mesh parameter name or value that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// Not in [`PARAMS`]. The message lists the valid names itself: on a
    /// router the operator has the config and `meshpay`, not `meshctl`.
    #[error("unknown mesh parameter {0:?}; valid names (the `mesh_` prefix is optional): {names}", names = param_names())]
    Unknown(String),
    /// Does not fit the parameter's width, or is not a number.
    #[error("mesh parameter {name}: {value:?} is not a valid {width:?} value")]
    BadValue { name: &'static str, value: String, width: Width },
}

/// A set of mesh parameters, in the order they were set (the order they go
/// on the wire, as iw's command line order does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshParams {
    values: Vec<(&'static ParamDesc, i64)>,
}

impl MeshParams {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Sets a parameter by name, checking the value fits its width.
    /// Setting one twice keeps the last value in its first position.
    pub fn set(&mut self, name: &str, value: i64) -> Result<&mut Self, ParamError> {
        let d = by_name(name).ok_or_else(|| ParamError::Unknown(name.to_owned()))?;
        let (lo, hi) = d.width.range();
        if value < lo || value > hi {
            return Err(ParamError::BadValue { name: d.name, value: value.to_string(), width: d.width });
        }
        match self.values.iter_mut().find(|(e, _)| e.attr == d.attr) {
            Some(slot) => slot.1 = value,
            None => self.values.push((d, value)),
        }
        Ok(self)
    }

    /// Parses `name=value` (value: an integer, or `true/false/on/off` for booleans).
    pub fn set_str(&mut self, pair: &str) -> Result<&mut Self, ParamError> {
        let (name, value) = pair.split_once('=').ok_or_else(|| ParamError::Unknown(pair.to_owned()))?;
        let d = by_name(name.trim()).ok_or_else(|| ParamError::Unknown(name.to_owned()))?;
        let v = value.trim();
        let n = match v {
            "true" | "on" | "yes" => 1,
            "false" | "off" | "no" => 0,
            _ => v.parse::<i64>().map_err(|_| ParamError::BadValue {
                name: d.name,
                value: v.to_owned(),
                width: d.width,
            })?,
        };
        self.set(d.name, n)
    }

    /// The value of a parameter, if set.
    pub fn get(&self, name: &str) -> Option<i64> {
        let d = by_name(name)?;
        self.values.iter().find(|(e, _)| e.attr == d.attr).map(|(_, v)| *v)
    }

    /// All set parameters with their descriptions.
    pub fn iter(&self) -> impl Iterator<Item = (&'static ParamDesc, i64)> + '_ {
        self.values.iter().copied()
    }

    /// Writes the parameters as the content of an `ATTR_MESH_CONFIG` nest.
    pub fn emit(&self, w: &mut AttrWriter) {
        for (d, v) in &self.values {
            match d.width {
                Width::U8 => w.u8(d.attr, *v as u8),
                Width::U16 => w.u16(d.attr, *v as u16),
                Width::U32 => w.u32(d.attr, *v as u32),
                Width::S32 => w.i32(d.attr, *v as i32),
            };
        }
    }

    /// Parses the content of an `ATTR_MESH_CONFIG` nest (a GET_MESH_CONFIG
    /// reply). Unknown attributes (newer kernels) are skipped; a known one of
    /// the wrong width is an error; a repeated one takes the last value, as
    /// the kernel's own `nla_parse` does.
    ///
    /// Kernel quirk (seen in `tests/golden/get_mesh_param_*.txt`, Linux 6.1):
    /// `nl80211_get_mesh_config` puts `NL80211_ATTR_IFINDEX` (3, u32) *inside*
    /// the MESH_CONFIG nest, where 3 means `MESHCONF_HOLDING_TIMEOUT` (u16),
    /// before the real holding timeout. A 4-byte attribute 3 is that ifindex
    /// and is skipped.
    pub fn parse(attrs: Attrs<'_>) -> WireResult<MeshParams> {
        const MISPLACED_IFINDEX: u16 = 3;
        let mut out = MeshParams::new();
        for a in attrs {
            let a = a?;
            if a.kind == MISPLACED_IFINDEX && a.payload.len() == 4 {
                continue;
            }
            let Some(d) = by_attr(a.kind) else { continue };
            let v = match d.reply_width {
                Width::U8 => a.u8(d.name)? as i64,
                Width::U16 => a.u16(d.name)? as i64,
                Width::U32 => a.u32(d.name)? as i64,
                Width::S32 => a.i32(d.name)? as i64,
            };
            match out.values.iter_mut().find(|(e, _)| e.attr == d.attr) {
                Some(slot) => slot.1 = v,
                None => out.values.push((d, v)),
            }
        }
        if out.values.is_empty() {
            return Err(WireError::Missing { what: "MESH_CONFIG parameters" });
        }
        Ok(out)
    }
}

impl Serialize for MeshParams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.values.len()))?;
        for (d, v) in &self.values {
            m.serialize_entry(d.name, v)?;
        }
        m.end()
    }
}

impl fmt::Display for MeshParams {
    /// One `name = value` line per parameter, like `iw dev X get mesh_param`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (d, v) in &self.values {
            writeln!(f, "{} = {} {}", d.name, v, d.unit)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_unique() {
        // Attributes 1..=31 each exactly once, names unique.
        for (i, d) in PARAMS.iter().enumerate() {
            assert_eq!(d.attr as usize, i + 1, "{}", d.name);
            assert_eq!(PARAMS.iter().filter(|e| e.name == d.name).count(), 1);
        }
        assert_eq!(PARAMS.len(), 31);
    }

    #[test]
    fn set_checks_width_and_names() {
        let mut p = MeshParams::new();
        p.set("ttl", 7).unwrap();
        p.set_str("mesh_fwding=off").unwrap();
        p.set_str("mesh_rssi_threshold=-80").unwrap();
        assert_eq!(p.get("mesh_ttl"), Some(7));
        assert_eq!(p.get("forwarding"), Some(0));
        assert!(matches!(p.set("mesh_ttl", 256), Err(ParamError::BadValue { .. })));
        assert!(matches!(p.set("mesh_max_peer_links", -1), Err(ParamError::BadValue { .. })));
        let e = p.set("mesh_bogus", 1).unwrap_err();
        assert!(matches!(e, ParamError::Unknown(_)));
        // The message itself lists every valid name (no tool to look them up
        // on a router), and points at no tool the router lacks.
        let text = e.to_string();
        assert!(text.contains("\"mesh_bogus\""), "{text}");
        for d in PARAMS {
            assert!(text.contains(d.name.trim_start_matches("mesh_")), "{} missing: {text}", d.name);
        }
        assert!(!text.contains("meshctl"), "{text}");
        assert!(matches!(p.set_str("mesh_ttl=seven"), Err(ParamError::BadValue { .. })));
        p.set("mesh_ttl", 9).unwrap();
        assert_eq!(p.iter().next().unwrap(), (by_name("mesh_ttl").unwrap(), 9));
    }

    #[test]
    fn emit_parse_roundtrip_all_widths() {
        let mut p = MeshParams::new();
        p.set("mesh_hwmp_rootmode", 4)
            .unwrap()
            .set("mesh_max_peer_links", 32)
            .unwrap()
            .set("mesh_path_refresh_time", 1000)
            .unwrap()
            .set("mesh_rssi_threshold", -75)
            .unwrap();
        let mut w = AttrWriter::new();
        p.emit(&mut w);
        let b = w.finish();
        // 4 attributes, each 8 bytes after padding.
        assert_eq!(b.len(), 32);
        assert_eq!(&b[0..5], &[5, 0, 14, 0, 4]);
        assert_eq!(&b[24..32], &[8, 0, 20, 0, 0xb5, 0xff, 0xff, 0xff]);
        assert_eq!(MeshParams::parse(Attrs::new(&b)).unwrap(), p);
    }

    #[test]
    fn parse_rejects_wrong_width_and_skips_unknown() {
        let mut w = AttrWriter::new();
        w.u32(99, 1).u8(6, 5);
        let b = w.finish();
        let p = MeshParams::parse(Attrs::new(&b)).unwrap();
        assert_eq!(p.get("mesh_ttl"), Some(5));
        // The misplaced ifindex (attribute 3, u32) is skipped, the real
        // holding timeout (u16) kept.
        let mut w = AttrWriter::new();
        w.u32(3, 2).u16(3, 100);
        let b = w.finish();
        assert_eq!(MeshParams::parse(Attrs::new(&b)).unwrap().get("mesh_holding_timeout"), Some(100));
        let mut w = AttrWriter::new();
        w.u32(6, 5);
        let b = w.finish();
        let e = MeshParams::parse(Attrs::new(&b)).unwrap_err();
        assert_eq!(e.to_string(), "mesh_ttl: expected 1 bytes, got 4");
    }
}
