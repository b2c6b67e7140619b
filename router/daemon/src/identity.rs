//! The node's identity: an Ed25519 key created on first start and kept in
//! the state directory with mode 0600. The key never leaves the process:
//! plugins ask the host to sign.
//!
//! Key file format (text, so an operator can tell what it is):
//! ```text
//! meshpay-ed25519-secret-v1
//! <64 hex digits: the 32-byte secret seed>
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use ed25519_dalek::{Signer, SigningKey};

const HEADER: &str = "meshpay-ed25519-secret-v1";

/// The multicodec prefix of an Ed25519 public key (0xed, varint-encoded).
const MULTICODEC_ED25519_PUB: [u8; 2] = [0xed, 0x01];

/// A node's signing key.
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// Loads the key at `path`, creating it (atomically, mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Identity> {
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(e).with_context(|| format!("cannot read key file {}", path.display())),
        }
    }

    /// Loads an existing key; refuses a file others can read.
    pub fn load(path: &Path) -> anyhow::Result<Identity> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read key file {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "key file {} is accessible by group or others (mode {mode:o}); it must be 0600: chmod 600 it",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("key file {} is damaged", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Identity> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            bail!("first line is not `{HEADER}`");
        }
        let hex = lines.next().unwrap_or("").trim();
        let seed = decode_hex32(hex).context("second line is not 64 hex digits")?;
        Ok(Identity { key: SigningKey::from_bytes(&seed) })
    }

    fn create(path: &Path) -> anyhow::Result<Identity> {
        let key = SigningKey::generate(&mut rand_core::OsRng);
        let tmp = path.with_extension("key.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create key file {}", tmp.display()))?;
        writeln!(f, "{HEADER}\n{}", encode_hex(&key.to_bytes()))?;
        f.sync_all()?;
        drop(f);
        // Mode 0600 regardless of the umask.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot install key file {}", path.display()))?;
        if let Some(dir) = path.parent() {
            // Make the rename durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(Identity { key })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The public key as 64 hex digits.
    pub fn hex(&self) -> String {
        encode_hex(&self.public_key())
    }

    /// The public key as a `did:key` (multibase base58btc of the multicodec key).
    pub fn did_key(&self) -> String {
        did_key(&self.public_key())
    }

    /// The node's bundle endpoint.
    pub fn endpoint(&self) -> String {
        node_endpoint(&self.public_key())
    }
}

/// `did:key:z...` for an Ed25519 public key.
pub fn did_key(public_key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&MULTICODEC_ED25519_PUB);
    bytes.extend_from_slice(public_key);
    format!("did:key:z{}", bs58::encode(bytes).into_string())
}

/// The bundle endpoint of a node: `dtn://<hex key>/`.
pub fn node_endpoint(public_key: &[u8; 32]) -> String {
    format!("dtn://{}/", encode_hex(public_key))
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reloaded_identically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let a = Identity::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = Identity::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert_eq!(a.hex().len(), 64);
        assert!(a.endpoint().starts_with("dtn://") && a.endpoint().ends_with('/'));
    }

    #[test]
    fn readable_by_others_or_damaged_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        Identity::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load(&path).err().unwrap().to_string();
        assert!(err.contains("must be 0600"), "{err}");
        std::fs::write(&path, "meshpay-ed25519-secret-v1\nnot-hex\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = format!("{:#}", Identity::load(&path).err().unwrap());
        assert!(err.contains("damaged"), "{err}");
    }

    #[test]
    fn did_key_matches_the_w3c_test_vector() {
        // did:key spec test vector: the key of seed 0x00..00 is
        // 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29.
        let key = SigningKey::from_bytes(&[0u8; 32]).verifying_key().to_bytes();
        assert_eq!(encode_hex(&key), "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29");
        assert_eq!(did_key(&key), "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp");
    }
}
