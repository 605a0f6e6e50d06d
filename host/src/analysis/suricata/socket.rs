//! Suricata's command socket: a JSON protocol over a Unix stream socket. The client says
//! `{"version": "0.2"}` first; every command is `{"command": NAME, "arguments": {...}}` and
//! gets `{"return": "OK"|"NOK", "message": ...}` back. Requests end with a newline; a reply
//! is complete when it parses as JSON.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use super::SuricataError;

/// Protocol version this client speaks.
pub const PROTOCOL_VERSION: &str = "0.2";

/// A connected, greeted command socket.
#[derive(Debug)]
pub struct CommandSocket {
    path: PathBuf,
    stream: UnixStream,
}

impl CommandSocket {
    /// Connects and does the version handshake. `timeout` bounds every read and write.
    pub fn connect(path: &Path, timeout: Duration) -> Result<CommandSocket, SuricataError> {
        let sock_err = |reason: String| SuricataError::Socket {
            path: path.to_path_buf(),
            reason,
        };
        let stream = UnixStream::connect(path).map_err(|e| sock_err(format!("connect: {e}")))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| sock_err(format!("timeouts: {e}")))?;
        let mut s = CommandSocket {
            path: path.to_path_buf(),
            stream,
        };
        let reply = s.exchange(&json!({ "version": PROTOCOL_VERSION }))?;
        s.ok(reply, "version handshake")?;
        Ok(s)
    }

    /// Runs a command and returns its `message` when the answer is `OK`.
    pub fn command(
        &mut self,
        name: &str,
        arguments: Option<Value>,
    ) -> Result<Value, SuricataError> {
        let mut msg = json!({ "command": name });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let reply = self.exchange(&msg)?;
        self.ok(reply, name)
    }

    fn ok(&self, reply: Value, what: &str) -> Result<Value, SuricataError> {
        match reply.get("return").and_then(Value::as_str) {
            Some("OK") => Ok(reply.get("message").cloned().unwrap_or(Value::Null)),
            _ => Err(SuricataError::CommandFailed {
                command: what.to_string(),
                reply: reply.to_string(),
            }),
        }
    }

    fn exchange(&mut self, msg: &Value) -> Result<Value, SuricataError> {
        let sock_err = |reason: String| SuricataError::Socket {
            path: self.path.clone(),
            reason,
        };
        // Suricata reads a message up to its newline; without one it never answers.
        let text = format!("{msg}\n");
        self.stream
            .write_all(text.as_bytes())
            .map_err(|e| sock_err(format!("write: {e}")))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = self
                .stream
                .read(&mut chunk)
                .map_err(|e| sock_err(format!("read: {e}")))?;
            if n == 0 {
                return Err(sock_err("closed before a complete reply".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
            match serde_json::from_slice::<Value>(&buf) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_eof() => continue,
                Err(e) => return Err(sock_err(format!("reply is not JSON: {e}"))),
            }
        }
    }
}
