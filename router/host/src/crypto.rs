//! Signature checks the host offers plugins (`MpHost.verify`, `verify_batch`).
//!
//! Strict everywhere: weak (small-order) keys and non-canonical signatures
//! are refused. Batch verification in ed25519-dalek does not check for weak
//! keys itself, so every key is checked first; a failed batch falls back to
//! single checks to name the first bad signature.

use ed25519_dalek::{Signature, VerifyingKey};
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

/// Verifies all `items`; on failure returns the index of the first bad one.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Result<(), usize> {
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        keys.push(key(item.public_key).ok_or(i)?);
    }
    let messages: Vec<&[u8]> = items.iter().map(|m| m.message).collect();
    let signatures: Vec<Signature> = items.iter().map(|m| Signature::from_bytes(m.signature)).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    match items.iter().position(|m| !verify_strict(m.public_key, m.message, m.signature)) {
        Some(i) => Err(i),
        // The batch failed but every single check passed: refuse anyway,
        // blaming the first item, rather than accept what the batch refused.
        None => Err(0),
    }
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
}
