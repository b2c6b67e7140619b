//! A bundle encoded by hand from RFC 9171's rules, asserted byte for byte.
//!
//! The CRC values were computed with a bit-at-a-time CRC-16/X.25 and CRC-32C written apart
//! from this crate (the textbook shift-register loops, checked against the catalogue's check
//! values 0x906E and 0xE3069283 for "123456789").

use meshpay_bundle::{
    Bundle, BundleFlags, BundleId, BundleView, CrcType, CreationTimestamp, Eid, HopCount, Limits, Priority,
};

#[rustfmt::skip]
const GOLDEN: [u8; 84] = [
    0x9f,                                     // bundle: indefinite-length array (RFC 9171 4.1)
    // --- primary block (4.3.1) ---
    0x89,                                     //   array(9): not a fragment, with CRC
    0x07,                                     //   version 7
    0x04,                                     //   flags: bit 2, must not be fragmented
    0x01,                                     //   CRC type 1: CRC-16/X.25
    0x82, 0x02, 0x82, 0x02, 0x01,             //   destination [2, [2, 1]]: ipn:2.1
    0x82, 0x01, 0x68,                         //   source [1, text(8) ...
          b'/', b'/', b'n', b'1', b'/', b'p', b'a', b'y', //      "//n1/pay"]: dtn://n1/pay
    0x82, 0x01, 0x00,                         //   report-to [1, 0]: dtn:none
    0x82,                                     //   creation timestamp: array(2)
          0x1a, 0x00, 0x0f, 0x42, 0x40,       //     DTN time 1_000_000 ms (uint32)
          0x00,                               //     sequence 0
    0x1a, 0x00, 0x36, 0xee, 0x80,             //   lifetime 3_600_000 ms (uint32)
    0x42, 0x21, 0xfa,                         //   CRC: bytes(2), CRC-16/X.25 of the block with these 2 bytes zero
    // --- hop count block (4.4.3) ---
    0x86,                                     //   array(6): with CRC
    0x0a,                                     //   block type 10: hop count
    0x02,                                     //   block number 2
    0x00,                                     //   block flags: none
    0x02,                                     //   CRC type 2: CRC-32C
    0x44, 0x82, 0x18, 0x20, 0x00,             //   data: bytes(4) holding [32, 0] (limit 32, count 0)
    0x44, 0x1d, 0x19, 0x47, 0xf1,             //   CRC: bytes(4), CRC-32C
    // --- meshpay class-of-service block (private type 200) ---
    0x86,                                     //   array(6)
    0x18, 0xc8,                               //   block type 200 (uint8)
    0x03,                                     //   block number 3
    0x00,                                     //   block flags: none (so others keep it)
    0x02,                                     //   CRC type 2
    0x41, 0x02,                               //   data: bytes(1) holding 2: expedited
    0x44, 0x7d, 0xcb, 0x6e, 0xcc,             //   CRC-32C
    // --- payload block (4.3.2), last ---
    0x86,                                     //   array(6)
    0x01,                                     //   block type 1: payload
    0x01,                                     //   block number 1
    0x00,                                     //   block flags: none
    0x02,                                     //   CRC type 2
    0x45, b'h', b'e', b'l', b'l', b'o',       //   data: bytes(5) "hello"
    0x44, 0x21, 0xc1, 0x3f, 0x2f,             //   CRC-32C
    0xff,                                     // break: end of the bundle
];

fn golden_bundle() -> Bundle {
    Bundle {
        flags: BundleFlags::MUST_NOT_FRAGMENT,
        crc_type: CrcType::Crc16,
        destination: "ipn:2.1".parse().unwrap(),
        source: "dtn://n1/pay".parse().unwrap(),
        report_to: Eid::None,
        creation: CreationTimestamp { dtn_time_ms: 1_000_000, sequence: 0 },
        lifetime_ms: 3_600_000,
        hop_count: Some(HopCount { limit: 32, count: 0 }),
        age_ms: None,
        previous_node: None,
        priority: Some(Priority::Expedited),
        payload: b"hello".to_vec(),
        block_crc_type: CrcType::Crc32c,
        extensions: Vec::new(),
    }
}

#[test]
fn emit_matches_the_hand_encoding() {
    assert_eq!(golden_bundle().emit(), GOLDEN);
}

#[test]
fn parse_reads_the_hand_encoding() {
    let limits = Limits::default();
    assert_eq!(Bundle::parse(&GOLDEN, &limits), Ok(golden_bundle()));
    let view = BundleView::parse(&GOLDEN, &limits).unwrap();
    assert_eq!(view.primary_block(), &GOLDEN[1..39]);
    assert_eq!(view.payload(), b"hello");
    assert_eq!(view.source().to_string(), "dtn://n1/pay");
    // The id: BLAKE3 of the primary block's 38 bytes followed by the payload.
    let mut input = GOLDEN[1..39].to_vec();
    input.extend_from_slice(b"hello");
    assert_eq!(view.id(), BundleId(*blake3::hash(&input).as_bytes()));
}

#[test]
fn the_same_builder_call_gives_the_golden_bytes() {
    let b = Bundle::builder("dtn://n1/pay".parse().unwrap(), "ipn:2.1".parse().unwrap())
        .creation(CreationTimestamp { dtn_time_ms: 1_000_000, sequence: 0 })
        .lifetime_ms(3_600_000)
        .priority(Priority::Expedited)
        .payload(b"hello".to_vec())
        .crc_type(CrcType::Crc32c)
        .build()
        .unwrap();
    let mut b = b;
    b.crc_type = CrcType::Crc16; // the builder sets one CRC type for all blocks
    assert_eq!(b.emit(), GOLDEN);
}
