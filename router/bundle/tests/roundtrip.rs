//! Property tests: emit/parse are inverse, the view agrees with the Repr, forwarding keeps the id.

mod common;

use common::{FULL, bundle, limits, node_eid};
use meshpay_bundle::{
    BLOCK_INTEGRITY_BLOCK, BlockFlags, Bundle, BundleView, CrcType, Eid, Error, HopCount, Limits, forward,
    is_known_type,
};
use proptest::prelude::*;

proptest! {
    #![proptest_config(common::config(256))]

    #[test]
    fn parse_inverts_emit(b in bundle(FULL)) {
        prop_assert_eq!(b.validate(&limits()), Ok(()));
        let bytes = b.emit();
        prop_assert_eq!(bytes.len(), b.encoded_len());
        let parsed = Bundle::parse(&bytes, &limits());
        prop_assert_eq!(parsed.as_ref(), Ok(&b));

        // emit_into appends.
        let mut out = b"prefix".to_vec();
        b.emit_into(&mut out);
        prop_assert_eq!(&out[6..], &bytes[..]);

        // The zero-copy view sees the same bundle, and the same id without copying.
        let view = BundleView::parse(&bytes, &limits()).unwrap();
        prop_assert_eq!(view.id(), b.id());
        prop_assert_eq!(view.payload(), &b.payload[..]);
        prop_assert_eq!(view.destination(), b.destination.view());
        prop_assert_eq!(view.hop_count(), b.hop_count);
        prop_assert_eq!(view.age_ms(), b.age_ms);
        prop_assert_eq!(view.to_bundle(), b.clone());
        prop_assert_eq!(view.primary_block(), &b.primary_block()[..]);

        // Re-emitting a parsed bundle gives the same bytes (emit is canonical).
        prop_assert_eq!(parsed.unwrap().emit(), bytes);
    }

    #[test]
    fn forward_keeps_the_id_and_updates_hop_count_age_and_previous_node(
        b in bundle(FULL),
        added in prop_oneof![0..1000u64, any::<u64>()],
        me in node_eid(),
    ) {
        let bytes = b.emit();
        let result = forward(&bytes, added, &me, &limits());
        let expected_age = b.age_ms.map(|a| a.checked_add(added));
        match (b.hop_count, expected_age) {
            (Some(h), _) if h.count == h.limit => {
                prop_assert_eq!(result, Err(Error::HopLimitExceeded { limit: h.limit, count: u64::from(h.count) + 1 }));
                return Ok(());
            }
            (_, Some(None)) => {
                prop_assert_eq!(result, Err(Error::AgeOverflow));
                return Ok(());
            }
            (_, Some(Some(age))) if age > b.lifetime_ms => {
                prop_assert_eq!(result, Err(Error::Expired { age_ms: age, lifetime_ms: b.lifetime_ms }));
                return Ok(());
            }
            _ => {}
        }
        let next = result.unwrap();
        let view = BundleView::parse(&next, &limits()).unwrap();
        prop_assert_eq!(view.id(), b.id());
        prop_assert_eq!(view.primary_block(), &b.primary_block()[..]);
        prop_assert_eq!(view.payload(), &b.payload[..]);
        prop_assert_eq!(view.hop_count(), b.hop_count.map(|h| HopCount { limit: h.limit, count: h.count + 1 }));
        prop_assert_eq!(view.age_ms(), b.age_ms.map(|a| a + added));
        prop_assert_eq!(view.previous_node(), Some(me.view()));
        prop_assert_eq!(view.priority_block(), b.priority);
        prop_assert_eq!(view.priority(), b.priority.unwrap_or_default());
        // Unknown blocks are kept byte for byte, except those flagged "discard if unprocessable".
        let keep_bibs = b.crc_type == CrcType::None;
        let kept: Vec<_> = b.extensions.iter()
            .filter(|e| !e.flags.contains(BlockFlags::DISCARD_IF_UNPROCESSABLE)
                || (keep_bibs && e.block_type == BLOCK_INTEGRITY_BLOCK))
            .cloned()
            .collect();
        let after: Vec<_> = view.extensions().map(|e| e.to_extension()).collect();
        prop_assert_eq!(after, kept);
        // Blocks meshpay rewrites keep their numbers.
        let before = BundleView::parse(&bytes, &limits()).unwrap();
        for blk in before.blocks().iter().filter(|x| is_known_type(x.block_type)) {
            let same = view.blocks().iter().find(|x| x.block_type == blk.block_type).unwrap();
            prop_assert_eq!((same.number, same.flags, same.crc_type), (blk.number, blk.flags, blk.crc_type));
        }
    }
}

/// A bundle hops until its hop limit is used up; its id never changes, its age adds up.
#[test]
fn hop_by_hop_until_the_limit() {
    let src: Eid = "dtn://a/pay".parse().unwrap();
    let dst: Eid = "ipn:9.1".parse().unwrap();
    let b = Bundle::builder(src, dst).payload(b"transfer".to_vec()).hop_limit(Some(3)).build().unwrap();
    let id = b.id();
    let mut bytes = b.emit();
    for hop in 1..=3u8 {
        let me: Eid = format!("dtn://relay{hop}/").parse().unwrap();
        bytes = forward(&bytes, 10, &me, &Limits::default()).unwrap();
        let v = BundleView::parse(&bytes, &Limits::default()).unwrap();
        assert_eq!(v.id(), id);
        assert_eq!(v.hop_count(), Some(HopCount { limit: 3, count: hop }));
        assert_eq!(v.age_ms(), Some(10 * u64::from(hop)));
        assert_eq!(v.previous_node(), Some(me.view()));
        // One previous node block, however many hops.
        assert_eq!(
            v.blocks().iter().filter(|x| x.block_type == meshpay_bundle::PREVIOUS_NODE_BLOCK).count(),
            1
        );
    }
    let err = forward(&bytes, 10, &"dtn://relay4/".parse().unwrap(), &Limits::default()).unwrap_err();
    assert_eq!(err, Error::HopLimitExceeded { limit: 3, count: 4 });
    assert_eq!(err.to_string(), "hop count 4 exceeds the hop limit 3");
}

#[test]
fn forward_refuses_a_null_previous_node_and_an_expired_bundle() {
    let b = Bundle::builder("dtn://a/".parse().unwrap(), "dtn://b/".parse().unwrap())
        .lifetime_ms(100)
        .build()
        .unwrap();
    let bytes = b.emit();
    assert!(matches!(forward(&bytes, 1, &Eid::None, &Limits::default()), Err(Error::InvalidEid { .. })));
    let me: Eid = "dtn://me/".parse().unwrap();
    assert_eq!(
        forward(&bytes, 101, &me, &Limits::default()),
        Err(Error::Expired { age_ms: 101, lifetime_ms: 100 })
    );
    assert!(forward(&bytes, 100, &me, &Limits::default()).is_ok());
}

#[test]
fn builder_defaults() {
    let key = [7u8; 32];
    let me = Eid::for_node_key(&key);
    let b = Bundle::builder(me.with_demux("wallet").unwrap(), "dtn://~authorities/quorum".parse().unwrap())
        .payload(vec![1, 2, 3])
        .build()
        .unwrap();
    assert_eq!(b.hop_count, Some(HopCount { limit: 32, count: 0 }));
    assert_eq!(b.age_ms, Some(0), "no clock: an age block is added");
    assert!(b.flags.contains(meshpay_bundle::BundleFlags::MUST_NOT_FRAGMENT));
    assert_eq!(b.source.node_key(), Some(key));
    assert!(!b.destination.is_singleton());
    let with_clock = Bundle::builder(me.clone(), me.clone())
        .creation(meshpay_bundle::CreationTimestamp { dtn_time_ms: 800_000_000_000, sequence: 1 })
        .priority(meshpay_bundle::Priority::Expedited)
        .hop_limit(None)
        .build()
        .unwrap();
    assert_eq!(with_clock.age_ms, None);
    assert_eq!(with_clock.hop_count, None);
    let v = BundleView::parse(&with_clock.emit(), &Limits::default()).unwrap().to_bundle();
    assert_eq!(v.priority, Some(meshpay_bundle::Priority::Expedited));

    // Too large for the limits: refused at build time, not by every receiver.
    let err = Bundle::builder(me.clone(), me).payload(vec![0; 2 << 20]).build().unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}
