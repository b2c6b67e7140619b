//! The plugin configuration and the committee.
//!
//! The router hands the plugin its `config` table as JSON, with the
//! committee file (TOML, read by the router through `config_files`) under
//! `committee`:
//!
//! ```json
//! {"role": "authority",
//!  "committee": {"authority": [{"key": "<hex>", "weight": 1}, ...],
//!                "genesis":   [{"account": "<hex>", "balance": 1000}, ...]}}
//! ```
//!
//! Parsing is strict (unknown keys are errors naming the key path), and every
//! key is checked ([`crate::keys::check_key`]). The committee's canonical
//! encoding and hash ([`Committee::hash`]) travel in every message, so nodes
//! configured with different committees or genesis refuse each other with a
//! clear reason instead of forking the ledger.

use std::collections::BTreeMap;

use meshpay_abi::sdk::{PluginError, parse_config};
use serde::Deserialize;

use crate::keys::{Hash, Key, hash, hex, parse_key};

/// Most authorities in a committee (bounds certificate sizes).
pub const MAX_AUTHORITIES: usize = 256;
/// Most genesis accounts.
pub const MAX_GENESIS: usize = 1_000_000;

/// What this node does in the payment system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A committee member: validates and signs orders, applies certificates,
    /// keeps the authoritative ledger, sends heartbeats. Also serves wallets
    /// like a client.
    Authority,
    /// Serves wallets: submits their orders, gathers votes, forms
    /// certificates, holds receipts for accounts whose home node it is.
    Client,
    /// Carries bundles only: no ledger, no subscriptions; answers `status`.
    Relay,
    /// A client that also consumes withdrawal certificates naming it and
    /// settles them on an external ledger.
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Authority => "authority",
            Role::Client => "client",
            Role::Relay => "relay",
            Role::Gateway => "gateway",
        }
    }
}

/// `config` as the router passes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    role: Role,
    committee: RawCommittee,
    #[serde(default = "defaults::tick_ms")]
    tick_ms: u64,
    #[serde(default = "defaults::heartbeat_ms")]
    heartbeat_ms: u64,
    #[serde(default = "defaults::heartbeat_window_ms")]
    heartbeat_window_ms: u64,
    #[serde(default = "defaults::resend_ms")]
    resend_ms: u64,
    #[serde(default = "defaults::order_timeout_ms")]
    order_timeout_ms: u64,
    #[serde(default = "defaults::bundle_lifetime_ms")]
    bundle_lifetime_ms: u64,
    #[serde(default = "defaults::min_withdrawal_expiry_ms")]
    min_withdrawal_expiry_ms: u64,
    #[serde(default = "defaults::max_withdrawal_expiry_ms")]
    max_withdrawal_expiry_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommittee {
    authority: Vec<RawAuthority>,
    #[serde(default)]
    genesis: Vec<RawGenesis>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    key: String,
    #[serde(default = "defaults::weight")]
    weight: u64,
    /// A label for logs and status; not part of the committee hash.
    #[serde(default)]
    name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    account: String,
    balance: u64,
}

mod defaults {
    pub fn tick_ms() -> u64 {
        1_000
    }
    pub fn heartbeat_ms() -> u64 {
        5_000
    }
    pub fn heartbeat_window_ms() -> u64 {
        15_000
    }
    pub fn resend_ms() -> u64 {
        10_000
    }
    pub fn order_timeout_ms() -> u64 {
        600_000
    }
    pub fn bundle_lifetime_ms() -> u64 {
        86_400_000
    }
    pub fn min_withdrawal_expiry_ms() -> u64 {
        60_000
    }
    pub fn max_withdrawal_expiry_ms() -> u64 {
        30 * 86_400_000
    }
    pub fn weight() -> u64 {
        1
    }
}

/// The parsed, checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub role: Role,
    pub committee: Committee,
    /// Period of the housekeeping timer (heartbeats, resends, lock expiry).
    pub tick_ms: u64,
    /// Authorities send a heartbeat to the others this often.
    pub heartbeat_ms: u64,
    /// An authority counts as reachable if heard within this window.
    pub heartbeat_window_ms: u64,
    /// A client re-sends an uncertified order (or a gateway its settlement
    /// claim) this often.
    pub resend_ms: u64,
    /// A client stops re-sending an order this long after submission.
    pub order_timeout_ms: u64,
    /// Lifetime of the bundles the plugin emits (heartbeats: the window).
    pub bundle_lifetime_ms: u64,
    /// Bounds on a withdrawal lock's duration (`expiry_ms` of the order).
    pub min_withdrawal_expiry_ms: u64,
    pub max_withdrawal_expiry_ms: u64,
}

impl Config {
    /// Parses and checks the plugin config; errors name the key.
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        let raw: RawConfig = parse_config(json)?;
        let committee = Committee::from_raw(&raw.committee).map_err(PluginError::invalid)?;
        let positive = [
            ("tick_ms", raw.tick_ms),
            ("heartbeat_ms", raw.heartbeat_ms),
            ("heartbeat_window_ms", raw.heartbeat_window_ms),
            ("resend_ms", raw.resend_ms),
            ("order_timeout_ms", raw.order_timeout_ms),
            ("bundle_lifetime_ms", raw.bundle_lifetime_ms),
            ("min_withdrawal_expiry_ms", raw.min_withdrawal_expiry_ms),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(PluginError::invalid(format!("config.{name}: must be greater than 0")));
            }
        }
        if raw.heartbeat_window_ms < raw.heartbeat_ms {
            return Err(PluginError::invalid(
                "config.heartbeat_window_ms: must be at least heartbeat_ms (or no authority ever counts as reachable)",
            ));
        }
        if raw.max_withdrawal_expiry_ms < raw.min_withdrawal_expiry_ms {
            return Err(PluginError::invalid(
                "config.max_withdrawal_expiry_ms: must be at least min_withdrawal_expiry_ms",
            ));
        }
        Ok(Config {
            role: raw.role,
            committee,
            tick_ms: raw.tick_ms,
            heartbeat_ms: raw.heartbeat_ms,
            heartbeat_window_ms: raw.heartbeat_window_ms,
            resend_ms: raw.resend_ms,
            order_timeout_ms: raw.order_timeout_ms,
            bundle_lifetime_ms: raw.bundle_lifetime_ms,
            min_withdrawal_expiry_ms: raw.min_withdrawal_expiry_ms,
            max_withdrawal_expiry_ms: raw.max_withdrawal_expiry_ms,
        })
    }
}

/// The committee (authorities and weights) and the genesis balances: what
/// every node of one payment system must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committee {
    /// Authority key → weight, in key order (the canonical order).
    authorities: BTreeMap<Key, u64>,
    names: BTreeMap<Key, String>,
    /// Account → balance, in key order.
    genesis: BTreeMap<Key, u64>,
    total_weight: u64,
    genesis_total: u64,
    hash: Hash,
}

const COMMITTEE_DOMAIN: &[u8] = b"meshpay.quorum.committee.v1\0";

impl Committee {
    /// Builds a committee from `(key, weight)` and `(account, balance)` lists,
    /// checking what [`Config::parse`] checks.
    pub fn new(authorities: &[(Key, u64)], genesis: &[(Key, u64)]) -> Result<Committee, String> {
        let raw = RawCommittee {
            authority: authorities
                .iter()
                .map(|(k, w)| RawAuthority { key: hex(k), weight: *w, name: None })
                .collect(),
            genesis: genesis.iter().map(|(a, b)| RawGenesis { account: hex(a), balance: *b }).collect(),
        };
        Committee::from_raw(&raw)
    }

    fn from_raw(raw: &RawCommittee) -> Result<Committee, String> {
        if raw.authority.is_empty() {
            return Err("config.committee.authority: the committee needs at least one authority".into());
        }
        if raw.authority.len() > MAX_AUTHORITIES {
            return Err(format!("config.committee.authority: at most {MAX_AUTHORITIES} authorities"));
        }
        if raw.genesis.len() > MAX_GENESIS {
            return Err(format!("config.committee.genesis: at most {MAX_GENESIS} accounts"));
        }
        let mut authorities = BTreeMap::new();
        let mut names = BTreeMap::new();
        let mut total_weight: u64 = 0;
        for (i, a) in raw.authority.iter().enumerate() {
            let field = format!("config.committee.authority[{i}].key");
            let key = parse_key(&field, &a.key)?;
            if a.weight == 0 {
                return Err(format!("config.committee.authority[{i}].weight: must be at least 1"));
            }
            if authorities.insert(key, a.weight).is_some() {
                return Err(format!("{field}: authority {} is listed twice", hex(&key)));
            }
            if let Some(n) = &a.name {
                names.insert(key, n.clone());
            }
            total_weight = total_weight
                .checked_add(a.weight)
                .ok_or_else(|| format!("config.committee.authority[{i}].weight: total weight overflows"))?;
        }
        let mut genesis = BTreeMap::new();
        let mut genesis_total: u64 = 0;
        for (i, g) in raw.genesis.iter().enumerate() {
            let field = format!("config.committee.genesis[{i}].account");
            let account = parse_key(&field, &g.account)?;
            if genesis.insert(account, g.balance).is_some() {
                return Err(format!("{field}: account {} is listed twice", hex(&account)));
            }
            genesis_total = genesis_total.checked_add(g.balance).ok_or_else(|| {
                format!("config.committee.genesis[{i}].balance: the total supply overflows a u64")
            })?;
        }
        let mut c = Committee { authorities, names, genesis, total_weight, genesis_total, hash: [0; 32] };
        c.hash = hash(&[&c.canonical()]);
        Ok(c)
    }

    /// The canonical encoding the hash is taken over: a domain tag, the
    /// authorities in key order (key, weight as u64 big-endian), then the
    /// genesis accounts in key order (account, balance). Names are labels
    /// only and are left out.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            COMMITTEE_DOMAIN.len() + 8 + 40 * (self.authorities.len() + self.genesis.len()),
        );
        out.extend_from_slice(COMMITTEE_DOMAIN);
        out.extend_from_slice(&(self.authorities.len() as u32).to_be_bytes());
        for (k, w) in &self.authorities {
            out.extend_from_slice(k);
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&(self.genesis.len() as u32).to_be_bytes());
        for (a, b) in &self.genesis {
            out.extend_from_slice(a);
            out.extend_from_slice(&b.to_be_bytes());
        }
        out
    }

    /// BLAKE3 of [`Committee::canonical`].
    pub fn hash(&self) -> &Hash {
        &self.hash
    }

    /// The weight of `key`, or `None` if it is not a member.
    pub fn weight(&self, key: &Key) -> Option<u64> {
        self.authorities.get(key).copied()
    }

    pub fn name(&self, key: &Key) -> Option<&str> {
        self.names.get(key).map(String::as_str)
    }

    pub fn authorities(&self) -> impl Iterator<Item = (&Key, u64)> {
        self.authorities.iter().map(|(k, w)| (k, *w))
    }

    pub fn len(&self) -> usize {
        self.authorities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.authorities.is_empty()
    }

    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// Whether `weight` is more than two thirds of the total (`3w > 2T`,
    /// exactly, in u128).
    pub fn is_quorum(&self, weight: u64) -> bool {
        3 * u128::from(weight) > 2 * u128::from(self.total_weight)
    }

    /// The smallest quorum weight.
    pub fn quorum_weight(&self) -> u64 {
        // floor(2T/3) + 1 is the smallest w with 3w > 2T.
        (2 * u128::from(self.total_weight) / 3 + 1) as u64
    }

    /// Whether refusals of `weight` make a quorum impossible: the rest
    /// cannot reach one.
    pub fn is_blocking(&self, weight: u64) -> bool {
        !self.is_quorum(self.total_weight.saturating_sub(weight))
    }

    pub fn genesis(&self) -> impl Iterator<Item = (&Key, u64)> {
        self.genesis.iter().map(|(k, b)| (k, *b))
    }

    /// The total supply: the sum of genesis balances (checked to fit a u64).
    pub fn genesis_total(&self) -> u64 {
        self.genesis_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> String {
        hex(&ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes())
    }

    fn config(committee: &str) -> String {
        format!(r#"{{"role": "authority", "committee": {committee}}}"#)
    }

    #[test]
    fn a_committee_parses_and_its_hash_ignores_order_and_names() {
        let a = format!(
            r#"{{"authority": [{{"key": "{}", "weight": 2, "name": "a"}}, {{"key": "{}"}}],
                "genesis": [{{"account": "{}", "balance": 10}}]}}"#,
            key(1),
            key(2),
            key(3)
        );
        let b = format!(
            r#"{{"authority": [{{"key": "{}"}}, {{"key": "{}", "weight": 2}}],
                "genesis": [{{"account": "{}", "balance": 10}}]}}"#,
            key(2),
            key(1),
            key(3)
        );
        let ca = Config::parse(config(&a).as_bytes()).unwrap();
        let cb = Config::parse(config(&b).as_bytes()).unwrap();
        assert_eq!(ca.committee.hash(), cb.committee.hash());
        assert_eq!(ca.committee.total_weight(), 3);
        assert_eq!(ca.committee.quorum_weight(), 3);
        assert_eq!(ca.committee.genesis_total(), 10);
        let c = format!(
            r#"{{"authority": [{{"key": "{}"}}, {{"key": "{}", "weight": 2}}],
                "genesis": [{{"account": "{}", "balance": 11}}]}}"#,
            key(2),
            key(1),
            key(3)
        );
        let cc = Config::parse(config(&c).as_bytes()).unwrap();
        assert_ne!(ca.committee.hash(), cc.committee.hash(), "genesis is part of the hash");
    }

    #[test]
    fn quorum_is_more_than_two_thirds() {
        let keys: Vec<Key> = (1..=4)
            .map(|s| ed25519_dalek::SigningKey::from_bytes(&[s; 32]).verifying_key().to_bytes())
            .collect();
        let c = Committee::new(&keys.iter().map(|k| (*k, 1)).collect::<Vec<_>>(), &[]).unwrap();
        assert_eq!(c.quorum_weight(), 3);
        assert!(!c.is_quorum(2) && c.is_quorum(3));
        assert!(c.is_blocking(2) && !c.is_blocking(1));
        let c3 = Committee::new(&keys[..3].iter().map(|k| (*k, 1)).collect::<Vec<_>>(), &[]).unwrap();
        assert_eq!(c3.quorum_weight(), 3);
    }

    #[test]
    fn bad_committees_are_refused_naming_the_key() {
        let cases = [
            (r#"{"authority": []}"#.to_string(), "at least one authority"),
            (format!(r#"{{"authority": [{{"key": "{}", "weight": 0}}]}}"#, key(1)), "authority[0].weight"),
            (format!(r#"{{"authority": [{{"key": "{}"}}, {{"key": "{}"}}]}}"#, key(1), key(1)), "twice"),
            (format!(r#"{{"authority": [{{"key": "{}"}}]}}"#, hex(&[0; 32])), "weak"),
            (r#"{"authority": [{"key": "abc"}]}"#.to_string(), "authority[0].key"),
            (
                format!(
                    r#"{{"authority": [{{"key": "{}"}}], "genesis": [{{"account": "{}", "balance": 18446744073709551615}},
                       {{"account": "{}", "balance": 1}}]}}"#,
                    key(1),
                    key(2),
                    key(3)
                ),
                "overflows",
            ),
            (format!(r#"{{"authority": [{{"key": "{}", "wieght": 1}}]}}"#, key(1)), "wieght"),
        ];
        for (committee, want) in cases {
            let e = Config::parse(config(&committee).as_bytes()).unwrap_err();
            assert!(e.message.contains(want), "{committee}: {}", e.message);
        }
        let e = Config::parse(br#"{"role": "miner", "committee": {"authority": []}}"#).unwrap_err();
        assert!(e.message.contains("config.role"), "{}", e.message);
    }
}
