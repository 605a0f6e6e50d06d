//! A blocking client of the daemon's API: bearer token, JSON in and out, problem+json errors
//! turned into messages that name what is wrong.

use std::{fmt, time::Duration};

use serde_json::Value;

/// Where the API is and who calls it.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    tenant: Option<String>,
    agent: ureq::Agent,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with a problem.
    #[error("{0}")]
    Problem(Problem),
    /// The daemon could not be reached.
    #[error(
        "cannot reach the daemon at {url}: {message} (is shadownetd running? set --api or SHADOWNET_API)"
    )]
    Transport {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
    /// The answer was not the JSON expected.
    #[error("the daemon's answer to {url} is not JSON: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What failed.
        message: String,
    },
}

/// An RFC 9457 problem as the daemon reports it.
#[derive(Clone, Debug)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// The whole problem document.
    pub body: Value,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = self
            .body
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("error");
        write!(f, "{title} ({})", self.status)?;
        let errors = self.body.get("errors").and_then(Value::as_array);
        match errors {
            Some(errors) if !errors.is_empty() => {
                for e in errors {
                    let path = e.get("path").and_then(Value::as_str).unwrap_or("");
                    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
                    write!(f, "\n  {path}: {msg}")?;
                }
            }
            _ => {
                if let Some(d) = self.body.get("detail").and_then(Value::as_str) {
                    write!(f, ": {d}")?;
                }
            }
        }
        Ok(())
    }
}

impl Client {
    /// A client of the API at `base` (`http://127.0.0.1:7878`).
    pub fn new(base: &str, token: Option<String>, tenant: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            tenant,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    fn request(&self, method: &str, path: &str) -> (String, ureq::Request) {
        let url = format!("{}{path}", self.base);
        let mut r = self.agent.request(method, &url);
        if let Some(t) = &self.token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        if let Some(t) = &self.tenant {
            r = r.set("Shadownet-Tenant", t);
        }
        (url, r)
    }

    fn finish(url: &str, res: Result<ureq::Response, ureq::Error>) -> Result<Value, ClientError> {
        match res {
            Ok(r) => {
                if r.status() == 204 {
                    return Ok(Value::Null);
                }
                let text = r.into_string().map_err(|e| ClientError::Decode {
                    url: url.into(),
                    message: e.to_string(),
                })?;
                serde_json::from_str(&text).map_err(|e| ClientError::Decode {
                    url: url.into(),
                    message: e.to_string(),
                })
            }
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                let body = serde_json::from_str(&text)
                    .unwrap_or_else(|_| serde_json::json!({"title": "error", "detail": text}));
                Err(ClientError::Problem(Problem { status, body }))
            }
            Err(e) => Err(ClientError::Transport {
                url: url.into(),
                message: e.to_string(),
            }),
        }
    }

    /// GET.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let (url, r) = self.request("GET", path);
        Self::finish(&url, r.call())
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let (url, r) = self.request("DELETE", path);
        Self::finish(&url, r.call())
    }

    /// POST or PUT with a JSON body and optional extra headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        headers: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        let (url, mut r) = self.request(method, path);
        for (k, v) in headers {
            r = r.set(k, v);
        }
        Self::finish(&url, r.send_json(body.clone()))
    }

    /// POST raw bytes.
    pub fn send_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, ClientError> {
        self.bytes("POST", path, content_type, body)
    }

    /// PUT raw bytes.
    pub fn put_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, ClientError> {
        self.bytes("PUT", path, content_type, body)
    }

    fn bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, ClientError> {
        let (url, r) = self.request(method, path);
        Self::finish(&url, r.set("Content-Type", content_type).send_bytes(body))
    }
}
