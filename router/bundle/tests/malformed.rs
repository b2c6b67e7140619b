//! What the parser refuses, and that no input makes it panic.

mod common;

use common::{FULL, bundle, limits, node_eid};
use meshpay_bundle::{
    BlockFlags, Bundle, BundleFlags, BundleView, CrcType, CreationTimestamp, Eid, EidError, Error,
    ExtensionBlock, HopCount, Limits, Problem, forward,
};
use proptest::collection::vec;
use proptest::prelude::*;

fn sample() -> Bundle {
    Bundle::builder("dtn://src/app".parse().unwrap(), "ipn:2.1".parse().unwrap())
        .creation(CreationTimestamp { dtn_time_ms: 700_000_000_000, sequence: 5 })
        .payload(b"hello".to_vec())
        .build()
        .unwrap()
}

fn parse(bytes: &[u8]) -> Result<BundleView<'_>, Error> {
    BundleView::parse(bytes, &Limits::default())
}

/// Emits a bundle the Repr can hold but that is invalid (emit does not validate).
fn emit_unchecked(f: impl FnOnce(&mut Bundle)) -> Vec<u8> {
    let mut b = sample();
    f(&mut b);
    b.emit()
}

fn ext(block_type: u64, number: u64, flags: u64) -> ExtensionBlock {
    ExtensionBlock {
        block_type,
        number,
        flags: BlockFlags(flags),
        crc_type: CrcType::Crc16,
        data: vec![1, 2],
    }
}

#[test]
fn fragments_are_refused_and_say_so() {
    let bytes = emit_unchecked(|b| b.flags |= BundleFlags::IS_FRAGMENT);
    let err = parse(&bytes).unwrap_err();
    assert_eq!(err, Error::Fragment);
    assert!(err.to_string().contains("meshpay does not fragment bundles"));
}

#[test]
fn other_versions_are_refused() {
    let mut bytes = sample().emit();
    assert_eq!(bytes[2], 0x07);
    bytes[2] = 0x06;
    assert_eq!(parse(&bytes).unwrap_err(), Error::UnsupportedVersion { version: 6 });
}

#[test]
fn bad_crcs_are_refused_in_every_block() {
    let b = sample();
    let bytes = b.emit();
    let view = parse(&bytes).unwrap();
    // Flip one bit in the primary block, in each canonical block's data, and in each CRC.
    let primary_len = view.primary_block().len();
    // A letter of the source's node name ('s' becomes 'r': still a valid name), the CRC's last byte.
    let src = bytes.windows(3).position(|w| w == b"src").unwrap();
    let mut offsets = vec![src, primary_len];
    let mut at = 1 + primary_len;
    for blk in view.blocks() {
        offsets.push(at + blk.raw.len() - 1); // CRC value
        offsets.push(at + blk.raw.len() - 6); // the last data byte (CRC-32C: 5 bytes of CRC field)
        at += blk.raw.len();
    }
    for off in offsets {
        let mut bad = bytes.clone();
        bad[off] ^= 0x01;
        match parse(&bad) {
            Err(Error::CrcMismatch { .. }) => {}
            other => panic!("flip at {off}: {other:?}"),
        }
    }
    let mut bad = bytes.clone();
    let last_payload_byte = bytes.len() - 1 - 5 - 1;
    bad[last_payload_byte] ^= 0x80;
    assert!(matches!(parse(&bad), Err(Error::CrcMismatch { block: 1, crc_type: CrcType::Crc32c, .. })));
}

#[test]
fn a_trusted_parse_skips_only_the_crcs_and_the_next_hop_still_catches_damage() {
    let bytes = sample().emit();
    let limits = Limits::default();
    // Same view as a checked parse.
    let checked = parse(&bytes).unwrap();
    let trusted = BundleView::parse_trusted(&bytes, &limits).unwrap();
    assert_eq!(trusted.to_bundle(), checked.to_bundle());
    assert_eq!(trusted.id(), checked.id());
    // Damage under a CRC: the trusted parse does not recompute it, and
    // forwards the old CRC with the bytes, which the next hop refuses.
    let mut bad = bytes.clone();
    let last_payload_byte = bytes.len() - 1 - 5 - 1;
    bad[last_payload_byte] ^= 0x80;
    let view = BundleView::parse_trusted(&bad, &limits).unwrap();
    let forwarded = view.forward(10, &"dtn://relay/".parse().unwrap(), &limits).unwrap();
    assert!(matches!(parse(&forwarded), Err(Error::CrcMismatch { block: 1, .. })));
    // Every other rule still holds: a truncated or structurally wrong
    // bundle is refused as by `parse`.
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(
            BundleView::parse_trusted(&bytes[..cut], &limits).unwrap_err(),
            parse(&bytes[..cut]).unwrap_err()
        );
    }
    let two_payloads = emit_unchecked(|b| b.extensions = vec![ext(20, 1, 0)]);
    assert_eq!(
        BundleView::parse_trusted(&two_payloads, &limits).unwrap_err(),
        parse(&two_payloads).unwrap_err()
    );
}

#[test]
fn structural_rules() {
    type Edit = Box<dyn Fn(&mut Bundle)>;
    let cases: Vec<(Edit, Error)> = vec![
        (
            Box::new(|b| b.extensions = vec![ext(20, 3, 0), ext(21, 3, 0)]),
            Error::DuplicateBlockNumber { number: 3 },
        ),
        (
            Box::new(|b| b.extensions = vec![ext(20, 0, 0)]),
            Error::ReservedBlockNumber { number: 0, block_type: 20 },
        ),
        (
            Box::new(|b| b.extensions = vec![ext(20, 1, 0)]),
            Error::ReservedBlockNumber { number: 1, block_type: 20 },
        ),
        (
            Box::new(|b| b.extensions = vec![ext(20, 5, BlockFlags::DELETE_BUNDLE_IF_UNPROCESSABLE.0)]),
            Error::UnprocessableBlock { number: 5, block_type: 20 },
        ),
        (
            Box::new(|b| {
                b.extensions = vec![ExtensionBlock { data: vec![0x82, 0x05, 0x00], ..ext(10, 9, 0) }]
            }),
            Error::DuplicateBlockType { block_type: 10 },
        ),
        (
            Box::new(|b| b.hop_count = Some(HopCount { limit: 4, count: 5 })),
            Error::HopLimitExceeded { limit: 4, count: 5 },
        ),
        (
            Box::new(|b| {
                b.creation.dtn_time_ms = 0;
                b.age_ms = None;
            }),
            Error::MissingAgeBlock,
        ),
        (Box::new(|b| b.crc_type = CrcType::None), Error::MissingPrimaryCrc),
        (Box::new(|b| b.destination = Eid::None), Error::NullDestination),
        (
            Box::new(|b| b.flags |= BundleFlags::ADMIN_RECORD | BundleFlags::REPORT_DELIVERY),
            Error::FlagConflict { reason: "an administrative record must not request status reports" },
        ),
        (
            Box::new(|b| {
                b.source = Eid::None;
                b.flags = BundleFlags::empty();
            }),
            Error::FlagConflict {
                reason: "an anonymous bundle (source dtn:none) must be flagged \"must not be fragmented\" and must not request status reports",
            },
        ),
        (
            Box::new(|b| {
                b.source = Eid::None;
                b.extensions = vec![ext(20, 5, BlockFlags::REPORT_IF_UNPROCESSABLE.0)];
            }),
            Error::FlagConflict {
                reason: "a block of an administrative record or an anonymous bundle must not request a status report",
            },
        ),
        (
            Box::new(|b| b.destination = Eid::Dtn { node: "a b".into(), demux: String::new() }),
            Error::InvalidEid {
                field: "primary block: destination",
                error: EidError::InvalidNodeNameChar { byte: b' ', index: 1 },
            },
        ),
        (
            Box::new(|b| b.previous_node = Some(Eid::None)),
            Error::InvalidEid { field: "previous node block data", error: EidError::NullEndpoint },
        ),
    ];
    for (edit, expected) in cases {
        let mut b = sample();
        edit(&mut b);
        // emit() writes what the Repr holds; the parser refuses it, and validate() agrees.
        assert_eq!(parse(&b.emit()).unwrap_err(), expected);
        assert_eq!(b.validate(&Limits::default()).unwrap_err(), expected);
        assert!(!expected.to_string().is_empty());
    }
}

/// Splices raw blocks into a bundle: `[0x9f, primary, blocks..., 0xff]`.
fn splice(primary: &[u8], blocks: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x9f];
    out.extend_from_slice(primary);
    for b in blocks {
        out.extend_from_slice(b);
    }
    out.push(0xff);
    out
}

#[test]
fn payload_must_be_last_numbered_1_and_present() {
    let bytes = sample().emit();
    let view = parse(&bytes).unwrap();
    let primary = view.primary_block();
    let blocks: Vec<&[u8]> = view.blocks().iter().map(|b| b.raw).collect();
    let (payload, others) = blocks.split_last().unwrap();
    // Payload first.
    let mut reordered = vec![*payload];
    reordered.extend_from_slice(others);
    let err = parse(&splice(primary, &reordered)).unwrap_err();
    assert!(matches!(err, Error::PayloadNotLast { .. }), "{err}");
    // No payload.
    assert_eq!(parse(&splice(primary, others)).unwrap_err(), Error::MissingPayload);
    // Two payloads.
    let mut twice = blocks.clone();
    twice.push(payload);
    assert_eq!(parse(&splice(primary, &twice)).unwrap_err(), Error::PayloadNotLast { block_number: 1 });
    // Payload numbered 7: [1, 7, 0, 0, h'00'] without CRC.
    let odd_payload = [0x85, 0x01, 0x07, 0x00, 0x00, 0x41, 0x00];
    let mut with_odd = others.to_vec();
    with_odd.push(&odd_payload);
    assert_eq!(parse(&splice(primary, &with_odd)).unwrap_err(), Error::PayloadBlockNumber { number: 7 });
    // The untouched bundle still parses.
    assert!(parse(&splice(primary, &blocks)).is_ok());
}

#[test]
fn encoding_rules() {
    let bytes = sample().emit();
    // Trailing bytes.
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0x00, 0x01]);
    assert_eq!(parse(&trailing).unwrap_err(), Error::TrailingBytes { at: bytes.len(), count: 2 });
    // Missing break code.
    let err = parse(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err}");
    // A definite-length outer array.
    let mut definite = bytes.clone();
    definite[0] = 0x84;
    assert!(matches!(parse(&definite), Err(Error::Malformed { problem: Problem::DefiniteBundleArray, .. })));
    // Not an array at all.
    assert!(matches!(parse(&[0xa0]), Err(Error::Malformed { problem: Problem::UnexpectedType { .. }, .. })));
    assert_eq!(parse(&[]).unwrap_err(), Error::Truncated { at: 0, field: "bundle" });

    // Hand-made blocks without CRC after the sample's primary block.
    let view = parse(&bytes).unwrap();
    let primary = view.primary_block().to_vec();
    let payload = [0x85, 0x01, 0x01, 0x00, 0x00, 0x41, 0xaa];
    let check = |block: &[u8]| parse(&splice(&primary, &[block, &payload])).map(|v| v.to_bundle());
    // A non-minimal block number (0x18 0x05 for 5).
    assert!(matches!(
        check(&[0x85, 0x14, 0x18, 0x05, 0x00, 0x00, 0x40]),
        Err(Error::Malformed { problem: Problem::NonMinimal, .. })
    ));
    // An indefinite-length block array and an indefinite-length data string.
    assert!(matches!(
        check(&[0x9f, 0x14, 0x05, 0x00, 0x00, 0x40, 0xff]),
        Err(Error::Malformed { problem: Problem::Indefinite, .. })
    ));
    assert!(matches!(
        check(&[0x85, 0x14, 0x05, 0x00, 0x00, 0x5f, 0x41, 0x00, 0xff]),
        Err(Error::Malformed { problem: Problem::Indefinite, .. })
    ));
    // A data length past the end of the input, claimed before anything is allocated.
    let mut past = splice(&primary, &[]);
    past.pop();
    past.extend_from_slice(&[
        0x85, 0x01, 0x01, 0x00, 0x00, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
    ]);
    assert!(matches!(parse(&past), Err(Error::LengthPastEnd { claimed: 0x7fff_ffff_ffff_ffff, .. })));
    // An array of 7 items, a CRC type 3, a CRC of the wrong length.
    assert!(matches!(
        check(&[0x87, 0x14, 0x05, 0x00, 0x00, 0x40, 0x00, 0x00]),
        Err(Error::Malformed { problem: Problem::WrongArrayLength { found: 7, .. }, .. })
    ));
    assert!(matches!(
        check(&[0x85, 0x14, 0x05, 0x00, 0x03, 0x40]),
        Err(Error::UnknownCrcType { code: 3, .. })
    ));
    assert!(matches!(
        check(&[0x86, 0x14, 0x05, 0x00, 0x01, 0x40, 0x43, 0, 0, 0]),
        Err(Error::Malformed { problem: Problem::WrongCrcLength { expected: 2, found: 3 }, .. })
    ));
    // CRC type 1 but only 5 items (CRC missing).
    assert!(matches!(
        check(&[0x85, 0x14, 0x05, 0x00, 0x01, 0x40]),
        Err(Error::Malformed { problem: Problem::WrongArrayLength { found: 5, .. }, .. })
    ));
    // Known block data with leftovers: hop count [5, 0] followed by 0x00.
    let err = check(&[0x85, 0x0a, 0x05, 0x00, 0x00, 0x44, 0x82, 0x05, 0x00, 0x00]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("hop count block data at byte {}: 1 bytes left over after the value", primary.len() + 1 + 9)
    );
    // Hop limit 0 and 256.
    assert!(matches!(
        check(&[0x85, 0x0a, 0x05, 0x00, 0x00, 0x43, 0x82, 0x00, 0x00]),
        Err(Error::InvalidBlockData { reason: "hop limit must be 1 to 255", .. })
    ));
    assert!(matches!(
        check(&[0x85, 0x0a, 0x05, 0x00, 0x00, 0x45, 0x82, 0x19, 0x01, 0x00, 0x00]),
        Err(Error::InvalidBlockData { reason: "hop limit must be 1 to 255", .. })
    ));
    // Nesting deeper than the structure: an age that is an array.
    assert!(matches!(
        check(&[0x85, 0x07, 0x05, 0x00, 0x00, 0x42, 0x81, 0x00]),
        Err(Error::Malformed {
            problem: Problem::UnexpectedType { expected: "unsigned integer", found: "array" },
            ..
        })
    ));
    // An endpoint scheme meshpay does not know (3) as the previous node.
    assert!(matches!(
        check(&[0x85, 0x06, 0x05, 0x00, 0x00, 0x43, 0x82, 0x03, 0x00]),
        Err(Error::InvalidEid { error: EidError::UnsupportedSchemeCode(3), .. })
    ));
    // A class of service of 3.
    assert!(matches!(
        check(&[0x85, 0x18, 0xc8, 0x05, 0x00, 0x00, 0x41, 0x03]),
        Err(Error::InvalidBlockData { block_type: 200, .. })
    ));
    // ...and the well-formed variants parse.
    assert_eq!(check(&[0x85, 0x07, 0x05, 0x00, 0x00, 0x41, 0x03]).unwrap().age_ms, Some(3));
    assert_eq!(
        check(&[0x85, 0x0a, 0x05, 0x00, 0x00, 0x43, 0x82, 0x05, 0x02]).unwrap().hop_count,
        Some(HopCount { limit: 5, count: 2 })
    );
}

#[test]
fn limits_are_enforced() {
    let bytes = sample().emit();
    let tight = Limits { max_bundle_bytes: bytes.len() - 1, ..Limits::default() };
    assert_eq!(
        BundleView::parse(&bytes, &tight).unwrap_err(),
        Error::TooLarge { len: bytes.len(), max: bytes.len() - 1 }
    );
    let many = emit_unchecked(|b| b.extensions = (2..40).map(|n| ext(30, n + 10, 0)).collect());
    assert_eq!(parse(&many).unwrap_err(), Error::TooManyBlocks { max: 32 });
    // The sample has two canonical blocks (hop count, payload).
    let few = Limits { max_blocks: 1, ..Limits::default() };
    assert_eq!(BundleView::parse(&bytes, &few).unwrap_err(), Error::TooManyBlocks { max: 1 });
    assert!(BundleView::parse(&bytes, &Limits { max_blocks: 2, ..Limits::default() }).is_ok());
}

#[test]
fn bp7s_own_example_is_refused_for_its_missing_age_block() {
    // The bundle in bp7's crate documentation: creation time 0 and no bundle age block, which
    // RFC 9171 4.4.2 requires.
    let bytes = [
        159, 137, 7, 26, 0, 2, 0, 4, 1, 130, 1, 109, 47, 47, 110, 111, 100, 101, 50, 47, 105, 110, 98, 111,
        120, 130, 1, 110, 47, 47, 110, 111, 100, 101, 49, 47, 49, 50, 51, 52, 53, 54, 130, 1, 110, 47, 47,
        110, 111, 100, 101, 49, 47, 49, 50, 51, 52, 53, 54, 130, 0, 0, 26, 0, 54, 238, 128, 66, 188, 152,
        134, 1, 1, 0, 1, 67, 65, 66, 67, 66, 15, 86, 255,
    ];
    assert_eq!(parse(&bytes).unwrap_err(), Error::MissingAgeBlock);
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    /// Copies a range over another place (shifts lengths and heads around).
    Splice(usize, usize, usize),
    /// Adds or subtracts a little from the byte at a position: turns lengths and small integers
    /// into neighbouring values.
    Nudge(usize, i8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any::<usize>(), 1..16usize).prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
        (any::<usize>(), -3..=3i8).prop_map(|(i, d)| Mutation::Nudge(i, d)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::FlipBit(i, b) => bytes[i % n] ^= 1 << b,
        Mutation::SetByte(i, v) => bytes[i % n] = v,
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Insert(i, v) => bytes.insert(i % (n + 1), v),
        Mutation::Remove(i) => {
            bytes.remove(i % n);
        }
        Mutation::Splice(a, b, len) => {
            let (a, b) = (a % n, b % n);
            let len = len.min(n - a).min(n - b);
            let chunk = bytes[a..a + len].to_vec();
            bytes[b..b + len].copy_from_slice(&chunk);
        }
        Mutation::Nudge(i, d) => bytes[i % n] = bytes[i % n].wrapping_add_signed(d),
    }
}

/// Whatever the parser accepts is self-consistent: the owned Repr re-emits to bytes that parse
/// back to it, with the same id as the view of the accepted bytes.
fn check_consistent(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(view) = BundleView::parse(bytes, &limits()) {
        let b = view.to_bundle();
        prop_assert_eq!(b.validate(&limits()), Ok(()));
        prop_assert_eq!(b.id(), view.id());
        prop_assert_eq!(Bundle::parse(&b.emit(), &limits()), Ok(b));
        let _ = view.forward(5, &Eid::Ipn { node: 1, service: 0 }, &limits());
    }
    let _ = forward(bytes, 1, &Eid::Ipn { node: 1, service: 0 }, &limits());
    // Without CRCs to stop them, mutations reach every later check: a
    // trusted parse must not panic either, and what it accepts, with its
    // CRCs set right, a checked parse accepts.
    if let Ok(view) = BundleView::parse_trusted(bytes, &limits()) {
        let b = view.to_bundle();
        prop_assert_eq!(b.validate(&limits()), Ok(()));
        prop_assert_eq!(Bundle::parse(&b.emit(), &limits()), Ok(b));
        let _ = view.forward(5, &Eid::Ipn { node: 1, service: 0 }, &limits());
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::config(1024))]

    #[test]
    fn mutated_bundles_never_panic(b in bundle(common::Gen { max_payload: 512, ..FULL }), ms in vec(mutation(), 1..4)) {
        let mut bytes = b.emit();
        for m in &ms {
            apply(&mut bytes, m);
        }
        check_consistent(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        check_consistent(&bytes)?;
        // Also behind a plausible bundle start, to get past the first checks.
        let mut prefixed = vec![0x9f, 0x89, 0x07];
        prefixed.extend_from_slice(&bytes);
        check_consistent(&prefixed)?;
    }

    #[test]
    fn validate_agrees_with_parse(b in bundle(FULL), me in node_eid()) {
        // A bundle built by the Repr and forwarded is still valid.
        if let Ok(next) = forward(&b.emit(), 0, &me, &limits()) {
            let parsed = Bundle::parse(&next, &limits()).unwrap();
            prop_assert_eq!(parsed.validate(&limits()), Ok(()));
        }
    }
}
