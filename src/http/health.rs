//! `GET /health`: the pool's state; 200 while it can serve, else 503.
//! Open to anyone unless `server.health_requires_key` is set.
//!
//! Its `store` entry says whether the store takes writes. A failing store
//! does not make the node 503: interactive requests are still served;
//! batch work pauses and stored responses wait in memory (see
//! [`crate::store::health`]).

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::{ProbeCaller, ProbeRoute};
use super::error::ApiError;
use super::AppState;
use crate::config::Settings;
use crate::dispatch::health::Health;
use crate::dispatch::messages::GetHealth;
use crate::store::health::StoreReport;

/// The pool's state, and the store's.
#[derive(serde::Serialize)]
struct Report {
    #[serde(flatten)]
    pool: Health,
    store: StoreReport,
}

/// `/health` is open unless `server.health_requires_key`.
pub struct HealthProbe;

impl ProbeRoute for HealthProbe {
    fn open(_: &HttpRequest, settings: &Settings) -> bool {
        !settings.server.health_requires_key
    }
}

pub async fn health(
    _: ProbeCaller<HealthProbe>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.health().report();
    Ok(match state.dispatcher.send(GetHealth).await {
        Ok(pool) if pool.is_serving() => HttpResponse::Ok().json(Report { pool, store }),
        Ok(pool) => HttpResponse::ServiceUnavailable().json(Report { pool, store }),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "shutting_down", "reason": "dispatcher stopped"})),
    })
}
