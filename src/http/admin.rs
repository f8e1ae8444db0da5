//! The admin API for keys, open only to admin keys (`server.admin_keys`,
//! the [`AdminCaller`] extractor): `POST /admin/keys` makes a key and shows
//! its secret once, `GET /admin/keys` lists them (never a secret or
//! digest), `GET`/`PATCH`/`DELETE /admin/keys/{name}` read, change and
//! revoke one. Keys of the configuration are listed but read-only (409).
//! Errors use the Anthropic shape; a bad body is 400 naming the field.

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use serde_json::json;

use super::auth::AdminCaller;
use super::error::{ApiError, ErrorKind};
use super::AppState;
use crate::api::Dialect;
use crate::keys::{KeyError, KeyView, NewKey, Patch};

const DIALECT: Dialect = Dialect::Anthropic;

fn key_error(e: KeyError) -> ApiError {
    let kind = match &e {
        KeyError::Invalid { .. } => ErrorKind::InvalidRequest,
        KeyError::NotFound(_) => ErrorKind::NotFound,
        KeyError::Conflict(_) => ErrorKind::Conflict,
        KeyError::NoStore | KeyError::Store(_) => {
            log::error!("admin: {e}");
            ErrorKind::Api
        }
    };
    ApiError::new(kind, e.to_string(), DIALECT)
}

/// A JSON body of `T`, or 400 naming the field at fault.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::api::parse_json(body).map_err(|e| ApiError::invalid(e.0, DIALECT))
}

/// A key's JSON, with what it used and has running now.
fn view_json(state: &AppState, view: &KeyView) -> serde_json::Value {
    let mut value = serde_json::to_value(view).unwrap_or_default();
    value["running"] = json!(state.limiter.in_flight(&view.name));
    let day = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    let used = state.ledger.usage_since(&view.name, day);
    value["usage_24h"] = json!({
        "requests": used.requests,
        "weighted_tokens": used.weighted_tokens,
    });
    value
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, KeyError> + Send + 'static,
) -> Result<R, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::new(ErrorKind::Api, e.to_string(), DIALECT))?
        .map_err(key_error)
}

/// `POST /admin/keys`: `{name, limits?, weight?, models?, accounts?,
/// agent?, expires_at?}` → the key, with its `secret` (shown this once).
pub(super) async fn create(
    _admin: AdminCaller,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let new: NewKey = parse(&body)?;
    let keys = state.keys.clone();
    let (secret, view) = blocking(move || keys.create(new)).await?;
    let mut value = view_json(&state, &view);
    value["secret"] = json!(secret);
    Ok(HttpResponse::Created().json(value))
}

/// `GET /admin/keys`: every client key, by name.
pub(super) async fn list(
    _admin: AdminCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let data: Vec<_> = state
        .keys
        .list()
        .iter()
        .map(|v| view_json(&state, v))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"data": data})))
}

/// `GET /admin/keys/{name}`
pub(super) async fn get(
    _admin: AdminCaller,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let view = state
        .keys
        .view(&name)
        .ok_or_else(|| key_error(KeyError::NotFound(name.to_string())))?;
    Ok(HttpResponse::Ok().json(view_json(&state, &view)))
}

/// `PATCH /admin/keys/{name}`: the fields given change (limits one by
/// one, `null` back to the default).
pub(super) async fn update(
    _admin: AdminCaller,
    name: web::Path<String>,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let patch: Patch = parse(&body)?;
    let keys = state.keys.clone();
    let name = name.into_inner();
    let view = blocking(move || keys.update(&name, patch)).await?;
    Ok(HttpResponse::Ok().json(view_json(&state, &view)))
}

/// `DELETE /admin/keys/{name}`: revoked at once; jobs in flight finish.
pub(super) async fn revoke(
    _admin: AdminCaller,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let keys = state.keys.clone();
    let key = name.into_inner();
    let revoked = key.clone();
    blocking(move || keys.revoke(&revoked)).await?;
    Ok(HttpResponse::Ok().json(json!({"name": key, "revoked": true})))
}
