//! The instance configuration (UTF-8 JSON from the router's `config` table).
//!
//! ```json
//! {"interfaces": ["mesh0"], "port": 4556, "ipv6": true, "ipv4_broadcast": false,
//!  "beacon_interval_ms": 1000, "peer_timeout_ms": 3500, "static_peers": [],
//!  "max_frame_bytes": 1048576, "fragment_payload_bytes": 1436,
//!  "send_buffer_bytes": 4194304, "recv_buffer_bytes": 4194304,
//!  "gso": true, "gro": true, "batch": 64}
//! ```
//!
//! Unknown keys are refused, and every refusal names its key
//! (`config.peer_timeout_ms: must be larger than beacon_interval_ms`).

use meshpay_abi::sdk::{PluginError, parse_config};
use serde::Deserialize;

use crate::addr::{self, StaticAddr};
use crate::wire;

/// The IANA port for DTN convergence layers (4556/udp, `dtn-bundle`).
pub const DEFAULT_PORT: u16 = 4556;
/// 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;
/// Room for a 64 KiB bundle payload plus its bundle headers.
pub const MIN_MAX_FRAME: u32 = 64 * 1024 + 4096;
/// Reassembly memory grows with this; 16 MiB is plenty for a mesh link.
pub const MAX_MAX_FRAME: u32 = 16 << 20;
/// A 1500-byte MTU less the IPv6 (40) and UDP (8) headers and ours.
pub const DEFAULT_FRAGMENT_PAYLOAD: u32 = 1500 - 40 - 8 - wire::FRAGMENT_HEADER_LEN as u32;
/// Small enough for IPv6's minimum MTU (1280) and more; 65535 fragments of
/// it still carry [`MAX_MAX_FRAME`].
pub const MIN_FRAGMENT_PAYLOAD: u32 = 512;
/// The largest IPv4 UDP payload (65507) less our header.
pub const MAX_FRAGMENT_PAYLOAD: u32 = 65_507 - wire::FRAGMENT_HEADER_LEN as u32;
/// Socket buffers: large, so a burst does not overflow the receive queue
/// while the router is busy elsewhere.
pub const DEFAULT_SOCKET_BUFFER: u32 = 4 << 20;
/// Most entries in `interfaces` and in `static_peers`.
pub const MAX_LIST: usize = 64;

/// The configuration as written (after defaults).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "yes")]
    ipv6: bool,
    #[serde(default)]
    ipv4_broadcast: bool,
    #[serde(default = "default_beacon_interval")]
    beacon_interval_ms: u32,
    #[serde(default)]
    peer_timeout_ms: Option<u32>,
    #[serde(default)]
    static_peers: Vec<String>,
    #[serde(default = "default_max_frame")]
    max_frame_bytes: u32,
    #[serde(default = "default_fragment_payload")]
    fragment_payload_bytes: u32,
    #[serde(default = "default_socket_buffer")]
    send_buffer_bytes: u32,
    #[serde(default = "default_socket_buffer")]
    recv_buffer_bytes: u32,
    #[serde(default = "yes")]
    gso: bool,
    #[serde(default = "yes")]
    gro: bool,
    #[serde(default = "default_batch")]
    batch: u32,
}

fn default_batch() -> u32 {
    crate::sys::BATCH as u32
}

fn default_port() -> u16 {
    DEFAULT_PORT
}
fn yes() -> bool {
    true
}
fn default_beacon_interval() -> u32 {
    1000
}
fn default_max_frame() -> u32 {
    DEFAULT_MAX_FRAME
}
fn default_fragment_payload() -> u32 {
    DEFAULT_FRAGMENT_PAYLOAD
}
fn default_socket_buffer() -> u32 {
    DEFAULT_SOCKET_BUFFER
}

/// A parsed and checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Interfaces to discover peers on and accept datagrams from.
    pub interfaces: Vec<String>,
    /// The UDP port every node of the mesh listens on.
    pub port: u16,
    /// Beacons to [`crate::BEACON_GROUP_V6`] on each interface.
    pub ipv6: bool,
    /// Beacons to each interface's IPv4 broadcast address.
    pub ipv4_broadcast: bool,
    pub beacon_interval_ms: u32,
    /// Silence after which an up peer is reported down.
    pub peer_timeout_ms: u32,
    /// Peers known by configuration: beaconed by unicast, accepted from any
    /// interface.
    pub static_peers: Vec<StaticAddr>,
    /// Largest frame sent or accepted; reported as the link MTU.
    pub max_frame_bytes: u32,
    /// Frame bytes per datagram.
    pub fragment_payload_bytes: u32,
    pub send_buffer_bytes: u32,
    pub recv_buffer_bytes: u32,
    /// Use UDP generic segmentation offload when the kernel has it.
    pub gso: bool,
    /// Use UDP generic receive offload when the kernel has it.
    pub gro: bool,
    /// Messages per `sendmmsg`/`recvmmsg` call (1 to 64; a knob for
    /// measurements, leave it at 64).
    pub batch: u32,
}

fn invalid(key: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::invalid(format!("config.{key}: {message}"))
}

impl Config {
    /// Parses and checks `json`; errors are `MP_ERR_INVALID` naming the key.
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        let raw: Raw = parse_config(json)?;
        let config = Config {
            peer_timeout_ms: raw
                .peer_timeout_ms
                .unwrap_or_else(|| raw.beacon_interval_ms.saturating_mul(7) / 2),
            static_peers: Vec::new(),
            interfaces: raw.interfaces,
            port: raw.port,
            ipv6: raw.ipv6,
            ipv4_broadcast: raw.ipv4_broadcast,
            beacon_interval_ms: raw.beacon_interval_ms,
            max_frame_bytes: raw.max_frame_bytes,
            fragment_payload_bytes: raw.fragment_payload_bytes,
            send_buffer_bytes: raw.send_buffer_bytes,
            recv_buffer_bytes: raw.recv_buffer_bytes,
            gso: raw.gso,
            gro: raw.gro,
            batch: raw.batch,
        };
        let static_peers = parse_static_peers(&raw.static_peers, config.port)?;
        let config = Config { static_peers, ..config };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), PluginError> {
        if self.interfaces.is_empty() && self.static_peers.is_empty() {
            return Err(invalid(
                "interfaces",
                "required (a list such as [\"mesh0\"]) unless static_peers is given",
            ));
        }
        if self.interfaces.len() > MAX_LIST {
            return Err(invalid("interfaces", format!("more than {MAX_LIST} interfaces")));
        }
        for (i, name) in self.interfaces.iter().enumerate() {
            addr::check_interface_name(name).map_err(|e| invalid(&format!("interfaces[{i}]"), e))?;
            if let Some(k) = self.interfaces[..i].iter().position(|n| n == name) {
                return Err(invalid(&format!("interfaces[{i}]"), format!("repeats interfaces[{k}]")));
            }
        }
        if !self.interfaces.is_empty() && !self.ipv6 && !self.ipv4_broadcast && self.static_peers.is_empty() {
            return Err(invalid(
                "interfaces",
                "no beacons would be sent: enable ipv6 or ipv4_broadcast, or list static_peers",
            ));
        }
        if self.port == 0 {
            return Err(invalid("port", "must be 1 to 65535 (every node of the mesh listens on it)"));
        }
        if !(10..=3_600_000).contains(&self.beacon_interval_ms) {
            return Err(invalid("beacon_interval_ms", "must be 10 to 3600000"));
        }
        if self.peer_timeout_ms <= self.beacon_interval_ms {
            return Err(invalid("peer_timeout_ms", "must be larger than beacon_interval_ms"));
        }
        if !(MIN_MAX_FRAME..=MAX_MAX_FRAME).contains(&self.max_frame_bytes) {
            return Err(invalid(
                "max_frame_bytes",
                format!("must be {MIN_MAX_FRAME} (64 KiB and headers) to {MAX_MAX_FRAME}"),
            ));
        }
        if !(MIN_FRAGMENT_PAYLOAD..=MAX_FRAGMENT_PAYLOAD).contains(&self.fragment_payload_bytes) {
            return Err(invalid(
                "fragment_payload_bytes",
                format!("must be {MIN_FRAGMENT_PAYLOAD} to {MAX_FRAGMENT_PAYLOAD}"),
            ));
        }
        if !(1..=crate::sys::BATCH as u32).contains(&self.batch) {
            return Err(invalid("batch", format!("must be 1 to {}", crate::sys::BATCH)));
        }
        for (key, value) in
            [("send_buffer_bytes", self.send_buffer_bytes), ("recv_buffer_bytes", self.recv_buffer_bytes)]
        {
            if !(64 * 1024..=1 << 30).contains(&value) {
                return Err(invalid(key, "must be 65536 to 1073741824"));
            }
        }
        Ok(())
    }
}

fn parse_static_peers(list: &[String], port: u16) -> Result<Vec<StaticAddr>, PluginError> {
    if list.len() > MAX_LIST {
        return Err(invalid("static_peers", format!("more than {MAX_LIST} peers")));
    }
    let mut out: Vec<StaticAddr> = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let key = format!("static_peers[{i}]");
        let peer = addr::parse_static(s, port).map_err(|e| invalid(&key, format!("{s:?}: {e}")))?;
        if let Some(k) = out.iter().position(|p| *p == peer) {
            return Err(invalid(&key, format!("repeats static_peers[{k}]")));
        }
        out.push(peer);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_abi::MP_ERR_INVALID;

    #[test]
    fn defaults() {
        let c = Config::parse(br#"{"interfaces": ["mesh0"]}"#).unwrap();
        assert_eq!(c.port, 4556);
        assert!(c.ipv6 && !c.ipv4_broadcast && c.gso && c.gro);
        assert_eq!((c.beacon_interval_ms, c.peer_timeout_ms), (1000, 3500));
        assert_eq!(c.max_frame_bytes, 1 << 20);
        assert_eq!(c.fragment_payload_bytes, 1436);
        assert_eq!((c.send_buffer_bytes, c.recv_buffer_bytes), (4 << 20, 4 << 20));
        assert_eq!(c.batch, 64);
        let c = Config::parse(br#"{"interfaces": ["mesh0"], "beacon_interval_ms": 100}"#).unwrap();
        assert_eq!(c.peer_timeout_ms, 350, "3.5 x the interval");
        let c = Config::parse(br#"{"static_peers": ["10.0.0.2"], "port": 5000}"#).unwrap();
        assert_eq!(c.static_peers[0].port, 5000, "the port is the default for static peers");
        assert!(c.interfaces.is_empty());
    }

    #[test]
    fn every_refusal_names_the_key() {
        for (json, key) in [
            (r#"{}"#, "config.interfaces"),
            (r#"{"interfaces": ["mesh0"], "bogus": 1}"#, "bogus"),
            (r#"{"interfaces": "mesh0"}"#, "config.interfaces"),
            (r#"{"interfaces": [""]}"#, "config.interfaces[0]"),
            (r#"{"interfaces": ["a/b"]}"#, "config.interfaces[0]"),
            (r#"{"interfaces": ["0123456789abcdef"]}"#, "config.interfaces[0]"),
            (r#"{"interfaces": ["a", "a"]}"#, "config.interfaces[1]"),
            (r#"{"interfaces": ["a"], "ipv6": false}"#, "config.interfaces"),
            (r#"{"interfaces": ["a"], "port": 0}"#, "config.port"),
            (r#"{"interfaces": ["a"], "port": 70000}"#, "config.port"),
            (r#"{"interfaces": ["a"], "beacon_interval_ms": 0}"#, "config.beacon_interval_ms"),
            (r#"{"interfaces": ["a"], "peer_timeout_ms": 1000}"#, "config.peer_timeout_ms"),
            (
                r#"{"interfaces": ["a"], "beacon_interval_ms": 5000, "peer_timeout_ms": 4000}"#,
                "config.peer_timeout_ms",
            ),
            (r#"{"interfaces": ["a"], "max_frame_bytes": 65536}"#, "config.max_frame_bytes"),
            (r#"{"interfaces": ["a"], "max_frame_bytes": 1e9}"#, "config.max_frame_bytes"),
            (r#"{"interfaces": ["a"], "fragment_payload_bytes": 100}"#, "config.fragment_payload_bytes"),
            (r#"{"interfaces": ["a"], "fragment_payload_bytes": 65500}"#, "config.fragment_payload_bytes"),
            (r#"{"interfaces": ["a"], "send_buffer_bytes": 1}"#, "config.send_buffer_bytes"),
            (r#"{"interfaces": ["a"], "recv_buffer_bytes": -1}"#, "config.recv_buffer_bytes"),
            (r#"{"interfaces": ["a"], "gso": "yes"}"#, "config.gso"),
            (r#"{"interfaces": ["a"], "batch": 0}"#, "config.batch"),
            (r#"{"interfaces": ["a"], "batch": 65}"#, "config.batch"),
            (r#"{"static_peers": ["fe80::1"]}"#, "config.static_peers[0]"),
            (r#"{"static_peers": ["10.0.0.1", "10.0.0.1:4556"]}"#, "config.static_peers[1]"),
            (r#"{"static_peers": [7]}"#, "config.static_peers[0]"),
        ] {
            let e = Config::parse(json.as_bytes()).expect_err(json);
            assert_eq!(e.status, MP_ERR_INVALID, "{json}");
            assert!(e.message.contains(key), "{json}: {:?} does not name {key}", e.message);
        }
        assert!(Config::parse(br#"["mesh0"]"#).unwrap_err().message.contains("JSON object"));
    }
}
