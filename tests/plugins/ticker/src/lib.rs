//! `org.meshpay.test.ticker`: an OWN_THREAD transport for the host's tests.
//! Not shipped.
//!
//! `start` spawns a thread that reports `MP_LINK_UP` for peer `"ticker"` and
//! then delivers `count` frames, `"tick 1"` to `"tick {count}"`, one every
//! `interval_ms`, through the thread-safe `TransportHost::deliver`; then it
//! idles until stopped. `stop` signals the thread, joins it, and reports
//! `MP_LINK_DOWN` for `"ticker"` (if the thread had reported it up), so no
//! `deliver` or `link_event` happens after `stop` returns.
//!
//! Config (UTF-8 JSON): `{"count": 3, "interval_ms": 50}` (those defaults).
//!
//! Unlike a POLL_FD plugin, this thread paces itself by real time
//! (`recv_timeout` on its stop channel): a thread of its own cannot wait on
//! the host's (possibly virtual) clock. A real OWN_THREAD transport would
//! block on its device instead.
//!
//! `send` to `"ticker"` accepts and discards the frame; other peers are
//! `MP_ERR_INVALID`.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use meshpay_abi::sdk::{Host, Level, PluginError, TransportHost, TransportMode, TransportPlugin};
use meshpay_abi::{LinkEvent, MP_LINK_DOWN, MP_LINK_UP};
use serde::Deserialize;

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.test.ticker",
    name: "Ticker test transport",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay tests",
    description: "Delivers a few frames from its own thread (host OWN_THREAD tests)",
    transport: Ticker,
}

/// The one peer this transport has.
pub const PEER: &str = "ticker";

/// The configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_count")]
    pub count: u32,
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
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

fn default_count() -> u32 {
    3
}

fn default_interval_ms() -> u64 {
    50
}

/// The thread while it runs: dropping `stop` (or sending on it) ends it.
struct Running {
    stop: Sender<()>,
    /// Returns whether the thread reported the link up.
    thread: JoinHandle<bool>,
}

/// One instance.
pub struct Ticker {
    host: Host,
    link: TransportHost,
    config: Config,
    running: Option<Running>,
}

impl TransportPlugin for Ticker {
    const MODE: TransportMode = TransportMode::OwnThread;

    fn create(host: Host, link: TransportHost, config: &[u8]) -> Result<Self, PluginError> {
        let config = Config::parse(config)?;
        Ok(Ticker { host, link, config, running: None })
    }

    fn start(&mut self) -> Result<(), PluginError> {
        if self.running.is_some() {
            return Err(PluginError::invalid("already started"));
        }
        let (stop, stopped) = mpsc::channel();
        let (host, link, config) = (self.host, self.link, self.config);
        let thread = std::thread::Builder::new()
            .name("meshpay-ticker".into())
            .spawn(move || run(host, link, config, stopped))
            .map_err(|e| PluginError::failed(format!("spawn: {e}")))?;
        self.running = Some(Running { stop, thread });
        Ok(())
    }

    fn stop(&mut self) -> Result<(), PluginError> {
        let Some(Running { stop, thread }) = self.running.take() else {
            return Ok(());
        };
        let _ = stop.send(());
        let was_up = thread.join().map_err(|_| PluginError::failed("the ticker thread panicked"))?;
        if was_up {
            report(&self.link, &self.host, MP_LINK_DOWN);
        }
        Ok(())
    }

    fn send(&mut self, peer: &str, _frame: &[u8]) -> Result<(), PluginError> {
        if peer == PEER { Ok(()) } else { Err(PluginError::invalid(format!("send: unknown peer {peer:?}"))) }
    }
}

impl Drop for Ticker {
    /// `stop` comes before `destroy`; if the host skipped it, still end the
    /// thread (it must not outlive the host tables it uses).
    fn drop(&mut self) {
        if let Some(Running { stop, thread }) = self.running.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

/// The thread: link up, `count` ticks, then idle until stopped. Returns
/// whether it reported the link up.
fn run(host: Host, link: TransportHost, config: Config, stopped: mpsc::Receiver<()>) -> bool {
    report(&link, &host, MP_LINK_UP);
    let interval = Duration::from_millis(config.interval_ms);
    for n in 1..=config.count {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return true,
        }
        if let Err(e) = link.deliver(PEER, format!("tick {n}").as_bytes()) {
            host.log(Level::Debug, &format!("deliver tick {n}: {e}"));
        }
    }
    let _ = stopped.recv(); // a message or a disconnect: both mean stop
    true
}

fn report(link: &TransportHost, host: &Host, kind: u32) {
    let event = LinkEvent { kind, peer: PEER, metric: None, signal_dbm: None, mtu: None };
    if let Err(e) = link.link_event(&event) {
        host.log(Level::Warn, &format!("link_event: {e}"));
    }
}
