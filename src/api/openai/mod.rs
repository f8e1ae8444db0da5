//! OpenAI Chat Completions on the wire, as a [`Codec`]:
//! - `request.rs`: the request body and its validation;
//! - `spec.rs`: its translation into a [`JobSpec`](crate::job::JobSpec),
//!   with `chat_content.rs` for the content of messages;
//! - `response.rs`: the response body and the stream chunks built from
//!   [`JobEvent`]s;
//! - `content.rs`: what Chat Completions shares with the Responses API.
//!
//! The conversation maps onto Anthropic content: `system` and `developer`
//! messages become the system prompt, image parts become image blocks,
//! assistant `tool_calls` become `tool_use` blocks and `tool` messages
//! `tool_result` blocks; [`crate::prompt::render`] then writes it for the CLI.
//!
//! `reasoning_effort` sets the extended-thinking budget (off by default).
//! `max_completion_tokens` (or the older `max_tokens`) limits the turn and
//! `stop` ends it at a stop sequence, as in the Messages API. The sampling
//! fields (`temperature`, `top_p`, `seed`) and `user` are accepted so that
//! existing clients work, but not applied: a pooled CLI worker takes no
//! per-turn sampling settings. `tools` (functions) and `tool_choice` map to
//! the same caller-tools mechanism as the Messages API (see `api::tools`).

use serde_json::Value;

use super::error::ApiError;
pub use super::InvalidRequest;
use super::{Codec, Context, Dialect, EventEncoder, Frame, Parsed};
use crate::job::Completion;
use crate::job::JobEvent;

mod chat_content;
pub(crate) mod content;
mod request;
mod response;
mod spec;
#[cfg(test)]
mod tests;

pub use request::{
    ChatContent, ChatMessage, ChatRequest, ChatRole, FunctionCall, JsonSchemaFormat,
    ResponseFormat, Stop, StreamOptions, ToolCall,
};
pub use response::*;

/// Chat Completions as a [`Codec`].
pub struct ChatCompletions;

impl Codec for ChatCompletions {
    const DIALECT: Dialect = Dialect::ChatCompletions;
    type Meta = ChatMeta;
    type Stream = ChunkEncoder;

    fn parse(body: &[u8], ctx: &Context) -> Result<Parsed<ChatMeta>, ApiError> {
        let request =
            ChatRequest::parse(body).map_err(|e| ApiError::invalid(e.0, Self::DIALECT))?;
        Ok(Parsed {
            spec: request.to_spec(ctx),
            stream: request.is_stream(),
            meta: ChatMeta {
                id: ctx.new_id("chatcmpl-"),
                ..request.meta(&ctx.default_model)
            },
        })
    }

    fn body(meta: &ChatMeta, answer: &Completion) -> Value {
        completion_body(meta, answer)
    }

    fn stream(meta: ChatMeta) -> ChunkEncoder {
        ChunkEncoder::new(meta)
    }
}

/// OpenAI's SSE framing: `data:`-only frames, `[DONE]` at the end, and
/// comment frames as keep-alives (the SDKs skip comments).
impl EventEncoder for ChunkEncoder {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        self.chunks(event).into_iter().map(Frame::Data).collect()
    }

    fn keepalive(&mut self) -> Vec<Frame> {
        vec![Frame::Comment("keep-alive")]
    }

    fn finish(&mut self) -> Vec<Frame> {
        vec![Frame::Done]
    }
}
