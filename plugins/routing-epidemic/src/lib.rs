//! # Epidemic routing
//!
//! Every stored bundle goes to every neighbour that lacks it (Vahdat and
//! Becker, 2000). The engine has already exchanged summary vectors with each
//! neighbour and removed from `decide`'s `peers` those that hold the bundle
//! and the one it came from, so "every neighbour that lacks it" is simply
//! every neighbour the engine offers.
//!
//! Copies are not counted: each forwarded copy is `MP_COPIES_UNLIMITED`, so
//! the receiver floods it in turn, and [`RoutingPlugin::initial_copies`]
//! keeps its default (`MP_COPIES_UNLIMITED`). A bundle that arrives with a
//! count (from a spray-and-wait neighbour) is flooded all the same.
//!
//! The rules every meshpay routing plugin shares hold trivially here: a
//! neighbour that is the destination node gets the bundle, and bundles to
//! group endpoints are flooded.
//!
//! Configuration: `{}` (no keys; unknown keys are refused).

pub mod destination;

use meshpay_abi::sdk::{Forwarder, Host, PluginError, RoutingHost, RoutingPlugin, parse_config};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, PeerInfo};
use serde::Deserialize;

meshpay_abi::meshpay_plugin! {
    /// The plugin descriptor; exported as `meshpay_plugin_entry` by `so/`.
    pub fn plugin_entry;
    id: "org.meshpay.routing.epidemic",
    name: "Epidemic routing",
    version: env!("CARGO_PKG_VERSION"),
    vendor: "meshpay",
    description: "Every bundle to every neighbour that lacks it",
    routing: Epidemic,
}

/// The configuration: an empty object. Strict, so that a key meant for
/// another plugin (`{"copies": 8}` left over from spray-and-wait) is an
/// error rather than silently ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Config {
    /// Parses the instance configuration (UTF-8 JSON); `MP_ERR_INVALID`
    /// naming the key otherwise.
    pub fn parse(json: &[u8]) -> Result<Config, PluginError> {
        parse_config(json)
    }
}

/// One epidemic routing instance. It has no state: every decision depends
/// only on the neighbours the engine offers.
#[derive(Debug, Default)]
pub struct Epidemic {}

impl Epidemic {
    pub fn new(_config: Config) -> Epidemic {
        Epidemic {}
    }
}

impl RoutingPlugin for Epidemic {
    fn create(_host: Host, _routing: RoutingHost, config: &[u8]) -> Result<Self, PluginError> {
        Ok(Epidemic::new(Config::parse(config)?))
    }

    fn on_contact(&mut self, _peer: &PeerInfo<'_>, _kind: u32) -> Result<(), PluginError> {
        Ok(())
    }

    fn decide(
        &mut self,
        _bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
    ) -> Result<(), PluginError> {
        for i in 0..peers.len() {
            out.forward(i, MP_COPIES_UNLIMITED)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshpay_abi::{MP_ERR_INVALID, MP_LINK_DOWN, MP_LINK_UP};

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

    fn peer(node: &str) -> PeerInfo<'_> {
        PeerInfo { node, link_metric: None, signal_dbm: None }
    }

    fn decide(e: &mut Epidemic, b: &BundleInfo<'_>, peers: &[PeerInfo<'_>]) -> Vec<(usize, u32)> {
        let mut out = Vec::new();
        e.decide(b, peers, &mut Forwarder::collecting(&mut out, peers.len())).unwrap();
        out
    }

    #[test]
    fn every_offered_neighbour_gets_an_unlimited_copy() {
        let mut e = Epidemic::new(Config::default());
        let peers = [peer("dtn://b/"), peer("dtn://c/"), peer("dtn://d/")];
        for dest in ["dtn://z/wallet", "dtn://c/wallet", "dtn://~authorities/quorum", "dtn:none"] {
            let got = decide(&mut e, &bundle(dest, MP_COPIES_UNLIMITED), &peers);
            assert_eq!(got, [(0, MP_COPIES_UNLIMITED), (1, MP_COPIES_UNLIMITED), (2, MP_COPIES_UNLIMITED)]);
        }
        // A counted bundle from a spray-and-wait neighbour is flooded too.
        let got = decide(&mut e, &bundle("dtn://z/x", 3), &peers);
        assert_eq!(got.len(), 3);
        assert!(decide(&mut e, &bundle("dtn://z/x", 3), &[]).is_empty());
    }

    #[test]
    fn contacts_change_nothing_and_copies_are_unlimited() {
        let mut e = Epidemic::new(Config::default());
        e.on_contact(&peer("dtn://b/"), MP_LINK_UP).unwrap();
        e.on_contact(&peer("dtn://b/"), MP_LINK_DOWN).unwrap();
        assert_eq!(e.initial_copies(&bundle("dtn://z/x", 0)), MP_COPIES_UNLIMITED);
        assert_eq!(decide(&mut e, &bundle("dtn://b/x", 0), &[peer("dtn://b/")]), [(0, MP_COPIES_UNLIMITED)]);
    }

    #[test]
    fn config_is_an_empty_object() {
        assert_eq!(Config::parse(b"{}").unwrap(), Config {});
        assert_eq!(Config::parse(b" { } ").unwrap(), Config {});
        let e = Config::parse(br#"{"copies": 8}"#).unwrap_err();
        assert_eq!(e.status, MP_ERR_INVALID);
        assert!(e.message.contains("copies"), "{}", e.message);
        for bad in [&b"[]"[..], b"", b"null", b"{", b"{} x"] {
            assert_eq!(Config::parse(bad).unwrap_err().status, MP_ERR_INVALID, "{bad:?}");
        }
    }
}
