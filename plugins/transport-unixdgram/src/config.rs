//! The instance configuration: UTF-8 JSON passed to `create`.
//!
//! ```json
//! {"path": "/run/x/a.sock", "peers": ["/run/x/b.sock"],
//!  "probe_interval_ms": 1000, "peer_timeout_ms": 3500}
//! ```
//!
//! The rules are the C example's (`plugins/examples/c-unixdgram`), so the two
//! implementations accept and refuse the same configurations.

use meshpay_abi::sdk::PluginError;
use serde::Deserialize;

/// Bytes a socket path may have: `sun_path` holds 108 including the NUL.
pub const PATH_MAX: usize = 107;
/// Most peers one instance links to.
pub const MAX_PEERS: usize = 64;

/// A parsed and checked configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The path this node's socket is bound to; peers know us by it.
    pub path: String,
    /// The sockets of the peers we link to. Compared byte for byte with the
    /// source address of what arrives, so spell each path exactly as that
    /// peer spells its own `path`.
    pub peers: Vec<String>,
    /// How often every peer gets a probe.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u32,
    /// Silence after which an up peer is reported down.
    #[serde(default = "default_peer_timeout_ms")]
    pub peer_timeout_ms: u32,
}

fn default_probe_interval_ms() -> u32 {
    1000
}

fn default_peer_timeout_ms() -> u32 {
    3500
}

fn invalid(message: String) -> PluginError {
    PluginError::invalid(format!("config: {message}"))
}

impl Config {
    /// Parses and checks `json`. Errors are `MP_ERR_INVALID` with a message
    /// naming the offending key (serde names unknown and missing fields).
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        // serde also reads a struct from an array (`["/a", ["/b"]]`); the
        // config is an object, as in C.
        if json.iter().find(|b| !b" \t\n\r".contains(b)) != Some(&b'{') {
            return Err(invalid("expected a JSON object".into()));
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        // serde_path_to_error puts the key in front of type errors too
        // ("`probe_interval_ms`: invalid type: string ..."); serde itself
        // names only unknown, missing and duplicate keys.
        let config: Config = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let (path, inner) = (e.path().to_string(), e.inner().to_string());
            if path == "." || path == "?" || inner.contains(&format!("`{path}`")) {
                invalid(inner)
            } else {
                invalid(format!("`{path}`: {inner}"))
            }
        })?;
        de.end().map_err(|e| invalid(e.to_string()))?; // trailing bytes
        config.check()?;
        Ok(config)
    }

    /// The rules serde cannot express.
    fn check(&self) -> Result<(), PluginError> {
        check_path("`path`", &self.path)?;
        if self.peers.len() > MAX_PEERS {
            return Err(invalid(format!("`peers` lists more than {MAX_PEERS} sockets")));
        }
        for (i, peer) in self.peers.iter().enumerate() {
            check_path(&format!("`peers`[{i}]"), peer)?;
            if *peer == self.path {
                return Err(invalid(format!("`peers`[{i}] is this node's own `path`")));
            }
            if let Some(k) = self.peers[..i].iter().position(|p| p == peer) {
                return Err(invalid(format!("`peers`[{i}] repeats `peers`[{k}]")));
            }
        }
        if self.probe_interval_ms == 0 {
            return Err(invalid("`probe_interval_ms` must be at least 1".into()));
        }
        if self.peer_timeout_ms <= self.probe_interval_ms {
            return Err(invalid("`peer_timeout_ms` must be larger than `probe_interval_ms`".into()));
        }
        Ok(())
    }
}

fn check_path(what: &str, path: &str) -> Result<(), PluginError> {
    if path.is_empty() {
        return Err(invalid(format!("{what} must not be empty")));
    }
    if path.len() > PATH_MAX {
        return Err(invalid(format!("{what} is too long (a socket path holds {PATH_MAX} bytes)")));
    }
    if path.contains('\0') {
        return Err(invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_abi::MP_ERR_INVALID;

    fn refused(json: &str) -> String {
        let e = Config::parse(json.as_bytes()).expect_err(json);
        assert_eq!(e.status, MP_ERR_INVALID, "{json}");
        e.message
    }

    #[test]
    fn defaults_apply_to_the_optional_keys() {
        let c = Config::parse(br#"{"path": "/a", "peers": ["/b"]}"#).unwrap();
        assert_eq!((c.probe_interval_ms, c.peer_timeout_ms), (1000, 3500));
        assert_eq!(c.peers, ["/b"]);
    }

    #[test]
    fn every_refusal_names_the_key() {
        for (json, key) in [
            (r#"{"path": "/a", "peers": [], "bogus": 1}"#, "bogus"),
            (r#"{"peers": []}"#, "path"),
            (r#"{"path": "/a"}"#, "peers"),
            (r#"{"path": "", "peers": []}"#, "path"),
            (r#"{"path": "/a", "peers": [""]}"#, "peers"),
            (r#"{"path": "/a", "peers": ["/a"]}"#, "peers"),
            (r#"{"path": "/a", "peers": ["/b", "/b"]}"#, "peers"),
            (r#"{"path": "/a", "peers": [], "probe_interval_ms": 0}"#, "probe_interval_ms"),
            (r#"{"path": "/a", "peers": [], "peer_timeout_ms": 10}"#, "peer_timeout_ms"),
            (r#"{"path": "/a", "peers": [], "path": "/b"}"#, "path"),
            (r#"{"path": "/a", "peers": [], "probe_interval_ms": -1}"#, "probe_interval_ms"),
            (r#"{"path": "/a", "peers": [5]}"#, "peers[0]"),
            (r#"{"path": 5, "peers": []}"#, "path"),
        ] {
            let message = refused(json);
            assert!(message.contains(key), "{json}: {message}");
        }
        let long = format!(r#"{{"path": "/{}", "peers": []}}"#, "x".repeat(PATH_MAX));
        assert!(refused(&long).contains("path"));
        refused(r#"{"path": "/a", "peers": []} x"#);
        assert!(refused(r#"["/a", ["/b"]]"#).contains("object"));
    }
}
