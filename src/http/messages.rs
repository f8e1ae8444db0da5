//! `POST /v1/messages`: the Anthropic Messages API.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::error::ApiError;
use super::{body, jobs, sse, AppState};
use crate::api::anthropic::{self, MessageMeta, MessagesRequest, StreamEncoder};
use crate::api::Dialect;
use crate::job::JobEvent;

const DIALECT: Dialect = Dialect::Anthropic;

pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::authorized(&req, payload, &state, DIALECT).await?;
    let settings = &state.settings();
    let request = MessagesRequest::parse(&body).map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    let default_model = &settings.claude.default_model;
    let meta = MessageMeta::new(request.response_model(default_model));
    let spec = request.to_spec(default_model);
    jobs::respond(
        &req,
        &state,
        spec,
        request.is_stream(),
        DIALECT,
        || AnthropicSse(StreamEncoder::new(meta.clone())),
        |answer| anthropic::message_body(&meta, answer),
    )
    .await
}

/// Anthropic's SSE framing around the dialect's event encoder.
struct AnthropicSse(StreamEncoder);

impl sse::EventEncoder for AnthropicSse {
    fn encode(&mut self, event: JobEvent) -> Vec<Bytes> {
        self.0
            .encode(event)
            .iter()
            .map(|(name, data)| sse::frame(name, data))
            .collect()
    }

    fn keepalive(&mut self) -> Vec<Bytes> {
        self.0
            .keepalive()
            .iter()
            .map(|(name, data)| sse::frame(name, data))
            .collect()
    }
}
