//! On-disk encodings of the store's records: small, versioned, little-endian,
//! decoded defensively (a damaged record is an error, never a panic).

use crate::StoreError;

/// A bundle id: 32 bytes (the content hash the bundle layer defines).
pub type Id = [u8; 32];

/// What the store keeps about a held bundle, beside its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleMeta {
    pub id: Id,
    pub source: String,
    pub destination: String,
    /// 0 bulk, 1 normal, 2 expedited: eviction takes the lowest first.
    pub priority: u8,
    /// Encoded bundle length in bytes.
    pub size: u32,
    /// Copies this node may still hand out (`u32::MAX`: not counted).
    pub copies: u32,
    /// When this node got it (local wall clock).
    pub received_unix_ms: u64,
    /// When this node drops it (local wall clock), from the bundle's
    /// remaining lifetime at receipt.
    pub expires_unix_ms: u64,
    /// The neighbour it came from (node key), so it is not sent back.
    pub from_peer: Option<Id>,
    /// Created on this node (never evicted silently: local submits fail
    /// with "store full" instead).
    pub local: bool,
    /// Insertion order, assigned by the store (eviction takes the oldest).
    pub seq: u64,
}

const META_VERSION: u8 = 1;

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A little cursor over a record.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }
    /// A reader of an encoded [`BundleMeta`], past its version byte.
    fn meta(buf: &'a [u8]) -> Result<Self, StoreError> {
        let mut r = Reader::new(buf, "bundle metadata");
        if r.u8()? != META_VERSION {
            return Err(StoreError::Damaged("bundle metadata (unknown version)"));
        }
        Ok(r)
    }
    fn damaged(&self) -> StoreError {
        StoreError::Damaged(self.what)
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.buf.len() < n {
            return Err(self.damaged());
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().expect("8 bytes")))
    }
    pub(crate) fn id(&mut self) -> Result<Id, StoreError> {
        Ok(self.bytes(32)?.try_into().expect("32 bytes"))
    }
    pub(crate) fn string(&mut self) -> Result<String, StoreError> {
        let n = u16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes")) as usize;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.damaged())
    }
    pub(crate) fn rest(self) -> &'a [u8] {
        self.buf
    }
}

impl BundleMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.source.len() + self.destination.len());
        out.push(META_VERSION);
        out.extend_from_slice(&self.id);
        out.push(self.priority);
        out.push(u8::from(self.local) | (u8::from(self.from_peer.is_some()) << 1));
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.copies.to_le_bytes());
        out.extend_from_slice(&self.received_unix_ms.to_le_bytes());
        out.extend_from_slice(&self.expires_unix_ms.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.from_peer.unwrap_or([0; 32]));
        put_str(&mut out, &self.source);
        put_str(&mut out, &self.destination);
        out
    }

    /// Just the id of an encoded record (it comes right after the version).
    pub(crate) fn id_of(buf: &[u8]) -> Result<Id, StoreError> {
        let mut r = Reader::meta(buf)?;
        r.id()
    }

    /// The id and the receipt time of an encoded record, without decoding
    /// its strings.
    pub(crate) fn id_and_received_of(buf: &[u8]) -> Result<(Id, u64), StoreError> {
        let mut r = Reader::meta(buf)?;
        let id = r.id()?;
        r.bytes(1 + 1 + 4 + 4)?; // priority, flags, size, copies
        Ok((id, r.u64()?))
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<BundleMeta, StoreError> {
        let mut r = Reader::meta(buf)?;
        let id = r.id()?;
        let priority = r.u8()?;
        let flags = r.u8()?;
        let size = r.u32()?;
        let copies = r.u32()?;
        let received_unix_ms = r.u64()?;
        let expires_unix_ms = r.u64()?;
        let seq = r.u64()?;
        let peer = r.id()?;
        let source = r.string()?;
        let destination = r.string()?;
        Ok(BundleMeta {
            id,
            source,
            destination,
            priority,
            size,
            copies,
            received_unix_ms,
            expires_unix_ms,
            from_peer: (flags & 2 != 0).then_some(peer),
            local: flags & 1 != 0,
            seq,
        })
    }
}

/// A payload waiting for a local application (`meshpay recv SERVICE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub service: String,
    /// Position in the service's queue; acknowledge with it.
    pub seq: u64,
    pub id: Id,
    pub source: String,
    pub received_unix_ms: u64,
    pub payload: Vec<u8>,
}

impl Delivery {
    pub(crate) fn encode_value(id: &Id, source: &str, received_unix_ms: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + source.len() + payload.len());
        out.push(1);
        out.extend_from_slice(id);
        out.extend_from_slice(&received_unix_ms.to_le_bytes());
        put_str(&mut out, source);
        out.extend_from_slice(payload);
        out
    }

    pub(crate) fn decode(service: &str, seq: u64, buf: &[u8]) -> Result<Delivery, StoreError> {
        let mut r = Reader::new(buf, "delivery");
        if r.u8()? != 1 {
            return Err(StoreError::Damaged("delivery (unknown version)"));
        }
        let id = r.id()?;
        let received_unix_ms = r.u64()?;
        let source = r.string()?;
        Ok(Delivery {
            service: service.to_owned(),
            seq,
            id,
            source,
            received_unix_ms,
            payload: r.rest().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn meta_round_trips(
            id in any::<[u8; 32]>(), src in "[a-z0-9:/~]{0,80}", dst in "[a-z0-9:/~]{0,80}",
            priority in 0u8..3, size in any::<u32>(), copies in any::<u32>(),
            rx in any::<u64>(), exp in any::<u64>(), seq in any::<u64>(),
            peer in proptest::option::of(any::<[u8; 32]>()), local in any::<bool>(),
        ) {
            let m = BundleMeta { id, source: src, destination: dst, priority, size, copies,
                received_unix_ms: rx, expires_unix_ms: exp, from_peer: peer, local, seq };
            prop_assert_eq!(BundleMeta::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn damaged_records_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = BundleMeta::decode(&bytes);
            let _ = Delivery::decode("s", 0, &bytes);
        }
    }
}
