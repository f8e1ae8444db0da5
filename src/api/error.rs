//! Errors as the dialects name them: what went wrong ([`ErrorKind`]), the
//! mapping from job failures, and each dialect's JSON error body. The HTTP
//! status and headers are added in one place, `http::error`.

use std::time::Duration;

use serde_json::{json, Value};

use super::Dialect;
use crate::error::JobError;

/// What went wrong, in the vocabulary clients already know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    /// A keyless daemon was addressed by a name it does not serve (`Host`).
    HostNotAllowed,
    /// The caller's key may not do this (a model it is not allowed, a
    /// client key on the admin API).
    PermissionDenied,
    NotFound,
    /// The request clashes with the state of what it names (a key name
    /// taken, a read-only key).
    Conflict,
    PayloadTooLarge,
    /// The body is declared as something other than JSON.
    UnsupportedMediaType,
    RateLimited,
    /// The upstream or the pool is overloaded (529 in Anthropic's terms).
    Overloaded,
    /// The daemon cannot serve right now (no worker, shutting down).
    Unavailable,
    Timeout,
    /// The upstream failed, or the worker did.
    Api,
    /// The upstream rejected the request the worker made on the client's behalf.
    UpstreamInvalid,
    /// The worker's credentials were rejected upstream.
    UpstreamAuth,
    /// The connection to the upstream failed or broke off mid-answer.
    UpstreamConnection,
}

/// An error response in the dialect of the route that produced it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub dialect: Dialect,
    pub retry_after: Option<Duration>,
    /// The request field at fault, for OpenAI's `param`.
    pub param: Option<&'static str>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, dialect: Dialect) -> Self {
        Self {
            kind,
            message: message.into(),
            dialect,
            retry_after: None,
            param: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn invalid(message: impl Into<String>, dialect: Dialect) -> Self {
        Self::new(ErrorKind::InvalidRequest, message, dialect)
    }

    /// Maps a job failure to what the client sees.
    pub fn from_job(error: JobError, dialect: Dialect) -> Self {
        let retry_after = error.retry_after();
        let message = error.to_string();
        let kind = match &error {
            JobError::QueueFull { .. } | JobError::QueueTimeout { .. } | JobError::ParkReleased => {
                ErrorKind::Overloaded
            }
            JobError::ShuttingDown | JobError::Unavailable(_) => ErrorKind::Unavailable,
            JobError::WorkerCrashed(_) | JobError::TurnFailed(_) => ErrorKind::Api,
            JobError::UpstreamBroken(_) => ErrorKind::UpstreamConnection,
            JobError::Timeout(_) => ErrorKind::Timeout,
            JobError::Credentials(_) => ErrorKind::UpstreamAuth,
            JobError::RateLimited { .. } => ErrorKind::RateLimited,
            JobError::Upstream { status, .. } => match status {
                Some(400 | 404 | 413 | 422) => ErrorKind::UpstreamInvalid,
                Some(401 | 403) => ErrorKind::UpstreamAuth,
                Some(429) => ErrorKind::RateLimited,
                Some(529) => ErrorKind::Overloaded,
                None => ErrorKind::Timeout,
                Some(_) => ErrorKind::Api,
            },
        };
        let message = match error {
            JobError::Upstream {
                status: Some(401 | 403),
                message,
            } => JobError::Credentials(message).to_string(),
            _ => message,
        };
        Self {
            kind,
            message,
            dialect,
            retry_after,
            param: None,
        }
    }

    /// The error's type in the Messages API's vocabulary (`rate_limit_error`, …).
    pub fn anthropic_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::UpstreamInvalid
            | ErrorKind::UnsupportedMediaType => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::HostNotAllowed | ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::Conflict => "invalid_request_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded | ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::Timeout => "timeout_error",
            ErrorKind::Api | ErrorKind::UpstreamAuth | ErrorKind::UpstreamConnection => "api_error",
        }
    }

    fn openai_type(&self) -> (&'static str, Option<&'static str>) {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::UpstreamInvalid
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType => ("invalid_request_error", None),
            ErrorKind::Authentication => ("invalid_request_error", Some("invalid_api_key")),
            ErrorKind::HostNotAllowed => ("invalid_request_error", Some("host_not_allowed")),
            ErrorKind::NotFound => ("invalid_request_error", Some("not_found")),
            ErrorKind::PermissionDenied => ("invalid_request_error", Some("permission_denied")),
            ErrorKind::Conflict => ("invalid_request_error", Some("conflict")),
            ErrorKind::RateLimited => ("rate_limit_exceeded", Some("rate_limit_exceeded")),
            ErrorKind::Overloaded | ErrorKind::Unavailable => ("server_error", Some("overloaded")),
            ErrorKind::Timeout => ("server_error", Some("timeout")),
            ErrorKind::Api | ErrorKind::UpstreamAuth | ErrorKind::UpstreamConnection => {
                ("server_error", None)
            }
        }
    }

    /// `{"type":"error","error":{"type","message"}}`
    pub fn anthropic_body(&self) -> Value {
        json!({"type": "error", "error": {"type": self.anthropic_type(), "message": self.message}})
    }

    /// `{"error":{"message","type","param","code"}}`
    pub fn openai_body(&self) -> Value {
        let (kind, code) = self.openai_type();
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": code}})
    }

    pub fn body(&self) -> Value {
        match self.dialect {
            Dialect::Anthropic => self.anthropic_body(),
            Dialect::ChatCompletions | Dialect::Responses => self.openai_body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_shape_has_all_fields() {
        let e = ApiError::invalid("bad", Dialect::ChatCompletions);
        let body = e.body();
        assert_eq!(body["error"]["message"], "bad");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"].get("param").is_some());
        assert!(body["error"].get("code").is_some());
    }
}
