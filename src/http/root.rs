//! `GET /` and `HEAD /`: what this server is. Claude Code probes its
//! `ANTHROPIC_BASE_URL` with `HEAD /` before use; a 404 there reads as an
//! unreachable endpoint. Open to anyone, like `/health`: it names no secret.

use actix_web::HttpResponse;
use serde_json::json;

/// A small JSON about the server (an empty 200 for `HEAD`).
pub async fn root() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "claude-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "apis": {
            "anthropic": "/v1/messages",
            "openai": ["/v1/chat/completions", "/v1/responses"],
        },
        "health": "/health",
    }))
}
