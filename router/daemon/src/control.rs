//! The control API: newline-delimited JSON over the Unix socket
//! `<state-dir>/control.sock` (mode 0600: only the node's user may use it).
//!
//! Request, one line: `{"method": "status", "params": {...}}`
//! Reply, one line:   `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`
//!
//! Wallets, point-of-sale software and operators use it through the
//! `meshpay` CLI or directly (`socat - UNIX-CONNECT:.../control.sock`).

use std::io::{BufRead, BufReader};
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

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    #[serde(default)]
    pub params: Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok(result: Value) -> Reply {
        Reply { ok: true, result: Some(result), error: None }
    }
    pub fn err(message: impl Into<String>) -> Reply {
        Reply { ok: false, result: None, error: Some(message.into()) }
    }
}

/// A request on its way to the node loop, with the channel for its answer.
pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
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
            let _ = write_reply(&mut write, &r).await;
            return;
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Reply::err(format!("malformed request: {e}")),
                Ok(request) => {
                    let (tx, rx) = oneshot::channel();
                    if calls.send(Call { request, reply: tx }).await.is_err() {
                        Reply::err("the node is shutting down")
                    } else {
                        rx.await.unwrap_or_else(|_| Reply::err("the node dropped the request"))
                    }
                }
            }
        };
        if write_reply(&mut write, &reply).await.is_err() {
            return;
        }
    }
}

async fn write_reply(w: &mut tokio::net::unix::OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(reply)
        .unwrap_or_else(|_| br#"{"ok":false,"error":"unserialisable reply"}"#.to_vec());
    bytes.push(b'\n');
    w.write_all(&bytes).await
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
        let mut line = serde_json::to_vec(&Request { method: method.into(), params })?;
        line.push(b'\n');
        send_all_nosignal(self.stream.get_ref(), &line)
            .with_context(|| format!("cannot send to {}", self.path.display()))?;
        let mut answer = String::new();
        self.stream
            .read_line(&mut answer)
            .with_context(|| format!("no answer from {}", self.path.display()))?;
        if answer.is_empty() {
            bail!("the node closed the connection without answering");
        }
        let reply: Reply = serde_json::from_str(&answer).context("the node sent a malformed reply")?;
        match (reply.ok, reply.result, reply.error) {
            (true, result, _) => Ok(result.unwrap_or(Value::Null)),
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
