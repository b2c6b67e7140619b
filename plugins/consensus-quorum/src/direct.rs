//! An [`Env`](crate::env::Env) without the ABI (feature `direct`): the
//! tables of a host [`KvStore`] (a `meshpay_store::PluginCall`, so real
//! LMDB inside a real batch) and a node key held in process. For
//! benchmarks and tests that drive the protocol core directly, such as the
//! batched path ([`crate::batch`]) without the ABI.
//! The plugin itself never uses it: in the router the key stays in the host.

use std::cell::RefCell;

use ed25519_dalek::{Signer, SigningKey};
use meshpay_abi::SignedMessage;
use meshpay_abi::sdk::{Level, PluginError};
use meshpay_host::{HostError, KvStore};

use crate::env::{Crypto, Emit, Node, ReadTables, TableId, Tables};
use crate::keys::Sig;

/// Signatures with an in-process key; verification as the host does it.
pub struct DirectCrypto {
    key: SigningKey,
}

impl DirectCrypto {
    pub fn new(key: SigningKey) -> DirectCrypto {
        DirectCrypto { key }
    }
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
}

impl Crypto for DirectCrypto {
    fn sign(&self, message: &[u8]) -> Result<Sig, PluginError> {
        Ok(self.key.sign(message).to_bytes())
    }
    fn verify(&self, key: &[u8; 32], message: &[u8], signature: &Sig) -> bool {
        meshpay_host::verify_strict(key, message, signature)
    }
    fn verify_batch(&self, items: &[SignedMessage<'_>]) -> Result<(), Option<usize>> {
        meshpay_host::verify_batch(items).map_err(Some)
    }
}

/// A bundle the core emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    pub destination: String,
    pub payload: Vec<u8>,
}

/// The core's environment over a borrowed [`KvStore`].
pub struct DirectEnv<'k, 'c> {
    kv: RefCell<&'k mut dyn KvStore>,
    tables: [u32; TableId::ALL.len()],
    crypto: &'c DirectCrypto,
    pub now_ms: u64,
    pub emitted: RefCell<Vec<Emitted>>,
    pub logs: RefCell<Vec<(Level, String)>>,
}

fn host(e: HostError) -> PluginError {
    PluginError::new(e.status(), format!("kv: {e}"))
}

impl<'k, 'c> DirectEnv<'k, 'c> {
    /// Opens the plugin's tables in `kv`.
    pub fn open(kv: &'k mut dyn KvStore, crypto: &'c DirectCrypto) -> Result<Self, PluginError> {
        let mut tables = [0u32; TableId::ALL.len()];
        for t in TableId::ALL {
            tables[t as usize] = kv.open(t.name()).map_err(host)?;
        }
        Ok(DirectEnv {
            kv: RefCell::new(kv),
            tables,
            crypto,
            now_ms: 0,
            emitted: RefCell::new(Vec::new()),
            logs: RefCell::new(Vec::new()),
        })
    }

    pub fn take_emitted(&self) -> Vec<Emitted> {
        std::mem::take(&mut self.emitted.borrow_mut())
    }
}

impl ReadTables for DirectEnv<'_, '_> {
    fn get(&self, t: TableId, key: &[u8]) -> Result<Option<Vec<u8>>, PluginError> {
        let mut kv = self.kv.borrow_mut();
        Ok(kv.get(self.tables[t as usize], key).map_err(host)?.map(<[u8]>::to_vec))
    }
    fn scan(
        &self,
        t: TableId,
        start: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), PluginError> {
        let start = if start.is_empty() { &[0u8][..] } else { start };
        self.kv.borrow_mut().scan(self.tables[t as usize], start, visit).map_err(host)
    }
}

impl Tables for DirectEnv<'_, '_> {
    fn put(&self, t: TableId, key: &[u8], value: &[u8]) -> Result<(), PluginError> {
        self.kv.borrow_mut().put(self.tables[t as usize], key, value).map_err(host)
    }
    fn delete(&self, t: TableId, key: &[u8]) -> Result<bool, PluginError> {
        self.kv.borrow_mut().delete(self.tables[t as usize], key).map_err(host)
    }
}

impl Crypto for DirectEnv<'_, '_> {
    fn sign(&self, message: &[u8]) -> Result<Sig, PluginError> {
        self.crypto.sign(message)
    }
    fn verify(&self, key: &[u8; 32], message: &[u8], signature: &Sig) -> bool {
        self.crypto.verify(key, message, signature)
    }
    fn verify_batch(&self, items: &[SignedMessage<'_>]) -> Result<(), Option<usize>> {
        self.crypto.verify_batch(items)
    }
}

impl Node for DirectEnv<'_, '_> {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn emit(&self, b: &Emit<'_>) -> Result<(), PluginError> {
        self.emitted
            .borrow_mut()
            .push(Emitted { destination: b.destination.to_owned(), payload: b.payload.to_vec() });
        Ok(())
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}
