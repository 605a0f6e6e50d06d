//! RFC 9457 problem details: every error the API returns is one of these, as
//! `application/problem+json`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    control::{ControlError, QuotaExceeded},
    model::validate::FieldError,
};

/// A problem report.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:shadownet:problem:<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong this time, in words.
    pub detail: String,
    /// Fields at fault, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The limit exceeded, for quota problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Box<QuotaExceeded>>,
}

impl Problem {
    /// A problem of a kind with a detail.
    pub fn new(status: u16, slug: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:shadownet:problem:{slug}"),
            title: title.into(),
            status,
            detail: detail.into(),
            errors: Vec::new(),
            quota: None,
        }
    }

    /// 400: the body is not JSON (or not the JSON expected at the syntax level).
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(400, "bad-request", "Malformed request", detail)
    }

    /// 401: no or an unknown bearer token.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(401, "unauthorized", "Not authenticated", detail)
    }

    /// 404: no such route or object.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(404, "not-found", "Not found", detail)
    }

    /// 413: the body is larger than the API accepts.
    pub fn too_large(limit: usize) -> Problem {
        Problem::new(
            413,
            "body-too-large",
            "Request body too large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// 415: the body is not `application/json`.
    pub fn unsupported_media(detail: impl Into<String>) -> Problem {
        Problem::new(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    /// 422: the JSON does not have the expected shape (unknown field, wrong type).
    pub fn unprocessable(detail: impl Into<String>) -> Problem {
        Problem::new(
            422,
            "invalid-body",
            "Request body does not fit the schema",
            detail,
        )
    }
}

impl From<ControlError> for Problem {
    fn from(e: ControlError) -> Problem {
        let status = e.status();
        if status >= 500 {
            tracing::error!(error = %e, "request failed");
        }
        let title = match status {
            403 => "Forbidden",
            404 => "Not found",
            409 => "Conflict",
            412 => "Precondition failed",
            422 => "Invalid request",
            429 => "Limit exceeded",
            _ => "Internal error",
        };
        let mut p = Problem::new(status, e.slug(), title, e.to_string());
        match e {
            ControlError::Invalid(errors) => {
                p.detail = errors
                    .iter()
                    .map(|f| format!("{}: {}", f.path, f.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                p.errors = errors;
            }
            ControlError::Quota(q) => p.quota = Some(Box::new(q)),
            _ => {}
        }
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
