//! The one place where failures become HTTP: status codes, `Retry-After`
//! and `x-should-retry` around the dialect's error body (`api::error`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

pub use crate::api::error::{ApiError, ErrorKind};
use crate::api::Dialect;

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::UpstreamInvalid => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::HostNotAllowed | ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Overloaded => {
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Api => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::UpstreamAuth | ErrorKind::UpstreamConnection => StatusCode::BAD_GATEWAY,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if let Some(after) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, after.as_secs().max(1).to_string()));
        }
        if self.dialect == Dialect::Anthropic {
            response.insert_header(("x-should-retry", self.retryable().to_string()));
        }
        response.json(self.body())
    }
}

impl ApiError {
    fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited
                | ErrorKind::Overloaded
                | ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::UpstreamConnection
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::JobError;

    #[test]
    fn upstream_statuses_map_to_client_errors() {
        let e = |status| {
            ApiError::from_job(
                JobError::Upstream {
                    status,
                    message: "x".into(),
                },
                Dialect::Anthropic,
            )
        };
        assert_eq!(e(Some(429)).status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e(Some(529)).status().as_u16(), 529);
        assert_eq!(
            e(Some(529)).anthropic_body()["error"]["type"],
            "overloaded_error"
        );
        assert_eq!(e(Some(401)).status(), StatusCode::BAD_GATEWAY);
        assert!(e(Some(401)).message.contains("credentials"));
        assert_eq!(e(Some(400)).status(), StatusCode::BAD_REQUEST);
        assert_eq!(e(Some(500)).anthropic_body()["error"]["type"], "api_error");
        assert_eq!(e(None).status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(e(Some(529)).retry_after.is_some(), "529 says when to retry");
        let broken = ApiError::from_job(
            JobError::UpstreamBroken("ECONNRESET".into()),
            Dialect::Anthropic,
        );
        assert_eq!(broken.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(broken.anthropic_body()["error"]["type"], "api_error");
    }
}
