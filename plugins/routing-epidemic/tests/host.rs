//! The epidemic plugin through the real plugin host and the C ABI.

mod common;

use std::sync::Arc;

use common::{Services, endpoint, key};
use meshpay_abi::{BundleInfo, MP_COPIES_UNLIMITED, MP_ERR_INVALID, MP_LINK_DOWN, MP_LINK_UP, PeerInfo};
use meshpay_host::{CallError, InstanceState, Level, Plugin, Routing};

fn plugin() -> Arc<Plugin> {
    Plugin::builtin(meshpay_routing_epidemic::plugin_entry).expect("the descriptor is valid")
}

fn bundle(destination: &str) -> BundleInfo<'_> {
    BundleInfo {
        id: b"bundle-1",
        source: "dtn://a/",
        destination,
        priority: 1,
        created_ms: 1,
        lifetime_ms: 60_000,
        age_ms: 0,
        payload_len: 100,
        hop_count: 1,
        copies: MP_COPIES_UNLIMITED,
        payload: &[],
    }
}

fn create(services: &Arc<Services>, config: &str) -> Result<Box<dyn Routing>, CallError> {
    plugin().create_routing("epidemic", config.as_bytes(), services.clone())
}

#[test]
fn the_descriptor_names_the_plugin() {
    let p = plugin();
    assert_eq!(p.descriptor().id, "org.meshpay.routing.epidemic");
    assert_eq!(meshpay_host::kind_names(p.descriptor().kinds), ["routing"]);
}

#[test]
fn every_neighbour_gets_the_bundle_through_the_c_abi() {
    let services = Services::new(key(1));
    let mut r = create(&services, "{}").unwrap();
    let nodes: Vec<String> = (2..6).map(|b| endpoint(&key(b))).collect();
    let peers: Vec<PeerInfo<'_>> =
        nodes.iter().map(|n| PeerInfo { node: n, link_metric: Some(10), signal_dbm: None }).collect();
    for p in &peers {
        r.on_contact(p, MP_LINK_UP).unwrap();
    }
    assert_eq!(r.initial_copies(&bundle("dtn://z/x")), MP_COPIES_UNLIMITED);
    for dest in [format!("{}wallet", nodes[2]), "dtn://~authorities/quorum".into(), "dtn://z/x".into()] {
        let mut out = Vec::new();
        r.decide(&bundle(&dest), &peers, &mut out).unwrap();
        assert_eq!(out, (0..4).map(|i| (i, MP_COPIES_UNLIMITED)).collect::<Vec<_>>(), "{dest}");
    }
    let mut out = Vec::new();
    r.decide(&bundle("dtn://z/x"), &[], &mut out).unwrap();
    assert!(out.is_empty());
    r.on_contact(&peers[0], MP_LINK_DOWN).unwrap();
    assert!(r.take_actions().is_empty(), "epidemic sends no control data");
    assert_eq!(r.state(), &InstanceState::Active);
}

#[test]
fn bad_configs_are_refused_with_mp_err_invalid_naming_the_key() {
    for (config, names) in [
        (r#"{"copies": 8}"#, "copies"),
        (r#"{"beta": 0.9}"#, "beta"),
        ("[]", "object"),
        ("{", "JSON"),
        ("", "JSON"),
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
}
