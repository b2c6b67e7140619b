//! A minimal host for unit tests that call [`Prophet`](crate::Prophet)
//! through the SDK trait directly: raw `MpHost`/`MpRoutingHost` tables
//! whose clock, timers and sent control messages the test controls. The
//! integration tests use the real host (`meshpay-host`) instead.

use core::ffi::c_void;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use meshpay_abi::sdk::{Host, PluginError, RoutingHost, RoutingPlugin};
use meshpay_abi::*;

use crate::{NodeId, Prophet};

/// The state behind `ctx`. Boxed so its address is stable.
pub struct TestHost {
    endpoint: String,
    clock: AtomicU64,
    sent: Mutex<Vec<(String, Vec<u8>)>>,
    /// Timer id → due time.
    timers: Mutex<BTreeMap<u64, u64>>,
}

unsafe fn ctx<'a>(p: *mut c_void) -> &'a TestHost {
    unsafe { &*(p as *const TestHost) }
}

unsafe extern "C" fn now_ms(p: *mut c_void) -> u64 {
    unsafe { ctx(p) }.clock.load(Ordering::SeqCst)
}

unsafe extern "C" fn set_timer(p: *mut c_void, id: u64, delay_ms: u64) -> MpStatus {
    let h = unsafe { ctx(p) };
    let due = h.clock.load(Ordering::SeqCst) + delay_ms;
    h.timers.lock().unwrap().insert(id, due);
    MP_OK
}

unsafe extern "C" fn node_endpoint(p: *mut c_void) -> MpStr {
    MpStr::new(&unsafe { ctx(p) }.endpoint)
}

unsafe extern "C" fn send_control(p: *mut c_void, peer: MpStr, data: MpBytes) -> MpStatus {
    let peer = unsafe { peer.to_str() }.unwrap().to_owned();
    let data = unsafe { data.as_slice() }.to_vec();
    unsafe { ctx(p) }.sent.lock().unwrap().push((peer, data));
    MP_OK
}

impl TestHost {
    pub fn new(me: NodeId) -> Box<TestHost> {
        Box::new(TestHost {
            endpoint: me.endpoint(),
            clock: AtomicU64::new(0),
            sent: Mutex::new(Vec::new()),
            timers: Mutex::new(BTreeMap::new()),
        })
    }

    /// Creates an instance against this host. The host must outlive it.
    pub fn create(&self, config: &[u8]) -> Result<Prophet, PluginError> {
        let ctx = self as *const TestHost as *mut c_void;
        let host = MpHost {
            struct_size: table_size::<MpHost>(),
            abi: ABI_VERSION,
            ctx,
            log: None,
            now_ms: Some(now_ms),
            set_timer: Some(set_timer),
            cancel_timer: None,
            node_key: None,
            node_endpoint: Some(node_endpoint),
            sign: None,
            verify: None,
            verify_batch: None,
            emit_bundle: None,
            watch_fd: None,
            unwatch_fd: None,
            get_extension: None,
        };
        let routing = MpRoutingHost {
            struct_size: table_size::<MpRoutingHost>(),
            ctx,
            send_control: Some(send_control),
        };
        // SAFETY: both tables are copied by `from_raw`; `ctx` is `self`.
        let (host, routing) = unsafe { (Host::from_raw(&host)?, RoutingHost::from_raw(&routing)?) };
        Prophet::create(host, routing, config)
    }

    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn set_now(&self, ms: u64) {
        self.clock.store(ms, Ordering::SeqCst);
    }

    pub fn take_sent(&self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }

    pub fn timer(&self, id: u64) -> Option<u64> {
        self.timers.lock().unwrap().get(&id).copied()
    }

    pub fn clear_timers(&self) {
        self.timers.lock().unwrap().clear();
    }
}
