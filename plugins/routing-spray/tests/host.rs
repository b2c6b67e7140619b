//! Spray-and-wait through the real plugin host and the C ABI.

mod common;

use std::sync::Arc;

use common::{Services, endpoint, key};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, MP_ERR_INVALID, MP_LINK_DOWN, MP_LINK_UP, PeerInfo};
use meshpay_host::{CallError, InstanceState, Level, Plugin, Routing};

fn plugin() -> Arc<Plugin> {
    Plugin::builtin(meshpay_routing_spray::plugin_entry).expect("the descriptor is valid")
}

fn create(services: &Arc<Services>, config: &str) -> Result<Box<dyn Routing>, CallError> {
    plugin().create_routing("spray", config.as_bytes(), services.clone())
}

fn bundle(destination: &str, copies: u32) -> BundleInfo<'_> {
    BundleInfo {
        id: b"bundle-1",
        source: "dtn://a/",
        destination,
        priority: 1,
        created_ms: 1,
        lifetime_ms: 60_000,
        age_ms: 0,
        payload_len: 100,
        hop_count: 0,
        copies,
        payload: &[],
    }
}

#[test]
fn the_descriptor_names_the_plugin() {
    assert_eq!(plugin().descriptor().id, "org.meshpay.routing.spray-and-wait");
}

#[test]
fn copies_are_sprayed_through_the_c_abi() {
    let services = Services::new(key(1));
    let mut r = create(&services, r#"{"copies": 6}"#).unwrap();
    let nodes: Vec<String> = (2..5).map(|b| endpoint(&key(b))).collect();
    let peers: Vec<PeerInfo<'_>> =
        nodes.iter().map(|n| PeerInfo { node: n, link_metric: None, signal_dbm: None }).collect();
    for p in &peers {
        r.on_contact(p, MP_LINK_UP).unwrap();
    }
    let far = format!("{}wallet", endpoint(&key(9)));
    assert_eq!(r.initial_copies(&bundle(&far, 0)), 6);
    assert_eq!(r.initial_copies(&bundle("dtn://~authorities/quorum", 0)), MP_COPIES_UNLIMITED);

    let decide = |r: &mut Box<dyn Routing>, b: &BundleInfo<'_>, peers: &[PeerInfo<'_>]| {
        let mut out = Vec::new();
        r.decide(b, peers, &mut out).unwrap();
        out
    };
    assert_eq!(decide(&mut r, &bundle(&far, 6), &peers), [(0, 3), (1, 1), (2, 1)]);
    assert_eq!(decide(&mut r, &bundle(&far, 1), &peers), []);
    let to_c = format!("{}pos", nodes[2]);
    assert_eq!(decide(&mut r, &bundle(&to_c, 1), &peers), [(2, 1)]);
    assert_eq!(decide(&mut r, &bundle(&to_c, 5), &peers), [(2, 5)]);
    let group = bundle("dtn://~authorities/quorum", MP_COPIES_UNLIMITED);
    assert_eq!(decide(&mut r, &group, &peers), [(0, u32::MAX), (1, u32::MAX), (2, u32::MAX)]);

    r.on_contact(&peers[1], MP_LINK_DOWN).unwrap();
    assert!(r.take_actions().is_empty());
    assert_eq!(r.state(), &InstanceState::Active);
}

#[test]
fn bad_configs_are_refused_with_mp_err_invalid_naming_the_key() {
    for (config, names) in [
        (r#"{"copies": 0}"#, "config.copies"),
        (r#"{"copies": -2}"#, "config.copies"),
        (r#"{"copies": "eight"}"#, "config.copies"),
        (r#"{"copies": 8, "gamma": 0.9}"#, "gamma"),
        (r#"{"copise": 8}"#, "copise"),
        ("8", "object"),
    ] {
        let services = Services::new(key(1));
        let err = create(&services, config).err().unwrap_or_else(|| panic!("{config} was accepted"));
        assert_eq!(err.status(), Some(MP_ERR_INVALID), "{config}");
        let logs = services.logs();
        assert!(
            logs.iter().any(|(level, m)| *level == Level::Error && m.contains(names)),
            "{config}: no error naming {names} in {logs:?}"
        );
    }
    // The default applies to an empty object.
    let services = Services::new(key(1));
    let mut r = create(&services, "{}").unwrap();
    assert_eq!(r.initial_copies(&bundle("dtn://z/x", 0)), 8);
}
