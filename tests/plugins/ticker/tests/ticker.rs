//! The ticker through its C table, with a minimal thread-safe host: events
//! from the plugin's own thread arrive, in order, and none after `stop`.

use std::ffi::c_void;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use meshpay_abi::*;

/// What the plugin reported, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Up(String),
    Down(String),
    Frame(String, Vec<u8>),
}

/// The host side: `deliver` and `link_event` come from the ticker's thread.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Recorder {
    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
        self.changed.notify_all();
    }

    /// Waits (10 s at most) until `n` events have arrived.
    fn wait_for(&self, n: usize) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = self.events.lock().unwrap();
        while events.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {n} events: {events:?}");
            events = self.changed.wait_timeout(events, left).unwrap().0;
        }
        events.clone()
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

unsafe extern "C" fn deliver(ctx: *mut c_void, peer: MpStr, frame: MpBytes) -> MpStatus {
    let r = unsafe { &*(ctx as *const Recorder) };
    let peer = unsafe { peer.to_str() }.unwrap().to_owned();
    r.push(Event::Frame(peer, unsafe { frame.as_slice() }.to_vec()));
    MP_OK
}

unsafe extern "C" fn link_event(ctx: *mut c_void, event: *const MpLinkEvent) -> MpStatus {
    let r = unsafe { &*(ctx as *const Recorder) };
    let e = unsafe { LinkEvent::from_raw(event) }.unwrap();
    match e.kind {
        MP_LINK_UP => r.push(Event::Up(e.peer.into())),
        MP_LINK_DOWN => r.push(Event::Down(e.peer.into())),
        other => panic!("unexpected link kind {other}"),
    }
    MP_OK
}

/// One ticker instance on its own recorder. The recorder and tables are
/// leaked: they must outlive the instance, and the test process is short.
struct Instance {
    vt: MpTransportV1,
    inst: *mut c_void,
    rec: &'static Recorder,
}

fn vtable() -> MpTransportV1 {
    let entry = unsafe { read_sized(meshpay_test_plugin_ticker::plugin_entry()) }.unwrap();
    let table = unsafe { entry.get_interface.unwrap()(MpStr::new(INTERFACE_TRANSPORT_V1)) };
    unsafe { read_sized(table as *const MpTransportV1) }.unwrap()
}

fn create(config: &str) -> Result<Instance, MpStatus> {
    let rec: &'static Recorder = Box::leak(Box::default());
    let ctx = rec as *const Recorder as *mut c_void;
    let host: &'static MpHost = Box::leak(Box::new(MpHost {
        struct_size: table_size::<MpHost>(),
        abi: ABI_VERSION,
        ctx,
        log: None,
        now_ms: None,
        set_timer: None,
        cancel_timer: None,
        node_key: None,
        node_endpoint: None,
        sign: None,
        verify: None,
        verify_batch: None,
        emit_bundle: None,
        watch_fd: None,
        unwatch_fd: None,
        get_extension: None,
    }));
    let link: &'static MpTransportHost = Box::leak(Box::new(MpTransportHost {
        struct_size: table_size::<MpTransportHost>(),
        ctx,
        deliver: Some(deliver),
        link_event: Some(link_event),
    }));
    let vt = vtable();
    let mut inst = std::ptr::null_mut();
    match unsafe { vt.create.unwrap()(host, link, MpBytes::new(config.as_bytes()), &mut inst) } {
        MP_OK => Ok(Instance { vt, inst, rec }),
        status => Err(status),
    }
}

impl Instance {
    fn start(&self) -> MpStatus {
        unsafe { self.vt.start.unwrap()(self.inst) }
    }
    fn stop(&self) -> MpStatus {
        unsafe { self.vt.stop.unwrap()(self.inst) }
    }
    fn send(&self, peer: &str) -> MpStatus {
        unsafe { self.vt.send.unwrap()(self.inst, MpStr::new(peer), MpBytes::new(b"x")) }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        unsafe { self.vt.destroy.unwrap()(self.inst) }
    }
}

fn tick(n: u32) -> Event {
    Event::Frame("ticker".into(), format!("tick {n}").into_bytes())
}

#[test]
fn is_an_own_thread_transport() {
    assert_eq!(vtable().flags, MP_TRANSPORT_OWN_THREAD);
}

#[test]
fn delivers_count_ticks_from_its_thread_then_goes_down_on_stop() {
    let t = create(r#"{"count": 3, "interval_ms": 5}"#).unwrap();
    assert_eq!(t.start(), MP_OK);
    let got = t.rec.wait_for(4);
    assert_eq!(got, [Event::Up("ticker".into()), tick(1), tick(2), tick(3)]);
    assert_eq!(t.send("ticker"), MP_OK);
    assert_eq!(t.send("someone"), MP_ERR_INVALID);
    assert_eq!(t.stop(), MP_OK);
    assert_eq!(t.rec.events().last(), Some(&Event::Down("ticker".into())));
    assert_eq!(t.rec.events().len(), 5);
}

#[test]
fn stop_interrupts_a_long_interval_and_nothing_follows_it() {
    let t = create(r#"{"count": 3, "interval_ms": 600000}"#).unwrap();
    assert_eq!(t.start(), MP_OK);
    t.rec.wait_for(1);
    let asked = Instant::now();
    assert_eq!(t.stop(), MP_OK);
    assert!(asked.elapsed() < Duration::from_secs(5), "stop waited for the interval");
    let after_stop = t.rec.events();
    assert_eq!(after_stop, [Event::Up("ticker".into()), Event::Down("ticker".into())]);
    // Restartable, and destroy without stop still ends the thread.
    assert_eq!(t.start(), MP_OK);
    t.rec.wait_for(3);
    drop(t);
}

#[test]
fn defaults_and_bad_configs() {
    let t = create("{}").unwrap();
    assert_eq!(t.start(), MP_OK);
    assert_eq!(t.rec.wait_for(4)[1..], [tick(1), tick(2), tick(3)]);
    assert_eq!(t.stop(), MP_OK);
    for bad in ["", "[]", r#"{"count": -1}"#, r#"{"interval": 5}"#] {
        assert_eq!(create(bad).err(), Some(MP_ERR_INVALID), "{bad}");
    }
}
