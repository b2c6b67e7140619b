//! Many bundles in one call: what the ABI 1.1 `on_bundles` entry point
//! runs (`QuorumPlugin::on_bundles`).
//!
//! ABI 1.0 hands a consensus plugin one bundle per `on_bundle` call, so its
//! signature work (one verification and one signature per order, one batch
//! verification per certificate) runs on one core, one bundle at a time.
//! With a batch of bundles in one call, the plugin can
//!
//! 1. check every signature first, spread over threads (the host's
//!    `verify`, `verify_batch` and `sign` are thread-safe in the ABI), in
//!    large batch verifications: the orders' signatures in groups
//!    ([`crate::checks::order_group`]), and the certificates' signatures
//!    together (cheaper per signature than many small batches);
//! 2. do the ledger work in arrival order, on the host thread, exactly as
//!    the single-bundle path does (the same functions: `Core::decide_order`,
//!    [`Core::apply_verified`]), each lock written before its vote exists;
//! 3. sign each vote on helper threads as soon as its lock is written,
//!    while the ledger work goes on, and emit the votes in order at the end.
//!
//! Signatures checked ahead by [`crate::checks::Checker::prepare`] (the
//! `prepare_bundles` entry point, which the host runs while it commits the
//! previous batch) are not checked again.
//!
//! The per-bundle results have the single path's meaning: a refused bundle
//! made no writes. An `Err` of the whole (a host failure) means the caller
//! rolls the call back. `README.md` ("Throughput: `on_bundles` and
//! `prepare_bundles`") has the measurements (`benches/src/bin/ledger.rs`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Role;
use crate::env::{Crypto, Env};
use crate::error::{Error, Reason};
use crate::keys::{Hash, hash};
use crate::ledger::{self, Applied};
use crate::protocol::{Core, reply_address};
use crate::wire::{Body, Certificate, Message, Order};

/// One bundle of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    pub source: &'a str,
    pub payload: &'a [u8],
}

enum Work {
    /// Settled in the first pass (refused, or a replay).
    Done(Result<(), Error>),
    /// `pre`: its signature was checked ahead ([`crate::checks::Checker::prepare`]).
    Order {
        order: Order,
        h: Hash,
        to: String,
        pre: bool,
    },
    Certificate {
        cert: Certificate,
        h: Hash,
        pre: bool,
    },
    /// Any other message: handled alone, in order.
    Single,
}

/// Runs `f` over `items` on up to `threads` threads (this one and scoped
/// ones), keeping order. The items are taken in small chunks, in turn: a
/// thread the machine slows down (other load, the host's own threads)
/// takes fewer, so all finish together and no core idles at the end.
pub(crate) fn par_map<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads * 8).max(1);
    let chunks = items.len().div_ceil(chunk);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= chunks {
                return done;
            }
            let part = &items[c * chunk..((c + 1) * chunk).min(items.len())];
            done.push((c, part.iter().map(&f).collect::<Vec<R>>()));
        }
    };
    let mut parts: Vec<(usize, Vec<R>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut parts = work();
        for h in handles {
            parts.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        parts
    });
    parts.sort_unstable_by_key(|(c, _)| *c);
    parts.into_iter().flat_map(|(_, r)| r).collect()
}

impl Core {
    /// Handles `items` as one call (see the module docs). `crypto` must be
    /// the thread-safe part of `env`'s services.
    pub fn on_bundles(
        &mut self,
        env: &dyn Env,
        crypto: &(dyn Crypto + Sync),
        threads: usize,
        items: &[Incoming<'_>],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        // First pass, in order: parse, cheap checks, replays.
        let mut work = Vec::with_capacity(items.len());
        for it in items {
            work.push(self.classify(env, it)?);
        }
        // Signatures, spread over threads.
        let orders: Vec<usize> =
            (0..work.len()).filter(|&i| matches!(work[i], Work::Order { pre: false, .. })).collect();
        let groups: Vec<&[usize]> =
            orders.chunks(crate::checks::order_group(orders.len(), threads)).collect();
        let checked = par_map(threads, &groups, |group| {
            let orders: Vec<&Order> = group
                .iter()
                .filter_map(|&i| match &work[i] {
                    Work::Order { order, .. } => Some(order),
                    _ => None,
                })
                .collect();
            self.checker.verify_orders(crypto, &orders)
        });
        for (&i, r) in orders.iter().zip(checked.into_iter().flatten()) {
            if let Err(e) = r {
                work[i] = Work::Done(Err(e));
            }
        }
        let certs: Vec<usize> =
            (0..work.len()).filter(|&i| matches!(work[i], Work::Certificate { pre: false, .. })).collect();
        let chunk = certs.len().div_ceil(threads.max(1)).max(1);
        let groups: Vec<&[usize]> = certs.chunks(chunk).collect();
        let checked = par_map(threads, &groups, |group| self.verify_certificates(crypto, &work, group));
        for (&i, r) in groups.iter().flat_map(|g| g.iter()).zip(checked.into_iter().flatten()) {
            if let Err(e) = r {
                work[i] = Work::Done(Err(e));
            }
        }
        // Ledger work, in order, on this thread. Each vote is signed by
        // helper threads as soon as its lock is written (in the call's
        // transaction), while the following bundles' ledger work goes on;
        // all are emitted, in order, at the end.
        let orders = work.iter().filter(|w| matches!(w, Work::Order { .. })).count();
        let helpers = if orders >= 2 { threads.saturating_sub(1) } else { 0 };
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Hash)>();
        let rx = Mutex::new(rx);
        let sign_queued = || {
            let mut out = Vec::new();
            loop {
                let next = rx.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
                match next {
                    Ok((i, h)) => out.push((i, crypto.sign(&crate::wire::vote_message(&h)))),
                    Err(()) => return out,
                }
            }
        };
        let (results, votes, mut signed) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..helpers).map(|_| s.spawn(sign_queued)).collect();
            let mut results = Vec::with_capacity(items.len());
            let mut votes: Vec<(Hash, String)> = Vec::new();
            for (it, w) in items.iter().zip(work) {
                let single = matches!(w, Work::Single);
                let r = match w {
                    Work::Done(r) => r,
                    Work::Order { order, h, to, .. } => match self.decide_order(env, &order, &h, &to) {
                        Ok(true) => {
                            // (Cannot fail: the receiver lives until the end.
                            // Without helpers, this thread signs it below.)
                            let _ = tx.send((votes.len(), h));
                            votes.push((h, to));
                            Ok(())
                        }
                        Ok(false) => Ok(()),
                        Err(e) => Err(e),
                    },
                    Work::Certificate { cert, h, .. } => {
                        self.apply_verified(env, &cert, &h).map(|_: Applied| ())
                    }
                    Work::Single => self.on_bundle(env, it.source, it.payload),
                };
                match r {
                    Err(Error::Host(e)) => return Err(Error::Host(e)),
                    Err(Error::Refused(f)) => {
                        if !single {
                            // (`on_bundle` counted its own.)
                            self.count(f.reason);
                        }
                        results.push(Err(Error::Refused(f)));
                    }
                    Ok(()) => results.push(Ok(())),
                }
            }
            drop(tx);
            // This thread signs what the helpers have not taken yet.
            let mut signed = sign_queued();
            for h in handles {
                signed.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            Ok((results, votes, signed))
        })?;
        signed.sort_unstable_by_key(|(i, _)| *i);
        debug_assert_eq!(signed.len(), votes.len());
        for ((h, to), (_, sig)) in votes.iter().zip(signed) {
            self.emit_vote(env, h, sig?, to)?;
        }
        Ok(results)
    }

    fn classify(&mut self, env: &dyn Env, it: &Incoming<'_>) -> Result<Work, Error> {
        let pre = !self.checker.prechecked.is_empty() && self.checker.prechecked.take(&hash(&[it.payload]));
        let msg = match Message::parse(it.payload) {
            Ok(m) => m,
            Err(e) => return Ok(Work::Done(Err(Error::refused(Reason::Malformed, e.0)))),
        };
        if msg.committee != *self.hash() {
            return Ok(Work::Single); // the single path words and counts it
        }
        match msg.body {
            Body::Order(order) if self.is_authority() => {
                let checked = self.check_order(&order, true).and_then(|h| Ok((h, reply_address(it.source)?)));
                Ok(match checked {
                    Ok((h, to)) => Work::Order { order, h, to, pre },
                    Err(e) => Work::Done(Err(e)),
                })
            }
            Body::Confirmation(cert) if self.role() != Role::Relay => {
                let b = &cert.order.body;
                let h = b.hash(self.hash());
                if ledger::certificate_hash_at(env, &b.sender, b.sequence)? == Some(h) {
                    self.after_certificate(env, &cert, &h)?;
                    return Ok(Work::Done(Ok(())));
                }
                Ok(match self.check_certificate(&cert) {
                    Ok(h) => Work::Certificate { cert, h, pre },
                    Err(e) => Work::Done(Err(e)),
                })
            }
            _ => Ok(Work::Single),
        }
    }

    /// The certificates of `group`, verified together
    /// ([`crate::checks::Checker::verify_certificates`]).
    fn verify_certificates(
        &self,
        crypto: &dyn Crypto,
        work: &[Work],
        group: &[usize],
    ) -> Vec<Result<(), Error>> {
        let certs: Vec<&Certificate> = group
            .iter()
            .filter_map(|&i| match &work[i] {
                Work::Certificate { cert, .. } => Some(cert),
                _ => None,
            })
            .collect();
        self.checker.verify_certificates(crypto, &certs).into_iter().map(|r| r.map(|_| ())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::par_map;

    #[test]
    fn par_map_keeps_the_order_whatever_the_threads() {
        let items: Vec<u32> = (0..1000).collect();
        let want: Vec<u64> = items.iter().map(|x| u64::from(*x) * 3).collect();
        for threads in [1, 2, 3, 8, 5000] {
            assert_eq!(par_map(threads, &items, |x| u64::from(*x) * 3), want, "{threads} threads");
        }
        assert!(par_map(4, &[] as &[u32], |x| *x).is_empty());
        assert_eq!(par_map(4, &[7u32], |x| *x), vec![7]);
    }
}
