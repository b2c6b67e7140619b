//! `meshpay run`: the daemon. One tokio event-loop thread owns the node
//! (engine and plugin instances) and multiplexes: control requests, frames
//! and link events from transports, timers, fd readiness, and signals.
//! OWN_THREAD transports run their own threads and reach the loop through
//! a queue (bounded in frames; see `transport_queue`).

mod mesh;
mod node;
mod services;
mod transport_queue;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::control;
use crate::identity::Identity;
use crate::state_dir::{KEY_FILE, StateDir};
use node::Node;
pub use node::load_plugin;
use services::Services;
use transport_queue::transport_queue;

/// Frames handled per loop turn (one store batch, one fsync) before other
/// sources get a look in. Large enough that group commit keeps up with a
/// full window from several neighbours.
const FRAME_BATCH: usize = 2048;

/// Runs the node until SIGINT or SIGTERM.
pub fn run(state_dir: StateDir, config: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    rt.block_on(run_node(state_dir, config))
}

async fn run_node(state_dir: StateDir, config: Config) -> anyhow::Result<()> {
    state_dir.ensure()?;
    let _lock = state_dir.lock()?;
    let identity = Arc::new(Identity::load_or_create(&state_dir.join(KEY_FILE))?);
    let name = config.node.name.clone().unwrap_or_else(host_name);
    tracing::info!(
        "meshpay {} starting: node \"{name}\" {} ({}), state dir {}",
        env!("CARGO_PKG_VERSION"),
        identity.hex(),
        identity.did_key(),
        state_dir.path().display()
    );

    let services = Arc::new(Services::new(identity.clone(), name.clone()));
    let (events, mut transport_rx) = transport_queue();
    let mut node = Node::new(services.clone(), identity, name, events, &config, state_dir.path())?;
    // The mesh interface first: transports bind to it.
    if let Some(m) = &config.mesh {
        node.set_mesh(mesh::Mesh::start(m)?);
    }
    let mut mesh_events = node.mesh().and_then(|m| m.events());
    node.create_transports(&config, state_dir.path());

    let (call_tx, mut call_rx) = mpsc::channel(64);
    let socket = state_dir.control_socket();
    let server = control::serve(&socket, call_tx)?;
    tracing::info!("control socket {}", socket.display());
    node.start_transports();

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let reason = loop {
        let deadline = match (services.next_deadline(), node.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(d) => {
                    tokio::time::sleep(Duration::from_millis(d.saturating_sub(services.uptime_ms()))).await
                }
                None => std::future::pending().await,
            }
        };
        let fds_ready =
            std::future::poll_fn(|cx| services.fds.lock().unwrap_or_else(|e| e.into_inner()).poll_ready(cx));
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            Some(call) = call_rx.recv() => {
                node.control(&call.request.method, &call.request.params, call.data, call.reply)
            }
            Some(msg) = transport_rx.recv() => {
                // One store batch (one fsync) for everything queued.
                node.on_transport_msgs(transport_rx.take(Some(msg), FRAME_BATCH));
            }
            ready = fds_ready => {
                node.on_fds_ready(ready);
                // What the transports just read goes into one store batch
                // now, not a turn (and a commit) at a time.
                let msgs = transport_rx.take(None, FRAME_BATCH);
                if !msgs.is_empty() {
                    node.on_transport_msgs(msgs);
                }
            }
            _ = async {
                match mesh_events.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => node.poll_mesh(),
            _ = sleep => node.fire_timers(),
            _ = std::future::ready(()), if node.has_pending_fds() => {
                let pending = node.take_pending_fds();
                node.on_fds_ready(pending);
            }
        }
    };

    tracing::info!("shutting down ({reason})");
    server.abort();
    node.shutdown();
    let _ = std::fs::remove_file(&socket);
    tracing::info!("meshpay stopped");
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "meshpay".into())
}
