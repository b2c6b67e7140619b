//! The router's configuration (TOML).
//!
//! Parsing is strict: an unknown key is an error, and every error names the
//! offending key (`transport[1].plugin`) and its line. Plugin sections carry
//! an opaque `config` table that is handed to the plugin as JSON; in its
//! strings `{state_dir}` expands to the node's state directory.
//!
//! With no config file the router runs on [`DEFAULT_CONFIG`], embedded from
//! `configs/default.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The embedded defaults: a single node, the default plugins, no radio.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.toml");

/// The routing plugin when the config names none.
pub const DEFAULT_ROUTING: &str = "org.meshpay.routing.epidemic";

/// Where relative plugin library names are looked up by default.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/meshpay/plugins";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub bundles: BundlesSection,
    #[serde(default)]
    pub plugins: PluginsSection,
    /// 802.11s: managed (meshpay creates and joins the mesh) or attach.
    pub mesh: Option<MeshSection>,
    /// `[[transport]]` sections, one per transport instance.
    #[serde(default, rename = "transport")]
    pub transports: Vec<PluginSection>,
    pub routing: Option<PluginSection>,
    pub consensus: Option<PluginSection>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// A label for logs and status; defaults to the host name.
    pub name: Option<String>,
    /// error, warn, info, debug or trace.
    pub log_level: Option<String>,
    /// Used when neither `--state-dir` nor `MESHPAY_STATE_DIR` is given.
    pub state_dir: Option<PathBuf>,
}

/// The bundle store (LMDB, in `<state-dir>/db`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Most MiB of bundles held; beyond it relayed bundles are evicted,
    /// lowest priority and oldest first.
    pub quota_mb: u64,
    /// Largest bundle accepted, in KiB.
    pub max_bundle_kb: u64,
    /// LMDB map size in MiB; default: twice the quota plus 256.
    pub map_mb: Option<u64>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection { quota_mb: 256, max_bundle_kb: 1024, map_mb: None }
    }
}

/// How bundles travel: lifetimes, limits, and what one neighbour may do.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BundlesSection {
    /// Lifetime of bundles created here, in seconds.
    pub default_lifetime_s: u64,
    pub hop_limit: u32,
    /// Bundles sent and not yet acknowledged, per neighbour.
    pub window: usize,
    pub retransmit_ms: u64,
    /// Inbound limits per neighbour.
    pub peer_rate_bundles_per_s: f64,
    pub peer_rate_mb_per_s: f64,
    /// Most MiB held that came from one neighbour.
    pub peer_quota_mb: u64,
}

impl Default for BundlesSection {
    fn default() -> Self {
        BundlesSection {
            default_lifetime_s: 24 * 3600,
            hop_limit: 32,
            window: 64,
            retransmit_ms: 2000,
            peer_rate_bundles_per_s: 100_000.0,
            peer_rate_mb_per_s: 1000.0,
            peer_quota_mb: 64,
        }
    }
}

/// Who sets up the 802.11s interface.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MeshMode {
    /// meshpay creates the interface on `phy`, joins `mesh_id`, and leaves
    /// and deletes it on shutdown.
    Managed,
    /// meshpay uses an interface something else set up (OpenWrt's wireless
    /// config, wpad-mesh with SAE): it only watches and tunes it.
    Attach,
}

/// The 802.11s mesh interface.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MeshSection {
    pub mode: MeshMode,
    /// The mesh interface: created (managed) or used (attach).
    pub interface: String,
    /// Managed: the radio, e.g. `phy0`.
    pub phy: Option<String>,
    /// Managed: the mesh id (1 to 32 bytes).
    pub mesh_id: Option<String>,
    /// Managed: control channel frequency in MHz.
    #[serde(default = "default_frequency")]
    pub frequency: u32,
    /// Managed: `20-noht`, `20`, `40-`, `40+` or `80`.
    #[serde(default = "default_width")]
    pub channel_width: String,
    /// Managed: the interface's MAC address.
    pub mac: Option<String>,
    /// Managed: beacon interval in TU.
    pub beacon_interval: Option<u32>,
    /// Peers whose peer link is blocked (plink action block): shapes the mesh.
    #[serde(default)]
    pub blocked_peers: Vec<String>,
    /// Mesh parameters by iw's (and OpenWrt's) names, with or without the
    /// `mesh_` prefix: `fwding = 1`, `rssi_threshold = -80`,
    /// `hwmp_rootmode = 0`, `ttl = 31`, ...
    #[serde(default)]
    pub params: BTreeMap<String, i64>,
    /// Managed: leave the mesh and delete the interface on shutdown.
    #[serde(default = "yes")]
    pub leave_on_exit: bool,
    /// How often peers and paths are re-read, in ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_frequency() -> u32 {
    2412
}
fn default_width() -> String {
    "20-noht".into()
}
fn default_poll_ms() -> u64 {
    1000
}

impl MeshSection {
    /// The mesh parameters, checked against nl80211's table.
    pub fn mesh_params(&self) -> Result<meshpay_mesh::MeshParams, String> {
        let mut p = meshpay_mesh::MeshParams::new();
        for (name, value) in &self.params {
            let full = if name.starts_with("mesh_") { name.clone() } else { format!("mesh_{name}") };
            p.set(&full, *value).map_err(|e| format!("mesh.params.{name}: {e}"))?;
        }
        Ok(p)
    }

    pub fn blocked(&self) -> Result<Vec<meshpay_mesh::MacAddr>, String> {
        self.blocked_peers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.parse().map_err(|_| format!("mesh.blocked_peers[{i}]: `{m}` is not a MAC address"))
            })
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        meshpay_mesh::msg::check_ifname(&self.interface).map_err(|e| format!("mesh.interface: {}", e.0))?;
        self.mesh_params()?;
        self.blocked()?;
        if self.poll_ms < 100 {
            return Err("mesh.poll_ms: at least 100".into());
        }
        match self.mode {
            MeshMode::Managed => {
                if self.phy.as_deref().unwrap_or("").is_empty() {
                    return Err("mesh.phy: required in managed mode (the radio, e.g. phy0)".into());
                }
                match self.mesh_id.as_deref() {
                    Some(id) if !id.is_empty() && id.len() <= 32 => {}
                    _ => return Err("mesh.mesh_id: required in managed mode, 1 to 32 bytes".into()),
                }
                let width: meshpay_mesh::ChannelWidth = self
                    .channel_width
                    .parse()
                    .map_err(|e: meshpay_mesh::msg::RequestError| format!("mesh.channel_width: {}", e.0))?;
                // Range checks first: the channel definition is arithmetic
                // on the frequency (40- subtracts, 40+ adds).
                let band = wifi_band(self.frequency).ok_or_else(|| {
                    format!(
                        "mesh.frequency: {} MHz is not a Wi-Fi channel's centre frequency \
                         (2412 to 2484, 4910 to 5925 or 5935 to 7115 MHz, e.g. 2412 for channel 1)",
                        self.frequency
                    )
                })?;
                let secondary = match width {
                    meshpay_mesh::ChannelWidth::Ht40Minus => Some(self.frequency - 20),
                    meshpay_mesh::ChannelWidth::Ht40Plus => Some(self.frequency + 20),
                    _ => None,
                };
                if let Some(second) = secondary
                    && wifi_band(second) != Some(band)
                {
                    return Err(format!(
                        "mesh.channel_width: `{}` at {} MHz needs a secondary channel at {second} MHz, \
                         outside the {band} band (use {} or a 20 MHz width)",
                        self.channel_width,
                        self.frequency,
                        if second < self.frequency { "40+" } else { "40-" }
                    ));
                }
                width.chandef(self.frequency).map_err(|e| format!("mesh.channel_width: {}", e.0))?;
                if let Some(mac) = &self.mac {
                    mac.parse::<meshpay_mesh::MacAddr>()
                        .map_err(|_| format!("mesh.mac: `{mac}` is not a MAC address"))?;
                }
            }
            MeshMode::Attach => {
                for (key, set) in [
                    ("phy", self.phy.is_some()),
                    ("mesh_id", self.mesh_id.is_some()),
                    ("mac", self.mac.is_some()),
                    ("beacon_interval", self.beacon_interval.is_some()),
                ] {
                    if set {
                        return Err(format!(
                            "mesh.{key}: only in managed mode (attach uses the interface as it is)"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The band whose 20 MHz channel raster holds `freq` (MHz), by the
/// kernel's channel-to-frequency mapping: 2.4 GHz channels 1 to 14, 5 GHz
/// (with 4.9 GHz and 5.9 GHz) on 5 MHz steps, 6 GHz on 5 MHz steps.
fn wifi_band(freq: u32) -> Option<&'static str> {
    match freq {
        2484 => Some("2.4 GHz"),
        2412..=2472 if (freq - 2407).is_multiple_of(5) => Some("2.4 GHz"),
        4910..=5925 if freq.is_multiple_of(5) => Some("5 GHz"),
        5935..=7115 if freq.is_multiple_of(5) => Some("6 GHz"),
        _ => None,
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginsSection {
    /// Directory for plugin libraries given by file name.
    pub dir: Option<PathBuf>,
}

/// One plugin instance.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// Instance name, unique per kind; defaults to `<kind><index>`.
    pub name: Option<String>,
    /// A built-in plugin id (`org.meshpay.transport.unixdgram`) or a library
    /// file: an absolute path, or a file name in `[plugins] dir`.
    pub plugin: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Passed to the plugin as JSON.
    #[serde(default)]
    pub config: toml::Table,
    /// TOML files the router reads and hands to the plugin inside its
    /// config, under the given keys (`{ committee = "/etc/meshpay/committee.toml" }`):
    /// plugins never touch the file system themselves. A relative path is
    /// relative to the directory of the config file that names it.
    #[serde(default)]
    pub config_files: std::collections::BTreeMap<String, PathBuf>,
}

fn yes() -> bool {
    true
}

/// A configuration error; the message names the key and, where known, the line.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    pub origin: String,
    pub message: String,
}

/// How a `plugin = ...` value is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginRef {
    Builtin(String),
    Library(PathBuf),
}

impl PluginSection {
    /// Library if the value looks like a file (has a `/` or ends in `.so`),
    /// otherwise a built-in id.
    pub fn plugin_ref(&self, plugin_dir: &Path) -> PluginRef {
        let p = &self.plugin;
        if p.contains('/') {
            PluginRef::Library(PathBuf::from(p))
        } else if p.ends_with(".so") {
            PluginRef::Library(plugin_dir.join(p))
        } else {
            PluginRef::Builtin(p.clone())
        }
    }

    /// The plugin's config as JSON bytes: `{state_dir}` expanded, and each
    /// of `config_files` read (TOML) and placed under its key.
    pub fn config_json(&self, state_dir: &Path) -> Result<Vec<u8>, String> {
        let mut value = serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null);
        expand(&mut value, &state_dir.display().to_string());
        for (key, path) in &self.config_files {
            if self.config.contains_key(key) {
                return Err(format!("config_files.{key}: `{key}` is also set in `config`"));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config_files.{key}: cannot read {}: {e}", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| format!("config_files.{key}: {}: {}", path.display(), e.message()))?;
            if let serde_json::Value::Object(map) = &mut value {
                map.insert(key.clone(), serde_json::to_value(table).map_err(|e| e.to_string())?);
            }
        }
        serde_json::to_vec(&value).map_err(|e| e.to_string())
    }
}

fn expand(v: &mut serde_json::Value, state_dir: &str) {
    match v {
        serde_json::Value::String(s) if s.contains("{state_dir}") => *s = s.replace("{state_dir}", state_dir),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| expand(x, state_dir)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| expand(x, state_dir)),
        _ => {}
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

impl Config {
    /// Parses and checks a configuration; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { origin: origin.to_owned(), message };
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let line = e.span().map(|s| format!("line {}: ", line_of(text, s.start))).unwrap_or_default();
            err(format!("{line}{}", e.message()))
        })?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line =
                inner.span().map(|s| format!(" (line {})", line_of(text, s.start))).unwrap_or_default();
            let key = if path == "." { String::new() } else { format!("{path}: ") };
            err(format!("{key}{}{line}", inner.message().trim_end()))
        })?;
        config.check().map_err(err)?;
        Ok(config)
    }

    /// The embedded defaults.
    pub fn default_config() -> Config {
        Config::parse(DEFAULT_CONFIG, "built-in default config").expect("configs/default.toml is valid")
    }

    /// Loads `path`, or the defaults if `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Ok(Self::default_config()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    origin: p.display().to_string(),
                    message: format!("cannot read: {e}"),
                })?;
                let mut config = Config::parse(&text, &p.display().to_string())?;
                // Relative `config_files` are relative to this file, so a
                // config and its committee file can move together.
                let base = p.parent().unwrap_or(Path::new("."));
                for section in config
                    .transports
                    .iter_mut()
                    .chain(config.routing.as_mut())
                    .chain(config.consensus.as_mut())
                {
                    for path in section.config_files.values_mut() {
                        if path.is_relative() {
                            *path = base.join(&*path);
                        }
                    }
                }
                Ok(config)
            }
        }
    }

    /// Checks what serde cannot: values and cross-references.
    fn check(&self) -> Result<(), String> {
        if let Some(level) = &self.node.log_level
            && !["error", "warn", "info", "debug", "trace"].contains(&level.as_str())
        {
            return Err(format!("node.log_level: `{level}` is not one of error, warn, info, debug, trace"));
        }
        let mut names = BTreeSet::new();
        for (i, t) in self.transports.iter().enumerate() {
            let name = self.transport_name(i);
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!("transport[{i}].name: `{name}` must be non-empty and without spaces"));
            }
            if !names.insert(name.clone()) {
                return Err(format!("transport[{i}].name: `{name}` is used by another transport"));
            }
            check_plugin(&t.plugin, &format!("transport[{i}].plugin"))?;
        }
        if let Some(r) = &self.routing {
            check_plugin(&r.plugin, "routing.plugin")?;
        }
        if let Some(m) = &self.mesh {
            m.check()?;
        }
        let st = &self.store;
        if st.quota_mb == 0 {
            return Err("store.quota_mb: must be at least 1".into());
        }
        if st.max_bundle_kb < 64 || st.max_bundle_kb * 1024 > st.quota_mb * 1024 * 1024 {
            return Err("store.max_bundle_kb: must be at least 64 and fit in store.quota_mb".into());
        }
        if let Some(map) = st.map_mb
            && map < st.quota_mb + 16
        {
            return Err(format!(
                "store.map_mb: {map} leaves no room beyond quota_mb ({}): use at least quota_mb + 16",
                st.quota_mb
            ));
        }
        let b = &self.bundles;
        if b.window == 0 || b.hop_limit == 0 || b.default_lifetime_s == 0 || b.retransmit_ms == 0 {
            return Err(
                "bundles: window, hop_limit, default_lifetime_s and retransmit_ms must be positive".into()
            );
        }
        if !(b.peer_rate_bundles_per_s > 0.0 && b.peer_rate_mb_per_s > 0.0) || b.peer_quota_mb == 0 {
            return Err(
                "bundles: peer_rate_bundles_per_s, peer_rate_mb_per_s and peer_quota_mb must be positive"
                    .into(),
            );
        }
        if let Some(c) = &self.consensus {
            check_plugin(&c.plugin, "consensus.plugin")?;
        }
        Ok(())
    }

    /// The routing section, or the default (epidemic).
    pub fn routing_section(&self) -> PluginSection {
        self.routing.clone().unwrap_or(PluginSection {
            name: None,
            plugin: DEFAULT_ROUTING.to_owned(),
            enabled: true,
            config: toml::Table::new(),
            config_files: Default::default(),
        })
    }

    /// The name of transport `index`.
    pub fn transport_name(&self, index: usize) -> String {
        self.transports[index].name.clone().unwrap_or_else(|| format!("transport{index}"))
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.plugins.dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PLUGIN_DIR))
    }
}

fn check_plugin(value: &str, key: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{key}: must name a built-in plugin id or a plugin library"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_config_parses() {
        let c = Config::default_config();
        assert!(!c.transports.is_empty());
    }

    #[test]
    fn errors_name_the_offending_key_and_line() {
        let text = "[node]\nname = \"a\"\n\n[[transport]]\nplugin = \"x.so\"\nconfg = {}\n";
        let e = Config::parse(text, "t.toml").unwrap_err().to_string();
        assert!(e.starts_with("t.toml: transport[0]"), "{e}");
        assert!(e.contains("confg") && e.contains("line 6"), "{e}");

        let e = Config::parse("[node]\nlog_level = \"loud\"\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("node.log_level") && e.contains("loud"), "{e}");

        let e = Config::parse("[node]\nname = 3\n", "t.toml").unwrap_err().to_string();
        assert!(e.contains("node.name") && e.contains("line 2"), "{e}");

        let e = Config::parse("[[transport]]\nplugin = \"a.so\"\nname = \"x\"\n[[transport]]\nplugin = \"b.so\"\nname = \"x\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transport[1].name") && e.contains("used by another"), "{e}");

        let e = Config::parse("[node\n", "t").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn plugin_refs_and_state_dir_expansion() {
        let c = Config::parse(
            "[plugins]\ndir = \"/opt/p\"\n[[transport]]\nplugin = \"libx.so\"\nconfig = { path = \"{state_dir}/a.sock\", peers = [\"{state_dir}/b\"] }\n[[transport]]\nplugin = \"org.meshpay.transport.unixdgram\"\n[routing]\nplugin = \"/abs/r.so\"\n",
            "t",
        )
        .unwrap();
        let dir = c.plugin_dir();
        assert_eq!(c.transports[0].plugin_ref(&dir), PluginRef::Library("/opt/p/libx.so".into()));
        assert_eq!(
            c.transports[1].plugin_ref(&dir),
            PluginRef::Builtin("org.meshpay.transport.unixdgram".into())
        );
        assert_eq!(c.routing.as_ref().unwrap().plugin_ref(&dir), PluginRef::Library("/abs/r.so".into()));
        let json: serde_json::Value =
            serde_json::from_slice(&c.transports[0].config_json(Path::new("/s")).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({"path": "/s/a.sock", "peers": ["/s/b"]}));
        assert_eq!(c.transport_name(1), "transport1");
    }

    #[test]
    fn mesh_sections_are_checked() {
        let ok = "[mesh]\nmode = \"managed\"\ninterface = \"mesh0\"\nphy = \"phy0\"\nmesh_id = \"m\"\nparams = { fwding = 1, mesh_rssi_threshold = -80 }\nblocked_peers = [\"02:00:00:00:02:00\"]\n";
        let c = Config::parse(ok, "t").unwrap();
        let m = c.mesh.unwrap();
        assert_eq!(m.mesh_params().unwrap().get("mesh_fwding"), Some(1));
        for (bad, key) in [
            ("[mesh]\nmode = \"managed\"\ninterface = \"mesh0\"\nmesh_id = \"m\"\n", "mesh.phy"),
            (
                "[mesh]\nmode = \"managed\"\ninterface = \"mesh0\"\nphy = \"p\"\nmesh_id = \"m\"\nparams = { nonsense = 1 }\n",
                "mesh.params.nonsense",
            ),
            ("[mesh]\nmode = \"attach\"\ninterface = \"mesh0\"\nmesh_id = \"m\"\n", "mesh.mesh_id"),
            (
                "[mesh]\nmode = \"attach\"\ninterface = \"mesh0\"\nblocked_peers = [\"nope\"]\n",
                "mesh.blocked_peers[0]",
            ),
            (
                "[mesh]\nmode = \"managed\"\ninterface = \"a/b\"\nphy = \"p\"\nmesh_id = \"m\"\n",
                "mesh.interface",
            ),
            (
                "[mesh]\nmode = \"managed\"\ninterface = \"m0\"\nphy = \"p\"\nmesh_id = \"m\"\nchannel_width = \"9\"\n",
                "mesh.channel_width",
            ),
            ("[mesh]\nmode = \"sideways\"\ninterface = \"m0\"\n", "mesh.mode"),
        ] {
            let e = Config::parse(bad, "t").unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn frequencies_and_widths_are_range_checked_without_overflow() {
        let mesh = |freq: &str, width: &str| {
            format!(
                "[mesh]\nmode = \"managed\"\ninterface = \"m0\"\nphy = \"p\"\nmesh_id = \"m\"\nfrequency = {freq}\nchannel_width = \"{width}\"\n"
            )
        };
        // Edges of u32 and of the bands: refused with the key, no panic
        // (u32::MAX with 40+ used to overflow, 0 with 40- to underflow).
        for (freq, width) in [
            ("4294967295", "40+"),
            ("4294967286", "40+"),
            ("0", "40-"),
            ("9", "40-"),
            ("4294967295", "80"),
            ("2411", "20"),
            ("2413", "20"),
            ("2485", "20-noht"),
            ("3000", "20"),
            ("7120", "20"),
        ] {
            let e = Config::parse(&mesh(freq, width), "t").unwrap_err().to_string();
            assert!(e.contains("mesh.frequency") && e.contains(freq), "{freq} {width}: {e}");
        }
        // Out of range for u32 at all: a type error naming the key.
        let e = Config::parse(&mesh("4294967296", "20"), "t").unwrap_err().to_string();
        assert!(e.contains("mesh.frequency"), "{e}");
        // A 40 MHz pair whose secondary channel leaves the band.
        for (freq, width, hint) in [("2412", "40-", "40+"), ("2472", "40+", "40-"), ("5925", "40+", "40-")] {
            let e = Config::parse(&mesh(freq, width), "t").unwrap_err().to_string();
            assert!(
                e.contains("mesh.channel_width") && e.contains(&format!("use {hint}")),
                "{freq} {width}: {e}"
            );
        }
        // 80 MHz only where a 5 GHz 80 MHz block is.
        let e = Config::parse(&mesh("2412", "80"), "t").unwrap_err().to_string();
        assert!(e.contains("mesh.channel_width") && e.contains("80 MHz block"), "{e}");
        // Valid channels in each band pass.
        for (freq, width) in [
            ("2412", "40+"),
            ("2472", "40-"),
            ("2484", "20"),
            ("5180", "80"),
            ("5200", "40-"),
            ("5955", "20"),
            ("7115", "20-noht"),
        ] {
            Config::parse(&mesh(freq, width), "t").unwrap_or_else(|e| panic!("{freq} {width}: {e}"));
        }
    }

    #[test]
    fn config_files_are_read_into_the_plugin_config() {
        let dir = tempfile::tempdir().unwrap();
        let committee = dir.path().join("committee.toml");
        std::fs::write(&committee, "[[authority]]\nkey = \"ab\"\nweight = 1\n").unwrap();
        let text = format!(
            "[consensus]\nplugin = \"x.so\"\nconfig = {{ role = \"client\" }}\nconfig_files = {{ committee = \"{}\" }}\n",
            committee.display()
        );
        let c = Config::parse(&text, "t").unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&c.consensus.as_ref().unwrap().config_json(dir.path()).unwrap()).unwrap();
        assert_eq!(json["role"], "client");
        assert_eq!(json["committee"]["authority"][0]["weight"], 1);
        std::fs::remove_file(&committee).unwrap();
        let e = c.consensus.as_ref().unwrap().config_json(dir.path()).unwrap_err();
        assert!(e.starts_with("config_files.committee: cannot read"), "{e}");
    }
}
