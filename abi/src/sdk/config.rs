//! Strict parsing of a plugin's configuration (feature `config`).
//!
//! The router hands every plugin its `config` table as UTF-8 JSON. Parse it
//! with [`parse_config`] into a `#[serde(deny_unknown_fields)]` struct: the
//! input must be a JSON object (serde would also accept an array for a
//! struct), and errors name the key path, e.g. `config.peers[2]: invalid
//! type: integer, expected a string`.

use serde::de::DeserializeOwned;

use crate::sdk::PluginError;

/// Parses a plugin config; errors are `MP_ERR_INVALID` naming the key.
pub fn parse_config<T: DeserializeOwned>(json: &[u8]) -> Result<T, PluginError> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| PluginError::invalid(format!("config is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(PluginError::invalid("config must be a JSON object (a table in the router's TOML)"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { "config".to_owned() } else { format!("config.{path}") };
        PluginError::invalid(format!("{key}: {}", e.into_inner()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct C {
        path: String,
        #[serde(default)]
        peers: Vec<String>,
    }

    #[test]
    fn objects_parse_and_errors_name_the_key() {
        let c: C = parse_config(br#"{"path":"/a","peers":["/b"]}"#).unwrap();
        assert_eq!(c, C { path: "/a".into(), peers: vec!["/b".into()] });
        let e = parse_config::<C>(br#"{"path":"/a","peers":["/b", 3]}"#).unwrap_err();
        assert!(e.message.starts_with("config.peers[1]:"), "{}", e.message);
        let e = parse_config::<C>(br#"{"path":"/a","pears":[]}"#).unwrap_err();
        assert!(e.message.contains("pears"), "{}", e.message);
        let e = parse_config::<C>(br#"["/a", []]"#).unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
        assert_eq!(parse_config::<C>(b"{").unwrap_err().status, crate::MP_ERR_INVALID);
    }
}
