//! The Messages API's answers: the response body, and the SSE events a
//! stream is made of, built from [`JobEvent`]s.

use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::api::{Dialect, EventEncoder, Frame};
use crate::job::Completion;
use crate::job::{JobEvent, Usage};

/// Response identity shared by the body and the stream.
#[derive(Debug, Clone)]
pub struct MessageMeta {
    /// `msg_…`
    pub id: String,
    /// The model as the client named it.
    pub model: String,
}

impl MessageMeta {
    pub fn new(model: String) -> Self {
        Self {
            id: crate::ids::new("msg_"),
            model,
        }
    }
}

fn usage_json(usage: &Usage) -> Value {
    serde_json::to_value(usage).unwrap_or_else(|_| json!({}))
}

/// The non-streaming response body.
pub fn message_body(meta: &MessageMeta, answer: &Completion) -> Value {
    json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": answer.content,
        "stop_reason": super::super::stop_reason::anthropic(answer.stop_reason.as_ref()),
        "stop_sequence": answer.stop_sequence,
        "usage": usage_json(&answer.usage),
    })
}

/// Encodes job events as the Messages API's SSE events.
#[derive(Debug)]
pub struct StreamEncoder {
    meta: MessageMeta,
    /// `message_start` has been written.
    started: bool,
}

/// One SSE event: name and JSON data.
pub type SseEvent = (&'static str, Value);

impl StreamEncoder {
    pub fn new(meta: MessageMeta) -> Self {
        Self {
            meta,
            started: false,
        }
    }

    fn message_start(&mut self, usage: Usage) -> SseEvent {
        self.started = true;
        (
            "message_start",
            json!({
                "type": "message_start",
                "message": {
                    "id": self.meta.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.meta.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage_json(&usage),
                }
            }),
        )
    }

    /// The events for one job event.
    pub fn events(&mut self, event: JobEvent) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.started && !matches!(event, JobEvent::Failed(_)) {
            let usage = match &event {
                JobEvent::Started { usage, .. } => *usage,
                _ => Usage::default(),
            };
            out.push(self.message_start(usage));
        }
        match event {
            JobEvent::Started { .. } => {}
            JobEvent::BlockStart { index, block } => out.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": block}),
            )),
            JobEvent::BlockDelta { index, delta } => out.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            )),
            JobEvent::BlockStop { index } => out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            )),
            JobEvent::Finished(completion) => {
                out.push((
                    "message_delta",
                    json!({
                        "type": "message_delta",
                        "delta": {
                            "stop_reason": super::super::stop_reason::anthropic(completion.stop_reason.as_ref()),
                            "stop_sequence": completion.stop_sequence,
                        },
                        "usage": usage_json(&completion.usage),
                    }),
                ));
                out.push(("message_stop", json!({"type": "message_stop"})));
            }
            JobEvent::Failed(error) => {
                let api = ApiError::from_job(error, Dialect::Anthropic);
                out.push(("error", api.anthropic_body()));
            }
        }
        out
    }
}

impl EventEncoder for StreamEncoder {
    fn encode(&mut self, event: JobEvent) -> Vec<Frame> {
        frames(self.events(event))
    }

    /// A ping. `message_start` goes first so that SDKs which insist on it
    /// opening the stream are satisfied while the model is still silent.
    fn keepalive(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        if !self.started {
            out.push(self.message_start(Usage::default()));
        }
        out.push(("ping", json!({"type": "ping"})));
        frames(out)
    }
}

fn frames(events: Vec<SseEvent>) -> Vec<Frame> {
    events
        .into_iter()
        .map(|(name, data)| Frame::Event(name, data))
        .collect()
}
