//! The Anthropic Messages API on the wire, as a [`Codec`]:
//! - `request.rs`: the request body and its validation;
//! - `spec.rs`: its translation into a [`JobSpec`](crate::job::JobSpec);
//! - `response.rs`: the response body and the SSE events built from
//!   [`JobEvent`](crate::job::JobEvent)s.

use serde_json::Value;

use super::error::ApiError;
use super::{Codec, Context, Dialect, Parsed};
use crate::job::Completion;

mod request;
mod response;
mod spec;
#[cfg(test)]
mod tests;

pub use super::InvalidRequest;
pub use request::{
    InputMessage, InputRole, MessageContent, MessagesRequest, SystemBlock, SystemPrompt,
    ThinkingParam, ToolChoiceParam, ToolParam,
};
pub use response::{message_body, MessageMeta, SseEvent, StreamEncoder};

/// The Messages API as a [`Codec`].
pub struct Anthropic;

impl Codec for Anthropic {
    const DIALECT: Dialect = Dialect::Anthropic;
    type Meta = MessageMeta;
    type Stream = StreamEncoder;

    fn parse(body: &[u8], ctx: &Context) -> Result<Parsed<MessageMeta>, ApiError> {
        let request =
            MessagesRequest::parse(body).map_err(|e| ApiError::invalid(e.0, Self::DIALECT))?;
        Ok(Parsed {
            spec: request.to_spec(ctx),
            stream: request.is_stream(),
            meta: MessageMeta {
                id: ctx.new_id("msg_"),
                ..MessageMeta::new(request.response_model(&ctx.default_model))
            },
        })
    }

    fn body(meta: &MessageMeta, answer: &Completion) -> Value {
        message_body(meta, answer)
    }

    fn stream(meta: MessageMeta) -> StreamEncoder {
        StreamEncoder::new(meta)
    }
}
