//! The panicky plugin through its C table: each configured panic comes back
//! as `MP_ERR_PANIC` (the SDK's guard), never as an abort of this process,
//! and a panicked instance refuses every later call.

use std::ffi::c_void;
use std::sync::Mutex;

use meshpay_abi::*;

/// Log lines, to check that the SDK reported each panic.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);

unsafe extern "C" fn log(ctx: *mut c_void, _level: MpLogLevel, message: MpStr) {
    let log = unsafe { &*(ctx as *const Log) };
    log.0.lock().unwrap().push(unsafe { message.to_str() }.unwrap().to_owned());
}

struct Instance {
    vt: MpTransportV1,
    inst: *mut c_void,
}

/// Creates an instance; the log and host tables are leaked (they must
/// outlive the instance; the test process is short).
fn create(config: &str) -> (Result<Instance, MpStatus>, &'static Log) {
    let entry = unsafe { read_sized(meshpay_test_plugin_panicky::plugin_entry()) }.unwrap();
    let table = unsafe { entry.get_interface.unwrap()(MpStr::new(INTERFACE_TRANSPORT_V1)) };
    let vt = unsafe { read_sized(table as *const MpTransportV1) }.unwrap();
    let log_sink: &'static Log = Box::leak(Box::default());
    let ctx = log_sink as *const Log as *mut c_void;
    let host: &'static MpHost = Box::leak(Box::new(MpHost {
        struct_size: table_size::<MpHost>(),
        abi: ABI_VERSION,
        ctx,
        log: Some(log),
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
        deliver: None,
        link_event: None,
    }));
    let mut inst = std::ptr::null_mut();
    let status = unsafe { vt.create.unwrap()(host, link, MpBytes::new(config.as_bytes()), &mut inst) };
    let result = match status {
        MP_OK => Ok(Instance { vt, inst }),
        status => {
            assert!(inst.is_null());
            Err(status)
        }
    };
    (result, log_sink)
}

impl Instance {
    fn start(&self) -> MpStatus {
        unsafe { self.vt.start.unwrap()(self.inst) }
    }
    fn stop(&self) -> MpStatus {
        unsafe { self.vt.stop.unwrap()(self.inst) }
    }
    fn send(&self, frame: &[u8]) -> MpStatus {
        unsafe { self.vt.send.unwrap()(self.inst, MpStr::new("anyone"), MpBytes::new(frame)) }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        unsafe { self.vt.destroy.unwrap()(self.inst) }
    }
}

fn logged_panic(log: &Log, call: &str) -> bool {
    log.0.lock().unwrap().iter().any(|l| l.starts_with(&format!("panic in {call}")))
}

#[test]
fn without_a_configured_panic_only_the_panic_frame_panics() {
    let (t, log) = create(r#"{"panic_in": "none"}"#);
    let t = t.unwrap();
    assert_eq!(t.start(), MP_OK);
    assert_eq!(t.send(b"fine"), MP_OK);
    assert_eq!(t.send(b"panic"), MP_ERR_PANIC);
    assert!(logged_panic(log, "send"));
    // Poisoned: every later call is refused without running plugin code.
    assert_eq!(t.send(b"fine"), MP_ERR_PANIC);
    assert_eq!(t.stop(), MP_ERR_PANIC);
}

#[test]
fn each_configured_call_panics() {
    let (t, log) = create(r#"{"panic_in": "create"}"#);
    assert_eq!(t.err(), Some(MP_ERR_PANIC));
    assert!(logged_panic(log, "create"));

    let (t, log) = create(r#"{"panic_in": "start"}"#);
    let t = t.unwrap();
    assert_eq!(t.start(), MP_ERR_PANIC);
    assert!(logged_panic(log, "start"));
    assert_eq!(t.send(b"fine"), MP_ERR_PANIC);

    let (t, _) = create(r#"{"panic_in": "send"}"#);
    let t = t.unwrap();
    assert_eq!(t.start(), MP_OK);
    assert_eq!(t.send(b"fine"), MP_ERR_PANIC);

    let (t, log) = create(r#"{"panic_in": "stop"}"#);
    let t = t.unwrap();
    assert_eq!((t.start(), t.send(b"fine"), t.stop()), (MP_OK, MP_OK, MP_ERR_PANIC));
    assert!(logged_panic(log, "stop"));

    let (t, log) = create(r#"{"panic_in": "destroy"}"#);
    let t = t.unwrap();
    assert_eq!((t.start(), t.stop()), (MP_OK, MP_OK));
    drop(t); // caught by the SDK: this process goes on
    assert!(logged_panic(log, "destroy"));
}

#[test]
fn bad_configs_are_invalid() {
    for bad in ["", r#"{"panic_in": "sometimes"}"#, r#"{"panic": "send"}"#] {
        assert_eq!(create(bad).0.err(), Some(MP_ERR_INVALID), "{bad}");
    }
    assert!(create("{}").0.is_ok(), "panic_in defaults to none");
}
