//! Proptest strategies for valid bundles, shared by the integration tests.
#![allow(dead_code)]

use meshpay_bundle::{
    BLOCK_INTEGRITY_BLOCK, BlockFlags, Bundle, BundleFlags, CrcType, CreationTimestamp, Eid, ExtensionBlock,
    HopCount, Limits, Priority, is_known_type,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// Options for the bundle strategy: the bp7 interop tests need what bp7 can represent.
#[derive(Clone, Copy)]
pub struct Gen {
    /// Largest payload.
    pub max_payload: usize,
    /// Only flags RFC 9171 defines (bp7 refuses reserved bits), block flags below 256.
    pub defined_flags_only: bool,
    /// Allow primary blocks without CRC (with a BIB stand-in).
    pub primary_without_crc: bool,
}

pub const FULL: Gen = Gen { max_payload: 64 * 1024, defined_flags_only: false, primary_without_crc: true };
pub const BP7: Gen = Gen { max_payload: 4 * 1024, defined_flags_only: true, primary_without_crc: false };

pub fn crc_type() -> impl Strategy<Value = CrcType> {
    prop_oneof![Just(CrcType::None), Just(CrcType::Crc16), Just(CrcType::Crc32c)]
}

pub fn node_name() -> impl Strategy<Value = String> {
    prop_oneof!["([A-Za-z0-9._~!$&'()*+,;=-]|%[0-9a-fA-F]{2}){1,24}", "[0-9a-f]{64}", "~[a-z]{1,12}",]
}

pub fn dtn_eid() -> impl Strategy<Value = Eid> {
    (node_name(), "[!-~]{0,24}").prop_map(|(node, demux)| Eid::Dtn { node, demux })
}

pub fn ipn_eid() -> impl Strategy<Value = Eid> {
    (any::<u64>(), any::<u64>(), 0..4u8).prop_map(|(node, service, small)| {
        // Small numbers too: they take the short CBOR forms.
        let (node, service) = if small == 0 { (node % 30, service % 30) } else { (node, service) };
        let node = node.max(1);
        Eid::Ipn { node, service }
    })
}

/// A valid EID that is not `dtn:none`.
pub fn node_eid() -> impl Strategy<Value = Eid> {
    prop_oneof![dtn_eid(), ipn_eid()]
}

pub fn any_eid() -> impl Strategy<Value = Eid> {
    prop_oneof![1 => Just(Eid::None), 4 => node_eid()]
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..300), vec(any::<u8>(), 0..=max)]
}

fn extension(opts: Gen) -> impl Strategy<Value = ExtensionBlock> {
    let flags = if opts.defined_flags_only {
        prop_oneof![Just(0u64), Just(0x01), Just(0x02), Just(0x10), Just(0x13)].boxed()
    } else {
        any::<u64>().boxed()
    };
    (
        prop_oneof![
            Just(BLOCK_INTEGRITY_BLOCK),
            Just(12u64),
            2..=5u64,
            8..=9u64,
            11..=192u64,
            193..=255u64,
            any::<u64>()
        ],
        2..40u64,
        flags,
        crc_type(),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(block_type, number, flags, crc_type, data)| ExtensionBlock {
            block_type,
            number,
            flags: BlockFlags(flags).without(BlockFlags::DELETE_BUNDLE_IF_UNPROCESSABLE),
            crc_type,
            data,
        })
}

prop_compose! {
    fn bundle_parts(opts: Gen)(
        destination in node_eid(),
        source in any_eid(),
        report_to in any_eid(),
        flags in any::<u64>(),
        crc in crc_type(),
        block_crc in crc_type(),
        no_clock in any::<bool>(),
        dtn_time in any::<u64>(),
        sequence in prop_oneof![0..10u64, any::<u64>()],
        lifetime in any::<u64>(),
        hop in proptest::option::of((1..=255u8, any::<u8>())),
        age in proptest::option::of(any::<u64>()),
        previous_node in proptest::option::of(node_eid()),
        priority in proptest::option::of(prop_oneof![Just(Priority::Bulk), Just(Priority::Normal), Just(Priority::Expedited)]),
        payload in payload(opts.max_payload),
        extensions in vec(extension(opts), 0..6),
        bib in vec(any::<u8>(), 0..40),
    ) -> Bundle {
        let mut flags = BundleFlags(flags).without(BundleFlags::IS_FRAGMENT);
        if opts.defined_flags_only {
            flags = flags & (BundleFlags(0x02 | 0x04 | 0x20 | 0x40) | BundleFlags::ANY_REPORT);
        }
        if flags.contains(BundleFlags::ADMIN_RECORD) {
            flags = flags.without(BundleFlags::ANY_REPORT);
        }
        if source == Eid::None {
            flags = (flags | BundleFlags::MUST_NOT_FRAGMENT).without(BundleFlags::ANY_REPORT);
        }
        let no_reports = flags.contains(BundleFlags::ADMIN_RECORD) || source == Eid::None;
        let mut exts: Vec<ExtensionBlock> = Vec::new();
        for mut e in extensions {
            if is_known_type(e.block_type) || exts.iter().any(|o| o.number == e.number) {
                continue;
            }
            if no_reports {
                e.flags = e.flags.without(BlockFlags::REPORT_IF_UNPROCESSABLE);
            }
            exts.push(e);
        }
        let crc_type = if crc == CrcType::None && !opts.primary_without_crc { CrcType::Crc32c } else { crc };
        if crc_type == CrcType::None && !exts.iter().any(|e| e.block_type == BLOCK_INTEGRITY_BLOCK) {
            let number = (2..).find(|n| exts.iter().all(|e| e.number != *n)).unwrap();
            exts.push(ExtensionBlock {
                block_type: BLOCK_INTEGRITY_BLOCK,
                number,
                flags: BlockFlags::empty(),
                crc_type: CrcType::None,
                data: bib,
            });
        }
        let creation = CreationTimestamp { dtn_time_ms: if no_clock { 0 } else { dtn_time.max(1) }, sequence };
        let age_ms = if no_clock { Some(age.unwrap_or(0)) } else { age };
        Bundle {
            flags,
            crc_type,
            destination,
            source,
            report_to,
            creation,
            lifetime_ms: lifetime,
            hop_count: hop.map(|(limit, count)| HopCount { limit, count: (u16::from(count) % (u16::from(limit) + 1)) as u8 }),
            age_ms,
            previous_node,
            priority,
            payload,
            block_crc_type: block_crc,
            extensions: exts,
        }
    }
}

/// Arbitrary valid bundles (the tests assert they validate: no filtering hides a generator bug).
pub fn bundle(opts: Gen) -> impl Strategy<Value = Bundle> {
    bundle_parts(opts)
}

pub fn limits() -> Limits {
    Limits::default()
}

/// Proptest settings: `cases` cases (or `PROPTEST_CASES` for a longer run), and no regression
/// files (proptest cannot place them for tests in `tests/`; a failure prints its minimal input,
/// which is what to turn into a test).
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}
