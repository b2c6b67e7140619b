//! The client role (every role but relay): take a wallet's signed order,
//! send it to the authorities (again every `resend_ms` until certified or
//! `order_timeout_ms` passed), gather votes, form the certificate once
//! they weigh more than two thirds, apply it to this node's view and send
//! the confirmation to the authorities and to the recipient's home node (or
//! the withdrawal's gateway). Confirmations that arrive here (receipts for
//! accounts whose home this node is) are verified and applied alike.
//!
//! Tables: `pending` (`p`·order hash → [`Pending`], `a`·order hash → empty
//! while the order is re-sent), `votes` (order hash · authority →
//! [`Answer`]).

use meshpay_abi::sdk::{Level, PluginError};

use crate::config::Role;
use crate::env::{Env, TableId, active_hashes, active_key};
use crate::error::{Error, Reason, refuse};
use crate::keys::{Hash, Key, hex, quorum_endpoint};
use crate::ledger;
use crate::protocol::{AUTHORITIES, Core, EXPEDITED};
use crate::wire::{self, Body, Certificate, Order, OrderKind, Refusal, Vote};

/// Where a pending order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingState {
    /// Waiting for votes.
    Pending = 0,
    /// A certificate exists (in `certs`).
    Certified = 1,
    /// Refusals of more than a third of the weight: no quorum can vote for
    /// it (a later vote still certifies it; a resubmission retries).
    Refused = 2,
}

/// A client's order: `version 1 | state u8 | submitted u64 | last sent u64 |
/// vote weight u64 | refused weight u64 | reason u8 | home flag u8 [| home \[32\]] | order`.
/// Times are on the ledger clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub state: PendingState,
    pub submitted: u64,
    pub last_sent: u64,
    pub vote_weight: u64,
    pub refused_weight: u64,
    /// The reason of the latest refusal (0 if none).
    pub reason: u8,
    /// The recipient's home node, where the receipt goes.
    pub home: Option<Key>,
    pub order: Order,
}

fn damaged(what: &str) -> PluginError {
    PluginError::failed(format!("damaged {what} record"))
}

impl Pending {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.order.buffer_len());
        v.push(1);
        v.push(self.state as u8);
        for x in [self.submitted, self.last_sent, self.vote_weight, self.refused_weight] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.push(self.reason);
        match &self.home {
            Some(h) => {
                v.push(1);
                v.extend_from_slice(h);
            }
            None => v.push(0),
        }
        self.order.emit(&mut v);
        v
    }

    pub fn decode(b: &[u8]) -> Result<Pending, PluginError> {
        let bad = || damaged("pending order");
        if b.len() < 2 + 32 + 2 || b[0] != 1 {
            return Err(bad());
        }
        let state = match b[1] {
            0 => PendingState::Pending,
            1 => PendingState::Certified,
            2 => PendingState::Refused,
            _ => return Err(bad()),
        };
        let u = |i: usize| u64::from_be_bytes(b[2 + 8 * i..10 + 8 * i].try_into().unwrap_or_default());
        let reason = b[34];
        let (home, rest) = match b[35] {
            0 => (None, &b[36..]),
            1 if b.len() >= 68 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&b[36..68]);
                (Some(k), &b[68..])
            }
            _ => return Err(bad()),
        };
        Ok(Pending {
            state,
            submitted: u(0),
            last_sent: u(1),
            vote_weight: u(2),
            refused_weight: u(3),
            reason,
            home,
            order: Order::from_bytes(rest).map_err(|_| bad())?,
        })
    }
}

/// An authority's answer to one of our orders, in `votes`:
/// `0 | signature [64]` (a vote) or `1 | reason u8` (a refusal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Vote([u8; 64]),
    Refused(u8),
}

impl Answer {
    fn encode(&self) -> Vec<u8> {
        match self {
            Answer::Vote(s) => [&[0u8][..], s].concat(),
            Answer::Refused(r) => vec![1, *r],
        }
    }
    fn decode(b: &[u8]) -> Option<Answer> {
        match b {
            [0, rest @ ..] if rest.len() == 64 => {
                let mut s = [0u8; 64];
                s.copy_from_slice(rest);
                Some(Answer::Vote(s))
            }
            [1, r] => Some(Answer::Refused(*r)),
            _ => None,
        }
    }
}

/// Certificates sent to an authority that is behind on an account.
const CATCH_UP: u64 = 8;

fn pending_key(h: &Hash) -> Vec<u8> {
    [&b"p"[..], h].concat()
}

pub fn load_pending(env: &dyn crate::env::ReadTables, h: &Hash) -> Result<Option<Pending>, PluginError> {
    env.get(TableId::Pending, &pending_key(h))?.map(|v| Pending::decode(&v)).transpose()
}

fn store_pending(env: &dyn Env, h: &Hash, p: &Pending) -> Result<(), PluginError> {
    env.put(TableId::Pending, &pending_key(h), &p.encode())?;
    if p.state == PendingState::Pending {
        env.put(TableId::Pending, &active_key(h), &[])
    } else {
        env.delete(TableId::Pending, &active_key(h)).map(|_| ())
    }
}

fn answer_key(h: &Hash, authority: &Key) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(h);
    k[32..].copy_from_slice(authority);
    k
}

impl Core {
    fn client_role(&self) -> Result<(), Error> {
        if self.role() == Role::Relay {
            return refuse(
                Reason::WrongRole,
                "this node is a relay: it keeps no ledger (configure role = \"client\")",
            );
        }
        Ok(())
    }

    /// A wallet's signed order: check it, store it, send it. Idempotent:
    /// the same order again returns the same hash (and retries a refused one).
    pub fn submit(&mut self, env: &dyn Env, order: Order, home: Option<Key>) -> Result<Hash, Error> {
        self.client_role()?;
        let h = self.check_order(&order, false)?;
        self.verify_order(env, &order)?;
        let clock = ledger::clock(env)?;
        let mut p = match load_pending(env, &h)? {
            Some(p) if p.state != PendingState::Refused => {
                if p.state == PendingState::Pending
                    && clock.saturating_sub(p.submitted) >= self.cfg.order_timeout_ms
                {
                    // Timed out earlier: start over.
                    let p = Pending { submitted: clock, last_sent: clock, ..p };
                    store_pending(env, &h, &p)?;
                    self.send_order(env, &p.order)?;
                }
                return Ok(h);
            }
            Some(p) => Pending { state: PendingState::Pending, refused_weight: 0, reason: 0, ..p },
            None => Pending {
                state: PendingState::Pending,
                submitted: clock,
                last_sent: clock,
                vote_weight: 0,
                refused_weight: 0,
                reason: 0,
                home,
                order,
            },
        };
        if p.state == PendingState::Pending {
            // A retried refusal forgets the refusals, not the votes.
            let mut refusals = Vec::new();
            env.scan(TableId::Votes, &h, &mut |k, v| {
                if !k.starts_with(&h) {
                    return false;
                }
                if matches!(Answer::decode(v), Some(Answer::Refused(_))) {
                    refusals.push(k.to_vec());
                }
                true
            })?;
            for k in refusals {
                env.delete(TableId::Votes, &k)?;
            }
        }
        p.submitted = clock;
        p.last_sent = clock;
        // The order may be certified already (this node applied it).
        if let Some(ch) = ledger::certificate_hash_at(env, &p.order.body.sender, p.order.body.sequence)?
            && ch == h
        {
            p.state = PendingState::Certified;
            store_pending(env, &h, &p)?;
            return Ok(h);
        }
        store_pending(env, &h, &p)?;
        self.send_order(env, &p.order)?;
        Ok(h)
    }

    fn send_order(&self, env: &dyn Env, order: &Order) -> Result<(), Error> {
        self.emit(env, AUTHORITIES, Body::Order(order.clone()), self.order_lifetime(), EXPEDITED)
    }

    pub(crate) fn on_vote(&mut self, env: &dyn Env, v: &Vote) -> Result<(), Error> {
        self.client_role()?;
        let Some(mut p) = load_pending(env, &v.order_hash)? else {
            return refuse(
                Reason::UnknownOrder,
                format!("a vote for order {} this node did not submit", hex(&v.order_hash)),
            );
        };
        let w = self.signers_weight(std::iter::once(&v.authority))?;
        if p.state == PendingState::Certified {
            return Ok(());
        }
        let key = answer_key(&v.order_hash, &v.authority);
        let before = env.get(TableId::Votes, &key)?.and_then(|b| Answer::decode(&b));
        if matches!(before, Some(Answer::Vote(_))) {
            return Ok(()); // a duplicate
        }
        if !env.verify(&v.authority, &wire::vote_message(&v.order_hash), &v.signature) {
            return refuse(
                Reason::BadSignature,
                format!("vote of authority {} does not verify", hex(&v.authority)),
            );
        }
        env.put(TableId::Votes, &key, &Answer::Vote(v.signature).encode())?;
        if matches!(before, Some(Answer::Refused(_))) {
            p.refused_weight = p.refused_weight.saturating_sub(w);
        }
        p.vote_weight = p.vote_weight.saturating_add(w);
        if !self.committee().is_quorum(p.vote_weight) {
            if p.state == PendingState::Refused && !self.committee().is_blocking(p.refused_weight) {
                p.state = PendingState::Pending;
            }
            store_pending(env, &v.order_hash, &p)?;
            return Ok(());
        }
        // A quorum: form the certificate from the votes gathered.
        let mut votes = Vec::new();
        env.scan(TableId::Votes, &v.order_hash, &mut |k, val| {
            if !k.starts_with(&v.order_hash) || k.len() != 64 {
                return false;
            }
            if let Some(Answer::Vote(s)) = Answer::decode(val) {
                let mut a = [0u8; 32];
                a.copy_from_slice(&k[32..]);
                votes.push((a, s));
            }
            true
        })?;
        let cert = Certificate { order: p.order.clone(), votes: wire::canonical_signatures(votes) };
        p.state = PendingState::Certified;
        store_pending(env, &v.order_hash, &p)?;
        env.log(
            Level::Info,
            &format!("order {} certified (votes of weight {})", hex(&v.order_hash), p.vote_weight),
        );
        let (h, _) = self.accept_certificate(env, &cert)?;
        self.confirm(env, &cert, &h, p.home)
    }

    /// Sends a certificate to the authorities and to whoever holds the
    /// receipt: the recipient's home node or the withdrawal's gateway.
    fn confirm(&self, env: &dyn Env, cert: &Certificate, _h: &Hash, home: Option<Key>) -> Result<(), Error> {
        let life = self.cfg.bundle_lifetime_ms;
        self.emit(env, AUTHORITIES, Body::Confirmation(cert.clone()), life, EXPEDITED)?;
        let holder = match &cert.order.body.kind {
            OrderKind::Transfer { .. } => home,
            OrderKind::Withdrawal { gateway, .. } => Some(*gateway),
        };
        if let Some(node) = holder
            && node != self.me
        {
            self.emit(env, &quorum_endpoint(&node), Body::Confirmation(cert.clone()), life, EXPEDITED)?;
        }
        Ok(())
    }

    pub(crate) fn on_refusal(&mut self, env: &dyn Env, r: &Refusal) -> Result<(), Error> {
        self.client_role()?;
        let Some(mut p) = load_pending(env, &r.order_hash)? else {
            return refuse(
                Reason::UnknownOrder,
                format!("a refusal of order {} this node did not submit", hex(&r.order_hash)),
            );
        };
        let w = self.signers_weight(std::iter::once(&r.authority))?;
        if !env.verify(&r.authority, &wire::refusal_message(&r.order_hash, r.reason), &r.signature) {
            return refuse(
                Reason::BadSignature,
                format!("refusal of authority {} does not verify", hex(&r.authority)),
            );
        }
        if r.reason == Reason::SequenceAhead as u8 {
            // Whatever happens to this order, that authority is behind.
            self.catch_up(env, &p.order, &r.authority)?;
        }
        if p.state == PendingState::Certified {
            return Ok(());
        }
        let key = answer_key(&r.order_hash, &r.authority);
        if env.get(TableId::Votes, &key)?.is_some() {
            return Ok(()); // it answered already (a vote stands)
        }
        env.put(TableId::Votes, &key, &Answer::Refused(r.reason).encode())?;
        p.refused_weight = p.refused_weight.saturating_add(w);
        p.reason = r.reason;
        if self.committee().is_blocking(p.refused_weight) {
            p.state = PendingState::Refused;
        }
        let reason = Reason::from_code(r.reason).map_or("unknown reason", Reason::as_str);
        env.log(
            Level::Info,
            &format!("order {} refused by authority {}: {reason}", hex(&r.order_hash), hex(&r.authority)),
        );
        store_pending(env, &r.order_hash, &p)?;
        Ok(())
    }

    /// An authority is behind on the sender's account: it missed
    /// confirmations. Sends it the certificates this node holds for the
    /// sequence numbers just before the order's (more follow on the next
    /// refusal, if it is further behind).
    fn catch_up(&self, env: &dyn Env, order: &Order, authority: &Key) -> Result<(), Error> {
        let b = &order.body;
        let to = quorum_endpoint(authority);
        for seq in b.sequence.saturating_sub(CATCH_UP)..b.sequence {
            if let Some((_, cert)) = ledger::certificate_at(env, &b.sender, seq)? {
                self.emit(env, &to, Body::Confirmation(cert), self.cfg.bundle_lifetime_ms, EXPEDITED)?;
            }
        }
        Ok(())
    }

    pub(crate) fn on_confirmation(&mut self, env: &dyn Env, cert: Certificate) -> Result<(), Error> {
        self.client_role()?;
        self.accept_certificate(env, &cert).map(|_| ())
    }

    /// Called for every accepted certificate: settles a pending order of
    /// ours, counts receipts, and lets a gateway take its withdrawals.
    pub(crate) fn after_certificate(
        &mut self,
        env: &dyn Env,
        cert: &Certificate,
        h: &Hash,
    ) -> Result<(), Error> {
        if let Some(mut p) = load_pending(env, h)?
            && p.state != PendingState::Certified
        {
            p.state = PendingState::Certified;
            store_pending(env, h, &p)?;
        }
        if self.role() == Role::Gateway {
            self.gateway_take(env, cert, h)?;
        }
        Ok(())
    }

    /// Re-sends orders still waiting for votes.
    pub(crate) fn client_tick(&mut self, env: &dyn Env, clock: u64) -> Result<(), Error> {
        for h in active_hashes(env, TableId::Pending)? {
            let Some(mut p) = load_pending(env, &h)? else {
                env.delete(TableId::Pending, &active_key(&h))?;
                continue;
            };
            let timed_out = clock.saturating_sub(p.submitted) >= self.cfg.order_timeout_ms;
            if p.state != PendingState::Pending || timed_out {
                env.delete(TableId::Pending, &active_key(&h))?;
                continue;
            }
            if clock.saturating_sub(p.last_sent) >= self.cfg.resend_ms {
                p.last_sent = clock;
                store_pending(env, &h, &p)?;
                self.send_order(env, &p.order)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::OrderBody;

    #[test]
    fn pending_records_round_trip() {
        let order = Order {
            body: OrderBody {
                sender: [1; 32],
                sequence: 2,
                amount: 3,
                kind: OrderKind::Transfer { recipient: [4; 32] },
            },
            signature: [5; 64],
        };
        for home in [None, Some([6; 32])] {
            let p = Pending {
                state: PendingState::Refused,
                submitted: 7,
                last_sent: 8,
                vote_weight: 9,
                refused_weight: 10,
                reason: 11,
                home,
                order: order.clone(),
            };
            assert_eq!(Pending::decode(&p.encode()).unwrap(), p);
            assert!(Pending::decode(&p.encode()[..40]).is_err());
        }
        assert_eq!(Answer::decode(&Answer::Vote([3; 64]).encode()), Some(Answer::Vote([3; 64])));
        assert_eq!(Answer::decode(&Answer::Refused(7).encode()), Some(Answer::Refused(7)));
        assert_eq!(Answer::decode(&[2]), None);
    }
}
