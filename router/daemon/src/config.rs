//! The router's configuration (TOML).
//!
//! Parsing is strict: an unknown key is an error, and every error names the
//! offending key (`transport[1].plugin`) and its line. Plugin sections carry
//! an opaque `config` table that is handed to the plugin as JSON; in its
//! strings `{state_dir}` expands to the node's state directory.
//!
//! With no config file the router runs on [`DEFAULT_CONFIG`], embedded from
//! `configs/default.toml`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The embedded defaults: a single node, the default plugins, no radio.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/default.toml");

/// Where relative plugin library names are looked up by default.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/meshpay/plugins";

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeSection,
    #[serde(default)]
    pub plugins: PluginsSection,
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

    /// The plugin's config as JSON bytes, `{state_dir}` expanded.
    pub fn config_json(&self, state_dir: &Path) -> Vec<u8> {
        let mut value = serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null);
        expand(&mut value, &state_dir.display().to_string());
        serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec())
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
                Config::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Checks what serde cannot: values and cross-references.
    fn check(&self) -> Result<(), String> {
        if let Some(level) = &self.node.log_level {
            if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                return Err(format!(
                    "node.log_level: `{level}` is not one of error, warn, info, debug, trace"
                ));
            }
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
        if let Some(c) = &self.consensus {
            check_plugin(&c.plugin, "consensus.plugin")?;
        }
        Ok(())
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
            serde_json::from_slice(&c.transports[0].config_json(Path::new("/s"))).unwrap();
        assert_eq!(json, serde_json::json!({"path": "/s/a.sock", "peers": ["/s/b"]}));
        assert_eq!(c.transport_name(1), "transport1");
    }
}
