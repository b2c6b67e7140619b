//! # Committee-quorum payments (`org.meshpay.consensus.quorum`)
//!
//! A FastPay-style payment system as a meshpay consensus plugin. Accounts
//! are Ed25519 wallet keys; a committee of authorities (node keys with
//! weights) and the genesis balances come from the configuration. A wallet
//! signs a transfer order for its account's next sequence number; each
//! authority votes for at most one order per (account, sequence number);
//! votes of more than two thirds of the weight form a certificate, which is
//! final and verifiable offline by anyone who knows the committee, and
//! which every authority applies exactly once.
//!
//! Everything travels as bundles over the mesh (orders, confirmations and
//! heartbeats to `dtn://~authorities/quorum`, votes back to the client
//! node's `dtn://<node>/quorum`, receipts to the recipient's home node) and
//! everything is kept in the plugin's LMDB tables, written inside the
//! host's transaction for each call: a call that fails leaves no trace, and
//! a vote never leaves the node before the lock it implies is committed.
//!
//! Modules: [`config`] (roles, committee, hash), [`wire`] (messages),
//! [`ledger`] (tables, applying certificates, the conservation invariant),
//! [`protocol`] (dispatch and shared checks), [`authority`], [`client`] and
//! [`gateway`] (the roles), [`control`] (the JSON methods), [`env`](mod@env) (what
//! the sans-IO core needs from the host), [`batch`] (many bundles in one
//! call: the ABI 1.1 `on_bundles` entry point, with signatures checked ahead
//! by `prepare_bundles` through [`checks::Checker::prepare`]). `README.md`
//! has the message formats, state machines, table layout and control schemas.

pub mod authority;
pub mod batch;
pub mod checks;
pub mod client;
pub mod config;
pub mod control;
#[cfg(feature = "direct")]
pub mod direct;
pub mod env;
pub mod error;
pub mod gateway;
pub mod keys;
pub mod ledger;
pub mod protocol;
pub mod wire;

use std::sync::Arc;

use meshpay_abi::BundleInfo;
use meshpay_abi::sdk::{BundlePreparer, ConsensusHost, ConsensusPlugin, Host, Level, PluginError, Reply};

use crate::batch::Incoming;
use crate::checks::Checker;
use crate::config::{Config, Role};
use crate::env::{Env, SdkEnv};
use crate::protocol::{AUTHORITIES, Core};

/// The plugin id.
pub const PLUGIN_ID: &str = "org.meshpay.consensus.quorum";

/// The one timer: housekeeping every `tick_ms`.
const TICK: u64 = 1;

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.consensus.quorum",
    name: "Committee-quorum payments",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "FastPay-style payments: a committee of authorities, certificates of more than 2/3 of the weight",
    consensus: QuorumPlugin,
}

/// Most threads a batched call (`on_bundles`, `prepare_bundles`) spreads
/// its signature work over; the machine's cores if fewer.
const MAX_THREADS: usize = 8;

/// One plugin instance: the protocol core and, except on relays, its
/// tables.
pub struct QuorumPlugin {
    core: Core,
    env: Option<SdkEnv>,
    host: Host,
    /// Threads for the signature work of a batched call.
    threads: usize,
}

/// `prepare_bundles`: checks the signatures of orders and confirmations
/// ahead, through the host's thread-safe `verify`/`verify_batch`, into the
/// checker's shared set of prechecked payloads that the later
/// `on_bundles` consumes ([`Checker::prepare`]). Touches no table.
struct Preparer {
    checker: Checker,
    host: Host,
    threads: usize,
}

impl BundlePreparer for Preparer {
    fn prepare_bundles(&self, bundles: &[BundleInfo<'_>]) -> Result<(), PluginError> {
        let items: Vec<Incoming<'_>> =
            bundles.iter().map(|b| Incoming { source: b.source, payload: b.payload }).collect();
        self.checker.prepare(&self.host, self.threads, &items);
        Ok(())
    }
}

impl QuorumPlugin {
    fn env(&self) -> Result<&SdkEnv, PluginError> {
        self.env.as_ref().ok_or_else(|| {
            PluginError::invalid("this node is a relay: it keeps no ledger (configure role = \"client\")")
                .at(Level::Warn)
        })
    }
}

impl ConsensusPlugin for QuorumPlugin {
    const ON_BUNDLES: bool = true;
    const PREPARE_BUNDLES: bool = true;

    fn create(host: Host, consensus: ConsensusHost, config: &[u8]) -> Result<Self, PluginError> {
        let cfg = Config::parse(config)?;
        let me = host.node_key()?;
        let node_endpoint = host.node_endpoint()?;
        let role = cfg.role;
        let tick_ms = cfg.tick_ms;
        let mut core = Core::new(cfg, me, &node_endpoint).map_err(PluginError::invalid)?;
        let env = if role == Role::Relay {
            None
        } else {
            let env = SdkEnv::open(host, consensus)?;
            ledger::init(&env, core.committee())?;
            consensus.subscribe(&core.endpoint)?;
            if role == Role::Authority {
                consensus.subscribe(AUTHORITIES)?;
            }
            host.set_timer(TICK, tick_ms)?;
            Some(env)
        };
        core.start(host.now_ms());
        host.log(
            Level::Info,
            &format!(
                "{} of committee {} ({} authorities, quorum weight {} of {})",
                role.as_str(),
                keys::hex(core.hash()),
                core.committee().len(),
                core.committee().quorum_weight(),
                core.committee().total_weight()
            ),
        );
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
        Ok(QuorumPlugin { core, env, host, threads })
    }

    fn on_bundle(&mut self, bundle: &BundleInfo<'_>) -> Result<(), PluginError> {
        let env = *self.env()?;
        self.core.on_bundle(&env, bundle.source, bundle.payload).map_err(error::Error::into_plugin_error)
    }

    /// The bundles in one call ([`Core::on_bundles`]): signatures checked on
    /// all cores (those `prepare_bundles` checked are skipped), ledger work
    /// in order, votes signed on all cores. Same decisions, tables and
    /// emitted bundles as `on_bundle` per bundle; a refused bundle made no
    /// write.
    fn on_bundles(
        &mut self,
        bundles: &[BundleInfo<'_>],
    ) -> Result<Vec<Result<(), PluginError>>, PluginError> {
        let Some(env) = self.env else {
            return Ok(bundles.iter().map(|_| Err(self.env().err().expect("a relay has no env"))).collect());
        };
        let items: Vec<Incoming<'_>> =
            bundles.iter().map(|b| Incoming { source: b.source, payload: b.payload }).collect();
        let results = self
            .core
            .on_bundles(&env, &self.host, self.threads, &items)
            .map_err(error::Error::into_plugin_error)?;
        Ok(results.into_iter().map(|r| r.map_err(error::Error::into_plugin_error)).collect())
    }

    fn preparer(&self) -> Option<Arc<dyn BundlePreparer>> {
        Some(Arc::new(Preparer {
            checker: self.core.checker.clone(),
            host: self.host,
            threads: self.threads,
        }))
    }

    fn on_control(&mut self, method: &str, body: &[u8], reply: &mut Reply<'_>) -> Result<(), PluginError> {
        let env = self.env;
        let r = self.core.control(env.as_ref().map(|e| e as &dyn Env), method, body);
        match r {
            Ok(v) => reply.write(&serde_json::to_vec(&v).unwrap_or_else(|_| b"null".to_vec())),
            Err(e) => {
                // The call fails (its writes are rolled back); the reason
                // also goes to the reply for hosts that pass it on.
                let (reason, message) = match &e {
                    error::Error::Refused(f) => (f.reason.as_str(), f.detail.clone()),
                    error::Error::Host(p) => ("host", p.message.clone()),
                };
                let body = serde_json::json!({"error": {"reason": reason, "message": message}});
                let _ = reply.write(&serde_json::to_vec(&body).unwrap_or_default());
                Err(e.into_plugin_error())
            }
        }
    }

    fn on_timer(&mut self, timer_id: u64) -> Result<(), PluginError> {
        if timer_id != TICK {
            return Ok(());
        }
        // Re-armed first: timers are not part of the transaction, so a
        // failed tick does not stop the next one.
        self.host.set_timer(TICK, self.core.cfg.tick_ms)?;
        let env = *self.env()?;
        self.core.on_tick(&env).map_err(error::Error::into_plugin_error)
    }
}
