//! The control API: newline-delimited JSON over the Unix socket
//! `<state-dir>/control.sock` (mode 0600: only the node's user may use it).
//!
//! Request, one line: `{"method": "status", "params": {...}}`
//! Reply, one line:   `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`
//!
//! Wallets, point-of-sale software and operators use it through the
//! `meshpay` CLI or directly (`socat - UNIX-CONNECT:.../control.sock`).
//!
//! **Attachments.** Payloads can travel as raw bytes instead of base64 in
//! the JSON: a request or reply line may carry `"attachments": [n1, n2, ...]`,
//! and exactly that many bytes (n1, then n2, ...) follow its newline. `send`
//! takes its payloads that way, and `recv` with `"binary": true` returns
//! them that way. Base64 costs a third more bytes and, for 64 KiB
//! payloads, more CPU than the node spends relaying them (encode, escape
//! scan, decode), so the CLI and bulk clients use attachments; base64 stays
//! for clients that only speak JSON lines.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// Longest request line the server accepts: room for a bulk `send` of
/// several large payloads in base64 (a 1 MiB bundle is 1.4 MB of it), still
/// bounded so a misbehaving client cannot make the node buffer without limit.
pub const MAX_REQUEST: usize = 8 << 20;

/// Most bytes of attachments one request or reply may carry (in total),
/// bounded for the same reason as [`MAX_REQUEST`]. (A `recv` reply holds
/// at most this much, unless its one payload is larger.)
pub const MAX_ATTACHED: usize = 16 << 20;

/// Most attachments on one request or reply (a bulk `send` takes up to
/// 10 000 payloads).
pub const MAX_ATTACHMENTS: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    #[serde(default)]
    pub params: Value,
    /// Byte lengths of the raw attachments that follow the line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Byte lengths of the raw attachments that follow the line (filled
    /// from `data` when the reply is written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<u64>,
    /// The attachments themselves, written after the line.
    #[serde(skip)]
    pub data: Vec<Vec<u8>>,
}

impl Reply {
    pub fn ok(result: Value) -> Reply {
        Reply::ok_with(result, Vec::new())
    }
    /// A result with raw attachments after it.
    pub fn ok_with(result: Value, data: Vec<Vec<u8>>) -> Reply {
        Reply { ok: true, result: Some(result), data, ..Reply::default() }
    }
    pub fn err(message: impl Into<String>) -> Reply {
        Reply { ok: false, error: Some(message.into()), ..Reply::default() }
    }
}

/// A request on its way to the node loop, with its attachments and the
/// channel for its answer.
pub struct Call {
    pub request: Request,
    pub data: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Reply>,
}

/// Why the attachments a message (`on`: "one request", "the node's
/// reply") declares are refused, checked before any of their bytes is read.
/// The node closes the connection after refusing a request, since the bytes
/// that follow cannot be told apart from the next request.
fn check_attachments(lens: &[u64], on: &str) -> Result<(), String> {
    if lens.len() > MAX_ATTACHMENTS {
        return Err(format!("{} attachments on {on} (at most {MAX_ATTACHMENTS})", lens.len()));
    }
    let total = lens.iter().try_fold(0u64, |t, &n| t.checked_add(n)).unwrap_or(u64::MAX);
    if total > MAX_ATTACHED as u64 {
        return Err(format!("{total} bytes of attachments on {on} (at most {MAX_ATTACHED})"));
    }
    Ok(())
}

/// Binds the control socket (replacing a stale one: the caller holds the
/// state directory's lock, so no live node owns it) and serves it, handing
/// each request to `calls`.
pub fn serve(path: &Path, calls: mpsc::Sender<Call>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if path.as_os_str().len() >= 108 {
        bail!(
            "control socket path {} is too long for a Unix socket (max 107 bytes): use a shorter --state-dir",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::debug!("removed stale control socket {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot remove stale control socket {}", path.display()));
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, calls.clone()));
                }
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }))
}

async fn connection(stream: tokio::net::UnixStream, calls: mpsc::Sender<Call>) {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read one line, refusing to buffer more than MAX_REQUEST bytes.
        let n = match (&mut lines).take(MAX_REQUEST as u64 + 1).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let reply = if n > MAX_REQUEST {
            let r = Reply::err(format!("request longer than {MAX_REQUEST} bytes"));
            let _ = write_reply(&mut write, r).await;
            return;
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Reply::err(format!("malformed request: {e}")),
                Ok(request) => {
                    if let Err(e) = check_attachments(&request.attachments, "one request") {
                        let _ = write_reply(&mut write, Reply::err(e)).await;
                        return;
                    }
                    let mut data = Vec::with_capacity(request.attachments.len());
                    for &n in &request.attachments {
                        let mut bytes = vec![0u8; n as usize];
                        if lines.read_exact(&mut bytes).await.is_err() {
                            return;
                        }
                        data.push(bytes);
                    }
                    let (tx, rx) = oneshot::channel();
                    if calls.send(Call { request, data, reply: tx }).await.is_err() {
                        Reply::err("the node is shutting down")
                    } else {
                        rx.await.unwrap_or_else(|_| Reply::err("the node dropped the request"))
                    }
                }
            }
        };
        if write_reply(&mut write, reply).await.is_err() {
            return;
        }
    }
}

async fn write_reply(w: &mut tokio::net::unix::OwnedWriteHalf, mut reply: Reply) -> std::io::Result<()> {
    reply.attachments = reply.data.iter().map(|d| d.len() as u64).collect();
    let mut bytes = serde_json::to_vec(&reply)
        .unwrap_or_else(|_| br#"{"ok":false,"error":"unserialisable reply"}"#.to_vec());
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    for d in &reply.data {
        w.write_all(d).await?;
    }
    Ok(())
}

/// A blocking client for the CLI.
pub struct Client {
    path: PathBuf,
    stream: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the node whose control socket is at `path`.
    pub fn connect(path: &Path) -> anyhow::Result<Client> {
        let stream = UnixStream::connect(path).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    "is the node running? start it with `meshpay run` (and the same --state-dir)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "the socket belongs to another user: run as the node's user"
                }
                _ => "",
            };
            anyhow::anyhow!("cannot reach the node at {}: {e}; {hint}", path.display())
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client { path: path.to_owned(), stream: BufReader::new(stream) })
    }

    /// Calls `method` and returns its result, or the node's error.
    pub fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        Ok(self.call_with(method, params, &[])?.0)
    }

    /// Calls `method` with raw attachments (see the module doc) and returns
    /// its result with the reply's attachments, or the node's error.
    pub fn call_with(
        &mut self,
        method: &str,
        params: Value,
        attachments: &[&[u8]],
    ) -> anyhow::Result<(Value, Vec<Vec<u8>>)> {
        let lens = attachments.iter().map(|a| a.len() as u64).collect();
        let mut line = serde_json::to_vec(&Request { method: method.into(), params, attachments: lens })?;
        line.push(b'\n');
        let sent = send_all_nosignal(self.stream.get_ref(), &line)
            .and_then(|()| attachments.iter().try_for_each(|a| send_all_nosignal(self.stream.get_ref(), a)));
        sent.with_context(|| format!("cannot send to {}", self.path.display()))?;
        let mut answer = String::new();
        self.stream
            .read_line(&mut answer)
            .with_context(|| format!("no answer from {}", self.path.display()))?;
        if answer.is_empty() {
            bail!("the node closed the connection without answering");
        }
        let reply: Reply = serde_json::from_str(&answer).context("the node sent a malformed reply")?;
        check_attachments(&reply.attachments, "the node's reply").map_err(anyhow::Error::msg)?;
        let mut data = Vec::with_capacity(reply.attachments.len());
        for &n in &reply.attachments {
            // At most MAX_ATTACHED: checked above.
            let mut bytes = vec![0u8; n as usize];
            self.stream.read_exact(&mut bytes).with_context(|| {
                format!("the reply's attachments from {} were cut short", self.path.display())
            })?;
            data.push(bytes);
        }
        match (reply.ok, reply.result, reply.error) {
            (true, result, _) => Ok((result.unwrap_or(Value::Null), data)),
            (false, _, error) => bail!("{}", error.unwrap_or_else(|| "unspecified error".into())),
        }
    }
}

/// Writes all of `buf` with MSG_NOSIGNAL: a node that went away is an
/// error to report (EPIPE), not a SIGPIPE that kills the CLI silently (the
/// CLI restores SIGPIPE's default so that `meshpay ... | head` ends quietly).
fn send_all_nosignal(stream: &UnixStream, mut buf: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    while !buf.is_empty() {
        // SAFETY: the fd is the open socket owned by `stream`; `buf` is a
        // valid slice for the length given.
        let n = unsafe { libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_attachments_are_checked_in_number_and_in_total() {
        assert_eq!(check_attachments(&[1, 2, 3], "x"), Ok(()));
        assert_eq!(check_attachments(&[MAX_ATTACHED as u64], "x"), Ok(()));
        let too_many = vec![0; MAX_ATTACHMENTS + 1];
        assert!(check_attachments(&too_many, "x").unwrap_err().contains("10001 attachments on x"));
        let over = [MAX_ATTACHED as u64 / 2 + 1, MAX_ATTACHED as u64 / 2];
        assert!(check_attachments(&over, "x").unwrap_err().contains("bytes of attachments on x"));
        // A sum that overflows is refused, not wrapped.
        assert!(check_attachments(&[u64::MAX, 2], "x").is_err());
    }

    #[test]
    fn the_client_refuses_a_reply_announcing_more_than_it_buffers_before_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut lines = BufReader::new(stream);
            let mut request = String::new();
            lines.read_line(&mut request).unwrap();
            // Two attachments, each within the bound, together over it.
            let half = MAX_ATTACHED / 2 + 1;
            let reply = format!("{{\"ok\":true,\"result\":{{}},\"attachments\":[{half},{half}]}}\n");
            std::io::Write::write_all(lines.get_mut(), reply.as_bytes()).unwrap();
        });
        let err = Client::connect(&path).unwrap().call_with("recv", Value::Null, &[]).unwrap_err();
        assert!(err.to_string().contains("bytes of attachments on the node's reply"), "{err}");
        server.join().unwrap();
    }
}
