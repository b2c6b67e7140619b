//! The checks of orders and certificates that need no ledger: amounts,
//! keys, sizes, committee membership and weights, signatures. Pure, so a
//! [`Checker`] can run on any thread, ahead of the call that needs the
//! results ([`Checker::prepare`], for the ABI 1.1 `prepare_bundles`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use meshpay_abi::SignedMessage;

use crate::batch::Incoming;
use crate::config::Config;
use crate::env::Crypto;
use crate::error::{Error, Reason, refuse};
use crate::keys::{CheckedKeys, Hash, Key, hash, hex};
use crate::wire::{self, Body, Certificate, Message, Order, OrderKind};

/// Payloads whose signatures were checked ahead of their call, by hash.
#[derive(Debug, Default)]
pub struct Prechecked {
    set: Mutex<HashSet<Hash>>,
}

impl Prechecked {
    /// Most payloads remembered; beyond it the set starts over (a payload
    /// that is forgotten is simply checked again).
    pub const CAPACITY: usize = 1 << 16;

    fn insert(&self, h: Hash) {
        if let Ok(mut s) = self.set.lock() {
            if s.len() >= Self::CAPACITY {
                s.clear();
            }
            s.insert(h);
        }
    }

    /// Whether the payload with this hash was checked (forgetting it).
    pub fn take(&self, h: &Hash) -> bool {
        self.set.lock().map(|mut s| s.remove(h)).unwrap_or(false)
    }

    pub fn is_empty(&self) -> bool {
        self.set.lock().map(|s| s.is_empty()).unwrap_or(true)
    }
}

/// The ledger-free checks, with their caches.
#[derive(Clone, Debug)]
pub struct Checker {
    cfg: Arc<Config>,
    /// Keys that passed the weak-key check (a cache of a pure function).
    keys: Arc<CheckedKeys>,
    pub prechecked: Arc<Prechecked>,
}

impl Checker {
    pub fn new(cfg: Arc<Config>) -> Checker {
        Checker { cfg, keys: Arc::default(), prechecked: Arc::default() }
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
        self.keys.check(&b.sender).map_err(|e| Error::refused(Reason::WeakKey, format!("sender: {e}")))?;
        match &b.kind {
            OrderKind::Transfer { recipient } => self
                .keys
                .check(recipient)
                .map_err(|e| Error::refused(Reason::WeakKey, format!("recipient: {e}")))?,
            OrderKind::Withdrawal { gateway, expiry_ms, destination } => {
                self.keys
                    .check(gateway)
                    .map_err(|e| Error::refused(Reason::WeakKey, format!("gateway: {e}")))?;
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
        Ok(b.hash(self.cfg.committee.hash()))
    }

    /// Checks the sender's signature on an order. Through the host's batch
    /// check, even alone: orders and certificates are then judged by one
    /// rule (ZIP-215, `meshpay_host::verify_batch`), whichever path and
    /// whatever batch they come in.
    pub fn verify_order(&self, crypto: &dyn Crypto, order: &Order) -> Result<(), Error> {
        let msg = order.body.signing_message(self.cfg.committee.hash());
        verify_order_alone(crypto, order_item(order, &msg))
    }

    /// The senders' signatures of several orders in one batch verification
    /// (about a third of the cost of single checks); if it fails, each order
    /// alone, to refuse only the bad ones.
    pub fn verify_orders(&self, crypto: &dyn Crypto, orders: &[&Order]) -> Vec<Result<(), Error>> {
        let messages: Vec<Vec<u8>> =
            orders.iter().map(|o| o.body.signing_message(self.cfg.committee.hash())).collect();
        let items: Vec<SignedMessage<'_>> =
            orders.iter().zip(&messages).map(|(o, m)| order_item(o, m)).collect();
        if crypto.verify_batch(&items).is_ok() {
            return orders.iter().map(|_| Ok(())).collect();
        }
        items.into_iter().map(|item| verify_order_alone(crypto, item)).collect()
    }

    /// Weight of distinct committee members among `signers`; refuses
    /// strangers.
    pub fn signers_weight<'k>(&self, signers: impl Iterator<Item = &'k Key>) -> Result<u64, Error> {
        let mut w: u64 = 0;
        for k in signers {
            match self.cfg.committee.weight(k) {
                Some(x) => w = w.saturating_add(x),
                None => {
                    return refuse(
                        Reason::UnknownAuthority,
                        format!("signer {} is not in the committee", hex(k)),
                    );
                }
            }
        }
        Ok(w)
    }

    /// The checks of a certificate that need no signature: the order's,
    /// and votes of distinct members weighing a quorum. Returns the order hash.
    pub fn check_certificate(&self, cert: &Certificate) -> Result<Hash, Error> {
        let h = self.check_order(&cert.order, false)?;
        let weight = self.signers_weight(cert.votes.iter().map(|(k, _)| k))?;
        if !self.cfg.committee.is_quorum(weight) {
            return refuse(
                Reason::BadCertificate,
                format!(
                    "votes of weight {weight} out of {}: a certificate needs at least {}",
                    self.cfg.committee.total_weight(),
                    self.cfg.committee.quorum_weight()
                ),
            );
        }
        Ok(h)
    }

    /// The two messages a certificate's signatures cover: the order's
    /// signing message and the vote message.
    pub fn certificate_messages(&self, cert: &Certificate, h: &Hash) -> (Vec<u8>, Vec<u8>) {
        (cert.order.body.signing_message(self.cfg.committee.hash()), wire::vote_message(h))
    }

    /// Verifies a certificate offline against the committee: a quorum of
    /// distinct members, and one batch verification over the sender's
    /// signature and every vote (the host falls back to single checks to
    /// name a bad one). Returns the order hash.
    pub fn verify_certificate(&self, crypto: &dyn Crypto, cert: &Certificate) -> Result<Hash, Error> {
        let h = self.check_certificate(cert)?;
        let (order_msg, vote_msg) = self.certificate_messages(cert, &h);
        let mut items = Vec::with_capacity(1 + cert.votes.len());
        push_certificate_items(&mut items, cert, &order_msg, &vote_msg);
        match crypto.verify_batch(&items) {
            Ok(()) => Ok(h),
            Err(Some(0)) => {
                refuse(Reason::BadSignature, "the sender's signature in the certificate does not verify")
            }
            Err(Some(i)) => refuse(
                Reason::BadSignature,
                format!(
                    "the vote of authority {} in the certificate does not verify",
                    hex(&cert.votes[i - 1].0)
                ),
            ),
            Err(None) => refuse(Reason::BadSignature, "the certificate's signatures do not verify"),
        }
    }

    /// Checks the signatures of the orders and confirmations among `items`
    /// on up to `threads` threads and remembers those that verify, so the
    /// call that handles them ([`crate::protocol::Core::on_bundles`]) skips
    /// the work. Touches no table, emits nothing: it may run while another
    /// call of the same instance runs (the host committing the previous
    /// batch). What fails is not remembered and fails again in its call,
    /// with its reason.
    pub fn prepare(&self, crypto: &(dyn Crypto + Sync), threads: usize, items: &[Incoming<'_>]) {
        let mut orders = Vec::new();
        let mut certs = Vec::new();
        for it in items {
            let Ok(msg) = Message::parse(it.payload) else { continue };
            if msg.committee != *self.cfg.committee.hash() {
                continue;
            }
            match msg.body {
                Body::Order(o) => orders.push((o, it.payload)),
                Body::Confirmation(c) => certs.push((c, it.payload)),
                _ => {}
            }
        }
        orders.retain(|(o, _)| self.check_order(o, true).is_ok());
        let groups: Vec<&[(Order, &[u8])]> = orders.chunks(order_group(orders.len(), threads)).collect();
        let ok = crate::batch::par_map(threads, &groups, |group| {
            let orders: Vec<&Order> = group.iter().map(|(o, _)| o).collect();
            self.verify_orders(crypto, &orders)
        });
        for ((_, payload), ok) in groups.iter().flat_map(|g| g.iter()).zip(ok.into_iter().flatten()) {
            if ok.is_ok() {
                self.prechecked.insert(hash(&[payload]));
            }
        }
        // Certificates: one large batch verification per thread.
        let chunk = certs.len().div_ceil(threads.max(1)).max(1);
        let groups: Vec<&[(Certificate, &[u8])]> = certs.chunks(chunk).collect();
        let ok = crate::batch::par_map(threads, &groups, |group| {
            let certs: Vec<&Certificate> = group.iter().map(|(c, _)| c).collect();
            self.verify_certificates(crypto, &certs)
        });
        for ((_, payload), ok) in groups.iter().flat_map(|g| g.iter()).zip(ok.into_iter().flatten()) {
            if ok.is_ok() {
                self.prechecked.insert(hash(&[payload]));
            }
        }
    }

    /// One batch verification over the signatures of several certificates;
    /// if it fails, each certificate alone, to refuse only the bad ones.
    pub fn verify_certificates(
        &self,
        crypto: &dyn Crypto,
        certs: &[&Certificate],
    ) -> Vec<Result<Hash, Error>> {
        let checked: Vec<Result<Hash, Error>> = certs.iter().map(|c| self.check_certificate(c)).collect();
        let messages: Vec<Option<(Vec<u8>, Vec<u8>)>> = certs
            .iter()
            .zip(&checked)
            .map(|(c, h)| h.as_ref().ok().map(|h| self.certificate_messages(c, h)))
            .collect();
        let mut items = Vec::new();
        for (c, m) in certs.iter().zip(&messages) {
            if let Some((om, vm)) = m {
                push_certificate_items(&mut items, c, om, vm);
            }
        }
        if crypto.verify_batch(&items).is_ok() {
            return checked;
        }
        certs.iter().zip(checked).map(|(c, h)| h.and_then(|_| self.verify_certificate(crypto, c))).collect()
    }
}

/// How many orders go into one batch verification, for `n` orders on
/// `threads` threads: a few groups per thread, so threads the machine slows
/// down take fewer ([`crate::batch::par_map`]), and batches of at least 16
/// (a batch's per-signature cost falls steeply up to there).
pub fn order_group(n: usize, threads: usize) -> usize {
    n.div_ceil(threads.max(1) * 4).clamp(16, 128)
}

/// An order's signature (`item`, from [`order_item`]) in a batch of one: the
/// rule [`Checker::verify_order`] gives every path.
fn verify_order_alone(crypto: &dyn Crypto, item: SignedMessage<'_>) -> Result<(), Error> {
    match crypto.verify_batch(&[item]) {
        Ok(()) => Ok(()),
        Err(_) => refuse(
            Reason::BadSignature,
            format!("the signature of sender {} does not verify", hex(item.public_key)),
        ),
    }
}

/// An order's signature, as a batch item.
fn order_item<'a>(order: &'a Order, signing_message: &'a [u8]) -> SignedMessage<'a> {
    SignedMessage { public_key: &order.body.sender, message: signing_message, signature: &order.signature }
}

/// Appends a certificate's signatures (the sender's first, then the votes)
/// to a batch.
pub fn push_certificate_items<'a>(
    items: &mut Vec<SignedMessage<'a>>,
    cert: &'a Certificate,
    order_msg: &'a [u8],
    vote_msg: &'a [u8],
) {
    items.push(SignedMessage {
        public_key: &cert.order.body.sender,
        message: order_msg,
        signature: &cert.order.signature,
    });
    items.extend(cert.votes.iter().map(|(k, s)| SignedMessage {
        public_key: k,
        message: vote_msg,
        signature: s,
    }));
}
