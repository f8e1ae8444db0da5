//! Who a request is from, as extractors in the handlers' signatures, so a
//! route cannot forget to check: [`ClientKey`] for the API routes (a client
//! key, or the host rule of a daemon without keys), [`AdminCaller`] for
//! `/admin/…` (an admin key only) and [`ProbeCaller`] for `/health` and
//! `/metrics` (open unless the settings ask for a key there). Keys come in `x-api-key` or
//! `Authorization: Bearer`, and are compared in constant time against the
//! digests of every key (see `keys::KeyRing`).

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpMessage, HttpRequest};

use super::error::{ApiError, ErrorKind};
use super::{host, AppState};
use crate::api::Dialect;
use crate::config::Settings;
use crate::keys::{now_ms, rfc3339, Caller, Identified};

/// The caller of an API route: the client key it presented, resolved (or
/// the anonymous caller of a daemon without keys). Dereferences to
/// [`Caller`]: `client.name`, `key.scope`, `client.limits`, …
#[derive(Debug, Clone)]
pub struct ClientKey(pub Arc<Caller>);

impl std::ops::Deref for ClientKey {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl FromRequest for ClientKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(client(req, super::routes::dialect_of(req)))
    }
}

/// The caller of an admin route: it presented an admin key
/// (`server.admin_keys`). A client key gets 403, no or a wrong key 401.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller;

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admin(req))
    }
}

/// A probe route's rule: when it answers without a key.
pub trait ProbeRoute {
    /// Whether `req` may read the route without a key.
    fn open(req: &HttpRequest, settings: &Settings) -> bool;
}

/// The caller of a probe route (`/health`, `/metrics`): anyone while the
/// route is open to the request (`P::open`), else a request with a client
/// or an admin key (or, on a daemon without keys, one that passes the host
/// rule).
#[derive(Debug)]
pub struct ProbeCaller<P>(PhantomData<P>);

impl<P: ProbeRoute> FromRequest for ProbeCaller<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(probe::<P>(req).map(|()| ProbeCaller(PhantomData)))
    }
}

fn state(req: &HttpRequest, dialect: Dialect) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::new(ErrorKind::Api, "no application state", dialect))
}

fn unauthorized(message: impl Into<String>, dialect: Dialect) -> ApiError {
    ApiError::new(ErrorKind::Authentication, message, dialect)
}

/// The client of `req` (see [`ClientKey`]); errors in `dialect`'s shape.
pub fn client(req: &HttpRequest, dialect: Dialect) -> Result<ClientKey, ApiError> {
    let state = state(req, dialect)?;
    if state.keys.keyless() {
        let settings = state.settings();
        host::check(req, &settings, dialect)?;
        let caller = Arc::new(Caller::anonymous(settings.limits.defaults()));
        req.extensions_mut()
            .insert(super::audit::KeyName(caller.name.clone()));
        return Ok(ClientKey(caller));
    }
    let Some(presented) = presented_key(req) else {
        return Err(unauthorized(
            "missing API key: send it in x-api-key or Authorization: Bearer",
            dialect,
        ));
    };
    match state.keys.identify(presented) {
        Identified::Client(caller) => {
            if let Some(at) = caller.expires_at.filter(|_| caller.expired(now_ms())) {
                return Err(unauthorized(
                    format!("API key `{}` expired at {}", caller.name, rfc3339(at)),
                    dialect,
                ));
            }
            state.keys.touch(&caller.name);
            req.extensions_mut()
                .insert(super::audit::KeyName(caller.name.clone()));
            Ok(ClientKey(caller))
        }
        Identified::Admin => Err(unauthorized(
            "this is an admin key: it opens only the admin API (/admin/…); send a client key",
            dialect,
        )),
        Identified::Unknown => Err(unauthorized("invalid API key", dialect)),
    }
}

fn admin(req: &HttpRequest) -> Result<AdminCaller, ApiError> {
    let dialect = Dialect::Anthropic;
    let state = state(req, dialect)?;
    if state.settings().server.all_admin_keys().next().is_none() {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "the admin API is off: no admin key is configured (server.admin_keys)",
            dialect,
        ));
    }
    let Some(presented) = presented_key(req) else {
        return Err(unauthorized(
            "missing admin key: send it in x-api-key or Authorization: Bearer",
            dialect,
        ));
    };
    match state.keys.identify(presented) {
        Identified::Admin => Ok(AdminCaller),
        Identified::Client(_) => Err(ApiError::new(
            ErrorKind::PermissionDenied,
            "this is a client key: the admin API needs an admin key (server.admin_keys)",
            dialect,
        )),
        Identified::Unknown => Err(unauthorized("invalid admin key", dialect)),
    }
}

fn probe<P: ProbeRoute>(req: &HttpRequest) -> Result<(), ApiError> {
    let dialect = Dialect::Anthropic;
    if P::open(req, &state(req, dialect)?.settings()) {
        return Ok(());
    }
    match client(req, dialect) {
        Ok(_) => Ok(()),
        Err(e) => admin(req).map(drop).map_err(|_| e),
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
