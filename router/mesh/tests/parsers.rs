//! Parser edge cases on kernel-shaped messages built attribute by attribute,
//! and property tests: no input makes a parser panic, and what the builders
//! emit the parsers read back.

use meshpay_mesh::client::{parse_events, parse_family};
use meshpay_mesh::consts::{attr, cmd, mpath_info, sta_info};
use meshpay_mesh::meshconf::{MeshParams, PARAMS, Width};
use meshpay_mesh::wire::{AttrWriter, Attrs, GenlMsg, GenlRequest, NlError, NlMsgs, WireError, emit_nlmsg};
use meshpay_mesh::{Event, Interface, MacAddr, MeshPath, PlinkState, Station, Wiphy};
use proptest::prelude::*;

const PEER: MacAddr = MacAddr([0x42, 0, 0, 0, 1, 0]);

fn station_attrs(info: impl FnOnce(&mut AttrWriter)) -> Vec<u8> {
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 7).bytes(attr::MAC, &PEER.0).u32(attr::GENERATION, 3).nest(attr::STA_INFO, info);
    w.finish()
}

#[test]
fn station_with_negative_signal_u32_metric_and_unknown_attributes() {
    let b = station_attrs(|n| {
        n.u32(sta_info::INACTIVE_TIME, 120)
            .u16(sta_info::LLID, 0x7d5b)
            .u16(sta_info::PLID, 0xae31)
            .u8(sta_info::PLINK_STATE, 4)
            .u8(sta_info::SIGNAL, (-67i8) as u8)
            .u8(sta_info::SIGNAL_AVG, (-70i8) as u8)
            .u32(sta_info::AIRTIME_LINK_METRIC, 0x0001_2345) // needs all 32 bits
            .u32(sta_info::EXPECTED_THROUGHPUT, 25500)
            .u64(sta_info::RX_BYTES64, 1 << 40)
            .u32(sta_info::RX_BYTES, 5)
            .bytes(200, &[1, 2, 3]) // unknown: skipped
            .nest(sta_info::TX_BITRATE, |r| {
                r.u32(5, 520).u16(1, 520).u8(2, 11);
            });
    });
    let s = Station::parse(Attrs::new(&b)).unwrap();
    assert_eq!(s.mac, PEER);
    assert_eq!(s.ifindex, Some(7));
    assert_eq!(s.plink_state, Some(PlinkState::Estab));
    assert_eq!((s.llid, s.plid), (Some(0x7d5b), Some(0xae31)));
    assert_eq!((s.signal_dbm, s.signal_avg_dbm), (Some(-67), Some(-70)));
    assert_eq!(s.airtime_metric, Some(0x0001_2345));
    assert_eq!(s.expected_throughput_kbps, Some(25500));
    assert_eq!(s.rx_bytes, Some(1 << 40), "the 64-bit counter wins");
    assert_eq!(s.tx_bitrate_100kbps, Some(520));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["plink_state"], "ESTAB");
    assert_eq!(json["mac"], "42:00:00:00:01:00");
}

#[test]
fn all_plink_states_and_unknown_ones() {
    let names = ["LISTEN", "OPN_SNT", "OPN_RCVD", "CNF_RCVD", "ESTAB", "HOLDING", "BLOCKED"];
    for (v, n) in names.iter().enumerate() {
        assert_eq!(PlinkState::from_u8(v as u8).name(), *n);
    }
    assert_eq!(PlinkState::from_u8(9), PlinkState::Unknown(9));
}

#[test]
fn airtime_metric_read_as_u16_would_be_refused_not_truncated() {
    // A u16 airtime metric (what wl-nl80211 expects) is not what the kernel
    // sends; if some kernel did, we say so instead of misreading it.
    let b = station_attrs(|n| {
        n.u16(sta_info::AIRTIME_LINK_METRIC, 8193);
    });
    let e = Station::parse(Attrs::new(&b)).unwrap_err();
    assert_eq!(e, WireError::Width { what: "STA_INFO_AIRTIME_LINK_METRIC", expected: 4, got: 2 });
}

#[test]
fn odd_widths_are_errors_naming_the_attribute() {
    for (kind, payload, what) in [
        (sta_info::SIGNAL, vec![0xc4, 0xff, 0xff, 0xff], "STA_INFO_SIGNAL"),
        (sta_info::PLINK_STATE, vec![], "STA_INFO_PLINK_STATE"),
        (sta_info::LLID, vec![1, 2, 3], "STA_INFO_LLID"),
    ] {
        let b = station_attrs(|n| {
            n.bytes(kind, &payload);
        });
        match Station::parse(Attrs::new(&b)) {
            Err(WireError::Width { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    let mut w = AttrWriter::new();
    w.bytes(attr::MAC, &[1, 2, 3, 4, 5]);
    assert!(matches!(
        Station::parse(Attrs::new(&w.finish())),
        Err(WireError::Width { what: "ATTR_MAC", .. })
    ));
}

#[test]
fn truncated_messages_are_errors() {
    let b = station_attrs(|n| {
        n.u32(sta_info::AIRTIME_LINK_METRIC, 8193);
    });
    // Cut inside the STA_INFO nest (its declared length runs past the end)
    // and inside the MAC attribute.
    for cut in [b.len() - 4, 9] {
        match Station::parse(Attrs::new(&b[..cut])) {
            Err(WireError::Truncated { .. }) => {}
            other => panic!("prefix {cut}: {other:?}"),
        }
    }
    // No prefix panics.
    for cut in 0..b.len() {
        let _ = Station::parse(Attrs::new(&b[..cut]));
    }
    assert!(matches!(Station::parse(Attrs::new(&[])), Err(WireError::Missing { what: "station ATTR_MAC" })));
}

#[test]
fn mesh_path_parse_and_missing_next_hop() {
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 2).bytes(attr::MAC, &PEER.0).bytes(attr::MPATH_NEXT_HOP, &[2, 0, 0, 0, 1, 0]).nest(
        attr::MPATH_INFO,
        |n| {
            n.u32(mpath_info::FRAME_QLEN, 0)
                .u32(mpath_info::SN, 9)
                .u32(mpath_info::METRIC, 16514)
                .u32(mpath_info::EXPTIME, 2748)
                .u8(mpath_info::FLAGS, 0x15)
                .u8(mpath_info::HOP_COUNT, 2)
                .u32(mpath_info::PATH_CHANGE, 1)
                .u64(99, 0);
        },
    );
    let p = MeshPath::parse(Attrs::new(&w.finish())).unwrap();
    assert_eq!(p.dst, PEER);
    assert_eq!(p.next_hop.to_string(), "02:00:00:00:01:00");
    assert_eq!((p.metric, p.hop_count, p.sn), (Some(16514), Some(2), Some(9)));
    assert_eq!(p.flag_names(), ["ACTIVE", "SN_VALID", "RESOLVED"]);
    let mut w = AttrWriter::new();
    w.bytes(attr::MAC, &PEER.0);
    assert_eq!(
        MeshPath::parse(Attrs::new(&w.finish())).unwrap_err(),
        WireError::Missing { what: "ATTR_MPATH_NEXT_HOP" }
    );
}

#[test]
fn split_wiphy_dump_merges_and_tells_mesh_support() {
    let mut list = Vec::new();
    let mut a = AttrWriter::new();
    a.u32(attr::WIPHY, 1).string_nul(attr::WIPHY_NAME, "phy1");
    Wiphy::merge_dump_message(&mut list, Attrs::new(&a.finish())).unwrap();
    let mut b = AttrWriter::new();
    b.u32(attr::WIPHY, 1).nest(attr::SUPPORTED_IFTYPES, |n| {
        n.flag(2).flag(3);
    });
    Wiphy::merge_dump_message(&mut list, Attrs::new(&b.finish())).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "phy1");
    assert!(!list[0].supports_mesh(), "managed + AP only: this driver cannot do mesh point");
    let mut c = AttrWriter::new();
    c.u32(attr::WIPHY, 1).nest(attr::SUPPORTED_IFTYPES, |n| {
        n.flag(7);
    });
    Wiphy::merge_dump_message(&mut list, Attrs::new(&c.finish())).unwrap();
    assert!(list[0].supports_mesh());
}

#[test]
fn interface_requires_its_identity() {
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 4).string_nul(attr::IFNAME, "mesh0").u32(attr::IFTYPE, 7);
    assert_eq!(
        Interface::parse(Attrs::new(&w.finish())).unwrap_err(),
        WireError::Missing { what: "interface ATTR_WIPHY" }
    );
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 4).bytes(attr::IFNAME, &[0xff, 0xfe, 0]).u32(attr::IFTYPE, 7).u32(attr::WIPHY, 0);
    assert_eq!(
        Interface::parse(Attrs::new(&w.finish())).unwrap_err(),
        WireError::BadString { what: "ATTR_IFNAME" }
    );
}

fn event(c: u8, attrs: Vec<u8>) -> Vec<u8> {
    GenlRequest { cmd: c, version: 1, dump: false, attrs }.encode(0x20, 0, 0)
}

#[test]
fn events_del_station_peer_candidate_other_and_malformed() {
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 5).bytes(attr::MAC, &PEER.0);
    let mut dgram = event(cmd::DEL_STATION, w.finish());
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 5).bytes(attr::MAC, &PEER.0).i32(attr::RX_SIGNAL_DBM, -60).bytes(42, &[0; 7]); // 42: ATTR_IE
    dgram.extend(event(cmd::NEW_PEER_CANDIDATE, w.finish()));
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 5);
    dgram.extend(event(cmd::NEW_MPATH, w.finish()));
    // NEW_STATION without a MAC: reported, and the rest still delivered.
    let mut w = AttrWriter::new();
    w.u32(attr::IFINDEX, 5);
    dgram.extend(event(cmd::NEW_STATION, w.finish()));
    let evs = parse_events(&dgram, 0x20);
    assert_eq!(evs.len(), 4);
    assert_eq!(evs[0], Ok(Event::DelStation { ifindex: 5, mac: PEER }));
    assert_eq!(evs[1], Ok(Event::NewPeerCandidate { ifindex: 5, mac: PEER, signal_dbm: Some(-60) }));
    assert_eq!(evs[2], Ok(Event::Other { cmd: cmd::NEW_MPATH, ifindex: Some(5) }));
    assert_eq!(evs[3], Err((cmd::NEW_STATION, WireError::Missing { what: "station ATTR_MAC" })));
    assert_eq!(evs[1].as_ref().unwrap().ifindex(), Some(5));
}

#[test]
fn netlink_errors_carry_errno_and_message() {
    let mut p = (-114i32).to_ne_bytes().to_vec();
    p.extend_from_slice(&emit_nlmsg(0x20, 5, 1, 0, &[0x44, 0, 0, 0]));
    let b = emit_nlmsg(2, 0, 1, 0, &p);
    let m = NlMsgs::new(&b).next().unwrap().unwrap();
    assert_eq!(NlError::parse(m.flags, m.payload).unwrap(), NlError { error: -114, message: None });
    assert!(NlError::parse(0, &[1, 2]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for m in NlMsgs::new(&bytes) {
            let Ok(m) = m else { break };
            let _ = NlError::parse(m.flags, m.payload);
            if let Ok(g) = GenlMsg::parse(m.payload) {
                let _ = Event::parse(&g);
            }
        }
        let _ = Station::parse(Attrs::new(&bytes));
        let _ = MeshPath::parse(Attrs::new(&bytes));
        let _ = Interface::parse(Attrs::new(&bytes));
        let _ = Wiphy::merge_dump_message(&mut Vec::new(), Attrs::new(&bytes));
        let _ = MeshParams::parse(Attrs::new(&bytes));
        let _ = parse_family(Attrs::new(&bytes));
        let _ = parse_events(&bytes, 0x20);
        let _ = NlError::parse(0x300, &bytes);
    }

    /// Random attribute streams made of well-formed TLVs with random types
    /// and payloads (deeper than random bytes get).
    #[test]
    fn parsers_never_panic_on_wellformed_tlvs(
        attrs in proptest::collection::vec((0u16..64, proptest::collection::vec(any::<u8>(), 0..24)), 0..24),
        nested in proptest::collection::vec((0u16..48, proptest::collection::vec(any::<u8>(), 0..12)), 0..16),
    ) {
        let mut w = AttrWriter::new();
        w.bytes(attr::MAC, &PEER.0).bytes(attr::MPATH_NEXT_HOP, &PEER.0);
        for (k, p) in &attrs {
            w.bytes(*k, p);
        }
        for outer in [attr::STA_INFO, attr::MPATH_INFO, attr::MESH_CONFIG] {
            w.nest(outer, |n| {
                for (k, p) in &nested {
                    n.bytes(*k, p);
                }
            });
        }
        let b = w.finish();
        let _ = Station::parse(Attrs::new(&b));
        let _ = MeshPath::parse(Attrs::new(&b));
        let _ = Interface::parse(Attrs::new(&b));
        for a in Attrs::new(&b).flatten() {
            let _ = MeshParams::parse(a.nested());
        }
    }

    #[test]
    fn mesh_params_roundtrip(picks in proptest::collection::vec((0usize..PARAMS.len(), any::<i64>()), 1..12)) {
        let mut p = MeshParams::new();
        for (i, v) in picks {
            let d = &PARAMS[i];
            let v = match d.width {
                Width::U8 => v.rem_euclid(256),
                Width::U16 => v.rem_euclid(65536),
                Width::U32 => v.rem_euclid(1 << 32),
                Width::S32 => v.rem_euclid(1 << 32) - (1 << 31),
            };
            // mesh_ht_opmode is u32 in replies, u16 in requests: skip it here.
            if d.width != d.reply_width {
                continue;
            }
            p.set(d.name, v).unwrap();
        }
        prop_assume!(!p.is_empty());
        let mut w = AttrWriter::new();
        p.emit(&mut w);
        let b = w.finish();
        // Attribute 3 as u16 is the holding timeout, never the misplaced ifindex.
        prop_assert_eq!(MeshParams::parse(Attrs::new(&b)).unwrap(), p);
    }
}
