//! API-key checks: `x-api-key` or `Authorization: Bearer`, compared in
//! constant time against every configured key.

use actix_web::{http::header, HttpMessage, HttpRequest};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ErrorKind};
use super::host;
use crate::api::Dialect;
use crate::config::Settings;

/// Ok when the request carries one of the configured keys (from
/// `server.api_keys` or `server.api_keys_file`), or, when none are
/// configured, when it is addressed to this host (see [`host::check`]).
pub fn authorize(req: &HttpRequest, settings: &Settings, dialect: Dialect) -> Result<(), ApiError> {
    if !settings.server.has_keys() {
        return host::check(req, settings, dialect);
    }
    let Some(presented) = presented_key(req) else {
        return Err(ApiError::new(
            ErrorKind::Authentication,
            "missing API key: send it in x-api-key or Authorization: Bearer",
            dialect,
        ));
    };
    // Fold over all keys so the time taken does not depend on which matched.
    let matched = settings
        .server
        .keys()
        .fold(subtle::Choice::from(0), |acc, key| {
            acc | key.as_bytes().ct_eq(presented.as_bytes())
        });
    if bool::from(matched) {
        let name = crate::ledger::record::unnamed_key(&crate::batches::owner_of(Some(presented)));
        req.extensions_mut().insert(super::audit::KeyName(name));
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::Authentication,
            "invalid API key",
            dialect,
        ))
    }
}

/// The key the request carries, if any (checked or not).
pub fn presented_key(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim)
}

/// Who an authorized request acts for, for state kept between requests
/// (stored responses): a digest of its key, as for batches (the key itself
/// is never stored); empty when no keys are configured (one shared scope).
pub fn scope(req: &HttpRequest, settings: &Settings) -> String {
    crate::batches::owner_of(presented_key(req).filter(|_| settings.server.has_keys()))
}
