//! `POST /v1/messages/count_tokens`: a local estimate of the input tokens of
//! a Messages request (see `api::count_tokens`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::auth::ClientKey;
use super::error::ApiError;
use super::{body, AppState};
use crate::api::anthropic::MessagesRequest;
use crate::api::count_tokens::estimate;
use crate::api::Dialect;

const DIALECT: Dialect = Dialect::Anthropic;

/// Takes the body of a `/v1/messages` request (`max_tokens` is optional
/// here, as in the real endpoint) and answers `{"input_tokens": N}`.
pub async fn count(
    req: HttpRequest,
    _key: ClientKey,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read_limited(&req, payload, &state, DIALECT).await?;
    let request = MessagesRequest::parse(&body).map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    // The estimate counts tool definitions as the client wrote them; a body
    // that parsed above is valid JSON, so this cannot fail in practice.
    let raw: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(json!({"input_tokens": estimate(&request, &raw)})))
}
