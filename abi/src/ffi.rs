//! The meshpay plugin ABI, version 1: the `#[repr(C)]` types every plugin and
//! the router agree on.
//!
//! This file is the single source of truth for `abi/include/meshpay_plugin.h`
//! (cbindgen reads it; `cargo test -p meshpay-abi --test header` fails when
//! the committed header differs). Everything here is plain data and function
//! pointer types, so a plugin can be written in C against the header alone.
//!
//! # Rules that keep the ABI stable
//!
//! * **Every table starts with `struct_size`** and only ever grows at the end.
//!   Whoever reads a table from the other side checks `struct_size` before
//!   touching a field (`MP_HAS_FIELD` in C, [`crate::read_sized`] in Rust);
//!   a field beyond `struct_size` reads as zero: NULL, 0 or "absent".
//! * **Function pointers are nullable**. Optional ones say so; required ones
//!   make the router refuse the plugin at load time when NULL.
//! * **Arrays of growable structs are passed as arrays of pointers**: a plugin
//!   built against an older, smaller struct would otherwise index with the
//!   wrong stride.
//! * **Versions**: a plugin declares the ABI major.minor it was built against.
//!   The router refuses another major before calling anything but the entry
//!   function; an older minor loads (the router reads only what the sizes say
//!   is there). New capabilities arrive as new interface ids (`/2`) or as
//!   fields appended to a table.
//! * **Memory**: a pointer passed into a call is borrowed for that call only;
//!   the callee copies what it keeps. What a plugin hands back, it writes
//!   through a host-provided sink (`MpBytesSink`, `MpForwardSink`), so no side
//!   ever frees what the other allocated. Strings are UTF-8 with a length
//!   (`MpStr`) and are not NUL-terminated.
//! * **Threads**: the host never calls one plugin instance from two threads at
//!   once, with one documented exception: a plugin function marked
//!   *thread-safe* (`MpConsensusV1.prepare_bundles`, 1.1) may run on another
//!   thread while a call of the same instance runs. Host functions marked
//!   *thread-safe* may be called from any thread at any time between `create`
//!   and the return of `destroy`; all others only from inside a call the host
//!   made into that instance on the host thread ("host thread").
//! * **Failure**: functions return an `MpStatus`. A plugin must never let a
//!   panic or C++ exception cross the boundary (the Rust SDK guards every entry
//!   point); `MP_ERR_PANIC` makes the host disable the instance.
//! * **Trust**: plugins run inside the router process with its privileges.
//!   The ABI protects against mistakes (version skew, panics), not malice.

use core::ffi::{c_char, c_void};

/// ABI major version. Plugins with another major are refused.
pub const MP_ABI_MAJOR: u16 = 1;
/// ABI minor version of this header. Plugins with an older minor load.
///
/// * 1.0: the first release.
/// * 1.1: `MpConsensusV1.on_bundles` and `MpConsensusV1.prepare_bundles`
///   (batched delivery to consensus plugins).
pub const MP_ABI_MINOR: u16 = 1;

/// Status code returned by most ABI functions: zero is success, negative
/// values are errors.
pub type MpStatus = i32;
/// Success.
pub const MP_OK: MpStatus = 0;
/// Unspecified failure; the callee logged the reason through the host.
pub const MP_ERR_FAILED: MpStatus = -1;
/// Try again later: a non-blocking operation would block, or a readiness
/// handler has drained its file descriptor.
pub const MP_ERR_AGAIN: MpStatus = -2;
/// The operation or interface is not supported by this side.
pub const MP_ERR_UNSUPPORTED: MpStatus = -3;
/// An argument or the configuration is invalid, or an input was refused.
pub const MP_ERR_INVALID: MpStatus = -4;
/// The requested item does not exist.
pub const MP_ERR_NOT_FOUND: MpStatus = -5;
/// A queue or quota is full; the item was dropped (and counted).
pub const MP_ERR_FULL: MpStatus = -6;
/// The plugin caught a panic. The host disables the instance and never calls
/// it again.
pub const MP_ERR_PANIC: MpStatus = -7;

/// Log levels for `MpHost.log`.
pub type MpLogLevel = i32;
pub const MP_LOG_ERROR: MpLogLevel = 1;
pub const MP_LOG_WARN: MpLogLevel = 2;
pub const MP_LOG_INFO: MpLogLevel = 3;
pub const MP_LOG_DEBUG: MpLogLevel = 4;
pub const MP_LOG_TRACE: MpLogLevel = 5;

/// Plugin kinds, a bit set in `MpPluginEntry.kinds`.
pub const MP_KIND_TRANSPORT: u32 = 1;
pub const MP_KIND_ROUTING: u32 = 2;
pub const MP_KIND_CONSENSUS: u32 = 4;

/// Transport modes, in `MpTransportV1.flags` (exactly one is set).
///
/// POLL_FD: the plugin registers its file descriptors with `MpHost.watch_fd`
/// and does its I/O inside `on_fd`, on the host thread. Preferred: no extra
/// threads on small routers.
pub const MP_TRANSPORT_POLL_FD: u32 = 1;
/// OWN_THREAD: the plugin runs its own thread(s) and calls the thread-safe
/// `MpTransportHost.deliver` and `link_event` from them.
pub const MP_TRANSPORT_OWN_THREAD: u32 = 2;

/// File descriptor interest and readiness bits for `watch_fd` and `on_fd`.
pub const MP_FD_READABLE: u32 = 1;
pub const MP_FD_WRITABLE: u32 = 2;

/// Link and contact changes (`MpLinkEvent.kind`, `MpRoutingV1.on_contact`).
pub const MP_LINK_UP: u32 = 1;
pub const MP_LINK_DOWN: u32 = 2;
/// The link is still up; its metric or signal changed.
pub const MP_LINK_UPDATE: u32 = 3;

/// Metric or signal value meaning "unknown".
pub const MP_METRIC_UNKNOWN: u32 = 0;
pub const MP_SIGNAL_UNKNOWN: i32 = i32::MIN;

/// `MpRoutingV1.initial_copies` result meaning "no copy limit".
pub const MP_COPIES_UNLIMITED: u32 = u32::MAX;

/// Ed25519 key and signature lengths, in bytes.
pub const MP_PUBLIC_KEY_LEN: usize = 32;
pub const MP_SIGNATURE_LEN: usize = 64;

/// A version pair.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MpVersion {
    pub major: u16,
    pub minor: u16,
}

/// A UTF-8 string with a length. Not NUL-terminated. `ptr` may be NULL only
/// when `len` is 0. Ownership is stated wherever an `MpStr` appears.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpStr {
    pub ptr: *const c_char,
    pub len: usize,
}

/// A byte buffer with a length. `ptr` may be NULL only when `len` is 0.
/// Ownership is stated wherever an `MpBytes` appears.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpBytes {
    pub ptr: *const u8,
    pub len: usize,
}

/// What `meshpay_plugin_entry()` returns: the plugin's descriptor.
///
/// Owned by the plugin library, static, valid until the library is unloaded
/// (the router unloads only after every instance is destroyed). All strings
/// likewise.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpPluginEntry {
    /// `sizeof(MpPluginEntry)` as the plugin was built.
    pub struct_size: u32,
    /// The ABI the plugin was built against: `{MP_ABI_MAJOR, MP_ABI_MINOR}`.
    pub abi: MpVersion,
    /// `MP_KIND_*` bits: which interfaces `get_interface` serves.
    pub kinds: u32,
    /// Reverse-DNS identifier, unique per plugin: `"org.example.transport.lora"`.
    pub id: MpStr,
    /// Human-readable name.
    pub name: MpStr,
    /// The plugin's own version (semver recommended).
    pub version: MpStr,
    /// Who ships it.
    pub vendor: MpStr,
    /// One line on what it does. May be empty.
    pub description: MpStr,
    /// Required. Returns the function table for an interface id such as
    /// `"meshpay.transport/1"`, or NULL when not served. The table is owned by
    /// the plugin and static. Thread-safe; must not do anything else.
    pub get_interface: Option<unsafe extern "C" fn(interface_id: MpStr) -> *const c_void>,
}

/// The type of the one exported symbol, `meshpay_plugin_entry` (declared in
/// the header). It must only return a pointer to a static `MpPluginEntry`:
/// the router calls it before checking versions.
pub type MpPluginEntryFn = unsafe extern "C" fn() -> *const MpPluginEntry;

/// One message and its Ed25519 signature, for `MpHost.verify_batch`.
/// Frozen: this struct never grows (it is passed in arrays); a new layout
/// would come with a new function.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpSignedMessage {
    /// 32 bytes.
    pub public_key: *const u8,
    pub message: MpBytes,
    /// 64 bytes.
    pub signature: *const u8,
}

/// A new bundle a plugin asks the host to create, sign nothing, store and
/// route (`MpHost.emit_bundle`). Borrowed for the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpOutBundle {
    pub struct_size: u32,
    /// 0 bulk, 1 normal, 2 expedited (RFC 9171 class of service).
    pub priority: u32,
    /// Destination endpoint URI, e.g. `"dtn://~authorities/quorum"`.
    pub destination: MpStr,
    /// Service under this node's endpoint the bundle comes from, e.g. `"quorum"`.
    pub source_service: MpStr,
    pub payload: MpBytes,
    /// Lifetime in milliseconds; 0 means the host's default.
    pub lifetime_ms: u64,
}

/// A bundle as the host shows it to routing and consensus plugins.
/// Borrowed for the call, strings and buffers included.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpBundleInfo {
    pub struct_size: u32,
    /// 0 bulk, 1 normal, 2 expedited.
    pub priority: u32,
    /// Content id used for de-duplication.
    pub id: MpBytes,
    /// Source endpoint URI.
    pub source: MpStr,
    /// Destination endpoint URI.
    pub destination: MpStr,
    /// Creation time in ms since the DTN epoch (2000-01-01), 0 if the source
    /// had no clock.
    pub created_ms: u64,
    pub lifetime_ms: u64,
    /// Age in ms accumulated along the path (bundle-age block).
    pub age_ms: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Hops taken so far.
    pub hop_count: u32,
    /// Copies this node may still hand out (`MP_COPIES_UNLIMITED` if not counted).
    pub copies: u32,
    /// The payload itself where the call needs it (`MpConsensusV1.on_bundle`,
    /// `on_bundles`, `prepare_bundles`), otherwise empty.
    pub payload: MpBytes,
}

/// A neighbour as the host shows it to routing plugins. Borrowed for the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpPeerInfo {
    pub struct_size: u32,
    /// Link cost, lower is better (802.11s airtime metric where known),
    /// `MP_METRIC_UNKNOWN` otherwise.
    pub link_metric: u32,
    /// The neighbour's node endpoint URI.
    pub node: MpStr,
    /// Signal in dBm, `MP_SIGNAL_UNKNOWN` if the link has none.
    pub signal_dbm: i32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A link change reported by a transport. Borrowed for the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpLinkEvent {
    pub struct_size: u32,
    /// `MP_LINK_UP`, `MP_LINK_DOWN` or `MP_LINK_UPDATE`.
    pub kind: u32,
    /// Transport-specific peer address, the same string `send` takes.
    pub peer: MpStr,
    /// Link cost, `MP_METRIC_UNKNOWN` if none.
    pub metric: u32,
    /// Signal in dBm, `MP_SIGNAL_UNKNOWN` if none.
    pub signal_dbm: i32,
    /// Largest frame the link carries in one piece, 0 if unknown.
    /// Meaningless in `MP_LINK_DOWN`.
    pub mtu: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A host-provided sink a plugin writes its output through (a reply, a value).
/// Valid for the call it was passed to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpBytesSink {
    pub struct_size: u32,
    pub ctx: *mut c_void,
    /// Appends `data` (borrowed, copied by the host). May be called several times.
    pub write: Option<unsafe extern "C" fn(ctx: *mut c_void, data: MpBytes) -> MpStatus>,
}

/// Where a routing plugin writes its forwarding decision. Valid for the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpForwardSink {
    pub struct_size: u32,
    pub ctx: *mut c_void,
    /// Forward the bundle to `peers[peer_index]`, handing over `copies` of this
    /// node's copies (ignored when the bundle's copies are unlimited).
    pub forward: Option<unsafe extern "C" fn(ctx: *mut c_void, peer_index: usize, copies: u32) -> MpStatus>,
}

/// A plugin-provided visitor for `MpConsensusHost.kv_scan`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpKvVisitor {
    pub struct_size: u32,
    pub ctx: *mut c_void,
    /// Called per entry in key order; key and value are borrowed for the call.
    /// Return `MP_OK` to continue, anything else to stop the scan.
    pub visit: Option<unsafe extern "C" fn(ctx: *mut c_void, key: MpBytes, value: MpBytes) -> MpStatus>,
}

/// Services the host offers every plugin instance. Passed to `create`; the
/// table and everything it points to stay valid until `destroy` returns.
/// Every function takes `ctx` as its first argument.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpHost {
    pub struct_size: u32,
    /// The ABI the host implements.
    pub abi: MpVersion,
    pub ctx: *mut c_void,
    /// Thread-safe. Writes a line to the router's log, tagged with the instance.
    pub log: Option<unsafe extern "C" fn(ctx: *mut c_void, level: MpLogLevel, message: MpStr)>,
    /// Thread-safe. Monotonic milliseconds of the host clock (virtual time in
    /// the simulator). Plugins never read a clock of their own.
    pub now_ms: Option<unsafe extern "C" fn(ctx: *mut c_void) -> u64>,
    /// Host thread. Arms (or re-arms) timer `timer_id` to fire `on_timer` once
    /// after `delay_ms`.
    pub set_timer: Option<unsafe extern "C" fn(ctx: *mut c_void, timer_id: u64, delay_ms: u64) -> MpStatus>,
    /// Host thread. Disarms a timer; `MP_ERR_NOT_FOUND` if it was not armed.
    pub cancel_timer: Option<unsafe extern "C" fn(ctx: *mut c_void, timer_id: u64) -> MpStatus>,
    /// Thread-safe. Writes this node's Ed25519 public key (32 bytes) to `key_out`.
    pub node_key: Option<unsafe extern "C" fn(ctx: *mut c_void, key_out: *mut u8) -> MpStatus>,
    /// Thread-safe. This node's endpoint URI, owned by the host, valid until
    /// `destroy` returns.
    pub node_endpoint: Option<unsafe extern "C" fn(ctx: *mut c_void) -> MpStr>,
    /// Thread-safe. Signs `message` with the node key (which never leaves the
    /// host) and writes 64 bytes to `signature_out`.
    pub sign:
        Option<unsafe extern "C" fn(ctx: *mut c_void, message: MpBytes, signature_out: *mut u8) -> MpStatus>,
    /// Thread-safe. Checks an Ed25519 signature (strict: weak keys and
    /// non-canonical signatures are refused). `MP_OK` or `MP_ERR_INVALID`.
    pub verify: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            public_key: *const u8,
            message: MpBytes,
            signature: *const u8,
        ) -> MpStatus,
    >,
    /// Thread-safe. Checks `count` signatures at once (batch verification).
    /// On `MP_ERR_INVALID`, `*first_invalid` (if not NULL) is the index of the
    /// first bad signature, found by single checks.
    pub verify_batch: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            items: *const MpSignedMessage,
            count: usize,
            first_invalid: *mut usize,
        ) -> MpStatus,
    >,
    /// Host thread. Creates a bundle from this node, stores it and routes it.
    /// Inside a consensus call it is committed atomically with the call's
    /// ledger writes and leaves the node only after the commit.
    pub emit_bundle: Option<unsafe extern "C" fn(ctx: *mut c_void, bundle: *const MpOutBundle) -> MpStatus>,
    /// Host thread. Asks the host to watch `fd` (level-triggered) for
    /// `MP_FD_*` events and call the instance's `on_fd`. The plugin keeps
    /// owning the fd and must `unwatch_fd` it before closing it.
    pub watch_fd: Option<unsafe extern "C" fn(ctx: *mut c_void, fd: i32, events: u32) -> MpStatus>,
    /// Host thread. Stops watching `fd`.
    pub unwatch_fd: Option<unsafe extern "C" fn(ctx: *mut c_void, fd: i32) -> MpStatus>,
    /// Thread-safe. Looks up a host extension table by id; NULL if unknown.
    pub get_extension: Option<unsafe extern "C" fn(ctx: *mut c_void, id: MpStr) -> *const c_void>,
}

/// Host calls for transport instances. Same lifetime as `MpHost`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpTransportHost {
    pub struct_size: u32,
    pub ctx: *mut c_void,
    /// Thread-safe, non-blocking. Hands a received frame to the router, which
    /// copies it. `MP_ERR_FULL` when the router's queue is full (the frame is
    /// dropped and counted).
    pub deliver: Option<unsafe extern "C" fn(ctx: *mut c_void, peer: MpStr, frame: MpBytes) -> MpStatus>,
    /// Thread-safe, non-blocking. Reports a neighbour appearing, going away or
    /// changing.
    pub link_event: Option<unsafe extern "C" fn(ctx: *mut c_void, event: *const MpLinkEvent) -> MpStatus>,
}

/// Interface `"meshpay.transport/1"`: a link that carries frames to and from
/// neighbours. Static, owned by the plugin.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpTransportV1 {
    pub struct_size: u32,
    /// `MP_TRANSPORT_POLL_FD` or `MP_TRANSPORT_OWN_THREAD`.
    pub flags: u32,
    /// Required. Creates an instance from its configuration (UTF-8 JSON,
    /// borrowed). Writes an opaque instance pointer to `*instance_out`.
    /// `host` and `transport_host` stay valid until `destroy` returns.
    pub create: Option<
        unsafe extern "C" fn(
            host: *const MpHost,
            transport_host: *const MpTransportHost,
            config: MpBytes,
            instance_out: *mut *mut c_void,
        ) -> MpStatus,
    >,
    /// Required. Frees the instance. Called once, after `stop`.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Required. Starts I/O: opens sockets, watches fds, spawns threads.
    pub start: Option<unsafe extern "C" fn(instance: *mut c_void) -> MpStatus>,
    /// Required. Stops I/O. No `deliver` or `link_event` may happen after it returns.
    pub stop: Option<unsafe extern "C" fn(instance: *mut c_void) -> MpStatus>,
    /// Required. Non-blocking send of one frame (borrowed) to `peer`.
    /// `MP_ERR_AGAIN` if the link is busy; the host retries later.
    pub send: Option<unsafe extern "C" fn(instance: *mut c_void, peer: MpStr, frame: MpBytes) -> MpStatus>,
    /// Required in POLL_FD mode. A watched fd is ready. Return `MP_ERR_AGAIN`
    /// once drained; `MP_OK` to be called again.
    pub on_fd: Option<unsafe extern "C" fn(instance: *mut c_void, fd: i32, events: u32) -> MpStatus>,
    /// Optional. A timer armed with `set_timer` fired.
    pub on_timer: Option<unsafe extern "C" fn(instance: *mut c_void, timer_id: u64) -> MpStatus>,
}

/// Host calls for routing instances. Same lifetime as `MpHost`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpRoutingHost {
    pub struct_size: u32,
    pub ctx: *mut c_void,
    /// Host thread. Sends the routing plugin's own control data (borrowed) to
    /// the same plugin on neighbour `peer` (a node endpoint), delivered there
    /// through `on_control`.
    pub send_control: Option<unsafe extern "C" fn(ctx: *mut c_void, peer: MpStr, data: MpBytes) -> MpStatus>,
}

/// Interface `"meshpay.routing/1"`: decides which bundle goes to which
/// neighbour. Static, owned by the plugin.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpRoutingV1 {
    pub struct_size: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// Required. As `MpTransportV1.create`.
    pub create: Option<
        unsafe extern "C" fn(
            host: *const MpHost,
            routing_host: *const MpRoutingHost,
            config: MpBytes,
            instance_out: *mut *mut c_void,
        ) -> MpStatus,
    >,
    /// Required.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Required. A neighbour came (`MP_LINK_UP`), went (`MP_LINK_DOWN`) or
    /// changed (`MP_LINK_UPDATE`).
    pub on_contact:
        Option<unsafe extern "C" fn(instance: *mut c_void, peer: *const MpPeerInfo, kind: u32) -> MpStatus>,
    /// Optional. Control data from the same plugin on neighbour `peer`.
    pub on_control:
        Option<unsafe extern "C" fn(instance: *mut c_void, peer: MpStr, data: MpBytes) -> MpStatus>,
    /// Optional. How many copies a bundle created on this node starts with;
    /// NULL means `MP_COPIES_UNLIMITED`.
    pub initial_copies:
        Option<unsafe extern "C" fn(instance: *mut c_void, bundle: *const MpBundleInfo) -> u32>,
    /// Required. For one stored bundle and the neighbours in contact now
    /// (`peers`: `peer_count` pointers), calls `out->forward` once per
    /// neighbour that should get a copy.
    pub decide: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            bundle: *const MpBundleInfo,
            peers: *const *const MpPeerInfo,
            peer_count: usize,
            out: *const MpForwardSink,
        ) -> MpStatus,
    >,
    /// Optional.
    pub on_timer: Option<unsafe extern "C" fn(instance: *mut c_void, timer_id: u64) -> MpStatus>,
    /// Optional.
    pub on_fd: Option<unsafe extern "C" fn(instance: *mut c_void, fd: i32, events: u32) -> MpStatus>,
}

/// Host calls for consensus instances: subscriptions and the plugin's own
/// key-value tables in the node's LMDB environment. Same lifetime as `MpHost`.
///
/// The kv functions work only inside `on_bundle`, `on_bundles`, `on_control`,
/// `on_timer` (and `create`, for `kv_open`), on the host thread: the host
/// runs each of those calls inside a write transaction and commits it
/// (grouped with others) when the call returns `MP_OK`; on any error the
/// call's writes are rolled back. Never from `prepare_bundles`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpConsensusHost {
    pub struct_size: u32,
    pub ctx: *mut c_void,
    /// Host thread. Receive bundles addressed to `endpoint` (a group such as
    /// `"dtn://~authorities/quorum"` or a service URI) through `on_bundle`.
    pub subscribe: Option<unsafe extern "C" fn(ctx: *mut c_void, endpoint: MpStr) -> MpStatus>,
    /// Host thread. Opens (creating if needed) the plugin's table `name` and
    /// writes a handle to `table_out`. Tables are private to the plugin id.
    pub kv_open: Option<unsafe extern "C" fn(ctx: *mut c_void, name: MpStr, table_out: *mut u32) -> MpStatus>,
    /// Host thread. Looks up `key`. On `MP_OK`, `*value_out` points into host
    /// memory valid until the next kv call or the end of the current call,
    /// whichever is first. `MP_ERR_NOT_FOUND` if absent.
    pub kv_get: Option<
        unsafe extern "C" fn(ctx: *mut c_void, table: u32, key: MpBytes, value_out: *mut MpBytes) -> MpStatus,
    >,
    /// Host thread. Inserts or replaces `key` (both buffers borrowed).
    pub kv_put:
        Option<unsafe extern "C" fn(ctx: *mut c_void, table: u32, key: MpBytes, value: MpBytes) -> MpStatus>,
    /// Host thread. Removes `key`; `MP_ERR_NOT_FOUND` if absent.
    pub kv_delete: Option<unsafe extern "C" fn(ctx: *mut c_void, table: u32, key: MpBytes) -> MpStatus>,
    /// Host thread. Visits entries with key >= `start` in key order until the
    /// visitor stops or the table ends. The visitor must not call kv functions.
    pub kv_scan: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            table: u32,
            start: MpBytes,
            visitor: *const MpKvVisitor,
        ) -> MpStatus,
    >,
}

/// Interface `"meshpay.consensus/1"`: validates bundles against the ledger
/// and answers local requests. Static, owned by the plugin.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MpConsensusV1 {
    pub struct_size: u32,
    /// Reserved, zero.
    pub flags: u32,
    /// Required. As `MpTransportV1.create`; may call `kv_open` and `subscribe`.
    pub create: Option<
        unsafe extern "C" fn(
            host: *const MpHost,
            consensus_host: *const MpConsensusHost,
            config: MpBytes,
            instance_out: *mut *mut c_void,
        ) -> MpStatus,
    >,
    /// Required.
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    /// Required. A bundle for a subscribed endpoint, payload included.
    /// `MP_ERR_INVALID` refuses it (the plugin logs why).
    pub on_bundle:
        Option<unsafe extern "C" fn(instance: *mut c_void, bundle: *const MpBundleInfo) -> MpStatus>,
    /// Optional. A local request from the control API (a wallet, an
    /// operator): `method` and `body` (UTF-8 JSON) are borrowed; the answer
    /// (UTF-8 JSON) goes to `reply`.
    pub on_control: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            method: MpStr,
            body: MpBytes,
            reply: *const MpBytesSink,
        ) -> MpStatus,
    >,
    /// Optional.
    pub on_timer: Option<unsafe extern "C" fn(instance: *mut c_void, timer_id: u64) -> MpStatus>,
    /// Optional.
    pub on_fd: Option<unsafe extern "C" fn(instance: *mut c_void, fd: i32, events: u32) -> MpStatus>,
    /// Optional, ABI 1.1: the host reads it only when `struct_size` covers
    /// it; NULL (or a 1.0 table) makes the host call `on_bundle` once per
    /// bundle instead. Host thread.
    ///
    /// `count` (at least 1) bundles for subscribed endpoints, payloads
    /// included, handled as `count` calls of `on_bundle` in this order
    /// would be, in one call inside one host write transaction: the plugin
    /// may do the work of many bundles at once (spread signature checks over
    /// threads through the thread-safe host functions, verify many
    /// signatures in one `verify_batch`). The kv functions and `emit_bundle`
    /// work as in `on_bundle`.
    ///
    /// * `bundles`: an array of `count` pointers to `MpBundleInfo` (each
    ///   read by its own `struct_size`). The array, the tables and all they
    ///   point to are owned by the host and borrowed for the call.
    /// * `statuses`: an array of `count` `MpStatus`, owned by the host and
    ///   written by the plugin: every element, before it returns `MP_OK`.
    ///   `statuses[i]` is bundle i's result as `on_bundle` would return it:
    ///   `MP_OK` accepted; an error (normally `MP_ERR_INVALID`, the reason
    ///   logged by the plugin) refused. The host keeps every write of a call
    ///   that returns `MP_OK`, so a refused bundle must have made no table
    ///   write and emitted nothing: the plugin avoids or undoes them itself.
    /// * Return value: the call's. `MP_OK` keeps the writes and the emitted
    ///   bundles. Anything else rolls back every write of the call and drops
    ///   everything it emitted; `statuses` is then ignored and the host may
    ///   hand the same bundles to `on_bundle` one at a time. `MP_ERR_PANIC`
    ///   disables the instance, as for every function.
    pub on_bundles: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            bundles: *const *const MpBundleInfo,
            count: usize,
            statuses: *mut MpStatus,
        ) -> MpStatus,
    >,
    /// Optional, ABI 1.1: the host reads it only when `struct_size` covers
    /// it; NULL: never called. **Thread-safe**: the host may call it from
    /// any thread, also while another call of the same instance runs on the
    /// host thread (typically: it prepares batch N+1 while batch N's
    /// `on_bundles` runs and commits), and from several threads at once;
    /// only after `create` returned, never once `destroy` has been called.
    ///
    /// `bundles`: `count` pointers as in `on_bundles`, borrowed for the
    /// call: bundles the host expects to deliver soon through `on_bundles`
    /// or `on_bundle`. The plugin checks ahead what needs no ledger (such
    /// as signatures) and remembers the results for the call that later
    /// receives the same payloads. It must never change what that call
    /// decides, only how fast: the call decides the same whether
    /// `prepare_bundles` ran for its bundles, for others, or never, and
    /// bundles that never come cost only bounded memory.
    ///
    /// It may call only the host's thread-safe functions (`log`, `now_ms`,
    /// `node_key`, `node_endpoint`, `sign`, `verify`, `verify_batch`,
    /// `get_extension`) and read only state the instance does not change
    /// while other calls run (or guards itself): no kv function, no
    /// `emit_bundle`, no timers, no fds. The return value is advisory: the
    /// host logs an error and carries on (the later call checks everything
    /// itself); `MP_ERR_PANIC` disables the instance.
    pub prepare_bundles: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            bundles: *const *const MpBundleInfo,
            count: usize,
        ) -> MpStatus,
    >,
}
