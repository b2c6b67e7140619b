//! The protocol core: one node's view of the payment system, driven by
//! bundles, timer ticks and control requests, reading and writing the
//! ledger through an [`Env`]. Sans-IO: no clock, no sockets, no ABI.
//!
//! The role modules add their handlers to [`Core`]: [`crate::authority`]
//! (vote, apply, heartbeats, withdrawal locks), [`crate::client`] (submit,
//! gather votes, certify, receipts) and [`crate::gateway`] (settle
//! withdrawals). This module holds what they share: dispatch, the checks
//! every order and certificate goes through, and emitting messages.
//!
//! State that must survive a failed call or a crash lives in the tables
//! only. What [`Volatile`] holds is allowed to be lost or to run ahead of
//! the tables (refusal counters, who was heard when).

use std::collections::BTreeMap;
use std::sync::Arc;

use meshpay_abi::sdk::Level;

use crate::checks::Checker;
use crate::config::{Committee, Config, Role};
use crate::env::{Crypto, Env};
use crate::error::{Error, Reason, refuse};
use crate::keys::{Hash, Key, hex, quorum_endpoint};
use crate::ledger::{self, Applied, Mode};
use crate::wire::{Body, Certificate, Message, Order};

/// The group endpoint every authority subscribes to.
pub const AUTHORITIES: &str = "dtn://~authorities/quorum";

/// Bundle priorities (RFC 9171 class of service).
pub const EXPEDITED: u32 = 2;
pub const NORMAL: u32 = 1;

/// Longest bundle source accepted as a reply address.
const MAX_SOURCE: usize = 256;

/// When an authority last heard another one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard {
    /// The highest heartbeat sequence number seen.
    pub seq: u64,
    /// Host clock when it arrived.
    pub at_ms: u64,
}

/// State that may be lost on restart: counters for `status` and the
/// heartbeat view.
#[derive(Clone, Debug, Default)]
pub struct Volatile {
    /// Refusals by reason since start.
    pub refusals: BTreeMap<Reason, u64>,
    pub heard: BTreeMap<Key, Heard>,
    pub last_heartbeat_ms: Option<u64>,
    /// Host clock at the last tick (or start), to advance the ledger clock.
    pub last_tick_ms: Option<u64>,
    /// Messages of another committee since start, and the last such hash.
    pub other_committee: u64,
    pub last_other_committee: Option<Hash>,
}

/// One node's protocol state.
pub struct Core {
    /// Shared with [`Core::checker`].
    pub cfg: Arc<Config>,
    /// This node's key (its authority identity, if it is one).
    pub me: Key,
    /// `dtn://<me>/quorum`: where votes and receipts for this node arrive.
    pub endpoint: String,
    pub vol: Volatile,
    /// The checks that need no tables (shareable with other threads).
    pub checker: Checker,
}

impl Core {
    /// Checks that the role fits the committee.
    pub fn new(cfg: Config, me: Key, node_endpoint: &str) -> Result<Core, String> {
        if cfg.role == Role::Authority && cfg.committee.weight(&me).is_none() {
            return Err(format!(
                "config.role: \"authority\", but this node's key {} is not in the committee",
                hex(&me)
            ));
        }
        let base = node_endpoint.trim_end_matches('/');
        let endpoint =
            if base.is_empty() { quorum_endpoint(&me) } else { format!("{base}/{}", crate::env::SERVICE) };
        let cfg = Arc::new(cfg);
        let checker = Checker::new(cfg.clone());
        Ok(Core { cfg, me, endpoint, vol: Volatile::default(), checker })
    }

    pub fn committee(&self) -> &Committee {
        &self.cfg.committee
    }

    pub fn hash(&self) -> &Hash {
        self.cfg.committee.hash()
    }

    pub fn role(&self) -> Role {
        self.cfg.role
    }

    /// How this node applies certificates.
    pub fn mode(&self) -> Mode {
        if self.cfg.role == Role::Authority { Mode::Strict } else { Mode::View }
    }

    pub fn is_authority(&self) -> bool {
        self.cfg.role == Role::Authority
    }

    /// Counts a refusal for `status`.
    pub fn count(&mut self, reason: Reason) {
        *self.vol.refusals.entry(reason).or_default() += 1;
    }

    /// A bundle for one of the plugin's endpoints. On `Err` the host rolls
    /// back the call's writes and drops what it emitted.
    pub fn on_bundle(&mut self, env: &dyn Env, source: &str, payload: &[u8]) -> Result<(), Error> {
        let r = self.dispatch(env, source, payload);
        if let Err(Error::Refused(f)) = &r {
            self.count(f.reason);
        }
        r
    }

    fn dispatch(&mut self, env: &dyn Env, source: &str, payload: &[u8]) -> Result<(), Error> {
        let msg = Message::parse(payload).map_err(|e| Error::refused(Reason::Malformed, e.0))?;
        let kind = msg.body.message_type().name();
        if msg.committee != *self.hash() {
            self.vol.other_committee += 1;
            self.vol.last_other_committee = Some(msg.committee);
            return refuse(
                Reason::OtherCommittee,
                format!(
                    "{kind} from {source} is for committee {}, this node's committee is {}: \
                     the nodes were configured with different committee files",
                    hex(&msg.committee),
                    hex(self.hash())
                ),
            );
        }
        let wrong_role = |what: &str| {
            Error::refused(
                Reason::WrongRole,
                format!("{what} from {source}, but this node is a {}", self.role().as_str()),
            )
        };
        match msg.body {
            Body::Order(o) if self.is_authority() => {
                let to = reply_address(source)?;
                self.on_order(env, o, &to)
            }
            Body::Order(_) => Err(wrong_role("an order")),
            Body::Heartbeat(h) if self.is_authority() => self.on_heartbeat(env, &h),
            Body::Heartbeat(_) => Err(wrong_role("a heartbeat")),
            Body::Settle(s) if self.is_authority() => {
                let to = reply_address(source)?;
                self.on_settle(env, s, &to)
            }
            Body::Settle(_) => Err(wrong_role("a settlement claim")),
            Body::SettleCertificate(s) if self.is_authority() => self.on_settle_certificate(env, s),
            Body::SettleCertificate(_) => Err(wrong_role("a settlement certificate")),
            Body::SettleAck(v) if self.role() == Role::Gateway => self.on_settle_ack(env, &v),
            Body::SettleAck(_) => Err(wrong_role("a settlement acknowledgement")),
            Body::Vote(v) => self.on_vote(env, &v),
            Body::Refusal(f) => self.on_refusal(env, &f),
            Body::Confirmation(c) => self.on_confirmation(env, c),
        }
    }

    /// Emits a message (with this committee's header).
    pub fn emit(
        &self,
        env: &dyn Env,
        destination: &str,
        body: Body,
        lifetime_ms: u64,
        priority: u32,
    ) -> Result<(), Error> {
        let payload = Message { committee: *self.hash(), body }.to_bytes();
        env.emit(&crate::env::Emit { destination, payload: &payload, priority, lifetime_ms })?;
        Ok(())
    }

    /// Lifetime of order, vote and refusal bundles.
    pub fn order_lifetime(&self) -> u64 {
        self.cfg.order_timeout_ms
    }

    /// See [`Checker::check_order`].
    pub fn check_order(&self, order: &Order, for_vote: bool) -> Result<Hash, Error> {
        self.checker.check_order(order, for_vote)
    }

    /// See [`Checker::verify_order`].
    pub fn verify_order(&self, crypto: &dyn Crypto, order: &Order) -> Result<(), Error> {
        self.checker.verify_order(crypto, order)
    }

    /// See [`Checker::signers_weight`].
    pub fn signers_weight<'k>(&self, signers: impl Iterator<Item = &'k Key>) -> Result<u64, Error> {
        self.checker.signers_weight(signers)
    }

    /// See [`Checker::check_certificate`].
    pub fn check_certificate(&self, cert: &Certificate) -> Result<Hash, Error> {
        self.checker.check_certificate(cert)
    }

    /// See [`Checker::verify_certificate`].
    pub fn verify_certificate(&self, crypto: &dyn Crypto, cert: &Certificate) -> Result<Hash, Error> {
        self.checker.verify_certificate(crypto, cert)
    }

    /// Verifies (unless it is a replay) and applies a certificate, then lets
    /// the client and gateway parts see it.
    pub fn accept_certificate(
        &mut self,
        env: &dyn Env,
        cert: &Certificate,
    ) -> Result<(Hash, Applied), Error> {
        let body = &cert.order.body;
        let h = body.hash(self.hash());
        // Replays are cheap: no signature checks for what is applied already.
        if ledger::certificate_hash_at(env, &body.sender, body.sequence)? == Some(h) {
            self.after_certificate(env, cert, &h)?;
            return Ok((h, Applied::Replay));
        }
        self.verify_certificate(env, cert)?;
        let applied = self.apply_verified(env, cert, &h)?;
        Ok((h, applied))
    }

    /// Applies a certificate whose signatures checked out, then lets the
    /// client and gateway parts see it.
    pub fn apply_verified(&mut self, env: &dyn Env, cert: &Certificate, h: &Hash) -> Result<Applied, Error> {
        let body = &cert.order.body;
        let h = *h;
        let applied = ledger::apply(env, cert, &h, self.mode())?;
        // Applications are in the history table; only the impossible is logged.
        if let Applied::Conflict { applied } = applied {
            env.log(
                Level::Error,
                &format!(
                    "conflicting certificates for account {} sequence {}: applied {}, received {}: \
                     more than a third of the committee weight signed both",
                    hex(&body.sender),
                    body.sequence,
                    hex(&applied),
                    hex(&h)
                ),
            );
        }
        self.after_certificate(env, cert, &h)?;
        Ok(applied)
    }

    /// Quorum reachability from heartbeats: this node's own weight plus the
    /// authorities heard within the window. `(reachable, weight)`.
    pub fn reachability(&self, now_ms: u64) -> (bool, u64) {
        let mut w = self.committee().weight(&self.me).unwrap_or(0);
        for (k, h) in &self.vol.heard {
            if *k != self.me && now_ms.saturating_sub(h.at_ms) <= self.cfg.heartbeat_window_ms {
                w = w.saturating_add(self.committee().weight(k).unwrap_or(0));
            }
        }
        (self.committee().is_quorum(w), w)
    }

    /// Timer tick: advance the ledger clock, then each role's housekeeping.
    pub fn on_tick(&mut self, env: &dyn Env) -> Result<(), Error> {
        let now = env.now_ms();
        let elapsed = self.vol.last_tick_ms.map_or(0, |l| now.saturating_sub(l));
        self.vol.last_tick_ms = Some(now);
        let clock = ledger::clock(env)?.saturating_add(elapsed);
        ledger::write_u64(env, ledger::meta::CLOCK, clock)?;
        if self.is_authority() {
            self.authority_tick(env, now, clock)?;
        }
        self.client_tick(env, clock)?;
        if self.role() == Role::Gateway {
            self.gateway_tick(env, clock)?;
        }
        Ok(())
    }

    /// Notes the host clock at start, so the first tick counts from it.
    pub fn start(&mut self, now_ms: u64) {
        self.vol.last_tick_ms = Some(now_ms);
    }
}

/// The source of a bundle as the address to answer: a `dtn:` URI of sane
/// length (the engine checks the rest when the reply is emitted).
pub(crate) fn reply_address(source: &str) -> Result<String, Error> {
    if source.starts_with("dtn://") && source.len() <= MAX_SOURCE && !source.contains(char::is_whitespace) {
        Ok(source.to_owned())
    } else {
        refuse(Reason::Malformed, format!("cannot answer a bundle from `{source}`"))
    }
}
