//! Transport plugins: links that carry frames to and from neighbours.

use core::ffi::c_void;
use core::marker::PhantomData;
use std::os::fd::RawFd;

use crate::ffi::*;
use crate::read_sized;
use crate::sdk::guard::{create_instance, destroy_instance, with_instance};
use crate::sdk::{Host, PluginError};
use crate::views::LinkEvent;

/// How a transport does its I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportMode {
    /// The plugin watches fds through [`Host::watch_fd`] and does its I/O in
    /// [`TransportPlugin::on_fd`] on the host thread. Preferred.
    PollFd,
    /// The plugin runs its own threads and calls [`TransportHost::deliver`]
    /// and [`TransportHost::link_event`] from them.
    OwnThread,
}

/// What `on_fd` tells the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdState {
    /// Nothing more to read now (`MP_ERR_AGAIN`): wait for readiness.
    Drained,
    /// More may be ready; call again (`MP_OK`).
    More,
}

/// A transport's calls into the router; thread-safe.
#[derive(Clone, Copy)]
pub struct TransportHost {
    table: MpTransportHost,
}

// SAFETY: both functions are documented thread-safe; the table lives until
// `destroy` returns.
unsafe impl Send for TransportHost {}
unsafe impl Sync for TransportHost {}

impl TransportHost {
    /// # Safety
    /// `raw` must be the transport host table passed to `create`.
    pub unsafe fn from_raw(raw: *const MpTransportHost) -> Result<Self, PluginError> {
        let table = unsafe { read_sized(raw) }
            .map_err(|e| PluginError::invalid(format!("transport host table: {e}")))?;
        Ok(TransportHost { table })
    }

    /// Hands a received frame to the router (copied). `MP_ERR_FULL` means the
    /// router's queue was full and the frame was dropped.
    pub fn deliver(&self, peer: &str, frame: &[u8]) -> Result<(), PluginError> {
        let f = self.table.deliver.ok_or_else(|| PluginError::unsupported("host has no deliver"))?;
        let status = unsafe { f(self.table.ctx, MpStr::new(peer), MpBytes::new(frame)) };
        PluginError::check(status, "deliver")
    }

    /// Reports a neighbour coming, going or changing.
    pub fn link_event(&self, event: &LinkEvent<'_>) -> Result<(), PluginError> {
        let f = self.table.link_event.ok_or_else(|| PluginError::unsupported("host has no link_event"))?;
        let raw = event.as_raw();
        PluginError::check(unsafe { f(self.table.ctx, &raw) }, "link_event")
    }
}

/// A transport plugin. The SDK calls these from the C entry points, guarded
/// against panics.
pub trait TransportPlugin: Sized + Send + 'static {
    const MODE: TransportMode;

    /// Builds an instance from its configuration (UTF-8 JSON).
    fn create(host: Host, link: TransportHost, config: &[u8]) -> Result<Self, PluginError>;
    /// Starts I/O.
    fn start(&mut self) -> Result<(), PluginError>;
    /// Stops I/O; no deliveries after it returns.
    fn stop(&mut self) -> Result<(), PluginError>;
    /// Sends one frame without blocking; `PluginError::again()` if busy.
    fn send(&mut self, peer: &str, frame: &[u8]) -> Result<(), PluginError>;
    /// A watched fd is ready (POLL_FD mode).
    fn on_fd(&mut self, _fd: RawFd, _events: u32) -> Result<FdState, PluginError> {
        Ok(FdState::Drained)
    }
    /// A timer fired.
    fn on_timer(&mut self, _timer_id: u64) -> Result<(), PluginError> {
        Ok(())
    }
}

/// The C function table for a [`TransportPlugin`].
pub struct TransportVtable<T>(PhantomData<T>);

impl<T: TransportPlugin> TransportVtable<T> {
    pub const KIND: u32 = MP_KIND_TRANSPORT;
    const TABLE: MpTransportV1 = MpTransportV1 {
        struct_size: crate::table_size::<MpTransportV1>(),
        flags: match T::MODE {
            TransportMode::PollFd => MP_TRANSPORT_POLL_FD,
            TransportMode::OwnThread => MP_TRANSPORT_OWN_THREAD,
        },
        create: Some(create::<T>),
        destroy: Some(destroy::<T>),
        start: Some(start::<T>),
        stop: Some(stop::<T>),
        send: Some(send::<T>),
        on_fd: Some(on_fd::<T>),
        on_timer: Some(on_timer::<T>),
    };

    /// The static table `get_interface` returns.
    pub fn get() -> &'static MpTransportV1 {
        &Self::TABLE
    }
}

unsafe extern "C" fn create<T: TransportPlugin>(
    host: *const MpHost,
    transport_host: *const MpTransportHost,
    config: MpBytes,
    instance_out: *mut *mut c_void,
) -> MpStatus {
    let host = match unsafe { Host::from_raw(host) } {
        Ok(h) => h,
        Err(e) => return e.status,
    };
    create_instance(host, instance_out, "create", |host| {
        let link = unsafe { TransportHost::from_raw(transport_host) }?;
        T::create(host, link, unsafe { config.as_slice() })
    })
}

unsafe extern "C" fn destroy<T: TransportPlugin>(instance: *mut c_void) {
    destroy_instance::<T>(instance)
}

unsafe extern "C" fn start<T: TransportPlugin>(instance: *mut c_void) -> MpStatus {
    with_instance::<T>(instance, "start", |t| t.start().map(|()| MP_OK))
}

unsafe extern "C" fn stop<T: TransportPlugin>(instance: *mut c_void) -> MpStatus {
    with_instance::<T>(instance, "stop", |t| t.stop().map(|()| MP_OK))
}

unsafe extern "C" fn send<T: TransportPlugin>(
    instance: *mut c_void,
    peer: MpStr,
    frame: MpBytes,
) -> MpStatus {
    with_instance::<T>(instance, "send", |t| {
        let peer = unsafe { peer.to_str() }.map_err(|_| PluginError::invalid("peer is not UTF-8"))?;
        t.send(peer, unsafe { frame.as_slice() }).map(|()| MP_OK)
    })
}

unsafe extern "C" fn on_fd<T: TransportPlugin>(instance: *mut c_void, fd: i32, events: u32) -> MpStatus {
    with_instance::<T>(instance, "on_fd", |t| {
        t.on_fd(fd, events).map(|s| match s {
            FdState::Drained => MP_ERR_AGAIN,
            FdState::More => MP_OK,
        })
    })
}

unsafe extern "C" fn on_timer<T: TransportPlugin>(instance: *mut c_void, timer_id: u64) -> MpStatus {
    with_instance::<T>(instance, "on_timer", |t| t.on_timer(timer_id).map(|()| MP_OK))
}
