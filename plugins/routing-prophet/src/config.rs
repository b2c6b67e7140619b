//! The instance configuration: every PRoPHET parameter, with RFC 6693's
//! recommended values as defaults.
//!
//! ```json
//! {"p_encounter_max": 0.7, "p_encounter_first": 0.5, "p_first_threshold": 0.1,
//!  "delta": 0.01, "beta": 0.9, "gamma": 0.999,
//!  "time_unit_ms": 30000, "i_typ_ms": 300000, "exchange_interval_ms": 60000,
//!  "max_entries": 4096, "max_message_bytes": 1200}
//! ```
//!
//! Every key is optional; unknown keys, wrong types and values out of range
//! are refused with `MP_ERR_INVALID` and a message naming the key.

use meshpay_abi::sdk::{PluginError, parse_config};
use serde::Deserialize;

use crate::wire;

/// A parsed and checked configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Most P_encounter can be (Eq. 1 of RFC 6693 §2.1.2); reached when the
    /// previous encounter is at least `i_typ_ms` ago.
    pub p_encounter_max: f64,
    /// P(A,B) on the first encounter with B, or when P(A,B) had aged below
    /// `p_first_threshold`.
    pub p_encounter_first: f64,
    /// Predictabilities below this are dropped from the table (and a
    /// transitive value below it is not added).
    pub p_first_threshold: f64,
    /// Eq. 1 keeps P(A,B) ≤ 1 − delta.
    pub delta: f64,
    /// Transitivity scaling (Eq. 3): how much a path through B counts.
    pub beta: f64,
    /// Ageing per time unit (Eq. 2: P = P_old × gamma^K).
    pub gamma: f64,
    /// The time unit of K in Eq. 2. RFC 6693 leaves it to the deployment.
    pub time_unit_ms: u64,
    /// I_typ: an encounter sooner than this after the previous one counts
    /// proportionally less (P_encounter = P_encounter_max × interval /
    /// I_typ), so a flapping link or the periodic exchange of a long
    /// contact does not inflate P. 0 turns the scaling off.
    pub i_typ_ms: u64,
    /// While a neighbour stays in contact, re-count the encounter and resend
    /// the predictabilities this often. 0: only when the contact starts.
    pub exchange_interval_ms: u64,
    /// Most destinations in the table (and in what one neighbour may tell
    /// us); the smallest predictabilities are dropped first.
    pub max_entries: u32,
    /// Largest control message sent; a table that does not fit goes out in
    /// several messages, highest predictabilities first.
    pub max_message_bytes: u32,
}

/// RFC 6693's recommended parameter values (§3.3).
pub const P_ENCOUNTER_MAX: f64 = 0.7;
pub const P_ENCOUNTER_FIRST: f64 = 0.5;
pub const P_FIRST_THRESHOLD: f64 = 0.1;
pub const DELTA: f64 = 0.01;
pub const BETA: f64 = 0.9;
pub const GAMMA: f64 = 0.999;

/// Our choices where the RFC names no value.
pub const TIME_UNIT_MS: u64 = 30_000;
pub const I_TYP_MS: u64 = 300_000;
pub const EXCHANGE_INTERVAL_MS: u64 = 60_000;
pub const MAX_ENTRIES: u32 = 4096;
pub const MAX_MESSAGE_BYTES: u32 = 1200;

impl Default for Config {
    fn default() -> Self {
        Config {
            p_encounter_max: P_ENCOUNTER_MAX,
            p_encounter_first: P_ENCOUNTER_FIRST,
            p_first_threshold: P_FIRST_THRESHOLD,
            delta: DELTA,
            beta: BETA,
            gamma: GAMMA,
            time_unit_ms: TIME_UNIT_MS,
            i_typ_ms: I_TYP_MS,
            exchange_interval_ms: EXCHANGE_INTERVAL_MS,
            max_entries: MAX_ENTRIES,
            max_message_bytes: MAX_MESSAGE_BYTES,
        }
    }
}

fn invalid(key: &str, rule: impl core::fmt::Display) -> PluginError {
    PluginError::invalid(format!("config.{key}: {rule}"))
}

/// `lo < v` or `lo <= v` ... `v <= hi`: a NaN fails every comparison, so it
/// is refused too.
fn in_range(key: &str, v: f64, lo: f64, lo_open: bool, hi: f64, hi_open: bool) -> Result<(), PluginError> {
    let above = if lo_open { v > lo } else { v >= lo };
    let below = if hi_open { v < hi } else { v <= hi };
    if above && below {
        return Ok(());
    }
    let (l, h) = (if lo_open { "(" } else { "[" }, if hi_open { ")" } else { "]" });
    Err(invalid(key, format!("{v} is outside {l}{lo}, {hi}{h}")))
}

impl Config {
    /// Parses and checks `json`.
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        let config: Config = parse_config(json)?;
        config.check()?;
        Ok(config)
    }

    /// The rules serde cannot express.
    pub fn check(&self) -> Result<(), PluginError> {
        in_range("p_encounter_max", self.p_encounter_max, 0.0, true, 1.0, false)?;
        in_range("p_encounter_first", self.p_encounter_first, 0.0, true, 1.0, false)?;
        in_range("p_first_threshold", self.p_first_threshold, 0.0, false, 1.0, true)?;
        in_range("delta", self.delta, 0.0, false, 1.0, true)?;
        in_range("beta", self.beta, 0.0, false, 1.0, false)?;
        in_range("gamma", self.gamma, 0.0, true, 1.0, false)?;
        if self.p_encounter_first < self.p_first_threshold {
            return Err(invalid(
                "p_encounter_first",
                format!(
                    "{} is below config.p_first_threshold ({}): every new entry would be dropped at once",
                    self.p_encounter_first, self.p_first_threshold
                ),
            ));
        }
        if self.p_encounter_first > 1.0 - self.delta {
            return Err(invalid(
                "p_encounter_first",
                format!(
                    "{} exceeds 1 - config.delta ({}), the bound of Eq. 1",
                    self.p_encounter_first,
                    1.0 - self.delta
                ),
            ));
        }
        if self.time_unit_ms == 0 {
            return Err(invalid("time_unit_ms", "must be at least 1"));
        }
        if !(1..=wire::MAX_ENTRIES as u32 * 16).contains(&self.max_entries) {
            return Err(invalid(
                "max_entries",
                format!("{} is outside 1..={}", self.max_entries, wire::MAX_ENTRIES * 16),
            ));
        }
        let (lo, hi) = (wire::message_len(1), wire::message_len(wire::MAX_ENTRIES));
        if !(lo..=hi).contains(&(self.max_message_bytes as usize)) {
            return Err(invalid(
                "max_message_bytes",
                format!(
                    "{} is outside {lo}..={hi} (one entry to {} entries)",
                    self.max_message_bytes,
                    wire::MAX_ENTRIES
                ),
            ));
        }
        Ok(())
    }

    /// Entries per control message.
    pub fn entries_per_message(&self) -> usize {
        ((self.max_message_bytes as usize - wire::HEADER_LEN) / wire::ENTRY_LEN).clamp(1, wire::MAX_ENTRIES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_abi::MP_ERR_INVALID;

    #[test]
    fn defaults_are_the_rfc_values() {
        let c = Config::parse(b"{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(
            (c.p_encounter_max, c.p_encounter_first, c.p_first_threshold, c.delta, c.beta, c.gamma),
            (0.7, 0.5, 0.1, 0.01, 0.9, 0.999)
        );
        assert_eq!(c.entries_per_message(), (1200 - 5) / 34);
        let c = Config::parse(br#"{"beta": 0.5, "gamma": 1, "time_unit_ms": 1000, "i_typ_ms": 0}"#).unwrap();
        assert_eq!((c.beta, c.gamma, c.time_unit_ms, c.i_typ_ms), (0.5, 1.0, 1000, 0));
    }

    #[test]
    fn every_refusal_names_the_key() {
        for (json, key) in [
            (r#"{"betta": 0.9}"#, "betta"),
            (r#"{"beta": 1.5}"#, "config.beta"),
            (r#"{"beta": "high"}"#, "config.beta"),
            (r#"{"gamma": 0}"#, "config.gamma"),
            (r#"{"gamma": 1.001}"#, "config.gamma"),
            (r#"{"delta": 1}"#, "config.delta"),
            (r#"{"delta": -0.1}"#, "config.delta"),
            (r#"{"p_encounter_max": 0}"#, "config.p_encounter_max"),
            (r#"{"p_encounter_first": 0.05}"#, "config.p_encounter_first"),
            (r#"{"p_encounter_first": 0.995}"#, "config.p_encounter_first"),
            (r#"{"p_first_threshold": 1}"#, "config.p_first_threshold"),
            (r#"{"time_unit_ms": 0}"#, "config.time_unit_ms"),
            (r#"{"time_unit_ms": -5}"#, "config.time_unit_ms"),
            (r#"{"time_unit_ms": 1.5}"#, "config.time_unit_ms"),
            (r#"{"max_entries": 0}"#, "config.max_entries"),
            (r#"{"max_message_bytes": 20}"#, "config.max_message_bytes"),
            (r#"{"max_message_bytes": 10000000}"#, "config.max_message_bytes"),
            (r#"{"exchange_interval_ms": null}"#, "config.exchange_interval_ms"),
            ("[]", "object"),
        ] {
            let e = Config::parse(json.as_bytes()).expect_err(json);
            assert_eq!(e.status, MP_ERR_INVALID, "{json}");
            assert!(e.message.contains(key), "{json}: {}", e.message);
        }
    }
}
