//! # Binary spray-and-wait routing
//!
//! After Spyropoulos, Psounis and Raghavendra, "Spray and Wait" (WDTN 2005):
//! a bundle created here starts with `L` copies (`copies` in the config).
//! A node holding `n > 1` copies that meets a neighbour without the bundle
//! hands it `⌊n/2⌋` and keeps `⌈n/2⌉` (*binary spray*); a node holding a
//! single copy keeps it and waits to meet the destination (*wait*). The
//! engine does the bookkeeping: it passes the node's count as
//! `bundle.copies`, and when the receiver acknowledges it subtracts the
//! copies [`decide`](RoutingPlugin::decide) handed over.
//!
//! Several neighbours in contact at once are served as if met one after the
//! other, best link first ([`binary_split`]): with 8 copies and three
//! neighbours they get 4, 2 and 1, and this node keeps 1. One `decide`
//! never hands out more than `n − 1` copies.
//!
//! Rules shared by every meshpay routing plugin:
//! * a neighbour that *is* the destination node gets the bundle, with all
//!   remaining copies, and no one else does (the engine drops the bundle
//!   once it is delivered, so spraying it further would only waste copies);
//! * a bundle to a group endpoint (`dtn://~authorities/quorum`) is flooded to
//!   every neighbour with unlimited copies, and one created here starts
//!   unlimited: every member needs a copy and routing does not know the
//!   members, so a copy budget sized for one destination would starve the
//!   group (a quorum needs votes from most authorities, not from one);
//! * a singleton bundle with unlimited copies (it came from a node that does
//!   not count them) is flooded too: there is no count to halve.
//!
//! Configuration: `{"copies": 8}` (`L`, at least 1; 1 is direct delivery:
//! the source waits for the destination).

pub mod destination;

use meshpay_abi::sdk::{Forwarder, Host, PluginError, RoutingHost, RoutingPlugin, parse_config};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, PeerInfo};
use serde::Deserialize;

use destination::Destination;

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.routing.spray-and-wait",
    name: "Binary spray-and-wait routing",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "L copies per bundle, halved at each contact; the last copy waits for the destination",
    routing: SprayAndWait,
}

/// `L` when the config does not say.
pub const DEFAULT_COPIES: u32 = 8;

/// The instance configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `L`: the copies a bundle created here starts with.
    #[serde(default = "default_copies")]
    pub copies: u32,
}

fn default_copies() -> u32 {
    DEFAULT_COPIES
}

impl Default for Config {
    fn default() -> Self {
        Config { copies: DEFAULT_COPIES }
    }
}

impl Config {
    /// Parses and checks the instance configuration (UTF-8 JSON); errors are
    /// `MP_ERR_INVALID` naming the key.
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        let config: Config = parse_config(json)?;
        if config.copies == 0 {
            return Err(PluginError::invalid(
                "config.copies: must be at least 1 (with 0 copies a bundle could never leave its source)",
            ));
        }
        if config.copies == MP_COPIES_UNLIMITED {
            return Err(PluginError::invalid(format!(
                "config.copies: {} is MP_COPIES_UNLIMITED; use epidemic routing for unlimited copies",
                MP_COPIES_UNLIMITED
            )));
        }
        Ok(config)
    }
}

/// Binary spray of `held` copies over `neighbours` neighbours met at once:
/// as if they were met one after the other, each gets half (rounded down)
/// of what this node still holds, until it holds one. Returns the copies for
/// the first `len()` neighbours; the rest get nothing.
///
/// The sum is at most `held − 1`: this node always keeps a copy (and
/// `held ≤ 1` gives nothing: wait for the destination).
pub fn binary_split(held: u32, neighbours: usize) -> Vec<u32> {
    let mut left = held;
    let mut out = Vec::new();
    while out.len() < neighbours && left > 1 {
        let give = left / 2;
        out.push(give);
        left -= give;
    }
    out
}

/// One spray-and-wait instance. Stateless apart from its config: the copy
/// counts live with the bundles, in the engine.
#[derive(Debug)]
pub struct SprayAndWait {
    config: Config,
    /// Reused peer ordering, so `decide` does not allocate per bundle.
    order: Vec<usize>,
}

impl SprayAndWait {
    pub fn new(config: Config) -> SprayAndWait {
        SprayAndWait { config, order: Vec::new() }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}

fn flood(peers: &[PeerInfo<'_>], out: &mut Forwarder<'_>) -> Result<(), PluginError> {
    (0..peers.len()).try_for_each(|i| out.forward(i, MP_COPIES_UNLIMITED))
}

impl RoutingPlugin for SprayAndWait {
    fn create(_host: Host, _routing: RoutingHost, config: &[u8]) -> Result<Self, PluginError> {
        Ok(SprayAndWait::new(Config::parse(config)?))
    }

    fn on_contact(&mut self, _peer: &PeerInfo<'_>, _kind: u32) -> Result<(), PluginError> {
        Ok(())
    }

    /// `L` for a bundle to one node; unlimited for a group bundle.
    fn initial_copies(&mut self, bundle: &BundleInfo<'_>) -> u32 {
        match Destination::of(bundle.destination) {
            Destination::Group => MP_COPIES_UNLIMITED,
            _ => self.config.copies,
        }
    }

    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
    ) -> Result<(), PluginError> {
        let destination = Destination::of(bundle.destination);
        match destination {
            Destination::Group => return flood(peers, out),
            Destination::Unroutable => return Ok(()),
            Destination::Node(_) => {}
        }
        if let Some(i) = peers.iter().position(|p| destination.is_node(p.node)) {
            return out.forward(i, bundle.copies.max(1));
        }
        if bundle.copies == MP_COPIES_UNLIMITED {
            return flood(peers, out);
        }
        // Best link first: known metrics ascending, unknown ones last, ties
        // in the engine's order (stable sort).
        self.order.clear();
        self.order.extend(0..peers.len());
        self.order.sort_by_key(|&i| peers[i].link_metric.unwrap_or(u32::MAX));
        for (k, copies) in binary_split(bundle.copies, peers.len()).into_iter().enumerate() {
            out.forward(self.order[k], copies)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_abi::MP_ERR_INVALID;
    use proptest::prelude::*;

    const DEST: &str = "dtn://dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/wallet";
    const DEST_NODE: &str = "dtn://dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/";

    fn bundle(destination: &str, copies: u32) -> BundleInfo<'_> {
        BundleInfo {
            id: b"id",
            source: "dtn://a/",
            destination,
            priority: 1,
            created_ms: 0,
            lifetime_ms: 60_000,
            age_ms: 0,
            payload_len: 10,
            hop_count: 0,
            copies,
            payload: &[],
        }
    }

    fn peer(node: &str, metric: Option<u32>) -> PeerInfo<'_> {
        PeerInfo { node, link_metric: metric, signal_dbm: None }
    }

    fn decide(s: &mut SprayAndWait, b: &BundleInfo<'_>, peers: &[PeerInfo<'_>]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        s.decide(b, peers, &mut Forwarder::collecting(&mut out, peers.len())).unwrap();
        out
    }

    fn spray(copies: u32) -> SprayAndWait {
        SprayAndWait::new(Config { copies })
    }

    #[test]
    fn one_neighbour_gets_half_rounded_down() {
        let mut s = spray(8);
        let b = [peer("dtn://b/", None)];
        for (n, given) in [(8, Some(4)), (7, Some(3)), (5, Some(2)), (3, Some(1)), (2, Some(1)), (1, None)] {
            let got = decide(&mut s, &bundle(DEST, n), &b);
            assert_eq!(got, given.map(|g| vec![(0, g)]).unwrap_or_default(), "n = {n}");
        }
    }

    #[test]
    fn neighbours_in_contact_together_split_best_link_first() {
        let mut s = spray(8);
        let peers = [
            peer("dtn://b/", None),
            peer("dtn://c/", Some(300)),
            peer("dtn://d/", Some(100)),
            peer("dtn://e/", Some(300)),
        ];
        // As if met one by one, best metric first: d, c, e (b has none).
        assert_eq!(decide(&mut s, &bundle(DEST, 8), &peers), [(2, 4), (1, 2), (3, 1)]);
        assert_eq!(decide(&mut s, &bundle(DEST, 16), &peers), [(2, 8), (1, 4), (3, 2), (0, 1)]);
        assert_eq!(decide(&mut s, &bundle(DEST, 3), &peers), [(2, 1), (1, 1)]);
        assert!(decide(&mut s, &bundle(DEST, 1), &peers).is_empty(), "one copy waits");
        assert!(decide(&mut s, &bundle(DEST, 0), &peers).is_empty());
    }

    #[test]
    fn the_destination_gets_every_copy_and_nobody_else_does() {
        let mut s = spray(8);
        let peers = [peer("dtn://b/", Some(1)), peer(DEST_NODE, Some(900)), peer("dtn://c/", None)];
        assert_eq!(decide(&mut s, &bundle(DEST, 8), &peers), [(1, 8)]);
        // Even the last copy, which otherwise waits.
        assert_eq!(decide(&mut s, &bundle(DEST, 1), &peers), [(1, 1)]);
        assert_eq!(decide(&mut s, &bundle(DEST, MP_COPIES_UNLIMITED), &peers), [(1, MP_COPIES_UNLIMITED)]);
        // The service part does not matter: the node is the destination.
        let other_service = DEST.replace("/wallet", "/pos");
        assert_eq!(decide(&mut s, &bundle(&other_service, 2), &peers), [(1, 2)]);
    }

    #[test]
    fn groups_are_flooded_with_unlimited_copies() {
        let mut s = spray(4);
        let g = bundle("dtn://~authorities/quorum", MP_COPIES_UNLIMITED);
        assert_eq!(s.initial_copies(&g), MP_COPIES_UNLIMITED);
        assert_eq!(s.initial_copies(&bundle(DEST, 0)), 4);
        let peers = [peer("dtn://b/", None), peer("dtn://c/", None), peer("dtn://~authorities/", None)];
        let all: Vec<_> = (0..3).map(|i| (i, MP_COPIES_UNLIMITED)).collect();
        assert_eq!(decide(&mut s, &g, &peers), all);
        // Even with a count (from a node that counted it): a group needs
        // every member reached.
        assert_eq!(decide(&mut s, &bundle("dtn://~authorities/quorum", 1), &peers), all);
        // A singleton without a count: nothing to halve, flood.
        assert_eq!(decide(&mut s, &bundle(DEST, MP_COPIES_UNLIMITED), &peers), all);
        // Nowhere to go.
        assert!(decide(&mut s, &bundle("dtn:none", 8), &peers).is_empty());
    }

    #[test]
    fn config_defaults_and_refusals() {
        assert_eq!(Config::parse(b"{}").unwrap().copies, 8);
        assert_eq!(Config::parse(br#"{"copies": 1}"#).unwrap().copies, 1);
        for (json, key) in [
            (r#"{"copies": 0}"#, "config.copies"),
            (r#"{"copies": 4294967295}"#, "config.copies"),
            (r#"{"copies": -1}"#, "config.copies"),
            (r#"{"copies": 2.5}"#, "config.copies"),
            (r#"{"copies": "8"}"#, "config.copies"),
            (r#"{"copies": 8, "beta": 0.9}"#, "beta"),
            ("[8]", "object"),
        ] {
            let e = Config::parse(json.as_bytes()).unwrap_err();
            assert_eq!(e.status, MP_ERR_INVALID, "{json}");
            assert!(e.message.contains(key), "{json}: {}", e.message);
        }
    }

    proptest! {
        #[test]
        fn a_split_never_hands_out_the_last_copy(held in 0u32..=u32::MAX - 1, n in 0usize..40) {
            let split = binary_split(held, n);
            let total: u64 = split.iter().map(|&c| u64::from(c)).sum();
            prop_assert!(split.len() <= n);
            prop_assert!(split.iter().all(|&c| c >= 1));
            prop_assert!(total < u64::from(held.max(1)), "gave {total} of {held}");
            // Each neighbour gets half of what was left before it.
            let mut left = held;
            for &c in &split {
                prop_assert_eq!(c, left / 2);
                left -= c;
            }
            // Only stops early because one copy is left.
            prop_assert!(split.len() == n || left <= 1);
        }

        #[test]
        fn decide_never_exceeds_the_count(
            held in 0u32..100_000,
            metrics in proptest::collection::vec(proptest::option::of(0u32..5), 0..12),
        ) {
            let names: Vec<String> = (0..metrics.len()).map(|i| format!("dtn://n{i}/")).collect();
            let peers: Vec<PeerInfo<'_>> =
                names.iter().zip(&metrics).map(|(n, &m)| peer(n, m)).collect();
            let got = decide(&mut spray(8), &bundle(DEST, held), &peers);
            let total: u64 = got.iter().map(|&(_, c)| u64::from(c)).sum();
            prop_assert!(total < u64::from(held.max(1)));
            let mut seen: Vec<usize> = got.iter().map(|&(i, _)| i).collect();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), got.len(), "a neighbour was chosen twice");
        }
    }
}
