//! `GET /health`: the pool's state; 200 while it can serve, else 503.
//! Open to anyone unless `server.health_requires_key` is set.

use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use super::{auth, AppState};
use crate::api::Dialect;
use crate::dispatch::messages::GetHealth;

pub async fn health(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.settings();
    if settings.server.health_requires_key {
        auth::authorize(&req, &settings, Dialect::Anthropic)?;
    }
    Ok(match state.dispatcher.send(GetHealth).await {
        Ok(health) if health.is_serving() => HttpResponse::Ok().json(health),
        Ok(health) => HttpResponse::ServiceUnavailable().json(health),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "shutting_down", "reason": "dispatcher stopped"})),
    })
}
