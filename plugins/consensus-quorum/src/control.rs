//! The control methods (`on_control`): JSON requests from wallets,
//! point-of-sale terminals and operators, through the node's control API.
//! Schemas are strict (unknown keys are errors); keys, hashes and signatures
//! are lower-case hex. `README.md` documents every method.

use meshpay_abi::sdk::PluginError;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::client::{self, PendingState};
use crate::config::Role;
use crate::env::{Env, ReadTables, TableId, active_hashes};
use crate::error::{Error, Reason, refuse};
use crate::gateway;
use crate::keys::{Address, Hash, Key, hex, parse_hex, parse_hex_vec, parse_key};
use crate::ledger::{self, Counter};
use crate::protocol::Core;
use crate::wire::{Certificate, Order, OrderBody, OrderKind};

/// Most entries a listing returns.
const MAX_LIST: usize = 1000;
const DEFAULT_LIST: usize = 100;

/// An order as wallets write it. `kind` is `"transfer"` (default) or
/// `"withdrawal"`; transfers have `recipient` (an account, or a wallet
/// address `account@home`: the home node gets the receipt), withdrawals
/// `gateway`, `destination` (hex, 1 to 64 bytes) and `expiry_ms`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderJson {
    #[serde(default)]
    pub kind: Option<String>,
    pub sender: String,
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub expiry_ms: Option<u64>,
    pub amount: u64,
    pub sequence: u64,
    /// The committee hash the wallet signs for.
    pub committee: String,
    /// Required to submit; absent for `order_message`.
    #[serde(default)]
    pub signature: Option<String>,
}

impl OrderJson {
    /// The body, the committee hash and the recipient's home node (a hint).
    pub fn body(&self) -> Result<(OrderBody, Hash, Option<Key>), String> {
        let sender = parse_key("order.sender", &self.sender)?;
        let committee = parse_hex::<32>("order.committee", &self.committee)?;
        let missing = |f: &str| format!("order.{f}: missing");
        let extra = |f: &str, k: &str| format!("order.{f}: not a field of a {k}");
        let (kind, home) = match self.kind.as_deref().unwrap_or("transfer") {
            "transfer" => {
                for (f, present) in [
                    ("gateway", self.gateway.is_some()),
                    ("destination", self.destination.is_some()),
                    ("expiry_ms", self.expiry_ms.is_some()),
                ] {
                    if present {
                        return Err(extra(f, "transfer"));
                    }
                }
                let to = self.recipient.as_deref().ok_or_else(|| missing("recipient"))?;
                let a = Address::parse("order.recipient", to)?;
                (OrderKind::Transfer { recipient: a.account }, a.home)
            }
            "withdrawal" => {
                if self.recipient.is_some() {
                    return Err(extra("recipient", "withdrawal"));
                }
                let gateway =
                    parse_key("order.gateway", self.gateway.as_deref().ok_or_else(|| missing("gateway"))?)?;
                let d = self.destination.as_deref().ok_or_else(|| missing("destination"))?;
                let destination = parse_hex_vec("order.destination", d, crate::wire::MAX_DESTINATION)?;
                if destination.is_empty() {
                    return Err("order.destination: must not be empty".into());
                }
                let expiry_ms = self.expiry_ms.ok_or_else(|| missing("expiry_ms"))?;
                (OrderKind::Withdrawal { gateway, expiry_ms, destination }, None)
            }
            k => return Err(format!("order.kind: `{k}` is neither \"transfer\" nor \"withdrawal\"")),
        };
        Ok((OrderBody { sender, sequence: self.sequence, amount: self.amount, kind }, committee, home))
    }

    /// The signed order.
    pub fn order(&self) -> Result<(Order, Hash, Option<Key>), String> {
        let (body, committee, home) = self.body()?;
        let sig = self.signature.as_deref().ok_or("order.signature: missing")?;
        Ok((Order { body, signature: parse_hex::<64>("order.signature", sig)? }, committee, home))
    }

    /// The JSON form of an order (what `transfer_status` and listings show).
    pub fn of(order: &Order, committee: &Hash) -> Value {
        let b = &order.body;
        let mut v = json!({
            "sender": hex(&b.sender),
            "amount": b.amount,
            "sequence": b.sequence,
            "committee": hex(committee),
            "signature": hex(&order.signature),
        });
        match &b.kind {
            OrderKind::Transfer { recipient } => {
                v["kind"] = json!("transfer");
                v["recipient"] = json!(hex(recipient));
            }
            OrderKind::Withdrawal { gateway, expiry_ms, destination } => {
                v["kind"] = json!("withdrawal");
                v["gateway"] = json!(hex(gateway));
                v["destination"] = json!(hex(destination));
                v["expiry_ms"] = json!(expiry_ms);
            }
        }
        v
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    order: OrderJson,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByOrder {
    order_hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByAccount {
    account: String,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByCertificate {
    certificate_hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Listing {
    /// `history`: the first index to list (default 0).
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limited {
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateBytes {
    certificate: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn parse<T: DeserializeOwned>(method: &str, body: &[u8]) -> Result<T, Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { &b"{}"[..] } else { body };
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { String::new() } else { format!("{path}: ") };
        Error::refused(Reason::Malformed, format!("{method}: {at}{}", e.into_inner()))
    })?;
    de.end().map_err(|e| Error::refused(Reason::Malformed, format!("{method}: {e}")))?;
    Ok(v)
}

fn bad(e: String) -> Error {
    let reason =
        if e.contains("weak") || e.contains("valid Ed25519") { Reason::WeakKey } else { Reason::Malformed };
    Error::refused(reason, e)
}

/// An i128 as a JSON number when it fits, else as a string.
fn amount(x: i128) -> Value {
    if let Ok(v) = i64::try_from(x) {
        json!(v)
    } else if let Ok(v) = u64::try_from(x) {
        json!(v)
    } else {
        json!(x.to_string())
    }
}

fn limit(l: Option<usize>) -> usize {
    l.unwrap_or(DEFAULT_LIST).clamp(1, MAX_LIST)
}

/// A certificate as JSON: the order, the votes, and the encoded bytes (hex)
/// that anyone can verify offline (`verify_certificate`).
pub fn certificate_json(cert: &Certificate, committee: &Hash) -> Value {
    json!({
        "order_hash": hex(&cert.order.body.hash(committee)),
        "order": OrderJson::of(&cert.order, committee),
        "votes": cert.votes.iter().map(|(k, s)| json!({"authority": hex(k), "signature": hex(s)})).collect::<Vec<_>>(),
        "bytes": hex(&cert.to_bytes()),
    })
}

impl Core {
    /// Runs a control method. `env` is `None` on a relay (no tables).
    pub fn control(&mut self, env: Option<&dyn Env>, method: &str, body: &[u8]) -> Result<Value, Error> {
        if method == "status" {
            parse::<Empty>(method, body)?;
            return self.status(env);
        }
        let Some(env) = env else {
            return refuse(
                Reason::WrongRole,
                format!("`{method}`: this node is a relay and keeps no ledger (configure role = \"client\")"),
            );
        };
        match method {
            "submit_transfer" | "submit_withdrawal" => {
                let s: Submit = parse(method, body)?;
                let want = if method == "submit_transfer" { "transfer" } else { "withdrawal" };
                let kind = s.order.kind.as_deref().unwrap_or(want);
                if kind != want {
                    return refuse(Reason::Malformed, format!("{method}: order.kind must be \"{want}\""));
                }
                let mut o = s.order;
                o.kind = Some(want.to_owned());
                let (order, committee, home) = o.order().map_err(bad)?;
                self.check_committee(&committee)?;
                let h = self.submit(env, order, home)?;
                Ok(json!({"order_hash": hex(&h)}))
            }
            "order_message" => {
                let s: Submit = parse(method, body)?;
                let (body, committee, _) = s.order.body().map_err(bad)?;
                self.check_committee(&committee)?;
                Ok(json!({
                    "message": hex(&body.signing_message(&committee)),
                    "order_hash": hex(&body.hash(&committee)),
                }))
            }
            "transfer_status" => {
                let r: ByOrder = parse(method, body)?;
                let h = parse_hex::<32>("order_hash", &r.order_hash).map_err(bad)?;
                self.transfer_status(env, &h)
            }
            "next_sequence" => {
                let r: ByAccount = parse(method, body)?;
                let account = parse_key("account", &r.account).map_err(bad)?;
                self.next_sequence(env, &account)
            }
            "balance" => {
                let r: ByAccount = parse(method, body)?;
                let account = parse_key("account", &r.account).map_err(bad)?;
                let a = ledger::load_account(env, &account)?;
                Ok(json!({
                    "account": hex(&account),
                    "known": a.is_some(),
                    "balance": amount(a.map_or(0, |a| a.balance)),
                    "next_sequence": a.map_or(0, |a| a.next_sequence),
                    "authoritative": self.is_authority(),
                }))
            }
            "receipts" => {
                let r: ByAccount = parse(method, body)?;
                let account = parse_key("account", &r.account).map_err(bad)?;
                self.receipts(env, &account, limit(r.limit))
            }
            "verify_certificate" => {
                let r: CertificateBytes = parse(method, body)?;
                let bytes =
                    parse_hex_vec("certificate", &r.certificate, crate::wire::MAX_MESSAGE).map_err(bad)?;
                let cert =
                    Certificate::from_bytes(&bytes).map_err(|e| Error::refused(Reason::Malformed, e.0))?;
                Ok(match self.verify_certificate(env, &cert) {
                    Ok(h) => {
                        json!({"valid": true, "order_hash": hex(&h), "order": OrderJson::of(&cert.order, self.hash())})
                    }
                    Err(Error::Refused(f)) => {
                        json!({"valid": false, "reason": f.reason.as_str(), "message": f.detail})
                    }
                    Err(e) => return Err(e),
                })
            }
            "withdrawals" => {
                let r: Limited = parse(method, body)?;
                if self.role() != Role::Gateway {
                    return refuse(
                        Reason::WrongRole,
                        format!("this node is a {}, not a gateway", self.role().as_str()),
                    );
                }
                let list = gateway::list_withdrawals(env, limit(r.limit))?;
                let items: Vec<Value> = list
                    .iter()
                    .map(|(h, w)| {
                        let b = &w.certificate.order.body;
                        let (destination, expiry) = match &b.kind {
                            OrderKind::Withdrawal { destination, expiry_ms, .. } => {
                                (hex(destination), *expiry_ms)
                            }
                            OrderKind::Transfer { .. } => (String::new(), 0),
                        };
                        json!({
                            "certificate_hash": hex(h),
                            "state": w.state.name(),
                            "sender": hex(&b.sender),
                            "sequence": b.sequence,
                            "amount": b.amount,
                            "destination": destination,
                            "expiry_ms": expiry,
                            "received_clock_ms": w.received,
                            "ack_weight": w.ack_weight,
                            "certificate": hex(&w.certificate.to_bytes()),
                        })
                    })
                    .collect();
                Ok(json!({"withdrawals": items}))
            }
            "settle" => {
                let r: ByCertificate = parse(method, body)?;
                let h = parse_hex::<32>("certificate_hash", &r.certificate_hash).map_err(bad)?;
                let w = self.settle(env, &h)?;
                Ok(json!({
                    "certificate_hash": hex(&h),
                    "state": w.state.name(),
                    "ack_weight": w.ack_weight,
                    "quorum_weight": self.committee().quorum_weight(),
                }))
            }
            "audit" => {
                parse::<Empty>(method, body)?;
                let a = ledger::audit(env)?;
                Ok(json!({
                    "conserved": a.conserved(),
                    "accounts": a.accounts,
                    "balances": amount(a.balances),
                    "locked": amount(a.locked),
                    "settled": amount(a.settled),
                    "genesis_total": amount(a.genesis_total),
                    "negative_balances": a.negative_balances,
                }))
            }
            "history" => {
                let r: Listing = parse(method, body)?;
                self.history(env, r.from.unwrap_or(0), limit(r.limit))
            }
            _ => refuse(Reason::NotFound, format!("unknown method `{method}`")),
        }
    }

    fn check_committee(&self, committee: &Hash) -> Result<(), Error> {
        if committee != self.hash() {
            return refuse(
                Reason::OtherCommittee,
                format!(
                    "the order is signed for committee {}, this node's committee is {}",
                    hex(committee),
                    hex(self.hash())
                ),
            );
        }
        Ok(())
    }

    fn transfer_status(&self, env: &dyn Env, h: &Hash) -> Result<Value, Error> {
        let Some(p) = client::load_pending(env, h)? else {
            return refuse(Reason::NotFound, format!("order {} was not submitted through this node", hex(h)));
        };
        let c = self.committee();
        let b = &p.order.body;
        Ok(match p.state {
            PendingState::Certified => match ledger::certificate_at(env, &b.sender, b.sequence)? {
                Some((ch, cert)) if ch == *h => {
                    json!({"order_hash": hex(h), "state": "certified", "certificate": certificate_json(&cert, self.hash())})
                }
                // Applied elsewhere but not stored here (should not happen).
                _ => json!({"order_hash": hex(h), "state": "certified", "certificate": null}),
            },
            PendingState::Refused => json!({
                "order_hash": hex(h),
                "state": "refused",
                "reason": Reason::from_code(p.reason).map_or("unknown", Reason::as_str),
                "refused_weight": p.refused_weight,
                "votes_weight": p.vote_weight,
            }),
            PendingState::Pending => {
                let clock = ledger::clock(env)?;
                json!({
                    "order_hash": hex(h),
                    "state": "pending",
                    "votes_weight": p.vote_weight,
                    "refused_weight": p.refused_weight,
                    "last_refusal": Reason::from_code(p.reason).map(Reason::as_str),
                    "quorum_weight": c.quorum_weight(),
                    "total_weight": c.total_weight(),
                    "resending": clock.saturating_sub(p.submitted) < self.cfg.order_timeout_ms,
                })
            }
        })
    }

    fn next_sequence(&self, env: &dyn Env, account: &Key) -> Result<Value, Error> {
        let known = ledger::load_account(env, account)?;
        let mut next = known.map_or(0, |a| a.next_sequence);
        // An order of this account still in flight holds its slot.
        let mut in_flight = Vec::new();
        for h in active_hashes(env, TableId::Pending)? {
            if let Some(p) = client::load_pending(env, &h)?
                && p.order.body.sender == *account
                && p.state == PendingState::Pending
                && p.order.body.sequence >= next
            {
                in_flight.push(json!({"order_hash": hex(&h), "sequence": p.order.body.sequence}));
                next = next.min(p.order.body.sequence);
            }
        }
        Ok(
            json!({"account": hex(account), "next_sequence": next, "known": known.is_some(), "pending": in_flight}),
        )
    }

    fn receipts(&self, env: &dyn Env, account: &Key, limit: usize) -> Result<Value, Error> {
        let mut rows = Vec::new();
        env.scan(TableId::Received, account, &mut |k, v| {
            if k.len() != 72 || !k.starts_with(account) || rows.len() >= limit {
                return false;
            }
            rows.push((k.to_vec(), v.to_vec()));
            true
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, _) in rows {
            let sender: Key = k[32..64].try_into().unwrap_or_default();
            let seq = u64::from_be_bytes(k[64..72].try_into().unwrap_or_default());
            let Some((_, cert)) = ledger::certificate_at(env, &sender, seq)? else { continue };
            // Each receipt is checked again, offline, against the committee.
            let (verified, problem) = match self.verify_certificate(env, &cert) {
                Ok(_) => (true, None),
                Err(Error::Refused(f)) => (false, Some(f.to_string())),
                Err(e) => return Err(e),
            };
            out.push(json!({
                "sender": hex(&sender),
                "sequence": seq,
                "amount": cert.order.body.amount,
                "verified": verified,
                "problem": problem,
                "certificate": certificate_json(&cert, self.hash()),
            }));
        }
        Ok(json!({"account": hex(account), "receipts": out}))
    }

    fn history(&self, env: &dyn Env, from: u64, limit: usize) -> Result<Value, Error> {
        let mut out = Vec::new();
        let mut bad: Option<PluginError> = None;
        env.scan(TableId::History, &from.to_be_bytes(), &mut |k, v| {
            if out.len() >= limit {
                return false;
            }
            let n = u64::from_be_bytes(k.try_into().unwrap_or_default());
            match ledger::Event::decode(v) {
                Ok(e) => out.push(json!({
                    "index": n,
                    "event": e.kind.name(),
                    "clock_ms": e.clock,
                    "order_hash": hex(&e.order_hash),
                    "account": hex(&e.account),
                    "sequence": e.sequence,
                    "amount": e.amount,
                })),
                Err(e) => {
                    bad = Some(e);
                    return false;
                }
            }
            true
        })?;
        if let Some(e) = bad {
            return Err(e.into());
        }
        Ok(json!({"events": out}))
    }

    fn status(&self, env: Option<&dyn Env>) -> Result<Value, Error> {
        let c = self.committee();
        let mut v = json!({
            "role": self.role().as_str(),
            "node": hex(&self.me),
            "endpoint": self.endpoint,
            "committee_hash": hex(self.hash()),
            "authorities": c.len(),
            "total_weight": c.total_weight(),
            "quorum_weight": c.quorum_weight(),
            "refusals": self.vol.refusals.iter().map(|(r, n)| (r.as_str().to_owned(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "other_committee_messages": self.vol.other_committee,
            "last_other_committee": self.vol.last_other_committee.map(|h| hex(&h)),
        });
        if self.is_authority() {
            let now = self.vol.last_tick_ms.unwrap_or(0);
            let now = env.map_or(now, |e| e.now_ms());
            let (reachable, weight) = self.reachability(now);
            v["quorum_reachable"] = json!(reachable);
            v["reachable_weight"] = json!(weight);
            v["heard"] = self
                .vol
                .heard
                .iter()
                .map(|(k, h)| {
                    json!({"authority": hex(k), "name": c.name(k), "ago_ms": now.saturating_sub(h.at_ms), "seq": h.seq})
                })
                .collect::<Vec<_>>()
                .into();
        }
        let Some(env) = env else { return Ok(v) };
        let mut counters = serde_json::Map::new();
        for k in Counter::ALL {
            counters.insert(k.name().to_owned(), json!(ledger::counter(env, k)?));
        }
        v["counters"] = counters.into();
        v["ledger_clock_ms"] = json!(ledger::clock(env)?);
        v["double_spends"] = double_spends(env, 32)?.into();
        Ok(v)
    }
}

/// Up to `limit` recorded double-spend attempts.
fn double_spends(env: &dyn ReadTables, limit: usize) -> Result<Vec<Value>, PluginError> {
    let mut raw = Vec::new();
    env.scan(TableId::Evidence, &[], &mut |k, v| {
        if raw.len() >= limit {
            return false;
        }
        raw.push((k.to_vec(), v.to_vec()));
        true
    })?;
    let mut out = Vec::new();
    for (k, v) in raw {
        let e = ledger::Evidence::decode(&v)?;
        if k.len() != 72 {
            continue;
        }
        out.push(json!({
            "account": hex(&k[..32]),
            "sequence": u64::from_be_bytes(k[32..40].try_into().unwrap_or_default()),
            "locked_order": hex(&e.locked),
            "attempted_order": hex(&k[40..]),
            "clock_ms": e.clock,
            "attempted": hex(&e.attempted.to_bytes()),
        }));
    }
    Ok(out)
}
