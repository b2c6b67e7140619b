//! Interoperability with `bp7` (the BPv7 crate dtn7-rs is built on), both ways.
//!
//! bp7 → meshpay: bundles bp7 builds and encodes parse here with the same fields and the same id
//! as the equivalent meshpay Repr. meshpay → bp7: bundles emitted here decode in bp7, pass its
//! validation and CRC checks, carry the same fields, and re-encode in bp7 to the same bytes.

mod common;

use std::time::Duration;

use bp7::canonical::{
    BUNDLE_AGE_BLOCK, CanonicalBlock, CanonicalBlockBuilder, CanonicalData, HOP_COUNT_BLOCK,
    PREVIOUS_NODE_BLOCK, new_payload_block,
};
use bp7::crc::{CRC_16, CRC_32, CRC_NO, CrcBlock};
use bp7::eid::EndpointID;
use bp7::flags::BlockControlFlags;
use bp7::primary::PrimaryBlockBuilder;
use common::{BP7, bundle, limits};
use meshpay_bundle::{
    Bundle, BundleView, CLASS_OF_SERVICE_BLOCK, CrcType, CreationTimestamp, Eid, HopCount, Priority, forward,
    is_known_type,
};
use proptest::prelude::*;

fn to_bp7_eid(e: &Eid) -> EndpointID {
    match e {
        Eid::None => EndpointID::none(),
        Eid::Dtn { node, demux } => EndpointID::with_dtn(&format!("//{node}/{demux}")).unwrap(),
        Eid::Ipn { node, service } => EndpointID::with_ipn(*node, *service).unwrap(),
    }
}

fn crc_code(c: CrcType) -> u8 {
    match c {
        CrcType::None => CRC_NO,
        CrcType::Crc16 => CRC_16,
        CrcType::Crc32c => CRC_32,
    }
}

fn block(block_type: u64, number: u64, flags: u64, crc: CrcType, data: CanonicalData) -> CanonicalBlock {
    let mut b = CanonicalBlockBuilder::default()
        .block_type(block_type)
        .block_number(number)
        .block_control_flags(u8::try_from(flags).expect("bp7 block flags are 8 bits"))
        .data(data)
        .build()
        .unwrap();
    b.set_crc_type(crc_code(crc));
    b
}

/// The same bundle built with bp7, its known blocks numbered from 100 up and in another order
/// than meshpay's encoder uses (extensions first, then hop count, class of service, age, previous
/// node).
fn build_with_bp7(b: &Bundle) -> bp7::Bundle {
    let mut primary = PrimaryBlockBuilder::default()
        .bundle_control_flags(b.flags.bits())
        .destination(to_bp7_eid(&b.destination))
        .source(to_bp7_eid(&b.source))
        .report_to(to_bp7_eid(&b.report_to))
        .creation_timestamp(bp7::CreationTimestamp::with_time_and_seq(
            b.creation.dtn_time_ms,
            b.creation.sequence,
        ))
        .lifetime(Duration::from_millis(b.lifetime_ms))
        .build()
        .unwrap();
    primary.set_crc_type(crc_code(b.crc_type));
    let crc = b.block_crc_type;
    let mut canonicals: Vec<CanonicalBlock> = b
        .extensions
        .iter()
        .map(|e| {
            block(e.block_type, e.number, e.flags.bits(), e.crc_type, CanonicalData::Unknown(e.data.clone()))
        })
        .collect();
    if let Some(h) = b.hop_count {
        canonicals.push(block(HOP_COUNT_BLOCK, 100, 0, crc, CanonicalData::HopCount(h.limit, h.count)));
    }
    if let Some(p) = b.priority {
        let data = CanonicalData::Unknown(vec![p.code()]);
        canonicals.push(block(CLASS_OF_SERVICE_BLOCK, 101, 0, crc, data));
    }
    if let Some(age) = b.age_ms {
        canonicals.push(block(BUNDLE_AGE_BLOCK, 102, 0, crc, CanonicalData::BundleAge(age)));
    }
    if let Some(prev) = &b.previous_node {
        canonicals.push(block(
            PREVIOUS_NODE_BLOCK,
            103,
            0,
            crc,
            CanonicalData::PreviousNode(to_bp7_eid(prev)),
        ));
    }
    let mut payload = new_payload_block(BlockControlFlags::empty(), b.payload.clone());
    payload.set_crc_type(crc_code(crc));
    canonicals.push(payload);
    bp7::Bundle::new(primary, canonicals)
}

/// Checks that bp7's decoding of a bundle carries the same fields as meshpay's Repr.
fn assert_same_fields(ours: &Bundle, theirs: &mut bp7::Bundle) -> Result<(), TestCaseError> {
    prop_assert!(theirs.validate().is_ok(), "bp7 validation: {:?}", theirs.validate());
    prop_assert!(theirs.crc_valid(), "bp7 CRC check");
    let p = &theirs.primary;
    prop_assert_eq!(p.bundle_control_flags, ours.flags.bits());
    prop_assert_eq!(u64::from(p.crc.to_code()), ours.crc_type.code());
    prop_assert_eq!(p.destination.to_string(), ours.destination.to_string());
    prop_assert_eq!(p.source.to_string(), ours.source.to_string());
    prop_assert_eq!(p.report_to.to_string(), ours.report_to.to_string());
    prop_assert_eq!(p.creation_timestamp.dtntime(), ours.creation.dtn_time_ms);
    prop_assert_eq!(p.creation_timestamp.seqno(), ours.creation.sequence);
    prop_assert_eq!(p.lifetime.as_millis(), u128::from(ours.lifetime_ms));
    prop_assert_eq!(theirs.payload(), Some(&ours.payload));
    let hop = theirs.extension_block_by_type(HOP_COUNT_BLOCK).and_then(|b| b.hop_count_get());
    prop_assert_eq!(hop, ours.hop_count.map(|h| (h.limit, h.count)));
    let age = theirs.extension_block_by_type(BUNDLE_AGE_BLOCK).and_then(|b| b.bundle_age_get());
    prop_assert_eq!(age, ours.age_ms.map(u128::from));
    prop_assert_eq!(
        theirs.previous_node().map(|e| e.to_string()),
        ours.previous_node.as_ref().map(|e| e.to_string())
    );
    // meshpay's class-of-service block is an unknown block to bp7, kept as is.
    let cos =
        theirs.canonicals.iter().find(|b| b.block_type == CLASS_OF_SERVICE_BLOCK).map(|b| b.data().clone());
    prop_assert_eq!(cos, ours.priority.map(|p| CanonicalData::Unknown(vec![p.code()])));
    let unknown: Vec<_> = theirs
        .canonicals
        .iter()
        .filter(|b| !is_known_type(b.block_type))
        .map(|b| {
            (
                b.block_type,
                b.block_number,
                u64::from(b.block_control_flags),
                u64::from(b.crc.to_code()),
                b.data().clone(),
            )
        })
        .collect();
    let expected: Vec<_> = ours
        .extensions
        .iter()
        .map(|e| {
            (
                e.block_type,
                e.number,
                e.flags.bits(),
                e.crc_type.code(),
                CanonicalData::Unknown(e.data.clone()),
            )
        })
        .collect();
    prop_assert_eq!(unknown, expected);
    Ok(())
}

fn check_bp7_to_ours(b: &Bundle) -> Result<(), TestCaseError> {
    let bytes = build_with_bp7(b).to_cbor();
    let view = BundleView::parse(&bytes, &limits());
    prop_assert!(view.is_ok(), "{:?}", view.err());
    let view = view.unwrap();
    prop_assert_eq!(&view.to_bundle(), b);
    // bp7 encodes the primary block exactly as meshpay does, so the ids agree.
    prop_assert_eq!(view.id(), b.id());
    Ok(())
}

fn check_ours_to_bp7(b: &Bundle) -> Result<(), TestCaseError> {
    let bytes = b.emit();
    let theirs = bp7::Bundle::try_from(bytes.as_slice());
    prop_assert!(theirs.is_ok(), "bp7 refused: {:?}", theirs.err());
    let mut theirs = theirs.unwrap();
    assert_same_fields(b, &mut theirs)?;
    // bp7 writes the decoded bundle back byte for byte.
    prop_assert_eq!(theirs.to_cbor(), bytes);
    Ok(())
}

fn sample(dest: &str, crc: CrcType, hop: bool, age: bool, prev: bool) -> Bundle {
    let mut b = Bundle::builder("dtn://node1/wallet".parse().unwrap(), dest.parse().unwrap())
        .creation(CreationTimestamp { dtn_time_ms: 810_000_000_123, sequence: 7 })
        // Created in 2025 and alive for 30 years: bp7's update_extensions compares with its clock.
        .lifetime_ms(30 * 365 * 24 * 3_600_000)
        .payload(b"transfer order".to_vec())
        .hop_limit(hop.then_some(16))
        .crc_type(crc)
        .build()
        .unwrap();
    if age {
        b.age_ms = Some(1500);
    }
    if prev {
        b.previous_node = Some("ipn:77.0".parse().unwrap());
    }
    b
}

#[test]
fn both_ways_for_both_schemes_both_crcs_and_each_extension_block() {
    let mut cases = 0;
    for dest in ["dtn://node2/inbox", "ipn:23.42"] {
        for crc in [CrcType::Crc16, CrcType::Crc32c] {
            for (hop, age, prev) in [
                (false, false, false),
                (true, false, false),
                (false, true, false),
                (false, false, true),
                (true, true, true),
            ] {
                let b = sample(dest, crc, hop, age, prev);
                check_ours_to_bp7(&b).unwrap_or_else(|e| panic!("{dest} {crc} {hop} {age} {prev}: {e}"));
                check_bp7_to_ours(&b).unwrap_or_else(|e| panic!("{dest} {crc} {hop} {age} {prev}: {e}"));
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 20);
}

#[test]
fn bp7_forwards_what_meshpay_forwarded_and_the_other_way_round() {
    let b = sample("ipn:23.42", CrcType::Crc32c, true, true, false);
    let me: Eid = "dtn://relay/".parse().unwrap();
    // meshpay hop, then bp7 reads it.
    let next = forward(&b.emit(), 250, &me, &limits()).unwrap();
    let theirs = bp7::Bundle::try_from(next.as_slice()).unwrap();
    assert!(theirs.validate().is_ok());
    assert_eq!(theirs.previous_node().map(|e| e.to_string()), Some(me.to_string()));
    assert_eq!(
        theirs.extension_block_by_type(HOP_COUNT_BLOCK).and_then(|b| b.hop_count_get()),
        Some((16, 1))
    );
    assert_eq!(theirs.extension_block_by_type(BUNDLE_AGE_BLOCK).and_then(|b| b.bundle_age_get()), Some(1750));
    // bp7 hop (its update_extensions), then meshpay reads it: same id.
    let mut theirs = theirs;
    assert!(theirs.update_extensions(EndpointID::with_ipn(5, 0).unwrap(), 100));
    let after = theirs.to_cbor();
    let view = BundleView::parse(&after, &limits()).unwrap();
    assert_eq!(view.id(), b.id());
    assert_eq!(view.hop_count(), Some(HopCount { limit: 16, count: 2 }));
    assert_eq!(view.age_ms(), Some(1850));
    assert_eq!(view.previous_node(), Some("ipn:5.0".parse::<Eid>().unwrap().view()));
}

#[test]
fn bp7_keeps_the_class_of_service_block() {
    let mut b = sample("dtn://node2/inbox", CrcType::Crc16, true, false, false);
    b.priority = Some(Priority::Expedited);
    let mut theirs = bp7::Bundle::try_from(b.emit().as_slice()).unwrap();
    assert!(theirs.update_extensions(EndpointID::with_dtn("//bp7node/").unwrap(), 5));
    let back = BundleView::parse(&theirs.to_cbor(), &limits()).unwrap().to_bundle();
    assert_eq!(back.priority, Some(Priority::Expedited));
    assert_eq!(back.id(), b.id());
}

proptest! {
    #![proptest_config(common::config(256))]

    #[test]
    fn meshpay_bundles_decode_in_bp7(b in bundle(BP7)) {
        prop_assert_eq!(b.validate(&limits()), Ok(()));
        check_ours_to_bp7(&b)?;
    }

    #[test]
    fn bp7_bundles_decode_here(b in bundle(BP7)) {
        check_bp7_to_ours(&b)?;
    }
}
