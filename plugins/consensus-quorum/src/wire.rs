//! The plugin's messages on the wire: a versioned, compact binary encoding.
//!
//! Every payload starts with a 34-byte header: `version` (1), `type`, and the
//! committee hash. Integers are big-endian; keys are 32 bytes, signatures 64.
//! Each message is a plain `Repr` with symmetric [`Message::parse`] and
//! [`Message::emit`] (checked by round-trip tests and a property test that
//! feeds arbitrary bytes). Parsing is defensive: every length is bounded
//! ([`MAX_MESSAGE`], [`MAX_VOTES`], [`MAX_DESTINATION`]), trailing bytes are
//! an error, and nothing panics on hostile input.
//!
//! What gets signed (by whom) is defined here too, next to the encodings it
//! covers; each signed message starts with its own domain tag so a signature
//! for one purpose is never valid for another.

use crate::keys::{Hash, Key, Sig, hash};

/// Encoding version in the first byte.
pub const VERSION: u8 = 1;
/// Largest payload accepted (a certificate of 256 votes is ~25 KiB).
pub const MAX_MESSAGE: usize = 32 * 1024;
/// Most votes (or settlement acknowledgements) in one certificate.
pub const MAX_VOTES: usize = crate::config::MAX_AUTHORITIES;
/// Longest external destination address of a withdrawal.
pub const MAX_DESTINATION: usize = 64;
/// Header length: version, type, committee hash.
pub const HEADER_LEN: usize = 2 + 32;

const ORDER_DOMAIN: &[u8] = b"meshpay.quorum.order.v1\0";
const VOTE_DOMAIN: &[u8] = b"meshpay.quorum.vote.v1\0";
const REFUSAL_DOMAIN: &[u8] = b"meshpay.quorum.refusal.v1\0";
const HEARTBEAT_DOMAIN: &[u8] = b"meshpay.quorum.heartbeat.v1\0";
const SETTLE_DOMAIN: &[u8] = b"meshpay.quorum.settle.v1\0";
const SETTLE_ACK_DOMAIN: &[u8] = b"meshpay.quorum.settle-ack.v1\0";

/// Why a payload could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(pub String);

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(what: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(what.into()))
}

/// A bounds-checked cursor.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return err(format!("truncated {}", self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            err(format!("{} trailing bytes after the {}", self.buf.len(), self.what))
        }
    }
}

/// Message types (second header byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Order = 1,
    Vote = 2,
    Confirmation = 3,
    Refusal = 4,
    Heartbeat = 5,
    Settle = 6,
    SettleAck = 7,
    SettleCertificate = 8,
}

impl MessageType {
    fn from_u8(b: u8) -> Option<MessageType> {
        Some(match b {
            1 => MessageType::Order,
            2 => MessageType::Vote,
            3 => MessageType::Confirmation,
            4 => MessageType::Refusal,
            5 => MessageType::Heartbeat,
            6 => MessageType::Settle,
            7 => MessageType::SettleAck,
            8 => MessageType::SettleCertificate,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Order => "order",
            MessageType::Vote => "vote",
            MessageType::Confirmation => "confirmation",
            MessageType::Refusal => "refusal",
            MessageType::Heartbeat => "heartbeat",
            MessageType::Settle => "settle",
            MessageType::SettleAck => "settle-ack",
            MessageType::SettleCertificate => "settle-certificate",
        }
    }
}

/// What an order does with its amount.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// Pay `recipient` (kind byte 0).
    Transfer { recipient: Key },
    /// Lock the amount for `gateway` (a node key) to pay out to
    /// `destination` on an external ledger; unsettled after `expiry_ms`
    /// (on each authority's ledger clock), the lock expires and the funds
    /// return (kind byte 1).
    Withdrawal { gateway: Key, expiry_ms: u64, destination: Vec<u8> },
}

/// The part of an order the wallet signs (with the committee hash).
///
/// `kind u8 | sender [32] | sequence u64 | amount u64 |`
/// transfer: `recipient [32]`;
/// withdrawal: `gateway [32] | expiry_ms u64 | len u8 | destination [len]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OrderBody {
    pub sender: Key,
    pub sequence: u64,
    pub amount: u64,
    pub kind: OrderKind,
}

impl OrderBody {
    pub fn buffer_len(&self) -> usize {
        1 + 32
            + 8
            + 8
            + match &self.kind {
                OrderKind::Transfer { .. } => 32,
                OrderKind::Withdrawal { destination, .. } => 32 + 8 + 1 + destination.len(),
            }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(match self.kind {
            OrderKind::Transfer { .. } => 0,
            OrderKind::Withdrawal { .. } => 1,
        });
        out.extend_from_slice(&self.sender);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.amount.to_be_bytes());
        match &self.kind {
            OrderKind::Transfer { recipient } => out.extend_from_slice(recipient),
            OrderKind::Withdrawal { gateway, expiry_ms, destination } => {
                out.extend_from_slice(gateway);
                out.extend_from_slice(&expiry_ms.to_be_bytes());
                // Bounded by parse and by `check`; truncation can only come
                // from a body built by hand with a longer destination.
                let n = destination.len().min(MAX_DESTINATION);
                out.push(n as u8);
                out.extend_from_slice(&destination[..n]);
            }
        }
    }

    fn parse(r: &mut Reader<'_>) -> Result<OrderBody, WireError> {
        let kind = r.u8()?;
        let sender = r.array()?;
        let sequence = r.u64()?;
        let amount = r.u64()?;
        let kind = match kind {
            0 => OrderKind::Transfer { recipient: r.array()? },
            1 => {
                let gateway = r.array()?;
                let expiry_ms = r.u64()?;
                let n = usize::from(r.u8()?);
                if n == 0 || n > MAX_DESTINATION {
                    return err(format!("withdrawal destination of {n} bytes (1..={MAX_DESTINATION})"));
                }
                OrderKind::Withdrawal { gateway, expiry_ms, destination: r.take(n)?.to_vec() }
            }
            k => return err(format!("unknown order kind {k}")),
        };
        Ok(OrderBody { sender, sequence, amount, kind })
    }

    /// What the wallet signs: `"meshpay.quorum.order.v1\0" | committee hash | body`.
    pub fn signing_message(&self, committee: &Hash) -> Vec<u8> {
        let mut m = Vec::with_capacity(ORDER_DOMAIN.len() + 32 + self.buffer_len());
        m.extend_from_slice(ORDER_DOMAIN);
        m.extend_from_slice(committee);
        self.emit(&mut m);
        m
    }

    /// The order hash: BLAKE3 of the signing message. It names the order
    /// everywhere (locks, votes, certificates, `transfer_status`); the
    /// wallet's signature is not part of it, so a re-signed copy of the same
    /// order is the same order.
    pub fn hash(&self, committee: &Hash) -> Hash {
        hash(&[&self.signing_message(committee)])
    }

    pub fn recipient(&self) -> Option<&Key> {
        match &self.kind {
            OrderKind::Transfer { recipient } => Some(recipient),
            OrderKind::Withdrawal { .. } => None,
        }
    }

    pub fn is_withdrawal(&self) -> bool {
        matches!(self.kind, OrderKind::Withdrawal { .. })
    }
}

/// A signed order: body and the sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Order {
    pub body: OrderBody,
    pub signature: Sig,
}

impl Order {
    pub fn buffer_len(&self) -> usize {
        self.body.buffer_len() + 64
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.body.emit(out);
        out.extend_from_slice(&self.signature);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Order, WireError> {
        Ok(Order { body: OrderBody::parse(r)?, signature: r.array()? })
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        self.emit(&mut v);
        v
    }
    /// Parses what [`Order::to_bytes`] wrote.
    pub fn from_bytes(b: &[u8]) -> Result<Order, WireError> {
        let mut r = Reader { buf: b, what: "order" };
        let o = Order::parse(&mut r)?;
        r.end()?;
        Ok(o)
    }
}

/// What an authority signs to vote for an order: `"meshpay.quorum.vote.v1\0" | order hash`.
/// (The order hash covers the committee hash.)
pub fn vote_message(order_hash: &Hash) -> Vec<u8> {
    [VOTE_DOMAIN, order_hash].concat()
}

/// What an authority signs to refuse an order: `"meshpay.quorum.refusal.v1\0" | order hash | reason`.
pub fn refusal_message(order_hash: &Hash, reason: u8) -> Vec<u8> {
    [REFUSAL_DOMAIN, order_hash, &[reason]].concat()
}

/// What an authority signs in a heartbeat: `"meshpay.quorum.heartbeat.v1\0" | committee | authority | seq`.
pub fn heartbeat_message(committee: &Hash, authority: &Key, seq: u64) -> Vec<u8> {
    [HEARTBEAT_DOMAIN, committee, authority, &seq.to_be_bytes()].concat()
}

/// What a gateway signs to claim a withdrawal: `"meshpay.quorum.settle.v1\0" | order hash`.
pub fn settle_message(order_hash: &Hash) -> Vec<u8> {
    [SETTLE_DOMAIN, order_hash].concat()
}

/// What an authority signs to acknowledge a claim: `"meshpay.quorum.settle-ack.v1\0" | order hash`.
pub fn settle_ack_message(order_hash: &Hash) -> Vec<u8> {
    [SETTLE_ACK_DOMAIN, order_hash].concat()
}

/// An authority's signature over an order hash: a vote, or a settlement
/// acknowledgement. `order hash [32] | authority [32] | signature [64]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub order_hash: Hash,
    pub authority: Key,
    pub signature: Sig,
}

impl Vote {
    const LEN: usize = 128;
    fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.order_hash);
        out.extend_from_slice(&self.authority);
        out.extend_from_slice(&self.signature);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Vote, WireError> {
        Ok(Vote { order_hash: r.array()?, authority: r.array()?, signature: r.array()? })
    }
}

/// Signatures of distinct authorities, in strictly ascending key order (the
/// canonical form, so duplicates cannot be encoded).
/// `count u16 | (authority [32] | signature [64]) * count`.
fn emit_signatures(sigs: &[(Key, Sig)], out: &mut Vec<u8>) {
    out.extend_from_slice(&(sigs.len() as u16).to_be_bytes());
    for (k, s) in sigs {
        out.extend_from_slice(k);
        out.extend_from_slice(s);
    }
}

fn parse_signatures(r: &mut Reader<'_>) -> Result<Vec<(Key, Sig)>, WireError> {
    let n = usize::from(r.u16()?);
    if n > MAX_VOTES {
        return err(format!("{n} signatures (at most {MAX_VOTES})"));
    }
    if r.buf.len() < n * 96 {
        return err(format!("truncated {}", r.what));
    }
    let mut out: Vec<(Key, Sig)> = Vec::with_capacity(n);
    for _ in 0..n {
        let k: Key = r.array()?;
        let s: Sig = r.array()?;
        if out.last().is_some_and(|(prev, _)| *prev >= k) {
            return err("signatures are not in strictly ascending authority order (duplicate or unsorted)");
        }
        out.push((k, s));
    }
    Ok(out)
}

/// Sorts by authority and drops duplicates: the canonical signature list.
pub fn canonical_signatures(mut sigs: Vec<(Key, Sig)>) -> Vec<(Key, Sig)> {
    sigs.sort_by_key(|a| a.0);
    sigs.dedup_by(|a, b| a.0 == b.0);
    sigs
}

/// A certificate: an order and the votes of more than two thirds of the
/// committee's weight. Final and verifiable offline by anyone who knows the
/// committee. `order | signatures`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub order: Order,
    pub votes: Vec<(Key, Sig)>,
}

impl Certificate {
    pub fn buffer_len(&self) -> usize {
        self.order.buffer_len() + 2 + 96 * self.votes.len()
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        self.order.emit(out);
        emit_signatures(&self.votes, out);
    }
    fn parse(r: &mut Reader<'_>) -> Result<Certificate, WireError> {
        Ok(Certificate { order: Order::parse(r)?, votes: parse_signatures(r)? })
    }
    /// The certificate alone (no header), as stored in the ledger tables.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        self.emit(&mut v);
        v
    }
    /// Parses what [`Certificate::to_bytes`] wrote.
    pub fn from_bytes(b: &[u8]) -> Result<Certificate, WireError> {
        let mut r = Reader { buf: b, what: "certificate" };
        let c = Certificate::parse(&mut r)?;
        r.end()?;
        Ok(c)
    }
}

/// An authority's signed refusal of an order, so the client can stop
/// waiting. `order hash [32] | authority [32] | reason u8 | signature [64]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub order_hash: Hash,
    pub authority: Key,
    /// A [`crate::error::Reason`] code.
    pub reason: u8,
    pub signature: Sig,
}

/// `authority [32] | seq u64 | signature [64]`; `seq` grows with every
/// heartbeat of that authority (persisted), so a replayed one is stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub authority: Key,
    pub seq: u64,
    pub signature: Sig,
}

/// A gateway's claim of a withdrawal certificate naming it:
/// `gateway [32] | signature [64] | certificate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settle {
    pub gateway: Key,
    pub signature: Sig,
    pub certificate: Certificate,
}

/// The withdrawal certificate and settlement acknowledgements of a quorum
/// (self-contained, so an authority that never saw the withdrawal applies
/// it too): `certificate | signatures`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleCertificate {
    pub certificate: Certificate,
    pub acks: Vec<(Key, Sig)>,
}

/// A message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Client → authorities: please vote.
    Order(Order),
    /// Authority → client.
    Vote(Vote),
    /// Client → authorities and the recipient's home node (or the gateway).
    Confirmation(Certificate),
    /// Authority → client.
    Refusal(Refusal),
    /// Authority → authorities.
    Heartbeat(Heartbeat),
    /// Gateway → authorities.
    Settle(Settle),
    /// Authority → gateway.
    SettleAck(Vote),
    /// Gateway → authorities.
    SettleCertificate(SettleCertificate),
}

impl Body {
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::Order(_) => MessageType::Order,
            Body::Vote(_) => MessageType::Vote,
            Body::Confirmation(_) => MessageType::Confirmation,
            Body::Refusal(_) => MessageType::Refusal,
            Body::Heartbeat(_) => MessageType::Heartbeat,
            Body::Settle(_) => MessageType::Settle,
            Body::SettleAck(_) => MessageType::SettleAck,
            Body::SettleCertificate(_) => MessageType::SettleCertificate,
        }
    }
}

/// A whole payload: header and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub committee: Hash,
    pub body: Body,
}

impl Message {
    /// Parses a payload. Errors say what was wrong; nothing panics.
    pub fn parse(payload: &[u8]) -> Result<Message, WireError> {
        if payload.len() > MAX_MESSAGE {
            return err(format!("payload of {} bytes (at most {MAX_MESSAGE})", payload.len()));
        }
        let mut r = Reader { buf: payload, what: "header" };
        let version = r.u8()?;
        if version != VERSION {
            return err(format!("unsupported encoding version {version} (this node speaks {VERSION})"));
        }
        let t = r.u8()?;
        let Some(t) = MessageType::from_u8(t) else { return err(format!("unknown message type {t}")) };
        let committee = r.array()?;
        r.what = t.name();
        let body = match t {
            MessageType::Order => Body::Order(Order::parse(&mut r)?),
            MessageType::Vote => Body::Vote(Vote::parse(&mut r)?),
            MessageType::Confirmation => Body::Confirmation(Certificate::parse(&mut r)?),
            MessageType::Refusal => Body::Refusal(Refusal {
                order_hash: r.array()?,
                authority: r.array()?,
                reason: r.u8()?,
                signature: r.array()?,
            }),
            MessageType::Heartbeat => {
                Body::Heartbeat(Heartbeat { authority: r.array()?, seq: r.u64()?, signature: r.array()? })
            }
            MessageType::Settle => Body::Settle(Settle {
                gateway: r.array()?,
                signature: r.array()?,
                certificate: Certificate::parse(&mut r)?,
            }),
            MessageType::SettleAck => Body::SettleAck(Vote::parse(&mut r)?),
            MessageType::SettleCertificate => Body::SettleCertificate(SettleCertificate {
                certificate: Certificate::parse(&mut r)?,
                acks: parse_signatures(&mut r)?,
            }),
        };
        r.end()?;
        Ok(Message { committee, body })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match &self.body {
                Body::Order(o) => o.buffer_len(),
                Body::Vote(_) | Body::SettleAck(_) => Vote::LEN,
                Body::Confirmation(c) => c.buffer_len(),
                Body::Refusal(_) => 32 + 32 + 1 + 64,
                Body::Heartbeat(_) => 32 + 8 + 64,
                Body::Settle(s) => 32 + 64 + s.certificate.buffer_len(),
                Body::SettleCertificate(s) => s.certificate.buffer_len() + 2 + 96 * s.acks.len(),
            }
    }

    /// Appends the encoding to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.push(self.body.message_type() as u8);
        out.extend_from_slice(&self.committee);
        match &self.body {
            Body::Order(o) => o.emit(out),
            Body::Vote(v) | Body::SettleAck(v) => v.emit(out),
            Body::Confirmation(c) => c.emit(out),
            Body::Refusal(f) => {
                out.extend_from_slice(&f.order_hash);
                out.extend_from_slice(&f.authority);
                out.push(f.reason);
                out.extend_from_slice(&f.signature);
            }
            Body::Heartbeat(h) => {
                out.extend_from_slice(&h.authority);
                out.extend_from_slice(&h.seq.to_be_bytes());
                out.extend_from_slice(&h.signature);
            }
            Body::Settle(s) => {
                out.extend_from_slice(&s.gateway);
                out.extend_from_slice(&s.signature);
                s.certificate.emit(out);
            }
            Body::SettleCertificate(s) => {
                s.certificate.emit(out);
                emit_signatures(&s.acks, out);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        self.emit(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn transfer() -> Order {
        Order {
            body: OrderBody {
                sender: [1; 32],
                sequence: 7,
                amount: 250,
                kind: OrderKind::Transfer { recipient: [2; 32] },
            },
            signature: [3; 64],
        }
    }

    fn withdrawal() -> Order {
        Order {
            body: OrderBody {
                sender: [1; 32],
                sequence: 8,
                amount: 9,
                kind: OrderKind::Withdrawal {
                    gateway: [4; 32],
                    expiry_ms: 60_000,
                    destination: b"iban:x".to_vec(),
                },
            },
            signature: [5; 64],
        }
    }

    fn all_messages() -> Vec<Message> {
        let cert = Certificate { order: transfer(), votes: vec![([6; 32], [7; 64]), ([8; 32], [9; 64])] };
        let vote = Vote { order_hash: [10; 32], authority: [11; 32], signature: [12; 64] };
        [
            Body::Order(transfer()),
            Body::Order(withdrawal()),
            Body::Vote(vote.clone()),
            Body::Confirmation(cert.clone()),
            Body::Refusal(Refusal { order_hash: [1; 32], authority: [2; 32], reason: 7, signature: [3; 64] }),
            Body::Heartbeat(Heartbeat { authority: [4; 32], seq: u64::MAX, signature: [5; 64] }),
            Body::Settle(Settle {
                gateway: [6; 32],
                signature: [7; 64],
                certificate: Certificate { order: withdrawal(), votes: cert.votes.clone() },
            }),
            Body::SettleAck(vote),
            Body::SettleCertificate(SettleCertificate {
                certificate: Certificate { order: withdrawal(), votes: cert.votes.clone() },
                acks: cert.votes.clone(),
            }),
        ]
        .into_iter()
        .map(|body| Message { committee: [0xcc; 32], body })
        .collect()
    }

    #[test]
    fn every_message_round_trips_and_knows_its_length() {
        for m in all_messages() {
            let bytes = m.to_bytes();
            assert_eq!(bytes.len(), m.buffer_len(), "{m:?}");
            assert_eq!(Message::parse(&bytes).unwrap(), m);
            // Every strict prefix is refused, and so is a trailing byte.
            for n in 0..bytes.len() {
                assert!(Message::parse(&bytes[..n]).is_err(), "prefix {n} of {m:?}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Message::parse(&longer).unwrap_err().0.contains("trailing"));
        }
    }

    #[test]
    fn hostile_encodings_are_refused_with_a_reason() {
        let m = &all_messages()[3];
        let mut b = m.to_bytes();
        b[0] = 2;
        assert!(Message::parse(&b).unwrap_err().0.contains("version 2"));
        b[0] = 1;
        b[1] = 99;
        assert!(Message::parse(&b).unwrap_err().0.contains("type 99"));
        // Votes out of order (duplicates included) are not canonical.
        let Body::Confirmation(mut c) = m.body.clone() else { unreachable!() };
        c.votes.reverse();
        let bad = Message { committee: m.committee, body: Body::Confirmation(c.clone()) }.to_bytes();
        assert!(Message::parse(&bad).unwrap_err().0.contains("ascending"));
        c.votes = vec![c.votes[0], c.votes[0]];
        let bad = Message { committee: m.committee, body: Body::Confirmation(c) }.to_bytes();
        assert!(Message::parse(&bad).is_err());
        // A vote count far beyond the bytes present.
        let mut b = Message { committee: m.committee, body: Body::Order(transfer()) }.to_bytes();
        b[1] = MessageType::Confirmation as u8;
        b.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(Message::parse(&b).is_err());
        assert!(Message::parse(&vec![1u8; MAX_MESSAGE + 1]).unwrap_err().0.contains("at most"));
    }

    #[test]
    fn the_order_hash_covers_committee_and_body_but_not_the_signature() {
        let a = transfer();
        let mut b = a.clone();
        b.signature = [0; 64];
        assert_eq!(a.body.hash(&[1; 32]), b.body.hash(&[1; 32]));
        assert_ne!(a.body.hash(&[1; 32]), a.body.hash(&[2; 32]));
        let mut c = a.clone();
        c.body.amount += 1;
        assert_ne!(a.body.hash(&[1; 32]), c.body.hash(&[1; 32]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic_and_reparse_identically(
            which in 0usize..9, pos in any::<prop::sample::Index>(), byte in any::<u8>()
        ) {
            let mut b = all_messages()[which].to_bytes();
            let i = pos.index(b.len());
            b[i] = byte;
            if let Ok(m) = Message::parse(&b) {
                prop_assert_eq!(m.to_bytes(), b);
            }
        }
    }
}
