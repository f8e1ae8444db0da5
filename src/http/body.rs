//! Reading request bodies under the configured size limit.

use actix_web::{http::header, web, HttpRequest};
use bytes::Bytes;

use super::error::{ApiError, ErrorKind};
use crate::api::Dialect;

/// The whole body, or 413 in the route's dialect when it exceeds `limit`.
pub async fn read(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    dialect: Dialect,
) -> Result<Bytes, ApiError> {
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
