//! Request extractors whose every rejection is a problem+json: the bearer token, JSON bodies
//! (with the fingerprint idempotency keys are checked against), query numbers.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{ApiState, Problem};
use crate::control::{Backend, Caller, token_hash};

/// Header with which the admin token acts on one tenant's objects.
pub const TENANT_HEADER: &str = "shadownet-tenant";

/// The authenticated caller.
pub struct Auth(pub Caller);

impl<D: Backend> FromRequestParts<ApiState<D>> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState<D>,
    ) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            Problem::unauthorized("no Authorization header: send 'Authorization: Bearer <token>'")
        })?;
        let value = value
            .to_str()
            .map_err(|_| Problem::unauthorized("the Authorization header is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header is not 'Bearer <token>'")
            })?;
        if token.len() > 256 {
            return Err(Problem::unauthorized("the token is not valid"));
        }
        if token_hash(token) == state.admin_token_hash {
            let tenant = match parts.headers.get(TENANT_HEADER) {
                None => None,
                Some(v) => Some(
                    v.to_str()
                        .map_err(|_| {
                            Problem::bad_request("the Shadownet-Tenant header is not text")
                        })?
                        .to_string(),
                ),
            };
            return Ok(Auth(Caller {
                tenant,
                admin: true,
                actor: "admin".into(),
            }));
        }
        let token = token.to_string();
        let tenant = state
            .ctl
            .read(move |c| c.authenticate(&token))
            .await?
            .map_err(Problem::from)?
            .ok_or_else(|| Problem::unauthorized("the token is not valid"))?;
        Ok(Auth(Caller {
            actor: format!("tenant:{tenant}"),
            tenant: Some(tenant),
            admin: false,
        }))
    }
}

/// A JSON body, and the SHA-256 of method, path and body for idempotency checks.
pub struct JsonBody<T> {
    /// The decoded body.
    pub value: T,
    /// Fingerprint of the request.
    pub fingerprint: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let m = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !json {
            return Err(Problem::unsupported_media(
                "the body must be JSON, sent with 'Content-Type: application/json'",
            ));
        }
        let head = format!("{} {}\n", req.method(), req.uri().path());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large(super::BODY_LIMIT)
            } else {
                Problem::bad_request(format!("the body could not be read: {e}"))
            }
        })?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => Problem::unprocessable(e.to_string()),
                _ => Problem::bad_request(format!("the body is not valid JSON: {e}")),
            }
        })?;
        let mut fp = head.into_bytes();
        fp.extend_from_slice(&bytes);
        Ok(JsonBody {
            value,
            fingerprint: token_hash(&String::from_utf8_lossy(&fp)),
        })
    }
}

/// The `Idempotency-Key` header, when sent.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, Problem> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| Problem::bad_request("the Idempotency-Key header is not text"))?;
            if k.is_empty() || k.len() > 255 {
                return Err(Problem::bad_request(
                    "the Idempotency-Key header must be 1 to 255 characters",
                ));
            }
            Ok(Some(k.to_string()))
        }
    }
}

/// The `If-Match` header as a version number (`"3"` or `3`).
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<u64>, Problem> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| Problem::bad_request("the If-Match header is not text"))?;
            s.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse()
                .map(Some)
                .map_err(|_| {
                    Problem::bad_request(format!("If-Match '{s}' is not a version number"))
                })
        }
    }
}

/// Query parameters, parsed by hand so that a bad value is a problem naming it.
pub struct QueryArgs(pub Vec<(String, String)>);

impl QueryArgs {
    /// From the raw query string.
    pub fn parse(raw: Option<&str>) -> QueryArgs {
        QueryArgs(raw.map(url_pairs).unwrap_or_default())
    }

    /// A numeric parameter.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, Problem> {
        match self.0.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => v.parse().map(Some).map_err(|_| {
                Problem::bad_request(format!("query parameter '{name}': '{v}' is not a number"))
            }),
        }
    }

    /// A text parameter.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
