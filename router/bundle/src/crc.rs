//! The two CRCs of RFC 9171 §4.2.1: CRC-16/X.25 and CRC-32C (Castagnoli).
//!
//! A block's CRC covers the block's whole encoding with the CRC value itself read as zeros, and
//! is carried as a big-endian byte string of 2 or 4 bytes (§4.2.2).
//!
//! CRC-32C comes from the `crc32c` crate, which uses the SSE4.2 / ARMv8 CRC instructions (tens of
//! GB/s; the payload CRC is on the relay's hot path) and falls back to slice-by-8 tables.
//! CRC-16/X.25 has no instruction; it is a slice-by-8 table CRC here, tables built at compile
//! time.

use core::fmt;

/// The CRC type code of a block (RFC 9171 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CrcType {
    /// 0: no CRC.
    None,
    /// 1: CRC-16/X.25, 2 bytes.
    Crc16,
    /// 2: CRC-32C (Castagnoli), 4 bytes.
    #[default]
    Crc32c,
}

impl CrcType {
    /// The code on the wire.
    pub fn code(self) -> u64 {
        match self {
            CrcType::None => 0,
            CrcType::Crc16 => 1,
            CrcType::Crc32c => 2,
        }
    }

    /// The type for a code on the wire; `None` for codes RFC 9171 does not define.
    pub fn from_code(code: u64) -> Option<CrcType> {
        match code {
            0 => Some(CrcType::None),
            1 => Some(CrcType::Crc16),
            2 => Some(CrcType::Crc32c),
            _ => None,
        }
    }

    /// The length of the CRC value in bytes (0, 2 or 4).
    pub fn value_len(self) -> usize {
        match self {
            CrcType::None => 0,
            CrcType::Crc16 => 2,
            CrcType::Crc32c => 4,
        }
    }
}

impl fmt::Display for CrcType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CrcType::None => "no CRC",
            CrcType::Crc16 => "CRC-16/X.25",
            CrcType::Crc32c => "CRC-32C",
        })
    }
}

/// CRC-16/X.25 (a.k.a. CRC-16/IBM-SDLC): reflected polynomial 0x1021, init and final XOR 0xFFFF.
pub fn crc16_x25(data: &[u8]) -> u16 {
    Crc16::new().update(data).finish()
}

/// CRC-32C (Castagnoli), as in iSCSI and SCTP.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// An incremental CRC-16/X.25.
#[derive(Debug, Clone, Copy)]
pub struct Crc16(u16);

const CRC16_POLY_REFLECTED: u16 = 0x8408;

static CRC16_TABLES: [[u16; 256]; 8] = crc16_tables();

const fn crc16_tables() -> [[u16; 256]; 8] {
    let mut t = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ CRC16_POLY_REFLECTED } else { crc >> 1 };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    // t[j][n]: the effect of byte n followed by j zero bytes.
    let mut i = 0;
    while i < 256 {
        let mut j = 1;
        while j < 8 {
            let prev = t[j - 1][i];
            t[j][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            j += 1;
        }
        i += 1;
    }
    t
}

impl Crc16 {
    pub fn new() -> Self {
        Crc16(0xffff)
    }

    #[must_use]
    pub fn update(mut self, data: &[u8]) -> Self {
        let t = &CRC16_TABLES;
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for d in &mut chunks {
            let a = crc ^ u16::from_le_bytes([d[0], d[1]]);
            crc = t[7][usize::from(a as u8)]
                ^ t[6][usize::from(a >> 8)]
                ^ t[5][usize::from(d[2])]
                ^ t[4][usize::from(d[3])]
                ^ t[3][usize::from(d[4])]
                ^ t[2][usize::from(d[5])]
                ^ t[1][usize::from(d[6])]
                ^ t[0][usize::from(d[7])];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ t[0][usize::from((crc as u8) ^ b)];
        }
        self.0 = crc;
        self
    }

    pub fn finish(self) -> u16 {
        self.0 ^ 0xffff
    }
}

impl Default for Crc16 {
    fn default() -> Self {
        Self::new()
    }
}

/// The CRC of an encoded block whose last `crc.value_len()` bytes are its CRC value, computed
/// as if those bytes were zero (RFC 9171 §4.3.1, §4.3.2). `block` must be at least that long.
pub(crate) fn block_crc(crc: CrcType, block: &[u8]) -> u32 {
    let n = crc.value_len();
    let body = &block[..block.len() - n];
    match crc {
        CrcType::None => 0,
        CrcType::Crc16 => u32::from(Crc16::new().update(body).update(&[0, 0]).finish()),
        CrcType::Crc32c => crc32c::crc32c_append(crc32c::crc32c(body), &[0, 0, 0, 0]),
    }
}

/// Reads the CRC value at the end of an encoded block.
pub(crate) fn received_crc(crc: CrcType, block: &[u8]) -> u32 {
    let tail = &block[block.len() - crc.value_len()..];
    tail.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b))
}

/// Computes the CRC of the block just encoded at `out[start..]` (its CRC value written as
/// zeros) and writes it over those zeros.
pub(crate) fn seal(crc: CrcType, out: &mut [u8], start: usize) {
    let value = block_crc(crc, &out[start..]);
    let end = out.len();
    match crc {
        CrcType::None => {}
        CrcType::Crc16 => out[end - 2..].copy_from_slice(&(value as u16).to_be_bytes()),
        CrcType::Crc32c => out[end - 4..].copy_from_slice(&value.to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = 0xffffu16;
        for &b in data {
            crc ^= u16::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ CRC16_POLY_REFLECTED } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn check_values_from_the_crc_catalogue() {
        // The "check" values of CRC-16/IBM-SDLC (X.25) and CRC-32/ISCSI (CRC-32C).
        assert_eq!(crc16_x25(b"123456789"), 0x906e);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc16_x25(b""), 0x0000);
    }

    #[test]
    fn slice_by_8_matches_the_bitwise_definition_at_every_length_and_split() {
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc16_x25(&data[..len]), crc16_bitwise(&data[..len]), "len {len}");
        }
        for split in 0..data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(Crc16::new().update(a).update(b).finish(), crc16_bitwise(&data), "split {split}");
        }
    }

    #[test]
    fn block_crc_reads_the_value_as_zeros() {
        let mut block = b"some block".to_vec();
        block.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut zeroed = b"some block".to_vec();
        zeroed.extend_from_slice(&[0; 4]);
        assert_eq!(block_crc(CrcType::Crc32c, &block), crc32c(&zeroed));
        assert_eq!(received_crc(CrcType::Crc32c, &block), 0xdead_beef);
        let mut block16 = b"x".to_vec();
        block16.extend_from_slice(&[0, 0]);
        seal(CrcType::Crc16, &mut block16, 0);
        assert_eq!(received_crc(CrcType::Crc16, &block16), block_crc(CrcType::Crc16, &block16));
        assert_eq!(block_crc(CrcType::Crc16, &block16) as u16, crc16_x25(&[b'x', 0, 0]));
    }
}
