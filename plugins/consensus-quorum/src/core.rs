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

use meshpay_abi::SignedMessage;
use meshpay_abi::sdk::Level;

use crate::config::{Committee, Config, Role};
use crate::env::Env;
use crate::error::{Error, Reason, refuse};
use crate::keys::{Hash, Key, check_key, hex, quorum_endpoint};
use crate::ledger::{self, Applied, Mode};
use crate::wire::{self, Body, Certificate, Message, Order, OrderKind};

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
    pub cfg: Config,
    /// This node's key (its authority identity, if it is one).
    pub me: Key,
    /// `dtn://<me>/quorum`: where votes and receipts for this node arrive.
    pub endpoint: String,
    pub vol: Volatile,
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
        let endpoint = if base.is_empty() { quorum_endpoint(&me) } else { format!("{base}/{}", crate::env::SERVICE) };
        Ok(Core { cfg, me, endpoint, vol: Volatile::default() })
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
            Error::refused(Reason::WrongRole, format!("{what} from {source}, but this node is a {}", self.role().as_str()))
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
    pub fn emit(&self, env: &dyn Env, destination: &str, body: Body, lifetime_ms: u64, priority: u32) -> Result<(), Error> {
        let payload = Message { committee: *self.hash(), body }.to_bytes();
        env.emit(&crate::env::Emit { destination, payload: &payload, priority, lifetime_ms })?;
        Ok(())
    }

    /// Lifetime of order, vote and refusal bundles.
    pub fn order_lifetime(&self) -> u64 {
        self.cfg.order_timeout_ms
    }

    /// The checks an order passes before anything else: amount, keys,
    /// sizes; for votes also the withdrawal bounds of this node's config.
    /// Returns the order hash.
    pub fn check_order(&self, order: &Order, for_vote: bool) -> Result<Hash, Error> {
        let b = &order.body;
        if b.amount == 0 {
            return refuse(Reason::ZeroAmount, "the amount must be at least 1");
        }
        if b.sequence == u64::MAX {
            return refuse(Reason::Overflow, "sequence number u64::MAX cannot be used");
        }
        check_key(&b.sender).map_err(|e| Error::refused(Reason::WeakKey, format!("sender: {e}")))?;
        match &b.kind {
            OrderKind::Transfer { recipient } => {
                check_key(recipient).map_err(|e| Error::refused(Reason::WeakKey, format!("recipient: {e}")))?
            }
            OrderKind::Withdrawal { gateway, expiry_ms, destination } => {
                check_key(gateway).map_err(|e| Error::refused(Reason::WeakKey, format!("gateway: {e}")))?;
                if destination.is_empty() || destination.len() > wire::MAX_DESTINATION {
                    return refuse(Reason::Malformed, "the withdrawal destination must be 1 to 64 bytes");
                }
                let (lo, hi) = (self.cfg.min_withdrawal_expiry_ms, self.cfg.max_withdrawal_expiry_ms);
                if for_vote && !(lo..=hi).contains(expiry_ms) {
                    return refuse(
                        Reason::ExpiryOutOfRange,
                        format!("withdrawal expiry {expiry_ms} ms is outside {lo}..={hi} ms"),
                    );
                }
            }
        }
        Ok(b.hash(self.hash()))
    }

    /// Checks the sender's signature on an order.
    pub fn verify_order(&self, env: &dyn Env, order: &Order) -> Result<(), Error> {
        let msg = order.body.signing_message(self.hash());
        if env.verify(&order.body.sender, &msg, &order.signature) {
            Ok(())
        } else {
            refuse(Reason::BadSignature, format!("the signature of sender {} does not verify", hex(&order.body.sender)))
        }
    }

    /// Weight of distinct committee members among `signers`; refuses
    /// strangers.
    pub fn signers_weight<'k>(&self, signers: impl Iterator<Item = &'k Key>) -> Result<u64, Error> {
        let mut w: u64 = 0;
        for k in signers {
            match self.committee().weight(k) {
                Some(x) => w = w.saturating_add(x),
                None => {
                    return refuse(Reason::UnknownAuthority, format!("signer {} is not in the committee", hex(k)));
                }
            }
        }
        Ok(w)
    }

    /// Verifies a certificate offline against the committee: a quorum of
    /// distinct members, and one batch verification over the sender's
    /// signature and every vote (the host falls back to single checks to
    /// name a bad one). Returns the order hash.
    pub fn verify_certificate(&self, env: &dyn Env, cert: &Certificate) -> Result<Hash, Error> {
        let h = self.check_order(&cert.order, false)?;
        let weight = self.signers_weight(cert.votes.iter().map(|(k, _)| k))?;
        if !self.committee().is_quorum(weight) {
            return refuse(
                Reason::BadCertificate,
                format!(
                    "votes of weight {weight} out of {}: a certificate needs at least {}",
                    self.committee().total_weight(),
                    self.committee().quorum_weight()
                ),
            );
        }
        let order_msg = cert.order.body.signing_message(self.hash());
        let vote_msg = wire::vote_message(&h);
        let mut items = Vec::with_capacity(1 + cert.votes.len());
        items.push(SignedMessage {
            public_key: &cert.order.body.sender,
            message: &order_msg,
            signature: &cert.order.signature,
        });
        items.extend(cert.votes.iter().map(|(k, s)| SignedMessage { public_key: k, message: &vote_msg, signature: s }));
        match env.verify_batch(&items) {
            Ok(()) => Ok(h),
            Err(Some(0)) => refuse(Reason::BadSignature, "the sender's signature in the certificate does not verify"),
            Err(Some(i)) => refuse(
                Reason::BadSignature,
                format!("the vote of authority {} in the certificate does not verify", hex(&cert.votes[i - 1].0)),
            ),
            Err(None) => refuse(Reason::BadSignature, "the certificate's signatures do not verify"),
        }
    }

    /// Verifies (unless it is a replay) and applies a certificate, then lets
    /// the client and gateway parts see it.
    pub fn accept_certificate(&mut self, env: &dyn Env, cert: &Certificate) -> Result<(Hash, Applied), Error> {
        let body = &cert.order.body;
        let h = body.hash(self.hash());
        // Replays are cheap: no signature checks for what is applied already.
        let applied = if ledger::certificate_hash_at(env, &body.sender, body.sequence)? == Some(h) {
            Applied::Replay
        } else {
            self.verify_certificate(env, cert)?;
            ledger::apply(env, cert, &h, self.mode())?
        };
        match applied {
            Applied::Conflict { applied } => env.log(
                Level::Error,
                &format!(
                    "conflicting certificates for account {} sequence {}: applied {}, received {}: \
                     more than a third of the committee weight signed both",
                    hex(&body.sender),
                    body.sequence,
                    hex(&applied),
                    hex(&h)
                ),
            ),
            Applied::Applied { .. } | Applied::Waiting => {
                env.log(
                    Level::Debug,
                    &format!(
                        "certificate {} (account {} sequence {}): {applied:?}",
                        hex(&h),
                        hex(&body.sender),
                        body.sequence
                    ),
                );
            }
            Applied::Replay => {}
        }
        self.after_certificate(env, cert, &h)?;
        Ok((h, applied))
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
fn reply_address(source: &str) -> Result<String, Error> {
    if source.starts_with("dtn://") && source.len() <= MAX_SOURCE && !source.contains(char::is_whitespace) {
        Ok(source.to_owned())
    } else {
        refuse(Reason::Malformed, format!("cannot answer a bundle from `{source}`"))
    }
}
