//! Signature checks the host offers plugins (`MpHost.verify`, `verify_batch`).
//!
//! Each check follows one fixed rule, so every node decides the same way:
//!
//! * [`verify_strict`] (`MpHost.verify`, one signature): RFC 8032's
//!   cofactorless equation, canonical `s`, small-order `R` and keys refused
//!   (ed25519-dalek's `verify_strict`).
//! * [`verify_batch`] (`MpHost.verify_batch`): the ZIP-215 rules (cofactored
//!   equation, canonical `s`), weak (small-order) keys refused; a batch
//!   check of ed25519-zebra, and when it fails, single checks under the same
//!   rules to name the first bad signature. Under the cofactored equation a
//!   batch accepts exactly the signatures that pass alone, whatever else is
//!   in it. ed25519-dalek's own batch lacks that property: it checks the
//!   cofactorless equation with random weights, so a signature with a
//!   small-order component passes or fails depending on its neighbours in
//!   the batch (ed25519-dalek issue #115). Two authorities checking one
//!   certificate among different neighbours could then disagree about it.
//!
//! Whatever [`verify_strict`] accepts, [`verify_batch`] accepts too (a
//! solution of the cofactorless equation solves the cofactored one). The
//! signatures only the batch accepts can be made only by the key's owner,
//! about its own messages. ed25519-zebra's batch does not check for weak
//! keys, under which the cofactored equation is solved without the secret,
//! so every key is checked first: against the 14 encodings of small-order
//! points, a comparison of bytes rather than a point decompression (which
//! cost a fifth of a batch check per signature).

use std::sync::OnceLock;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, VerifyingKey};
use ed25519_zebra::batch;
use meshpay_abi::SignedMessage;

fn key(bytes: &[u8; 32]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(bytes).ok().filter(|k| !k.is_weak())
}

/// One strict Ed25519 verification.
pub fn verify_strict(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    match key(public_key) {
        Some(k) => k.verify_strict(message, &Signature::from_bytes(signature)).is_ok(),
        None => false,
    }
}

/// Every encoding that decodes to a point of small order: the 8 points'
/// canonical encodings, the sign bit set on those with x = 0, and y + p for
/// y = 0 and 1 (the only y below 19, so the only y with a second encoding
/// below 2^255). Each is checked by decoding it, so none is listed wrongly.
fn small_order_encodings() -> &'static [[u8; 32]] {
    static ENCODINGS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let mut candidates: Vec<[u8; 32]> =
            curve25519_dalek::constants::EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect();
        for e in candidates.clone() {
            let mut other_sign = e;
            other_sign[31] ^= 0x80;
            candidates.push(other_sign);
        }
        for low in [0xedu8, 0xee] {
            // p = 2^255 - 19 and p + 1, with either sign bit.
            let mut e = [0xffu8; 32];
            e[0] = low;
            e[31] = 0x7f;
            candidates.push(e);
            e[31] = 0xff;
            candidates.push(e);
        }
        let mut small: Vec<[u8; 32]> = candidates
            .into_iter()
            .filter(|e| CompressedEdwardsY(*e).decompress().is_some_and(|p| p.is_small_order()))
            .collect();
        small.sort_unstable();
        small.dedup();
        small
    })
}

/// A key of small order, under which signatures are forged without a secret.
fn weak(key: &[u8; 32]) -> bool {
    small_order_encodings().contains(key)
}

fn item(m: &SignedMessage<'_>) -> batch::Item {
    let key = ed25519_zebra::VerificationKeyBytes::from(*m.public_key);
    batch::Item::from((key, ed25519_zebra::Signature::from_bytes(m.signature), m.message))
}

/// Verifies all `items` under the ZIP-215 rules (module docs); on failure
/// returns the index of the first bad one.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Result<(), usize> {
    // The first of `queued` whose single check fails.
    let first_bad = |queued: Vec<batch::Item>| queued.into_iter().position(|it| it.verify_single().is_err());
    let mut verifier = batch::Verifier::new();
    let mut queued = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        if weak(m.public_key) {
            return Err(first_bad(queued).unwrap_or(i));
        }
        let it = item(m);
        queued.push(it.clone());
        verifier.queue(it);
    }
    if verifier.verify(rand_core::OsRng).is_ok() {
        return Ok(());
    }
    // The batch failed but every single check passed (only if the random
    // weights were unlucky, with probability about 2^-128): refuse anyway,
    // blaming the first item, rather than accept what the batch refused.
    Err(first_bad(queued).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(seed: u8, msg: &'static [u8]) -> ([u8; 32], [u8; 64]) {
        let k = SigningKey::from_bytes(&[seed; 32]);
        (k.verifying_key().to_bytes(), k.sign(msg).to_bytes())
    }

    #[test]
    fn batch_accepts_good_and_names_the_first_bad_signature() {
        let (k1, s1) = signed(1, b"one");
        let (k2, s2) = signed(2, b"two");
        let (k3, s3) = signed(3, b"three");
        let mut bad3 = s3;
        bad3[0] ^= 1;
        let good = [
            SignedMessage { public_key: &k1, message: b"one", signature: &s1 },
            SignedMessage { public_key: &k2, message: b"two", signature: &s2 },
            SignedMessage { public_key: &k3, message: b"three", signature: &s3 },
        ];
        assert_eq!(verify_batch(&good), Ok(()));
        let bad = [good[0], good[1], SignedMessage { public_key: &k3, message: b"three", signature: &bad3 }];
        assert_eq!(verify_batch(&bad), Err(2));
        let s3 = bad3;
        assert!(!verify_strict(&k3, b"three", &s3));
        assert!(verify_strict(&k1, b"one", &s1));
    }

    #[test]
    fn weak_keys_are_refused_even_in_a_batch() {
        // The identity point: a small-order key for which (R = identity,
        // s = 0) "verifies" any message under the cofactored batch equation.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let items = [SignedMessage { public_key: &weak, message: b"anything", signature: &sig }];
        assert_eq!(verify_batch(&items), Err(0));
        assert!(!verify_strict(&weak, b"anything", &sig));
    }

    /// A signature its key's owner made with a small-order point added to
    /// `R` (`s = r + k·a` for `R' = [r]B + T`): it solves the cofactored
    /// equation but not the cofactorless one.
    fn torsioned(seed: u64, msg: &[u8]) -> ([u8; 32], [u8; 64]) {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::{EdwardsPoint, Scalar};
        use sha2::{Digest, Sha512};
        let a = Scalar::from(seed) * Scalar::from(0x9e37_79b9_7f4a_7c15u64);
        let r = Scalar::from(seed + 1) * Scalar::from(0xc2b2_ae3d_27d4_eb4fu64);
        let key = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[1]).compress().to_bytes();
        let k = Scalar::from_hash(Sha512::new().chain_update(big_r).chain_update(key).chain_update(msg));
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice((r + k * a).as_bytes());
        (key, sig)
    }

    #[test]
    fn a_batch_decides_each_signature_as_its_single_check_does_whatever_its_neighbours() {
        let (tk, ts) = torsioned(7, b"mine");
        assert!(!verify_strict(&tk, b"mine", &ts), "not a strict signature");
        let alone = [SignedMessage { public_key: &tk, message: b"mine", signature: &ts }];
        assert_eq!(verify_batch(&alone), Ok(()), "valid under the cofactored equation");
        // Among any neighbours the verdict stays the same. (ed25519-dalek's
        // cofactorless batch refuses it in about 7 of 8 compositions.)
        let others: Vec<([u8; 32], [u8; 64])> = (1..=24).map(|i| signed(i, b"other")).collect();
        for n in 1..others.len() {
            let mut items: Vec<SignedMessage<'_>> = others[..n]
                .iter()
                .map(|(k, s)| SignedMessage { public_key: k, message: b"other", signature: s })
                .collect();
            items.insert(n / 2, alone[0]);
            assert_eq!(verify_batch(&items), Ok(()), "with {n} neighbours");
        }
        // A bad neighbour is named, not the torsioned signature.
        let (bk, mut bs) = signed(99, b"bad");
        bs[40] ^= 1;
        let items = [alone[0], SignedMessage { public_key: &bk, message: b"bad", signature: &bs }, alone[0]];
        assert_eq!(verify_batch(&items), Err(1));
    }

    #[test]
    fn the_weak_key_list_is_the_fourteen_encodings_of_small_order_points() {
        let list = small_order_encodings();
        assert_eq!(list.len(), 14);
        for e in list {
            let p = CompressedEdwardsY(*e).decompress().expect("a point");
            assert!(p.is_small_order());
            assert!(
                VerifyingKey::from_bytes(e).is_ok_and(|k| k.is_weak())
                    || VerifyingKey::from_bytes(e).is_err()
            );
        }
        for seed in 0..64u8 {
            let (k, _) = signed(seed, b"x");
            assert!(!weak(&k), "a real key is not weak");
        }
        // Each weak key is refused in a batch, whatever the signature.
        for e in list {
            let items = [SignedMessage { public_key: e, message: b"m", signature: &[0; 64] }];
            assert_eq!(verify_batch(&items), Err(0));
        }
    }
}
