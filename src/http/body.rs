//! Reading request bodies: JSON only, under the configured size limit. (The
//! caller was checked before, by the handler's `auth::ClientKey` extractor.)

use actix_web::{http::header, web, HttpRequest};
use bytes::Bytes;

use super::error::{ApiError, ErrorKind};
use super::AppState;
use crate::api::Dialect;

/// The body of a request to an API route, read under
/// `server.max_body_bytes`.
pub async fn read_limited(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    dialect: Dialect,
) -> Result<Bytes, ApiError> {
    let limit = state.settings().server.max_body_bytes;
    read(req, payload, limit, dialect).await
}

/// The whole body, or 413 in the route's dialect when it exceeds `limit`.
///
/// A body not declared as JSON gets 415 before it is read. That closes the
/// daemon to cross-site "simple" requests, which browsers send without a
/// preflight only as `text/plain`, form or multipart bodies, or with no
/// content type at all (`fetch` with a `Blob` body).
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    dialect: Dialect,
) -> Result<Bytes, ApiError> {
    check_content_type(req.headers().get(header::CONTENT_TYPE), dialect)?;
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
            dialect,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::invalid(
            format!("could not read the request body: {e}"),
            dialect,
        )),
        Err(_) => Err(too_large()),
    }
}

/// Ok for `application/json` or `application/*+json` (any parameters, any
/// case); 415 otherwise, a missing content type included.
fn check_content_type(
    value: Option<&header::HeaderValue>,
    dialect: Dialect,
) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "content-type must be application/json (none was sent)",
            dialect,
        ));
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let is_json = essence.as_deref().is_some_and(|e| {
        e == "application/json"
            || e.strip_prefix("application/")
                .and_then(|sub| sub.strip_suffix("+json"))
                .is_some_and(|name| !name.is_empty())
    });
    if is_json {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::UnsupportedMediaType,
        format!(
            "content-type must be application/json, not {:?}",
            String::from_utf8_lossy(value.as_bytes())
        ),
        dialect,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

    fn check(value: &str) -> Result<(), ApiError> {
        check_content_type(
            Some(&header::HeaderValue::from_str(value).unwrap()),
            Dialect::Anthropic,
        )
    }

    #[test]
    fn json_content_types_pass_and_others_get_415() {
        let missing = check_content_type(None, Dialect::Anthropic).unwrap_err();
        assert_eq!(missing.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            " application/json ;charset=UTF-8",
            "application/vnd.api+json",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/+json",
            "json",
            "",
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
            assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        }
        let bytes = header::HeaderValue::from_bytes(b"text/\xffplain").unwrap();
        assert!(check_content_type(Some(&bytes), Dialect::ChatCompletions).is_err());
    }
}
