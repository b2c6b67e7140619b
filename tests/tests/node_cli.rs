//! The `meshpay` binary as an operator meets it: state directory, identity,
//! status, configuration errors, clean shutdown.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use meshpay_tests::*;

#[test]
fn a_node_on_embedded_defaults_answers_status_and_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let mut child = std::process::Command::new(meshpay_bin())
        .arg("--state-dir")
        .arg(&state)
        .arg("run")
        .stderr(std::fs::File::create(tmp.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let status = wait_for(Duration::from_secs(20), || {
        let out = meshpay(&["--state-dir", state.to_str().unwrap(), "status", "--json"]);
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    })
    .expect("status never answered");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let abi = meshpay_abi::ABI_VERSION.to_string();
    assert_eq!(status["abi"], abi.as_str());
    assert!(status["uptime_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(status["node"]["id"].as_str().unwrap().len(), 64);
    assert!(status["node"]["did"].as_str().unwrap().starts_with("did:key:z6Mk"));
    let plugins = status["plugins"].as_array().unwrap();
    assert!(
        plugins.iter().any(|p| p["id"] == "org.meshpay.transport.unixdgram" && p["abi"] == abi.as_str()),
        "{status:#}"
    );
    assert_eq!(transport(&status, "local")["state"], "active");

    // The key is there, mode 0600, and `meshpay id` shows the same identity.
    let key = state.join("node.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let out = meshpay(&["--state-dir", state.to_str().unwrap(), "id", "--json"]);
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(id["id"], status["node"]["id"]);
    assert_eq!(id["did"], status["node"]["did"]);

    // A second node on the same state directory is refused.
    let out = meshpay(&["--state-dir", state.to_str().unwrap(), "run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));

    // SIGTERM: clean exit, control socket removed, same identity next time.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let code = wait_for(Duration::from_secs(10), || child.try_wait().unwrap()).expect("did not exit");
    assert_eq!(code.code(), Some(0));
    assert!(!state.join("control.sock").exists());
    let log = std::fs::read_to_string(tmp.path().join("log")).unwrap();
    assert!(log.contains("shutting down (SIGTERM)") && log.contains("meshpay stopped"), "{log}");
}

#[test]
fn sigint_also_stops_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProc::start(tmp.path(), "[node]\nname = \"x\"\n");
    node.signal(libc::SIGINT);
    assert_eq!(node.wait_exit(Duration::from_secs(10)).unwrap().code(), Some(0));
}

#[test]
fn status_without_a_running_node_says_how_to_start_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = meshpay(&["--state-dir", tmp.path().to_str().unwrap(), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("meshpay run") && err.contains("control.sock"), "{err}");
}

#[test]
fn a_broken_config_is_refused_naming_the_key_and_nothing_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[node]\nname = \"x\"\n\n[[transport]]\nplugin = \"org.meshpay.transport.unixdgram\"\nconfg = {}\n",
    )
    .unwrap();
    let state = tmp.path().join("state");
    let out = meshpay(&["--state-dir", state.to_str().unwrap(), "run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transport[0]") && err.contains("confg") && err.contains("line 6"), "{err}");
    assert!(!state.exists(), "nothing may be created for a broken config");

    // An unknown built-in is a config-check error too.
    std::fs::write(&cfg, "[[transport]]\nplugin = \"org.example.nope\"\n").unwrap();
    let out = meshpay(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no built-in plugin `org.example.nope`"));
}

#[test]
fn help_explains_the_commands_and_the_state_dir() {
    let out = meshpay(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["run", "status", "id", "plugins", "config", "--state-dir", "MESHPAY_STATE_DIR"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
    let out = meshpay(&["config", "default"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[[transport]]"));
}

/// Runs `meshpay ARGS` with standard output the write end of a pipe whose
/// read end is already closed (the reader went away, as `| head -1` does
/// after one line), and returns its exit status and standard error.
fn into_closed_pipe(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(meshpay_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_output_into_a_closed_pipe_ends_quietly_and_the_daemon_ignores_sigpipe() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProc::start(tmp.path(), "[node]\nname = \"pipe\"\n");
    let state = node.state_dir().to_str().unwrap().to_owned();
    let cfg = tmp.path().join("meshpay.toml");
    for args in [
        vec!["config", "default"],
        vec!["--state-dir", &state, "bundles"],
        vec!["--state-dir", &state, "status"],
        vec!["plugins", "list"],
        vec!["config", "check", cfg.to_str().unwrap()],
    ] {
        let (status, stderr) = into_closed_pipe(&args);
        // Like other Unix tools: ended by SIGPIPE, nothing on stderr (a
        // panic in println! exits 101 with a backtrace hint).
        assert_eq!(status.signal(), Some(libc::SIGPIPE), "meshpay {args:?}: {status}, stderr:\n{stderr}");
        assert!(stderr.is_empty(), "meshpay {args:?} wrote to stderr:\n{stderr}");
    }
    // The daemon keeps ignoring SIGPIPE (a peer closing a socket must not
    // kill it): bit 13 of SigIgn in /proc/PID/status.
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
    let ign = proc_status.lines().find_map(|l| l.strip_prefix("SigIgn:")).expect("SigIgn line");
    let mask = u64::from_str_radix(ign.trim(), 16).unwrap();
    assert_ne!(mask & (1 << (libc::SIGPIPE - 1)), 0, "meshpay run does not ignore SIGPIPE: SigIgn {ign}");
    node.stop();
}

/// One control-API exchange on a raw socket, as a client in any language
/// would write it: a JSON line, then the raw attachments; the reply line,
/// then its attachments.
fn control_raw(
    sock: &mut std::io::BufReader<std::os::unix::net::UnixStream>,
    line: &serde_json::Value,
    attachments: &[&[u8]],
) -> (serde_json::Value, Vec<Vec<u8>>) {
    use std::io::{BufRead, Read, Write};
    let mut out = serde_json::to_vec(line).unwrap();
    out.push(b'\n');
    for a in attachments {
        out.extend_from_slice(a);
    }
    sock.get_mut().write_all(&out).unwrap();
    let mut answer = String::new();
    sock.read_line(&mut answer).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&answer).unwrap_or(serde_json::Value::Null);
    let mut data = Vec::new();
    for n in reply["attachments"].as_array().into_iter().flatten() {
        let mut bytes = vec![0; n.as_u64().unwrap() as usize];
        sock.read_exact(&mut bytes).unwrap();
        data.push(bytes);
    }
    (reply, data)
}

/// A raw connection to `node`'s control socket.
fn control_socket(node: &NodeProc) -> std::io::BufReader<std::os::unix::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::connect(node.state_dir().join("control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::io::BufReader::new(s)
}

/// A single node, and the endpoint of its own `inbox` service.
fn solo_node_with_inbox(dir: &std::path::Path) -> (NodeProc, String) {
    let node = NodeProc::start(dir, "[node]\nname = \"solo\"\n");
    let dest = format!("{}inbox", node.id().1);
    (node, dest)
}

#[test]
fn payloads_pass_the_control_api_raw_as_attachments_and_bad_attachments_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (node, dest) = solo_node_with_inbox(tmp.path());
    let mut sock = control_socket(&node);

    // Three payloads, one of them empty and one full of newlines and
    // bytes that are not UTF-8: they come back exactly, in order.
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let payloads: [&[u8]; 3] = [b"\n\n\xff\x00{\"ok\":true}\n", b"", &big];
    let lens: Vec<usize> = payloads.iter().map(|p| p.len()).collect();
    let send = serde_json::json!({"method": "send", "params": {"destination": dest, "service": "x"}, "attachments": lens});
    let (reply, _) = control_raw(&mut sock, &send, &payloads);
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["ids"].as_array().map(Vec::len), Some(3), "{reply}");

    let recv = serde_json::json!({"method": "recv", "params": {"service": "inbox", "max": 10, "wait_ms": 10000, "binary": true}});
    let mut got: Vec<Vec<u8>> = Vec::new();
    while got.len() < 3 {
        let (reply, data) = control_raw(&mut sock, &recv, &[]);
        assert_eq!(reply["ok"], true, "{reply}");
        let these = reply["result"]["items"].as_array().unwrap().clone();
        assert!(!these.is_empty(), "nothing delivered within 10 s; log:\n{}", node.log());
        assert_eq!(these.len(), data.len(), "items and attachments differ in number");
        for (item, d) in these.iter().zip(&data) {
            assert_eq!(item["payload_len"].as_u64(), Some(d.len() as u64));
            assert!(item.get("payload").is_none(), "binary recv also sent base64: {item}");
        }
        let last = these.last().unwrap()["seq"].as_u64().unwrap();
        let ack = serde_json::json!({"method": "ack", "params": {"service": "inbox", "seq": last}});
        assert_eq!(control_raw(&mut sock, &ack, &[]).0["ok"], true);
        got.extend(data);
    }
    let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
    assert!(got == want, "payloads came back changed or out of order");

    // Payloads both in base64 and attached: refused, nothing sent.
    let both = serde_json::json!({"method": "send",
        "params": {"destination": dest, "service": "x", "payload": "aGk="}, "attachments": [2]});
    let (reply, _) = control_raw(&mut sock, &both, &[b"hi"]);
    assert_eq!(reply["ok"], false);
    assert!(reply["error"].as_str().unwrap().contains("not both"), "{reply}");
    // Attachments on a method that takes none: refused, and the stream
    // stays in step (the next request on it is answered).
    let status = serde_json::json!({"method": "status", "attachments": [3]});
    let (reply, _) = control_raw(&mut sock, &status, &[b"abc"]);
    assert!(reply["error"].as_str().unwrap().contains("takes no attachments"), "{reply}");
    let (reply, _) = control_raw(&mut sock, &serde_json::json!({"method": "status"}), &[]);
    assert_eq!(reply["ok"], true, "{reply}");

    // More than the node buffers: refused before a byte of it is read, and
    // the connection closes (what follows cannot be told from a request).
    let huge = serde_json::json!({"method": "send",
        "params": {"destination": dest, "service": "x"}, "attachments": [1u64 << 40]});
    let (reply, _) = control_raw(&mut sock, &huge, &[]);
    assert!(reply["error"].as_str().unwrap().contains("bytes of attachments"), "{reply}");
    let mut rest = String::new();
    assert_eq!(std::io::BufRead::read_line(&mut sock, &mut rest).unwrap(), 0, "the connection stayed open");

    // The node keeps serving, and nothing was delivered by the refusals.
    let mut sock = control_socket(&node);
    let recv_now = serde_json::json!({"method": "recv", "params": {"service": "inbox", "binary": true}});
    let (reply, data) = control_raw(&mut sock, &recv_now, &[]);
    assert_eq!(reply["result"]["items"], serde_json::json!([]), "{reply}");
    assert!(data.is_empty());

    // The CLI passes a file's bytes raw both ways.
    let file = tmp.path().join("payload.bin");
    std::fs::write(&file, &big).unwrap();
    let out = node.cli(&["send", "--to", &dest, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 64, "send prints the bundle id");
    let out = node.cli(&["recv", "inbox", "--count", "1", "--timeout", "20"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == big, "recv wrote {} bytes, not the 70000 sent", out.stdout.len());
}

#[test]
fn a_recv_reply_is_bounded_in_bytes_and_the_rest_comes_on_the_next_call() {
    // 20 payloads of 1 MB wait for one service; a `recv` asking for 1 024
    // gets no more than 16 MiB of them (the node builds a reply in memory),
    // and the next calls get the rest, in order.
    let tmp = tempfile::tempdir().unwrap();
    let (node, dest) = solo_node_with_inbox(tmp.path());
    let mut sock = control_socket(&node);
    let payload = |n: u8| vec![n; 1_000_000];
    for half in 0..2u8 {
        let ps: Vec<Vec<u8>> = (0..10).map(|i| payload(half * 10 + i)).collect();
        let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
        let lens: Vec<usize> = ps.iter().map(Vec::len).collect();
        let send = serde_json::json!({"method": "send", "params": {"destination": dest, "service": "x"}, "attachments": lens});
        let (reply, _) = control_raw(&mut sock, &send, &refs);
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let recv = serde_json::json!({"method": "recv", "params": {"service": "inbox", "max": 1024, "wait_ms": 10000, "binary": true}});
    let mut got: Vec<u8> = Vec::new();
    let mut replies = 0;
    while got.len() < 20 {
        let (reply, data) = control_raw(&mut sock, &recv, &[]);
        replies += 1;
        assert_eq!(reply["ok"], true, "{reply}");
        assert!(!data.is_empty(), "nothing delivered within 10 s; log:\n{}", node.log());
        let bytes: usize = data.iter().map(Vec::len).sum();
        assert!(bytes <= 16 << 20, "one reply carried {bytes} bytes of payload");
        for d in &data {
            assert!(d == &payload(d[0]), "a payload came back changed");
            got.push(d[0]);
        }
        let last = reply["result"]["items"].as_array().unwrap().last().unwrap()["seq"].as_u64().unwrap();
        let ack = serde_json::json!({"method": "ack", "params": {"service": "inbox", "seq": last}});
        assert_eq!(control_raw(&mut sock, &ack, &[]).0["ok"], true);
    }
    assert_eq!(got, (0..20).collect::<Vec<u8>>(), "payloads lost, repeated or out of order");
    assert!(replies >= 2, "all 20 MB came in one reply");
}
