//! # meshpay plugin ABI and SDK
//!
//! meshpay loads transport, routing and consensus plugins through one stable,
//! versioned C ABI. This crate holds three things:
//!
//! * [`ffi`]: the `#[repr(C)]` types of ABI version 1, from which the C
//!   header `include/meshpay_plugin.h` is generated (and checked in a test);
//! * [`sdk`]: a safe Rust SDK for writing plugins: the [`sdk::TransportPlugin`],
//!   [`sdk::RoutingPlugin`] and [`sdk::ConsensusPlugin`] traits, host wrappers,
//!   and the [`meshpay_plugin!`] / [`export_plugin_entry!`] macros, with every
//!   entry point guarded by `catch_unwind` (a panic becomes `MP_ERR_PANIC`,
//!   never an abort of the router);
//! * small helpers both sides share: [`read_sized`] for size-checked reads of
//!   tables that may come from an older or newer peer, and conversions between
//!   [`ffi::MpStr`]/[`ffi::MpBytes`] and Rust slices.
//!
//! A plugin crate usually is an `rlib` (so the router can link it in as a
//! built-in) plus a three-line `cdylib` wrapper crate that calls
//! [`export_plugin_entry!`]: a library that exports the entry symbol cannot be
//! linked into the router next to another one.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod ffi;
pub mod sdk;
mod views;

use core::ffi::c_char;
use core::mem::{MaybeUninit, offset_of, size_of};

pub use ffi::*;
pub use views::{BundleInfo, LinkEvent, OutBundle, PeerInfo, SignedMessage};

/// Interface id of [`ffi::MpTransportV1`].
pub const INTERFACE_TRANSPORT_V1: &str = "meshpay.transport/1";
/// Interface id of [`ffi::MpRoutingV1`].
pub const INTERFACE_ROUTING_V1: &str = "meshpay.routing/1";
/// Interface id of [`ffi::MpConsensusV1`].
pub const INTERFACE_CONSENSUS_V1: &str = "meshpay.consensus/1";
/// The one symbol a plugin library exports.
pub const ENTRY_SYMBOL: &str = "meshpay_plugin_entry";

/// The ABI version this crate implements.
pub const ABI_VERSION: MpVersion = MpVersion { major: MP_ABI_MAJOR, minor: MP_ABI_MINOR };

/// A table that starts with `u32 struct_size` and only grows.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, start with a `u32` size field, and be
/// valid when zero-filled (every field an integer, raw pointer or
/// `Option<fn>`).
pub unsafe trait SizedTable: Copy {
    /// The size of the table in ABI 1.0: the smallest `struct_size` a peer
    /// may send. Fields after it are read only when `struct_size` covers them.
    const MIN_SIZE: usize;
}

/// End offset of a field, for [`SizedTable::MIN_SIZE`].
#[doc(hidden)]
pub const fn field_end<T, F>(offset: usize, _field: fn(&T) -> &F) -> usize {
    offset + size_of::<F>()
}

macro_rules! sized_table {
    ($($t:ty => $last_v1_0_field:ident),* $(,)?) => {$(
        unsafe impl SizedTable for $t {
            const MIN_SIZE: usize = field_end(
                offset_of!($t, $last_v1_0_field),
                |t: &$t| &t.$last_v1_0_field,
            );
        }
    )*};
}

// The last field each table had in ABI 1.0. Appending fields never changes
// these lines.
sized_table! {
    MpPluginEntry => get_interface,
    MpOutBundle => lifetime_ms,
    MpBundleInfo => payload,
    MpPeerInfo => reserved,
    MpLinkEvent => reserved,
    MpBytesSink => write,
    MpForwardSink => forward,
    MpKvVisitor => visit,
    MpHost => get_extension,
    MpTransportHost => link_event,
    MpTransportV1 => on_timer,
    MpRoutingHost => send_control,
    MpRoutingV1 => on_fd,
    MpConsensusHost => kv_scan,
    MpConsensusV1 => on_fd,
}

/// Why a table from the other side was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The pointer was NULL.
    Null,
    /// `struct_size` is smaller than the table was in ABI 1.0.
    TooSmall { struct_size: u32, min_size: usize },
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::Null => write!(f, "null table pointer"),
            TableError::TooSmall { struct_size, min_size } => {
                write!(f, "struct_size {struct_size} is smaller than the ABI 1.0 size {min_size}")
            }
        }
    }
}

/// Reads a table the other side filled in, honouring its `struct_size`.
///
/// Copies `min(struct_size, size_of::<T>())` bytes into a zero-filled `T`:
/// fields the other side does not have (it was built against an older minor)
/// read as zero, that is NULL or "absent"; fields it has and we do not know
/// (it is newer) are ignored.
///
/// # Safety
/// `ptr` must be NULL or point to at least `struct_size` readable bytes.
#[inline]
pub unsafe fn read_sized<T: SizedTable>(ptr: *const T) -> Result<T, TableError> {
    if ptr.is_null() {
        return Err(TableError::Null);
    }
    // SAFETY: every table starts with a u32 struct_size.
    let struct_size = unsafe { (ptr as *const u32).read_unaligned() };
    if (struct_size as usize) < T::MIN_SIZE {
        return Err(TableError::TooSmall { struct_size, min_size: T::MIN_SIZE });
    }
    let n = (struct_size as usize).min(size_of::<T>());
    let mut out = MaybeUninit::<T>::zeroed();
    // SAFETY: the caller guarantees `n <= struct_size` readable bytes; a
    // zero-filled T is valid (SizedTable contract) and the copy leaves it so.
    unsafe {
        core::ptr::copy_nonoverlapping(ptr as *const u8, out.as_mut_ptr() as *mut u8, n);
        Ok(out.assume_init())
    }
}

/// The `struct_size` value for a table built by this crate.
pub const fn table_size<T: SizedTable>() -> u32 {
    size_of::<T>() as u32
}

impl MpStr {
    /// An empty string.
    pub const EMPTY: MpStr = MpStr { ptr: core::ptr::null(), len: 0 };

    /// Borrows a Rust string; the result is valid as long as `s`.
    #[inline]
    pub const fn new(s: &str) -> MpStr {
        MpStr { ptr: s.as_ptr() as *const c_char, len: s.len() }
    }

    /// The bytes of the string.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or `len` be 0) for `'a`.
    #[inline]
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { core::slice::from_raw_parts(self.ptr as *const u8, self.len) }
        }
    }

    /// The string, if it is valid UTF-8 (the ABI requires it; a peer that
    /// breaks the rule gets `MP_ERR_INVALID`, not undefined behaviour).
    ///
    /// # Safety
    /// As [`MpStr::as_bytes`].
    #[inline]
    pub unsafe fn to_str<'a>(self) -> Result<&'a str, core::str::Utf8Error> {
        core::str::from_utf8(unsafe { self.as_bytes() })
    }
}

impl MpBytes {
    /// An empty buffer.
    pub const EMPTY: MpBytes = MpBytes { ptr: core::ptr::null(), len: 0 };

    /// Borrows a slice; the result is valid as long as `b`.
    #[inline]
    pub const fn new(b: &[u8]) -> MpBytes {
        MpBytes { ptr: b.as_ptr(), len: b.len() }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes (or `len` be 0) for `'a`.
    #[inline]
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

impl core::fmt::Display for MpVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Names of the `MP_ERR_*` codes, for logs.
pub fn status_name(status: MpStatus) -> &'static str {
    match status {
        MP_OK => "MP_OK",
        MP_ERR_FAILED => "MP_ERR_FAILED",
        MP_ERR_AGAIN => "MP_ERR_AGAIN",
        MP_ERR_UNSUPPORTED => "MP_ERR_UNSUPPORTED",
        MP_ERR_INVALID => "MP_ERR_INVALID",
        MP_ERR_NOT_FOUND => "MP_ERR_NOT_FOUND",
        MP_ERR_FULL => "MP_ERR_FULL",
        MP_ERR_PANIC => "MP_ERR_PANIC",
        _ => "unknown status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_sized_zero_fills_fields_an_older_peer_lacks() {
        let full = MpLinkEvent {
            struct_size: table_size::<MpLinkEvent>(),
            kind: MP_LINK_UP,
            peer: MpStr::new("p"),
            metric: 7,
            signal_dbm: -40,
            mtu: 1500,
            reserved: 9,
        };
        // Pretend the sender's table ended right after `mtu`... which is
        // smaller than 1.0 allows, so it is refused.
        let mut short = full;
        short.struct_size = offset_of!(MpLinkEvent, mtu) as u32;
        assert_eq!(
            unsafe { read_sized(&short) }.unwrap_err(),
            TableError::TooSmall { struct_size: short.struct_size, min_size: MpLinkEvent::MIN_SIZE }
        );
        let got = unsafe { read_sized(&full) }.unwrap();
        assert_eq!((got.kind, got.metric, got.mtu, got.reserved), (MP_LINK_UP, 7, 1500, 9));
        assert!(unsafe { read_sized::<MpLinkEvent>(core::ptr::null()) }.is_err());
    }

    #[test]
    fn read_sized_ignores_a_newer_peers_extra_bytes() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Newer {
            table: MpPeerInfo,
            added_in_1_1: u64,
        }
        let newer = Newer {
            table: MpPeerInfo {
                struct_size: size_of::<Newer>() as u32,
                link_metric: 3,
                node: MpStr::new("dtn://n/"),
                signal_dbm: -50,
                reserved: 0,
            },
            added_in_1_1: u64::MAX,
        };
        let got = unsafe { read_sized(&newer.table as *const MpPeerInfo) }.unwrap();
        assert_eq!(got.link_metric, 3);
        assert_eq!(unsafe { got.node.to_str() }.unwrap(), "dtn://n/");
    }

    #[test]
    fn min_sizes_are_the_1_0_tables() {
        // Tables nothing was appended to: the 1.0 size is the full size up
        // to trailing padding.
        fn check<T: SizedTable>() {
            let align = core::mem::align_of::<T>();
            assert_eq!(T::MIN_SIZE.div_ceil(align) * align, size_of::<T>());
        }
        check::<MpPluginEntry>();
        check::<MpHost>();
        check::<MpTransportV1>();
        check::<MpRoutingV1>();
        check::<MpBundleInfo>();
        check::<MpLinkEvent>();
        check::<MpConsensusHost>();
        // 1.1 appended two pointers to the consensus table: its 1.0 size
        // ends where they start.
        assert_eq!(MpConsensusV1::MIN_SIZE, offset_of!(MpConsensusV1, on_bundles));
        assert_eq!(
            size_of::<MpConsensusV1>(),
            MpConsensusV1::MIN_SIZE + 2 * size_of::<Option<unsafe extern "C" fn()>>()
        );
    }

    unsafe extern "C" fn never_on_bundles(
        _: *mut core::ffi::c_void,
        _: *const *const MpBundleInfo,
        _: usize,
        _: *mut MpStatus,
    ) -> MpStatus {
        unreachable!("a field beyond struct_size was read")
    }

    unsafe extern "C" fn never_prepare(
        _: *mut core::ffi::c_void,
        _: *const *const MpBundleInfo,
        _: usize,
    ) -> MpStatus {
        unreachable!("a field beyond struct_size was read")
    }

    #[test]
    fn a_1_0_consensus_table_reads_without_the_1_1_functions() {
        // A 1.0 plugin's table is followed by unrelated memory; model it
        // with non-null pointers right where 1.1 put its fields.
        let mut table = MpConsensusV1 {
            struct_size: MpConsensusV1::MIN_SIZE as u32,
            flags: 0,
            create: None,
            destroy: None,
            on_bundle: None,
            on_control: None,
            on_timer: None,
            on_fd: None,
            on_bundles: Some(never_on_bundles),
            prepare_bundles: Some(never_prepare),
        };
        let got = unsafe { read_sized(&table) }.unwrap();
        assert!(got.on_bundles.is_none() && got.prepare_bundles.is_none());
        // Covering only the first of the two new fields reads only it.
        table.struct_size = offset_of!(MpConsensusV1, prepare_bundles) as u32;
        let got = unsafe { read_sized(&table) }.unwrap();
        assert!(got.on_bundles.is_some() && got.prepare_bundles.is_none());
        table.struct_size = table_size::<MpConsensusV1>();
        let got = unsafe { read_sized(&table) }.unwrap();
        assert!(got.on_bundles.is_some() && got.prepare_bundles.is_some());
    }
}
