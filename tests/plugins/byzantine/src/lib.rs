//! `org.meshpay.test.byzantine`: a Byzantine payments authority for the
//! double-spend tests. Not shipped.
//!
//! It is the real quorum plugin (same config, same tables, same handling
//! of certificates, heartbeats and control methods) with one change: every
//! order of its committee that reaches it gets its vote, signed with the
//! node key through the host and sent back to the order's source, without
//! any check and without a lock. That is the worst a single authority can
//! do to safety: it signs both orders of a double spend. With less than a
//! third of the weight Byzantine, two quorums still share an honest
//! authority, so at most one of the two can be certified; the tests check
//! that on real nodes.
//!
//! `status` adds `"byzantine": {"votes_signed": n}` (since start).

use meshpay_abi::sdk::{ConsensusHost, ConsensusPlugin, FdState, Host, Level, PluginError, Reply};
use meshpay_abi::{BundleInfo, OutBundle};
use meshpay_consensus_quorum::QuorumPlugin;
use meshpay_consensus_quorum::config::Config;
use meshpay_consensus_quorum::env::SERVICE;
use meshpay_consensus_quorum::keys::{Hash, Key, hex};
use meshpay_consensus_quorum::protocol::EXPEDITED;
use meshpay_consensus_quorum::wire::{self, Body, Message, Vote};

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.test.byzantine",
    name: "Byzantine payments authority (tests)",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay tests",
    description: "The quorum plugin, except that it votes for every order it receives",
    consensus: Byzantine,
}

/// The honest plugin it wraps, and what it needs to vote on its own.
pub struct Byzantine {
    inner: QuorumPlugin,
    host: Host,
    me: Key,
    committee: Hash,
    lifetime_ms: u64,
    votes_signed: u64,
}

impl Byzantine {
    /// The order in `payload`, if it is one of this committee's.
    fn order_hash(&self, payload: &[u8]) -> Option<Hash> {
        match Message::parse(payload) {
            Ok(Message { committee, body: Body::Order(o) }) if committee == self.committee => {
                Some(o.body.hash(&self.committee))
            }
            _ => None,
        }
    }
}

impl ConsensusPlugin for Byzantine {
    fn create(host: Host, consensus: ConsensusHost, config: &[u8]) -> Result<Self, PluginError> {
        let cfg = Config::parse(config)?;
        let inner = QuorumPlugin::create(host, consensus, config)?;
        host.log(Level::Warn, "BYZANTINE test authority: votes for every order it receives");
        Ok(Byzantine {
            inner,
            host,
            me: host.node_key()?,
            committee: *cfg.committee.hash(),
            lifetime_ms: cfg.order_timeout_ms,
            votes_signed: 0,
        })
    }

    fn on_bundle(&mut self, bundle: &BundleInfo<'_>) -> Result<(), PluginError> {
        let Some(h) = self.order_hash(bundle.payload) else {
            return self.inner.on_bundle(bundle);
        };
        let signature = self.host.sign(&wire::vote_message(&h))?;
        let vote = Body::Vote(Vote { order_hash: h, authority: self.me, signature });
        let payload = Message { committee: self.committee, body: vote }.to_bytes();
        self.host.emit_bundle(&OutBundle {
            destination: bundle.source,
            source_service: SERVICE,
            payload: &payload,
            priority: EXPEDITED,
            lifetime_ms: self.lifetime_ms,
        })?;
        self.votes_signed += 1;
        self.host.log(Level::Warn, &format!("byzantine: voted for order {} from {}", hex(&h), bundle.source));
        Ok(())
    }

    fn on_control(&mut self, method: &str, body: &[u8], reply: &mut Reply<'_>) -> Result<(), PluginError> {
        if method != "status" {
            return self.inner.on_control(method, body, reply);
        }
        let mut out = Vec::new();
        self.inner.on_control(method, body, &mut Reply::collecting(&mut out))?;
        let mut v: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| PluginError::failed(format!("status: {e}")))?;
        v["byzantine"] = serde_json::json!({"votes_signed": self.votes_signed});
        reply.write(&serde_json::to_vec(&v).map_err(|e| PluginError::failed(format!("status: {e}")))?)
    }

    fn on_timer(&mut self, timer_id: u64) -> Result<(), PluginError> {
        self.inner.on_timer(timer_id)
    }

    fn on_fd(&mut self, fd: i32, events: u32) -> Result<FdState, PluginError> {
        self.inner.on_fd(fd, events)
    }
}
