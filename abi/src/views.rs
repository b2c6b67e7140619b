//! Borrowed Rust views of the ABI's data tables, with symmetric conversions:
//! `as_raw` builds the C table (borrowing from the view), `from_raw` reads one
//! (size-checked, UTF-8-checked). The host uses the first, plugins the second.

use crate::ffi::*;
use crate::{SizedTable, TableError, read_sized, table_size};

/// Why a table from the other side could not be turned into a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewError {
    Table(TableError),
    /// A string field is not UTF-8; names the field.
    NotUtf8(&'static str),
}

impl core::fmt::Display for ViewError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ViewError::Table(e) => e.fmt(f),
            ViewError::NotUtf8(field) => write!(f, "field `{field}` is not UTF-8"),
        }
    }
}

impl From<TableError> for ViewError {
    fn from(e: TableError) -> Self {
        ViewError::Table(e)
    }
}

unsafe fn str_field<'a>(s: MpStr, name: &'static str) -> Result<&'a str, ViewError> {
    unsafe { s.to_str() }.map_err(|_| ViewError::NotUtf8(name))
}

unsafe fn read<T: SizedTable>(p: *const T) -> Result<T, ViewError> {
    Ok(unsafe { read_sized(p) }?)
}

/// A bundle as routing and consensus plugins see it ([`MpBundleInfo`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleInfo<'a> {
    pub id: &'a [u8],
    pub source: &'a str,
    pub destination: &'a str,
    pub priority: u32,
    pub created_ms: u64,
    pub lifetime_ms: u64,
    pub age_ms: u64,
    pub payload_len: u64,
    pub hop_count: u32,
    /// Copies this node may still hand out, `MP_COPIES_UNLIMITED` if not counted.
    pub copies: u32,
    /// Empty unless the call carries the payload.
    pub payload: &'a [u8],
}

impl<'a> BundleInfo<'a> {
    pub fn as_raw(&self) -> MpBundleInfo {
        MpBundleInfo {
            struct_size: table_size::<MpBundleInfo>(),
            priority: self.priority,
            id: MpBytes::new(self.id),
            source: MpStr::new(self.source),
            destination: MpStr::new(self.destination),
            created_ms: self.created_ms,
            lifetime_ms: self.lifetime_ms,
            age_ms: self.age_ms,
            payload_len: self.payload_len,
            hop_count: self.hop_count,
            copies: self.copies,
            payload: MpBytes::new(self.payload),
        }
    }

    /// # Safety
    /// `p` must be NULL or a valid table whose buffers live for `'a`.
    pub unsafe fn from_raw(p: *const MpBundleInfo) -> Result<Self, ViewError> {
        let r = unsafe { read(p) }?;
        Ok(BundleInfo {
            id: unsafe { r.id.as_slice() },
            source: unsafe { str_field(r.source, "source") }?,
            destination: unsafe { str_field(r.destination, "destination") }?,
            priority: r.priority,
            created_ms: r.created_ms,
            lifetime_ms: r.lifetime_ms,
            age_ms: r.age_ms,
            payload_len: r.payload_len,
            hop_count: r.hop_count,
            copies: r.copies,
            payload: unsafe { r.payload.as_slice() },
        })
    }
}

/// A neighbour as routing plugins see it ([`MpPeerInfo`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo<'a> {
    /// The neighbour's node endpoint.
    pub node: &'a str,
    /// Lower is better; `None` if the link has no metric.
    pub link_metric: Option<u32>,
    pub signal_dbm: Option<i32>,
}

impl<'a> PeerInfo<'a> {
    pub fn as_raw(&self) -> MpPeerInfo {
        MpPeerInfo {
            struct_size: table_size::<MpPeerInfo>(),
            link_metric: self.link_metric.unwrap_or(MP_METRIC_UNKNOWN),
            node: MpStr::new(self.node),
            signal_dbm: self.signal_dbm.unwrap_or(MP_SIGNAL_UNKNOWN),
            reserved: 0,
        }
    }

    /// # Safety
    /// `p` must be NULL or a valid table whose strings live for `'a`.
    pub unsafe fn from_raw(p: *const MpPeerInfo) -> Result<Self, ViewError> {
        let r = unsafe { read(p) }?;
        Ok(PeerInfo {
            node: unsafe { str_field(r.node, "node") }?,
            link_metric: (r.link_metric != MP_METRIC_UNKNOWN).then_some(r.link_metric),
            signal_dbm: (r.signal_dbm != MP_SIGNAL_UNKNOWN).then_some(r.signal_dbm),
        })
    }
}

/// A link change reported by a transport ([`MpLinkEvent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEvent<'a> {
    /// `MP_LINK_UP`, `MP_LINK_DOWN` or `MP_LINK_UPDATE`.
    pub kind: u32,
    pub peer: &'a str,
    pub metric: Option<u32>,
    pub signal_dbm: Option<i32>,
    /// Largest frame in one piece, if known.
    pub mtu: Option<u32>,
}

impl<'a> LinkEvent<'a> {
    pub fn as_raw(&self) -> MpLinkEvent {
        MpLinkEvent {
            struct_size: table_size::<MpLinkEvent>(),
            kind: self.kind,
            peer: MpStr::new(self.peer),
            metric: self.metric.unwrap_or(MP_METRIC_UNKNOWN),
            signal_dbm: self.signal_dbm.unwrap_or(MP_SIGNAL_UNKNOWN),
            mtu: self.mtu.unwrap_or(0),
            reserved: 0,
        }
    }

    /// # Safety
    /// `p` must be NULL or a valid table whose strings live for `'a`.
    pub unsafe fn from_raw(p: *const MpLinkEvent) -> Result<Self, ViewError> {
        let r = unsafe { read(p) }?;
        Ok(LinkEvent {
            kind: r.kind,
            peer: unsafe { str_field(r.peer, "peer") }?,
            metric: (r.metric != MP_METRIC_UNKNOWN).then_some(r.metric),
            signal_dbm: (r.signal_dbm != MP_SIGNAL_UNKNOWN).then_some(r.signal_dbm),
            mtu: (r.mtu != 0).then_some(r.mtu),
        })
    }
}

/// A bundle a plugin asks the host to emit ([`MpOutBundle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutBundle<'a> {
    pub destination: &'a str,
    pub source_service: &'a str,
    pub payload: &'a [u8],
    pub priority: u32,
    /// 0: the host's default.
    pub lifetime_ms: u64,
}

impl<'a> OutBundle<'a> {
    pub fn as_raw(&self) -> MpOutBundle {
        MpOutBundle {
            struct_size: table_size::<MpOutBundle>(),
            priority: self.priority,
            destination: MpStr::new(self.destination),
            source_service: MpStr::new(self.source_service),
            payload: MpBytes::new(self.payload),
            lifetime_ms: self.lifetime_ms,
        }
    }

    /// # Safety
    /// `p` must be NULL or a valid table whose buffers live for `'a`.
    pub unsafe fn from_raw(p: *const MpOutBundle) -> Result<Self, ViewError> {
        let r = unsafe { read(p) }?;
        Ok(OutBundle {
            destination: unsafe { str_field(r.destination, "destination") }?,
            source_service: unsafe { str_field(r.source_service, "source_service") }?,
            payload: unsafe { r.payload.as_slice() },
            priority: r.priority,
            lifetime_ms: r.lifetime_ms,
        })
    }
}

/// One signature to check in a batch ([`MpSignedMessage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedMessage<'a> {
    pub public_key: &'a [u8; 32],
    pub message: &'a [u8],
    pub signature: &'a [u8; 64],
}

impl<'a> SignedMessage<'a> {
    pub fn as_raw(&self) -> MpSignedMessage {
        MpSignedMessage {
            public_key: self.public_key.as_ptr(),
            message: MpBytes::new(self.message),
            signature: self.signature.as_ptr(),
        }
    }

    /// # Safety
    /// The pointers in `r` must be valid for `'a` (32 and 64 bytes for key and
    /// signature), or NULL, which is refused.
    pub unsafe fn from_raw(r: &MpSignedMessage) -> Option<Self> {
        if r.public_key.is_null() || r.signature.is_null() {
            return None;
        }
        Some(SignedMessage {
            public_key: unsafe { &*(r.public_key as *const [u8; 32]) },
            message: unsafe { r.message.as_slice() },
            signature: unsafe { &*(r.signature as *const [u8; 64]) },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_info_round_trips_through_the_c_table() {
        let b = BundleInfo {
            id: &[1, 2, 3],
            source: "dtn://a/",
            destination: "dtn://~authorities/quorum",
            priority: 2,
            created_ms: 1,
            lifetime_ms: 2,
            age_ms: 3,
            payload_len: 4,
            hop_count: 5,
            copies: MP_COPIES_UNLIMITED,
            payload: b"data",
        };
        let raw = b.as_raw();
        assert_eq!(unsafe { BundleInfo::from_raw(&raw) }.unwrap(), b);
    }

    #[test]
    fn views_round_trip_and_refuse_bad_utf8() {
        let p = PeerInfo { node: "dtn://b/", link_metric: Some(8193), signal_dbm: None };
        assert_eq!(unsafe { PeerInfo::from_raw(&p.as_raw()) }.unwrap(), p);
        let l = LinkEvent {
            kind: MP_LINK_DOWN,
            peer: "[fe80::1%eth0]:4556",
            metric: None,
            signal_dbm: Some(-61),
            mtu: Some(1500),
        };
        assert_eq!(unsafe { LinkEvent::from_raw(&l.as_raw()) }.unwrap(), l);
        let o = OutBundle {
            destination: "dtn://c/x",
            source_service: "x",
            payload: &[0; 3],
            priority: 1,
            lifetime_ms: 0,
        };
        assert_eq!(unsafe { OutBundle::from_raw(&o.as_raw()) }.unwrap(), o);

        let bad = [0xffu8, 0xfe];
        let mut raw = p.as_raw();
        raw.node = MpStr { ptr: bad.as_ptr() as *const _, len: 2 };
        assert_eq!(unsafe { PeerInfo::from_raw(&raw) }, Err(ViewError::NotUtf8("node")));
    }
}
