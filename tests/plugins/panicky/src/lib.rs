//! `org.meshpay.test.panicky`: a transport that panics on purpose, so the
//! host's tests can check that a plugin panic becomes `MP_ERR_PANIC` (the
//! SDK's `catch_unwind` guard) and that the host then disables the instance,
//! instead of the router aborting. Not shipped.
//!
//! Config (UTF-8 JSON): `{"panic_in": "none"}`, where `panic_in` is one of
//!
//! * `"create"`, `"start"`, `"stop"`: that call panics;
//! * `"send"`: every `send` panics;
//! * `"destroy"`: dropping the instance panics (the SDK catches and logs it);
//! * `"none"` (the default): only the rule below applies;
//!
//! and `"link_up": true` makes `start` report peer `"panicky"` up, so the
//! router sends to it (that is how a `"send"` panic is reached).
//!
//! Whatever the config, `send` of the frame `b"panic"` panics; every other
//! frame is accepted and discarded. After a panic the SDK answers every
//! further call on that instance with `MP_ERR_PANIC`.
//!
//! Declared OWN_THREAD so the host needs no fd or timer support for it; it
//! starts no thread and never delivers anything.

use meshpay_abi::sdk::{Host, PluginError, TransportHost, TransportMode, TransportPlugin};
use meshpay_abi::{LinkEvent, MP_LINK_UP};
use serde::Deserialize;

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.test.panicky",
    name: "Panicky test transport",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay tests",
    description: "Panics where its config says (host panic-handling tests)",
    transport: Panicky,
}

/// Where the instance panics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanicIn {
    #[default]
    None,
    Create,
    Start,
    Send,
    Stop,
    Destroy,
}

/// The configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub panic_in: PanicIn,
    /// Report peer `"panicky"` up at `start`, so that the router sends to
    /// it (and a `"send"` panic happens without any real link).
    #[serde(default)]
    pub link_up: bool,
}

impl Config {
    /// Parses the JSON object (serde would also take an array).
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(PluginError::invalid("config: expected a JSON object"));
        }
        serde_json::from_slice(json).map_err(|e| PluginError::invalid(format!("config: {e}")))
    }
}

/// The frame that makes `send` panic whatever the config.
pub const PANIC_FRAME: &[u8] = b"panic";

/// One instance.
pub struct Panicky {
    panic_in: PanicIn,
    link_up: bool,
    link: TransportHost,
}

impl Panicky {
    fn maybe_panic(&self, here: PanicIn) {
        if self.panic_in == here {
            panic!("panicky: panic in {here:?}, as configured");
        }
    }
}

impl TransportPlugin for Panicky {
    const MODE: TransportMode = TransportMode::OwnThread;

    fn create(_host: Host, link: TransportHost, config: &[u8]) -> Result<Self, PluginError> {
        let config = Config::parse(config)?;
        let plugin = Panicky { panic_in: config.panic_in, link_up: config.link_up, link };
        plugin.maybe_panic(PanicIn::Create);
        Ok(plugin)
    }

    fn start(&mut self) -> Result<(), PluginError> {
        self.maybe_panic(PanicIn::Start);
        if self.link_up {
            // link_event is thread-safe, so calling it from the host thread
            // inside `start` is allowed.
            self.link.link_event(&LinkEvent {
                kind: MP_LINK_UP,
                peer: "panicky",
                metric: None,
                signal_dbm: None,
                mtu: None,
            })?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), PluginError> {
        self.maybe_panic(PanicIn::Stop);
        Ok(())
    }

    fn send(&mut self, _peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        if frame == PANIC_FRAME {
            panic!("panicky: asked to panic by the frame");
        }
        self.maybe_panic(PanicIn::Send);
        Ok(())
    }
}

impl Drop for Panicky {
    fn drop(&mut self) {
        // Not while already unwinding (a panic in create drops nothing, but
        // a double panic would abort the test process).
        if !std::thread::panicking() {
            self.maybe_panic(PanicIn::Destroy);
        }
    }
}
