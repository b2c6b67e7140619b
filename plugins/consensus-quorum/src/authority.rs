//! The authority role: vote on orders (at most one per account and
//! sequence number), apply certificates, send heartbeats, keep withdrawal
//! locks until a gateway settles them or they expire.
//!
//! Order handling follows FastPay's authority:
//!
//! 1. the order must be well-formed and signed by its sender (refused with
//!    `MP_ERR_INVALID` otherwise: nothing is written, nothing answered);
//! 2. its sequence number must equal the account's next one exactly (an
//!    older one that is certified gets the certificate back, so a client
//!    that missed it learns it);
//! 3. if this authority already signed an order for the slot, the same
//!    order gets the same vote again, a different one is an **attempted
//!    double spend**: refused, counted, its proof stored, both hashes
//!    logged;
//! 4. balance (and, for withdrawals, quorum reachability) is checked;
//! 5. the lock (the order hash in the account record) is written, *then* the
//!    vote is signed and emitted: the host commits both atomically and
//!    sends only after the commit, so no vote ever leaves without its lock
//!    on disk.
//!
//! Refusals of validly signed orders (steps 2 to 4) are answered with a
//! signed [`wire::Refusal`] so the client can stop waiting; the call
//! succeeds (its only write is the double-spend evidence).

use meshpay_abi::sdk::Level;

use crate::env::{Env, TableId};
use crate::error::{Error, Reason, refuse};
use crate::keys::{Hash, Sig, hex};
use crate::ledger::{self, Counter, Event, EventKind, Evidence, LockState};
use crate::protocol::{AUTHORITIES, Core, EXPEDITED, Heard, NORMAL};
use crate::wire::{self, Body, Heartbeat, Order, OrderKind, Settle, SettleCertificate, Vote};

impl Core {
    pub(crate) fn on_order(&mut self, env: &dyn Env, order: Order, reply_to: &str) -> Result<(), Error> {
        let h = self.check_order(&order, true)?;
        self.verify_order(env, &order)?;
        if self.decide_order(env, &order, &h, reply_to)? {
            self.send_vote(env, &h, reply_to)?;
        }
        Ok(())
    }

    /// Steps 2 to 5 for an order whose signature checked out: answers it,
    /// refuses it, or writes its lock. Returns whether to send the vote.
    pub(crate) fn decide_order(
        &mut self,
        env: &dyn Env,
        order: &Order,
        h: &Hash,
        reply_to: &str,
    ) -> Result<bool, Error> {
        let b = &order.body;
        let Some(mut account) = ledger::load_account(env, &b.sender)? else {
            let detail = format!("account {} has never been funded", hex(&b.sender));
            self.refuse_signed(env, h, Reason::UnknownAccount, detail, reply_to)?;
            return Ok(false);
        };
        if b.sequence < account.next_sequence {
            match ledger::certificate_at(env, &b.sender, b.sequence)? {
                Some((ch, cert)) if ch == *h => {
                    // Certified already: hand the client its certificate.
                    let life = self.cfg.bundle_lifetime_ms;
                    self.emit(env, reply_to, Body::Confirmation(cert), life, EXPEDITED)?;
                }
                _ => {
                    let detail = format!(
                        "sequence {} of account {} is taken by another certified order (next is {})",
                        b.sequence,
                        hex(&b.sender),
                        account.next_sequence
                    );
                    self.refuse_signed(env, h, Reason::SequenceUsed, detail, reply_to)?;
                }
            }
            return Ok(false);
        }
        if b.sequence > account.next_sequence {
            let detail = format!(
                "sequence {} of account {} is ahead: the next one is {}",
                b.sequence,
                hex(&b.sender),
                account.next_sequence
            );
            self.refuse_signed(env, h, Reason::SequenceAhead, detail, reply_to)?;
            return Ok(false);
        }
        match account.lock {
            Some(locked) if locked == *h => {
                // The same order again: the same vote (Ed25519 is deterministic).
                ledger::bump(env, Counter::VotesResent, 1)?;
                return Ok(true);
            }
            Some(locked) => {
                self.double_spend(env, order, h, &locked, reply_to)?;
                return Ok(false);
            }
            None => {}
        }
        if b.is_withdrawal() {
            let (reachable, weight) = self.reachability(env.now_ms());
            if !reachable {
                let detail = format!(
                    "withdrawals need a reachable quorum: authorities of weight {weight} heard recently, {} needed",
                    self.committee().quorum_weight()
                );
                self.refuse_signed(env, h, Reason::NoQuorum, detail, reply_to)?;
                return Ok(false);
            }
        }
        if account.balance < i128::from(b.amount) {
            let detail =
                format!("account {} holds {}, the order moves {}", hex(&b.sender), account.balance, b.amount);
            self.refuse_signed(env, h, Reason::InsufficientBalance, detail, reply_to)?;
            return Ok(false);
        }
        // The lock goes to the table before the vote is emitted.
        account.lock = Some(*h);
        ledger::store_account(env, &b.sender, &account)?;
        ledger::bump(env, Counter::OrdersSigned, 1)?;
        Ok(true)
    }

    fn send_vote(&self, env: &dyn Env, h: &Hash, to: &str) -> Result<(), Error> {
        let signature = env.sign(&wire::vote_message(h))?;
        self.emit_vote(env, h, signature, to)
    }

    /// Emits a vote signed already.
    pub(crate) fn emit_vote(&self, env: &dyn Env, h: &Hash, signature: Sig, to: &str) -> Result<(), Error> {
        let vote = Vote { order_hash: *h, authority: self.me, signature };
        self.emit(env, to, Body::Vote(vote), self.order_lifetime(), EXPEDITED)
    }

    /// Records an attempted double spend (once per attempted order) and
    /// refuses it.
    fn double_spend(
        &mut self,
        env: &dyn Env,
        order: &Order,
        h: &Hash,
        locked: &Hash,
        reply_to: &str,
    ) -> Result<(), Error> {
        let b = &order.body;
        let key = ledger::evidence_key(&b.sender, b.sequence, h);
        if env.get(TableId::Evidence, &key)?.is_none() {
            let clock = ledger::clock(env)?;
            let ev = Evidence { locked: *locked, clock, attempted: order.clone() };
            env.put(TableId::Evidence, &key, &ev.encode())?;
            ledger::bump(env, Counter::DoubleSpendAttempts, 1)?;
            ledger::record(
                env,
                &Event {
                    kind: EventKind::DoubleSpendAttempt,
                    clock,
                    order_hash: *h,
                    account: b.sender,
                    sequence: b.sequence,
                    amount: b.amount,
                },
            )?;
        }
        env.log(
            Level::Warn,
            &format!(
                "attempted double spend by account {} at sequence {}: signed order {}, refused order {}",
                hex(&b.sender),
                b.sequence,
                hex(locked),
                hex(h)
            ),
        );
        self.refuse_signed(
            env,
            h,
            Reason::DoubleSpend,
            format!(
                "sequence {} of account {} is locked by order {}",
                b.sequence,
                hex(&b.sender),
                hex(locked)
            ),
            reply_to,
        )
    }

    /// Refuses a validly signed order with a signed answer to the client;
    /// the call itself succeeds.
    pub(crate) fn refuse_signed(
        &mut self,
        env: &dyn Env,
        h: &Hash,
        reason: Reason,
        detail: String,
        to: &str,
    ) -> Result<(), Error> {
        self.count(reason);
        env.log(Level::Info, &format!("refused order {}: {reason}: {detail}", hex(h)));
        let signature = env.sign(&wire::refusal_message(h, reason as u8))?;
        let r = wire::Refusal { order_hash: *h, authority: self.me, reason: reason as u8, signature };
        self.emit(env, to, Body::Refusal(r), self.order_lifetime(), EXPEDITED)
    }

    pub(crate) fn on_heartbeat(&mut self, env: &dyn Env, hb: &Heartbeat) -> Result<(), Error> {
        if hb.authority == self.me {
            return Ok(()); // our own, delivered back through the group
        }
        self.signers_weight(std::iter::once(&hb.authority))?;
        let msg = wire::heartbeat_message(self.hash(), &hb.authority, hb.seq);
        if !env.verify(&hb.authority, &msg, &hb.signature) {
            return refuse(
                Reason::BadSignature,
                format!("heartbeat of {} does not verify", hex(&hb.authority)),
            );
        }
        let now = env.now_ms();
        match self.vol.heard.get(&hb.authority) {
            Some(h) if h.seq >= hb.seq => refuse(
                Reason::Stale,
                format!("heartbeat {} of {} after {}", hb.seq, hex(&hb.authority), h.seq),
            ),
            _ => {
                self.vol.heard.insert(hb.authority, Heard { seq: hb.seq, at_ms: now });
                Ok(())
            }
        }
    }

    /// Heartbeats and lock expiry.
    pub(crate) fn authority_tick(&mut self, env: &dyn Env, now: u64, clock: u64) -> Result<(), Error> {
        let due = self.vol.last_heartbeat_ms.is_none_or(|t| now.saturating_sub(t) >= self.cfg.heartbeat_ms);
        if due && self.committee().len() > 1 {
            let seq = ledger::read_u64(env, ledger::meta::HEARTBEAT_SEQ)? + 1;
            ledger::write_u64(env, ledger::meta::HEARTBEAT_SEQ, seq)?;
            let signature = env.sign(&wire::heartbeat_message(self.hash(), &self.me, seq))?;
            let hb = Heartbeat { authority: self.me, seq, signature };
            self.emit(env, AUTHORITIES, Body::Heartbeat(hb), self.cfg.heartbeat_window_ms, NORMAL)?;
            self.vol.last_heartbeat_ms = Some(now);
        }
        for h in ledger::expire_locks(env, clock)? {
            env.log(Level::Info, &format!("withdrawal lock {} expired unsettled: funds returned", hex(&h)));
        }
        Ok(())
    }

    /// A gateway claims a withdrawal: settle the lock (unless it expired)
    /// and acknowledge.
    pub(crate) fn on_settle(&mut self, env: &dyn Env, s: Settle, reply_to: &str) -> Result<(), Error> {
        let h = self.check_settle(env, &s.certificate, &s.gateway)?;
        if !env.verify(&s.gateway, &wire::settle_message(&h), &s.signature) {
            return refuse(Reason::BadSignature, format!("settlement claim of gateway {}", hex(&s.gateway)));
        }
        let lock = match ledger::load_lock(env, &h)? {
            Some(l) => l,
            None => {
                self.accept_certificate(env, &s.certificate)?;
                match ledger::load_lock(env, &h)? {
                    Some(l) => l,
                    // Waiting for earlier certificates of the account: the
                    // gateway will claim again.
                    None => return Ok(()),
                }
            }
        };
        match lock.state {
            LockState::Expired => refuse(
                Reason::LockExpired,
                format!("withdrawal {} expired before the gateway claimed it; the funds went back", hex(&h)),
            ),
            LockState::Locked | LockState::Settled => {
                if lock.state == LockState::Locked {
                    ledger::transition(env, &h, LockState::Settled)?;
                    env.log(
                        Level::Info,
                        &format!("withdrawal {} settled by gateway {}", hex(&h), hex(&s.gateway)),
                    );
                }
                let signature = env.sign(&wire::settle_ack_message(&h))?;
                let ack = Vote { order_hash: h, authority: self.me, signature };
                self.emit(env, reply_to, Body::SettleAck(ack), self.cfg.bundle_lifetime_ms, EXPEDITED)
            }
        }
    }

    /// A quorum acknowledged a settlement: settle here too, even if this
    /// node let the lock expire meanwhile.
    pub(crate) fn on_settle_certificate(&mut self, env: &dyn Env, s: SettleCertificate) -> Result<(), Error> {
        let OrderKind::Withdrawal { gateway, .. } = s.certificate.order.body.kind else {
            return refuse(Reason::Malformed, "a settlement certificate for a transfer");
        };
        let h = self.check_settle(env, &s.certificate, &gateway)?;
        let weight = self.signers_weight(s.acks.iter().map(|(k, _)| k))?;
        if !self.committee().is_quorum(weight) {
            return refuse(
                Reason::BadCertificate,
                format!("settlement acknowledgements of weight {weight} only"),
            );
        }
        let msg = wire::settle_ack_message(&h);
        let items: Vec<_> = s
            .acks
            .iter()
            .map(|(k, sig)| meshpay_abi::SignedMessage { public_key: k, message: &msg, signature: sig })
            .collect();
        if let Err(i) = env.verify_batch(&items) {
            let who = i.and_then(|i| s.acks.get(i)).map_or_else(|| "?".to_owned(), |(k, _)| hex(k));
            return refuse(
                Reason::BadSignature,
                format!("settlement acknowledgement of {who} does not verify"),
            );
        }
        if ledger::load_lock(env, &h)?.is_none() {
            self.accept_certificate(env, &s.certificate)?;
        }
        ledger::transition(env, &h, LockState::Settled)?;
        Ok(())
    }

    /// Common checks of settlement messages: a withdrawal naming `gateway`.
    fn check_settle(
        &self,
        _env: &dyn Env,
        cert: &wire::Certificate,
        gateway: &[u8; 32],
    ) -> Result<Hash, Error> {
        match &cert.order.body.kind {
            OrderKind::Withdrawal { gateway: g, .. } if g == gateway => Ok(cert.order.body.hash(self.hash())),
            OrderKind::Withdrawal { gateway: g, .. } => refuse(
                Reason::WrongGateway,
                format!("withdrawal for gateway {} claimed by {}", hex(g), hex(gateway)),
            ),
            OrderKind::Transfer { .. } => refuse(Reason::Malformed, "a settlement claim for a transfer"),
        }
    }
}
