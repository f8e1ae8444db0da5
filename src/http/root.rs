//! `GET /` and `HEAD /`: what this server is. Claude Code probes its
//! `ANTHROPIC_BASE_URL` with `HEAD /` before use; a 404 there reads as an
//! unreachable endpoint. Open to anyone, like `/health`: it names no secret.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::routes::{Access, ROUTES};
use crate::api::Dialect;

/// A small JSON about the server and its routes, read from the route
/// table (an empty 200 for `HEAD`).
pub async fn root() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "claude-pool",
        "version": env!("CARGO_PKG_VERSION"),
        "apis": {
            "anthropic": "/v1/messages",
            "openai": ["/v1/chat/completions", "/v1/responses"],
        },
        "health": "/health",
        "routes": routes(),
    }))
}

/// Each route as `{method, path, dialect, access}`.
fn routes() -> Vec<Value> {
    ROUTES
        .iter()
        .map(|r| {
            json!({
                "method": r.method.as_str(),
                "path": r.path,
                "dialect": match r.dialect {
                    Dialect::Anthropic => "anthropic",
                    Dialect::ChatCompletions => "chat_completions",
                    Dialect::Responses => "responses",
                },
                "access": match r.access {
                    Access::Open => "open",
                    Access::Probe => "probe",
                    Access::Client => "client_key",
                    Access::Admin => "admin_key",
                },
            })
        })
        .collect()
}
