//! The gateway role: withdrawal certificates naming this node arrive as
//! confirmations and wait in `gateway` for settlement on the external
//! ledger. The operator (or the settlement process) calls `settle`: the
//! gateway signs a claim and sends it with the certificate to the
//! authorities (again every `resend_ms`), each authority that still holds
//! the lock settles it and acknowledges, and once acknowledgements weigh
//! more than two thirds the withdrawal is `settled` (pay out now: by quorum
//! intersection no quorum can let it expire any more) and the gateway sends
//! the acknowledgements to all authorities, so those that let the lock
//! expire take the funds back.
//!
//! Tables: `gateway` (`w`·order hash → [`Withdrawal`], `a`·order hash →
//! empty while claiming), `acks` (order hash · authority → signature).

use meshpay_abi::sdk::{Level, PluginError};

use crate::env::{Env, ReadTables, TableId, active_hashes, active_key};
use crate::error::{Error, Reason, refuse};
use crate::keys::{Hash, hex};
use crate::ledger;
use crate::protocol::{AUTHORITIES, Core, EXPEDITED};
use crate::wire::{self, Body, Certificate, OrderKind, Settle, SettleCertificate, Vote};

/// Where a withdrawal stands at its gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayState {
    /// Received; nobody asked to settle it yet.
    Awaiting = 0,
    /// Claimed; acknowledgements are being gathered.
    Settling = 1,
    /// A quorum acknowledged: pay out on the external ledger.
    Settled = 2,
}

impl GatewayState {
    pub fn name(self) -> &'static str {
        match self {
            GatewayState::Awaiting => "awaiting",
            GatewayState::Settling => "settling",
            GatewayState::Settled => "settled",
        }
    }
}

/// `version 1 | state u8 | received u64 | last sent u64 | ack weight u64 | certificate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub state: GatewayState,
    pub received: u64,
    pub last_sent: u64,
    pub ack_weight: u64,
    pub certificate: Certificate,
}

impl Withdrawal {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(26 + self.certificate.buffer_len());
        v.push(1);
        v.push(self.state as u8);
        for x in [self.received, self.last_sent, self.ack_weight] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        self.certificate.emit(&mut v);
        v
    }

    pub fn decode(b: &[u8]) -> Result<Withdrawal, PluginError> {
        let bad = || PluginError::failed("damaged gateway withdrawal record");
        if b.len() < 26 || b[0] != 1 {
            return Err(bad());
        }
        let state = match b[1] {
            0 => GatewayState::Awaiting,
            1 => GatewayState::Settling,
            2 => GatewayState::Settled,
            _ => return Err(bad()),
        };
        let u = |i: usize| u64::from_be_bytes(b[2 + 8 * i..10 + 8 * i].try_into().unwrap_or_default());
        Ok(Withdrawal {
            state,
            received: u(0),
            last_sent: u(1),
            ack_weight: u(2),
            certificate: Certificate::from_bytes(&b[26..]).map_err(|_| bad())?,
        })
    }
}

fn record_key(h: &Hash) -> Vec<u8> {
    [&b"w"[..], h].concat()
}

pub fn load_withdrawal(env: &dyn ReadTables, h: &Hash) -> Result<Option<Withdrawal>, PluginError> {
    env.get(TableId::Gateway, &record_key(h))?.map(|v| Withdrawal::decode(&v)).transpose()
}

fn store_withdrawal(env: &dyn Env, h: &Hash, w: &Withdrawal) -> Result<(), PluginError> {
    env.put(TableId::Gateway, &record_key(h), &w.encode())?;
    if w.state == GatewayState::Settling {
        env.put(TableId::Gateway, &active_key(h), &[])
    } else {
        env.delete(TableId::Gateway, &active_key(h)).map(|_| ())
    }
}

/// Every withdrawal this gateway holds, in order-hash order.
pub fn list_withdrawals(env: &dyn ReadTables, limit: usize) -> Result<Vec<(Hash, Withdrawal)>, PluginError> {
    let mut raw = Vec::new();
    env.scan(TableId::Gateway, b"w", &mut |k, v| {
        if k.len() != 33 || k[0] != b'w' || raw.len() >= limit {
            return false;
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(&k[1..]);
        raw.push((h, v.to_vec()));
        true
    })?;
    raw.into_iter().map(|(h, v)| Ok((h, Withdrawal::decode(&v)?))).collect()
}

impl Core {
    /// A verified, applied withdrawal certificate naming this gateway.
    pub(crate) fn gateway_take(&mut self, env: &dyn Env, cert: &Certificate, h: &Hash) -> Result<(), Error> {
        let OrderKind::Withdrawal { gateway, .. } = &cert.order.body.kind else { return Ok(()) };
        if *gateway != self.me || load_withdrawal(env, h)?.is_some() {
            return Ok(());
        }
        let clock = ledger::clock(env)?;
        let w = Withdrawal {
            state: GatewayState::Awaiting,
            received: clock,
            last_sent: clock,
            ack_weight: 0,
            certificate: cert.clone(),
        };
        store_withdrawal(env, h, &w)?;
        env.log(
            Level::Info,
            &format!(
                "withdrawal {} of {} from {} awaits settlement",
                hex(h),
                cert.order.body.amount,
                hex(&cert.order.body.sender)
            ),
        );
        Ok(())
    }

    /// `settle`: claim a withdrawal from the authorities.
    pub fn settle(&mut self, env: &dyn Env, h: &Hash) -> Result<Withdrawal, Error> {
        if self.role() != crate::config::Role::Gateway {
            return refuse(
                Reason::WrongRole,
                format!("this node is a {}, not a gateway", self.role().as_str()),
            );
        }
        let Some(mut w) = load_withdrawal(env, h)? else {
            return refuse(Reason::NotFound, format!("no withdrawal {} awaits settlement here", hex(h)));
        };
        if w.state == GatewayState::Awaiting {
            w.state = GatewayState::Settling;
            w.last_sent = ledger::clock(env)?;
            store_withdrawal(env, h, &w)?;
        }
        if w.state == GatewayState::Settling {
            self.send_claim(env, h, &w.certificate)?;
        }
        Ok(w)
    }

    fn send_claim(&self, env: &dyn Env, h: &Hash, cert: &Certificate) -> Result<(), Error> {
        let signature = env.sign(&wire::settle_message(h))?;
        let s = Settle { gateway: self.me, signature, certificate: cert.clone() };
        self.emit(env, AUTHORITIES, Body::Settle(s), self.cfg.bundle_lifetime_ms, EXPEDITED)
    }

    pub(crate) fn on_settle_ack(&mut self, env: &dyn Env, ack: &Vote) -> Result<(), Error> {
        let Some(mut w) = load_withdrawal(env, &ack.order_hash)? else {
            return refuse(
                Reason::UnknownOrder,
                format!("acknowledgement for unknown withdrawal {}", hex(&ack.order_hash)),
            );
        };
        let weight = self.signers_weight(std::iter::once(&ack.authority))?;
        if w.state != GatewayState::Settling {
            return Ok(());
        }
        let mut key = Vec::with_capacity(64);
        key.extend_from_slice(&ack.order_hash);
        key.extend_from_slice(&ack.authority);
        if env.get(TableId::Acks, &key)?.is_some() {
            return Ok(());
        }
        if !env.verify(&ack.authority, &wire::settle_ack_message(&ack.order_hash), &ack.signature) {
            return refuse(
                Reason::BadSignature,
                format!("acknowledgement of {} does not verify", hex(&ack.authority)),
            );
        }
        env.put(TableId::Acks, &key, &ack.signature)?;
        w.ack_weight = w.ack_weight.saturating_add(weight);
        if self.committee().is_quorum(w.ack_weight) {
            let mut acks = Vec::new();
            env.scan(TableId::Acks, &ack.order_hash, &mut |k, v| {
                if k.len() != 64 || !k.starts_with(&ack.order_hash) {
                    return false;
                }
                if let (Ok(a), Ok(s)) = (<[u8; 32]>::try_from(&k[32..]), <[u8; 64]>::try_from(v)) {
                    acks.push((a, s));
                }
                true
            })?;
            w.state = GatewayState::Settled;
            let sc = SettleCertificate {
                certificate: w.certificate.clone(),
                acks: wire::canonical_signatures(acks),
            };
            self.emit(env, AUTHORITIES, Body::SettleCertificate(sc), self.cfg.bundle_lifetime_ms, EXPEDITED)?;
            env.log(Level::Info, &format!("withdrawal {} settled: pay it out", hex(&ack.order_hash)));
        }
        store_withdrawal(env, &ack.order_hash, &w)?;
        Ok(())
    }

    /// Re-sends claims still gathering acknowledgements.
    pub(crate) fn gateway_tick(&mut self, env: &dyn Env, clock: u64) -> Result<(), Error> {
        for h in active_hashes(env, TableId::Gateway)? {
            match load_withdrawal(env, &h)? {
                Some(mut w) if w.state == GatewayState::Settling => {
                    if clock.saturating_sub(w.last_sent) >= self.cfg.resend_ms {
                        w.last_sent = clock;
                        store_withdrawal(env, &h, &w)?;
                        self.send_claim(env, &h, &w.certificate)?;
                    }
                }
                _ => {
                    env.delete(TableId::Gateway, &active_key(&h))?;
                }
            }
        }
        Ok(())
    }
}
