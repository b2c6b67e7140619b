//! Routing plugins: which bundle goes to which neighbour.

use core::ffi::c_void;
use core::marker::PhantomData;

use crate::ffi::*;
use crate::read_sized;
use crate::sdk::guard::{create_instance, destroy_instance, with_instance};
use crate::sdk::{FdState, Host, PluginError};
use crate::views::{BundleInfo, PeerInfo};

/// A routing plugin's calls into the router.
#[derive(Clone, Copy)]
pub struct RoutingHost {
    table: MpRoutingHost,
}

// SAFETY: the table lives until `destroy`; `send_control` is host-thread only,
// which the documentation states.
unsafe impl Send for RoutingHost {}
unsafe impl Sync for RoutingHost {}

impl RoutingHost {
    /// # Safety
    /// `raw` must be the routing host table passed to `create`.
    pub unsafe fn from_raw(raw: *const MpRoutingHost) -> Result<Self, PluginError> {
        let table = unsafe { read_sized(raw) }
            .map_err(|e| PluginError::invalid(format!("routing host table: {e}")))?;
        Ok(RoutingHost { table })
    }

    /// Host thread. Sends control data to this plugin on neighbour `peer`.
    pub fn send_control(&self, peer: &str, data: &[u8]) -> Result<(), PluginError> {
        let f =
            self.table.send_control.ok_or_else(|| PluginError::unsupported("host has no send_control"))?;
        let status = unsafe { f(self.table.ctx, MpStr::new(peer), MpBytes::new(data)) };
        PluginError::check(status, "send_control")
    }
}

/// Where [`RoutingPlugin::decide`] writes its decision.
pub struct Forwarder<'a> {
    target: ForwardTarget<'a>,
}

enum ForwardTarget<'a> {
    Sink(&'a MpForwardSink),
    Collect { out: &'a mut Vec<(usize, u32)>, peer_count: usize },
}

impl<'a> Forwarder<'a> {
    /// A forwarder that collects `(peer index, copies)` into `out`, for
    /// calling a plugin's `decide` directly (unit tests, simulators).
    pub fn collecting(out: &'a mut Vec<(usize, u32)>, peer_count: usize) -> Forwarder<'a> {
        Forwarder { target: ForwardTarget::Collect { out, peer_count } }
    }

    /// Forward the bundle to `peers[peer_index]`, handing over `copies`.
    pub fn forward(&mut self, peer_index: usize, copies: u32) -> Result<(), PluginError> {
        match &mut self.target {
            ForwardTarget::Sink(sink) => {
                let f =
                    sink.forward.ok_or_else(|| PluginError::invalid("forward sink without a function"))?;
                PluginError::check(unsafe { f(sink.ctx, peer_index, copies) }, "forward")
            }
            ForwardTarget::Collect { out, peer_count } => {
                if peer_index >= *peer_count {
                    return Err(PluginError::invalid(format!("peer index {peer_index} out of range")));
                }
                out.push((peer_index, copies));
                Ok(())
            }
        }
    }
}

/// A routing plugin.
pub trait RoutingPlugin: Sized + Send + 'static {
    fn create(host: Host, routing: RoutingHost, config: &[u8]) -> Result<Self, PluginError>;
    /// A neighbour came (`MP_LINK_UP`), went (`MP_LINK_DOWN`) or changed.
    fn on_contact(&mut self, peer: &PeerInfo<'_>, kind: u32) -> Result<(), PluginError>;
    /// Control data from this plugin on a neighbour.
    fn on_control(&mut self, _peer: &str, _data: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
    /// Copies a bundle created here starts with.
    fn initial_copies(&mut self, _bundle: &BundleInfo<'_>) -> u32 {
        MP_COPIES_UNLIMITED
    }
    /// Which of `peers` get a copy of `bundle`.
    fn decide(
        &mut self,
        bundle: &BundleInfo<'_>,
        peers: &[PeerInfo<'_>],
        out: &mut Forwarder<'_>,
    ) -> Result<(), PluginError>;
    fn on_timer(&mut self, _timer_id: u64) -> Result<(), PluginError> {
        Ok(())
    }
    fn on_fd(&mut self, _fd: i32, _events: u32) -> Result<FdState, PluginError> {
        Ok(FdState::Drained)
    }
}

/// The C function table for a [`RoutingPlugin`].
pub struct RoutingVtable<T>(PhantomData<T>);

impl<T: RoutingPlugin> RoutingVtable<T> {
    pub const KIND: u32 = MP_KIND_ROUTING;
    const TABLE: MpRoutingV1 = MpRoutingV1 {
        struct_size: crate::table_size::<MpRoutingV1>(),
        flags: 0,
        create: Some(create::<T>),
        destroy: Some(destroy::<T>),
        on_contact: Some(on_contact::<T>),
        on_control: Some(on_control::<T>),
        initial_copies: Some(initial_copies::<T>),
        decide: Some(decide::<T>),
        on_timer: Some(on_timer::<T>),
        on_fd: Some(on_fd::<T>),
    };

    pub fn get() -> &'static MpRoutingV1 {
        &Self::TABLE
    }
}

fn view_err(e: crate::views::ViewError) -> PluginError {
    PluginError::invalid(e.to_string())
}

unsafe extern "C" fn create<T: RoutingPlugin>(
    host: *const MpHost,
    routing_host: *const MpRoutingHost,
    config: MpBytes,
    instance_out: *mut *mut c_void,
) -> MpStatus {
    let host = match unsafe { Host::from_raw(host) } {
        Ok(h) => h,
        Err(e) => return e.status,
    };
    create_instance(host, instance_out, "create", |host| {
        let routing = unsafe { RoutingHost::from_raw(routing_host) }?;
        T::create(host, routing, unsafe { config.as_slice() })
    })
}

unsafe extern "C" fn destroy<T: RoutingPlugin>(instance: *mut c_void) {
    destroy_instance::<T>(instance)
}

unsafe extern "C" fn on_contact<T: RoutingPlugin>(
    instance: *mut c_void,
    peer: *const MpPeerInfo,
    kind: u32,
) -> MpStatus {
    with_instance::<T>(instance, "on_contact", |r| {
        let peer = unsafe { PeerInfo::from_raw(peer) }.map_err(view_err)?;
        r.on_contact(&peer, kind).map(|()| MP_OK)
    })
}

unsafe extern "C" fn on_control<T: RoutingPlugin>(
    instance: *mut c_void,
    peer: MpStr,
    data: MpBytes,
) -> MpStatus {
    with_instance::<T>(instance, "on_control", |r| {
        let peer = unsafe { peer.to_str() }.map_err(|_| PluginError::invalid("peer is not UTF-8"))?;
        r.on_control(peer, unsafe { data.as_slice() }).map(|()| MP_OK)
    })
}

unsafe extern "C" fn initial_copies<T: RoutingPlugin>(
    instance: *mut c_void,
    bundle: *const MpBundleInfo,
) -> u32 {
    let mut copies = MP_COPIES_UNLIMITED;
    let status = with_instance::<T>(instance, "initial_copies", |r| {
        let bundle = unsafe { BundleInfo::from_raw(bundle) }.map_err(view_err)?;
        copies = r.initial_copies(&bundle);
        Ok(MP_OK)
    });
    if status == MP_OK { copies } else { MP_COPIES_UNLIMITED }
}

unsafe extern "C" fn decide<T: RoutingPlugin>(
    instance: *mut c_void,
    bundle: *const MpBundleInfo,
    peers: *const *const MpPeerInfo,
    peer_count: usize,
    out: *const MpForwardSink,
) -> MpStatus {
    with_instance::<T>(instance, "decide", |r| {
        let bundle = unsafe { BundleInfo::from_raw(bundle) }.map_err(view_err)?;
        let raw_peers: &[*const MpPeerInfo] = if peer_count == 0 || peers.is_null() {
            &[]
        } else {
            unsafe { core::slice::from_raw_parts(peers, peer_count) }
        };
        let peers = raw_peers
            .iter()
            .map(|&p| unsafe { PeerInfo::from_raw(p) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(view_err)?;
        let sink =
            unsafe { read_sized(out) }.map_err(|e| PluginError::invalid(format!("forward sink: {e}")))?;
        r.decide(&bundle, &peers, &mut Forwarder { target: ForwardTarget::Sink(&sink) }).map(|()| MP_OK)
    })
}

unsafe extern "C" fn on_timer<T: RoutingPlugin>(instance: *mut c_void, timer_id: u64) -> MpStatus {
    with_instance::<T>(instance, "on_timer", |r| r.on_timer(timer_id).map(|()| MP_OK))
}

unsafe extern "C" fn on_fd<T: RoutingPlugin>(instance: *mut c_void, fd: i32, events: u32) -> MpStatus {
    with_instance::<T>(instance, "on_fd", |r| {
        r.on_fd(fd, events).map(|s| if s == FdState::More { MP_OK } else { MP_ERR_AGAIN })
    })
}
