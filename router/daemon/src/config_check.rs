//! `meshpay config check`: what the router would do with a configuration,
//! found out the way the router does it, short of running anything.
//!
//! Parsing only catches the router's own keys; a plugin's `config` table is
//! opaque to the router and only the plugin can judge it. So every enabled
//! transport and the routing plugin are loaded and *created* with their real
//! config JSON, exactly as `meshpay run` creates them, and destroyed again
//! without being started: `start` is where transports open sockets, so a
//! check binds nothing and touches no link. Instances get [`CheckServices`],
//! host services that keep what the plugin logs (its reason for refusing a
//! config) and sign with a throw-away key, so the check neither reads nor
//! creates the node's key. The consensus plugin is loaded and its kind
//! checked, not created (it needs the node's store).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use meshpay_abi::LinkEvent;
use meshpay_host::{
    CallError, HostError, HostServices, InstanceId, InstanceLabel, Level, Plugin, TransportEvents,
};

use crate::config::{Config, MeshMode, PluginRef, PluginSection};
use crate::identity::node_endpoint;
use crate::runtime::load_plugin;

/// The outcome: what the router would run (one line each), and what is
/// wrong, each problem naming its section (`transport "radio": ...`).
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
}

/// Checks a parsed config against the plugins it names; `state_dir` is what
/// `{state_dir}` expands to.
pub fn check(config: &Config, state_dir: &Path) -> Report {
    let mut report = Report::default();
    if let Some(line) = mesh_line(config) {
        report.lines.push(line);
    }
    let services = Arc::new(CheckServices::new());
    let dir = config.plugin_dir();
    for (i, section) in config.transports.iter().enumerate() {
        check_section(
            &mut report,
            &services,
            &dir,
            state_dir,
            Kind::Transport,
            &config.transport_name(i),
            section,
        );
    }
    let routing = config.routing_section();
    let name = routing.name.clone().unwrap_or_else(|| "routing".into());
    check_section(&mut report, &services, &dir, state_dir, Kind::Routing, &name, &routing);
    if let Some(c) = &config.consensus {
        let name = c.name.as_deref().unwrap_or("consensus");
        check_section(&mut report, &services, &dir, state_dir, Kind::Consensus, name, c);
    }
    report
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Transport,
    Routing,
    Consensus,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Transport => "transport",
            Kind::Routing => "routing",
            Kind::Consensus => "consensus",
        }
    }

    fn bit(self) -> u32 {
        match self {
            Kind::Transport => meshpay_abi::MP_KIND_TRANSPORT,
            Kind::Routing => meshpay_abi::MP_KIND_ROUTING,
            Kind::Consensus => meshpay_abi::MP_KIND_CONSENSUS,
        }
    }
}

fn check_section(
    report: &mut Report,
    services: &Arc<CheckServices>,
    plugin_dir: &Path,
    state_dir: &Path,
    kind: Kind,
    name: &str,
    section: &PluginSection,
) {
    let label = format!("{} \"{name}\"", kind.name());
    if !section.enabled {
        report.lines.push(format!("{label}: disabled"));
        return;
    }
    let r = section.plugin_ref(plugin_dir);
    let from = match &r {
        PluginRef::Builtin(id) => format!("built-in {id}"),
        PluginRef::Library(p) => p.display().to_string(),
    };
    let cfg = match section.config_json(state_dir) {
        Ok(c) => c,
        Err(e) => return report.problems.push(format!("{label}: {e}")),
    };
    let plugin = match load_plugin(&r) {
        Ok(p) => p,
        Err(e) => return report.problems.push(format!("{label}: {e}")),
    };
    let d = plugin.descriptor();
    if d.kinds & kind.bit() == 0 {
        return report.problems.push(format!(
            "{label}: {from} is not a {} plugin (it is {})",
            kind.name(),
            meshpay_host::kind_names(d.kinds).join(", ")
        ));
    }
    let what = match kind {
        Kind::Consensus => "loaded (created when the node starts)",
        _ => match create(&plugin, kind, name, &cfg, services) {
            Ok(()) => "created and destroyed",
            Err(e) => return report.problems.push(format!("{label}: {} refused its config: {e}", d.id)),
        },
    };
    report.lines.push(format!(
        "{label}: {} {} (ABI {}) from {from}, config {}: {what}",
        d.id,
        d.version,
        d.abi,
        String::from_utf8_lossy(&cfg)
    ));
}

/// Creates an instance as `meshpay run` does and drops it at once (its
/// `destroy`). Never starts it. The error carries what the plugin logged.
fn create(
    plugin: &Arc<Plugin>,
    kind: Kind,
    name: &str,
    cfg: &[u8],
    services: &Arc<CheckServices>,
) -> Result<(), String> {
    services.take_complaints();
    let host: Arc<dyn HostServices> = services.clone();
    let result = match kind {
        Kind::Transport => {
            let events: Arc<dyn TransportEvents> = Arc::new(NoEvents);
            plugin.create_transport(name, cfg, host, events).map(drop)
        }
        _ => plugin.create_routing(name, cfg, host).map(drop),
    };
    // The SDK prefixes what it logs with the call ("create: config.x: ...").
    let complaints: Vec<String> = services
        .take_complaints()
        .into_iter()
        .map(|c| c.strip_prefix("create: ").map(str::to_owned).unwrap_or(c))
        .collect();
    result.map_err(|e| {
        let call = match e {
            CallError::Panicked { what } => format!("it panicked in {what}"),
            other => other.to_string(),
        };
        if complaints.is_empty() { call } else { format!("{} ({call})", complaints.join("; ")) }
    })
}

/// What the mesh section asks for, in one line.
fn mesh_line(config: &Config) -> Option<String> {
    let m = config.mesh.as_ref()?;
    let params = m.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    let params = if params.is_empty() { String::new() } else { format!(", params {params}") };
    Some(match m.mode {
        MeshMode::Managed => format!(
            "mesh: managed: create {} on {}, join mesh id {:?} at {} MHz, width {}{params}",
            m.interface,
            m.phy.as_deref().unwrap_or(""),
            m.mesh_id.as_deref().unwrap_or(""),
            m.frequency,
            m.channel_width
        ),
        MeshMode::Attach => format!("mesh: attach: use {} as it is set up{params}", m.interface),
    })
}

/// Host services for instances that are created and destroyed, never run:
/// timers and fd watches are accepted and never fire; error and warning
/// logs are kept to explain a refused config.
struct CheckServices {
    started: Instant,
    /// Throw-away: plugins may sign in `create`; nothing signed here leaves
    /// the process.
    key: SigningKey,
    complaints: Mutex<Vec<String>>,
}

impl CheckServices {
    fn new() -> CheckServices {
        CheckServices {
            started: Instant::now(),
            key: SigningKey::generate(&mut rand_core::OsRng),
            complaints: Mutex::new(Vec::new()),
        }
    }

    fn take_complaints(&self) -> Vec<String> {
        std::mem::take(&mut *self.complaints.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl HostServices for CheckServices {
    fn log(&self, _instance: &InstanceLabel, level: Level, message: &str) {
        if matches!(level, Level::Error | Level::Warn) {
            self.complaints.lock().unwrap_or_else(|e| e.into_inner()).push(message.to_owned());
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn node_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn node_endpoint(&self) -> String {
        node_endpoint(&self.node_key())
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    fn set_timer(&self, _: InstanceId, _: u64, _: u64) -> Result<(), HostError> {
        Ok(())
    }

    fn cancel_timer(&self, _: InstanceId, _: u64) -> bool {
        false
    }

    fn watch_fd(&self, _: InstanceId, _: std::os::fd::RawFd, _: u32) -> Result<(), HostError> {
        Ok(())
    }

    fn unwatch_fd(&self, _: InstanceId, _: std::os::fd::RawFd) -> Result<(), HostError> {
        Ok(())
    }
}

/// Transports that are never started deliver nothing; if one did, it is
/// dropped.
struct NoEvents;

impl TransportEvents for NoEvents {
    fn deliver(&self, _: InstanceId, _: &str, _: &[u8]) -> Result<(), HostError> {
        Err(HostError::Full)
    }

    fn link_event(&self, _: InstanceId, _: &LinkEvent<'_>) -> Result<(), HostError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, state: &Path) -> Report {
        check(&Config::parse(text, "t").unwrap(), state)
    }

    #[test]
    fn a_plugins_own_config_errors_are_reported_with_the_section() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("a.sock");
        let r = run(
            "[[transport]]\nname = \"lab\"\nplugin = \"org.meshpay.transport.unixdgram\"\nconfig = { path = \"{state_dir}/a.sock\", peerz = [] }\n\
             [[transport]]\nname = \"radio\"\nplugin = \"org.meshpay.transport.udp\"\nconfig = { port = 70000 }\n\
             [routing]\nplugin = \"org.meshpay.routing.spray-and-wait\"\nconfig = { copies = \"many\" }\n",
            dir.path(),
        );
        assert_eq!(r.problems.len(), 3, "{r:?}");
        assert!(
            r.problems[0]
                .starts_with("transport \"lab\": org.meshpay.transport.unixdgram refused its config")
        );
        assert!(r.problems[0].contains("peerz"), "{r:?}");
        assert!(
            r.problems[1].starts_with("transport \"radio\": org.meshpay.transport.udp refused its config")
        );
        assert!(r.problems[1].contains("port") && r.problems[1].contains("70000"), "{r:?}");
        assert!(
            r.problems[2].starts_with("routing \"routing\":") && r.problems[2].contains("copies"),
            "{r:?}"
        );
        assert!(!sock.exists(), "a check binds no socket");
    }

    #[test]
    fn good_sections_are_created_never_started_and_disabled_ones_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(
            "[[transport]]\nname = \"lab\"\nplugin = \"org.meshpay.transport.unixdgram\"\nconfig = { path = \"{state_dir}/a.sock\", peers = [] }\n\
             [[transport]]\nname = \"off\"\nenabled = false\nplugin = \"org.meshpay.transport.udp\"\nconfig = { nonsense = 1 }\n\
             [[transport]]\nname = \"radio\"\nplugin = \"org.meshpay.transport.udp\"\nconfig = { port = 4556, interfaces = [\"lo\"] }\n",
            dir.path(),
        );
        assert!(r.problems.is_empty(), "{r:?}");
        let text = r.lines.join("\n");
        assert!(text.contains("transport \"lab\": org.meshpay.transport.unixdgram"), "{text}");
        assert!(text.contains(&format!("\"path\":\"{}/a.sock\"", dir.path().display())), "{text}");
        assert!(text.contains("transport \"off\": disabled"), "{text}");
        // The default routing is checked too.
        assert!(text.contains("routing \"routing\": org.meshpay.routing.epidemic"), "{text}");
        assert!(!dir.path().join("a.sock").exists(), "a check binds no socket");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the check wrote nothing");
    }

    #[test]
    fn the_consensus_plugin_is_loaded_and_its_kind_checked() {
        let dir = tempfile::tempdir().unwrap();
        let r = run("[consensus]\nplugin = \"org.meshpay.routing.epidemic\"\n", dir.path());
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert!(
            r.problems[0].contains("consensus \"consensus\"")
                && r.problems[0].contains("not a consensus plugin")
        );
        let r = run("[[transport]]\nplugin = \"org.meshpay.routing.epidemic\"\n", dir.path());
        assert!(
            r.problems[0].contains("transport \"transport0\"")
                && r.problems[0].contains("not a transport plugin")
        );
    }
}
