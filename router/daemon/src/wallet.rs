//! The wallet side of payments: a wallet key in a file (mode 0600) that
//! never leaves this process, orders signed here, and the local node's
//! control API for everything else (`consensus` method, routed to the
//! consensus plugin).
//!
//! The order's signing message is built here from the plugin's own wire
//! code (`meshpay_consensus_quorum::wire`), not asked of the node, so the
//! wallet signs exactly what it shows the user.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meshpay_consensus_quorum::keys::{Address, Key, check_key, hex, parse_hex};
use meshpay_consensus_quorum::wire::{OrderBody, OrderKind};
use serde_json::{Value, json};

use crate::control::Client;
use crate::identity::Identity;
use crate::state_dir::{KEY_FILE, StateDir};

/// The wallet key's file name in the state directory (default location).
pub const WALLET_FILE: &str = "wallet.key";

/// A wallet: its signing key and the node it gets its receipts at.
pub struct Wallet {
    key: Identity,
    path: PathBuf,
}

impl Wallet {
    /// The wallet file: `explicit`, else `<state-dir>/wallet.key`.
    pub fn path(state_dir: &StateDir, explicit: Option<&Path>) -> PathBuf {
        explicit.map(Path::to_path_buf).unwrap_or_else(|| state_dir.join(WALLET_FILE))
    }

    /// Creates a new wallet key; refuses to overwrite one.
    pub fn create(path: &Path) -> anyhow::Result<Wallet> {
        if path.exists() {
            bail!("{} already exists: a wallet is never overwritten (its key is the money)", path.display());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let key = Identity::load_or_create(path)?;
        Self::checked(key, path)
    }

    /// Loads the wallet key (mode must be 0600).
    pub fn load(path: &Path) -> anyhow::Result<Wallet> {
        if !path.exists() {
            bail!("no wallet at {}: create one with `meshpay wallet new`", path.display());
        }
        Self::checked(Identity::load(path)?, path)
    }

    fn checked(key: Identity, path: &Path) -> anyhow::Result<Wallet> {
        // A weak (small-order) key would make batch verification accept
        // forgeries; a generated key never is one, a tampered file might.
        check_key(&key.public_key()).map_err(|e| anyhow::anyhow!("wallet {}: {e}", path.display()))?;
        Ok(Wallet { key, path: path.to_path_buf() })
    }

    pub fn account(&self) -> Key {
        self.key.public_key()
    }

    pub fn file(&self) -> &Path {
        &self.path
    }

    /// `<account hex>@<home node hex>`: payments to it produce a receipt at
    /// the home node (the node in `state_dir`).
    pub fn address(&self, state_dir: &StateDir) -> anyhow::Result<String> {
        let node = node_key(state_dir)?;
        Ok(format!("{}@{}", hex(&self.account()), hex(&node)))
    }
}

/// The public key of the node in `state_dir`.
pub fn node_key(state_dir: &StateDir) -> anyhow::Result<Key> {
    let path = state_dir.join(KEY_FILE);
    if !path.exists() {
        bail!(
            "no node identity in {} yet: start the node once (`meshpay run`) or create it with `meshpay id --create`",
            state_dir.path().display()
        );
    }
    Ok(Identity::load(&path)?.public_key())
}

/// Calls a method of the node's consensus plugin.
pub fn consensus_call(client: &mut Client, method: &str, body: Value) -> anyhow::Result<Value> {
    client.call("consensus", json!({"method": method, "body": body}))
}

/// What `pay` ended with.
pub struct Payment {
    pub order_hash: String,
    pub sequence: u64,
    pub status: Value,
    pub elapsed: Duration,
}

/// Signs a transfer of `amount` to `to` with the next sequence number,
/// submits it to the local node and waits up to `timeout` for its
/// certificate. Fails with the plugin's reason if refused.
pub fn pay(
    client: &mut Client,
    wallet: &Wallet,
    to: &str,
    amount: u64,
    timeout: Duration,
) -> anyhow::Result<Payment> {
    if amount == 0 {
        bail!("--amount must be at least 1 (amounts are integers in the smallest unit)");
    }
    let recipient = Address::parse("--to", to).map_err(|e| anyhow::anyhow!("{e}"))?;
    let status = consensus_call(client, "status", json!({}))?;
    let committee_hex =
        status["committee_hash"].as_str().context("the node's consensus plugin gave no committee hash")?;
    let committee = parse_hex::<32>("committee_hash", committee_hex).map_err(|e| anyhow::anyhow!("{e}"))?;

    let account = hex(&wallet.account());
    let seq = consensus_call(client, "next_sequence", json!({"account": account}))?;
    let mut sequence = seq["next_sequence"].as_u64().context("next_sequence: no number in the reply")?;
    // An order still in flight holds its slot: take the one after it.
    for p in seq["pending"].as_array().into_iter().flatten() {
        if let Some(s) = p["sequence"].as_u64() {
            sequence = sequence.max(s + 1);
        }
    }
    let body = OrderBody {
        sender: wallet.account(),
        sequence,
        amount,
        kind: OrderKind::Transfer { recipient: recipient.account },
    };
    let signature = wallet.key.sign(&body.signing_message(&committee));
    let order = json!({
        "kind": "transfer",
        "sender": account,
        "recipient": to,
        "amount": amount,
        "sequence": sequence,
        "committee": committee_hex,
        "signature": hex(&signature),
    });
    let start = Instant::now();
    let submitted = consensus_call(client, "submit_transfer", json!({"order": order}))?;
    let order_hash = submitted["order_hash"].as_str().context("submit_transfer: no order hash")?.to_owned();
    let deadline = start + timeout;
    loop {
        let st = consensus_call(client, "transfer_status", json!({"order_hash": order_hash}))?;
        match st["state"].as_str() {
            Some("certified") => {
                return Ok(Payment { order_hash, sequence, status: st, elapsed: start.elapsed() });
            }
            Some("refused") => bail!(
                "payment refused by the committee: {} (order {order_hash}, sequence {sequence}; refusals weigh {} of {})",
                st["reason"].as_str().unwrap_or("no reason given"),
                st["refused_weight"],
                status["total_weight"]
            ),
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "no certificate after {} s: votes weigh {} of the {} needed (last refusal: {}). The order \
                 (hash {order_hash}, sequence {sequence}) stays submitted and the node keeps re-sending it; \
                 ask again with `meshpay consensus transfer_status '{{\"order_hash\": \"{order_hash}\"}}'`",
                timeout.as_secs(),
                st["votes_weight"],
                st["quorum_weight"],
                st["last_refusal"].as_str().unwrap_or("none")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wallet_is_created_0600_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w/wallet.key");
        let w = Wallet::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = Wallet::create(&path).err().unwrap().to_string();
        assert!(e.contains("never overwritten"), "{e}");
        assert_eq!(Wallet::load(&path).unwrap().account(), w.account());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!("{:#}", Wallet::load(&path).err().unwrap());
        assert!(e.contains("0600"), "{e}");
    }
}
