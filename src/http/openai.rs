//! `POST /v1/chat/completions`: OpenAI Chat Completions.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::error::ApiError;
use super::{body, jobs, sse, AppState};
use crate::api::openai::{self, ChatRequest, ChunkEncoder};
use crate::api::Dialect;
use crate::job::JobEvent;

const DIALECT: Dialect = Dialect::OpenAi;

pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = body::authorized(&req, payload, &state, DIALECT).await?;
    let settings = &state.settings();
    let request = ChatRequest::parse(&body).map_err(|e| ApiError::invalid(e.0, DIALECT))?;
    let default_model = &settings.claude.default_model;
    let meta = request.meta(default_model);
    let spec = request.to_spec(default_model);
    let stream = request.is_stream();
    jobs::respond(
        &req,
        &state,
        spec,
        stream,
        DIALECT,
        || OpenAiSse(ChunkEncoder::new(meta.clone())),
        |answer| openai::completion_body(&meta, answer),
    )
    .await
}

/// OpenAI's SSE framing: `data:`-only frames, `[DONE]` at the end, and
/// comment frames as keep-alives (the SDKs skip comments).
struct OpenAiSse(ChunkEncoder);

impl sse::EventEncoder for OpenAiSse {
    fn encode(&mut self, event: JobEvent) -> Vec<Bytes> {
        self.0
            .encode(event)
            .iter()
            .map(|chunk| sse::data_frame(&chunk.to_string()))
            .collect()
    }

    fn keepalive(&mut self) -> Vec<Bytes> {
        vec![Bytes::from_static(b": keep-alive\n\n")]
    }

    fn finish(&mut self) -> Vec<Bytes> {
        vec![sse::data_frame("[DONE]")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::openai::ChatMeta;
    use crate::error::JobError;
    use sse::EventEncoder;

    #[test]
    fn frames_are_data_only_and_end_with_done() {
        let mut enc = OpenAiSse(ChunkEncoder::new(ChatMeta::new("m".into())));
        let frames = enc.encode(JobEvent::Failed(JobError::ShuttingDown));
        let text = String::from_utf8(frames[0].to_vec()).unwrap();
        assert!(text.starts_with("data: {\"error\":"), "{text}");
        assert!(text.ends_with("\n\n"));
        assert_eq!(enc.finish(), vec![Bytes::from_static(b"data: [DONE]\n\n")]);
        assert_eq!(
            enc.keepalive(),
            vec![Bytes::from_static(b": keep-alive\n\n")]
        );
    }
}
