//! `GET /health`: the pool's state; 200 while it can serve, else 503.

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::dispatch::messages::GetHealth;

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.dispatcher.send(GetHealth).await {
        Ok(health) if health.is_serving() => HttpResponse::Ok().json(health),
        Ok(health) => HttpResponse::ServiceUnavailable().json(health),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "shutting_down", "reason": "dispatcher stopped"})),
    }
}
