//! OpenAI Chat Completions responses: the `chat.completion` body and the
//! `chat.completion.chunk` stream, built from [`JobEvent`]s.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::api::error::ApiError;
use crate::api::Dialect;
use crate::job::Completion;
use crate::job::{ContentBlock, Delta, JobEvent, Usage};

/// Response identity shared by the body and the stream.
#[derive(Debug, Clone)]
pub struct ChatMeta {
    /// `chatcmpl-…`
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model as the client named it.
    pub model: String,
    /// Whether the stream ends with a usage chunk.
    pub include_usage: bool,
    /// A JSON `response_format` was asked for.
    pub json_mode: bool,
}

impl ChatMeta {
    pub fn new(model: String) -> Self {
        Self {
            id: crate::ids::new("chatcmpl-"),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model,
            include_usage: false,
            json_mode: false,
        }
    }
}

/// OpenAI usage: prompt tokens include the cached and cache-written ones.
pub fn usage_json(usage: &Usage) -> Value {
    let prompt =
        usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
    })
}

/// The `tool_calls` of an answer's `tool_use` blocks.
pub(super) fn tool_calls(content: &[ContentBlock]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, input } => Some(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            _ => None,
        })
        .collect()
}

/// In JSON mode, a reply the model wrapped in a Markdown code fence anyway
/// is unwrapped (non-streaming responses only).
pub(crate) fn strip_code_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(inner) = trimmed
        .strip_prefix("```")
        .and_then(|rest| rest.strip_suffix("```"))
    else {
        return text;
    };
    // Drop the info string (`json`) on the opening line.
    match inner.split_once('\n') {
        Some((_, body)) => body.trim(),
        None => text,
    }
}

/// The non-streaming response body.
pub fn completion_body(meta: &ChatMeta, answer: &Completion) -> Value {
    let text = answer.text();
    let text = if meta.json_mode {
        strip_code_fence(&text).to_string()
    } else {
        text
    };
    let calls = tool_calls(&answer.content);
    let content = if text.is_empty() && !calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut message = json!({"role": "assistant", "content": content, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": crate::api::stop_reason::chat_completions(answer.stop_reason.as_ref()),
        }],
        "usage": usage_json(&answer.usage),
        "system_fingerprint": null,
    })
}

/// Encodes job events as `chat.completion.chunk` objects (the JSON of each
/// `data:` frame). Framing, keep-alives and `[DONE]` are the HTTP layer's.
#[derive(Debug)]
pub struct ChunkEncoder {
    meta: ChatMeta,
    /// The opening chunk (`role: assistant`) has been produced.
    started: bool,
    /// The `tool_calls[].index` of each tool_use block, by block index.
    tool_index: BTreeMap<usize, usize>,
    /// Usage from `Started`, for a completion that carries none.
    input_usage: Usage,
}

impl ChunkEncoder {
    pub fn new(meta: ChatMeta) -> Self {
        Self {
            meta,
            started: false,
            tool_index: BTreeMap::new(),
            input_usage: Usage::default(),
        }
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        let mut chunk = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.meta.include_usage {
            // OpenAI sends `usage: null` on every chunk but the last.
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn content(&self, text: &str) -> Option<Value> {
        (!text.is_empty()).then(|| self.chunk(json!({"content": text}), None))
    }

    /// The chunks for one job event.
    pub fn chunks(&mut self, event: JobEvent) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.started && !matches!(event, JobEvent::Failed(_)) {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        match event {
            JobEvent::Started { usage, .. } => self.input_usage = usage,
            JobEvent::BlockStart { index, block } => match block {
                ContentBlock::Text { text } => out.extend(self.content(&text)),
                ContentBlock::ToolUse { id, name, input } => {
                    let n = self.tool_index.len();
                    self.tool_index.insert(index, n);
                    // Input normally streams as deltas; a start that already
                    // carries it (non-empty) sends it as the first fragment.
                    let arguments = match &input {
                        Value::Object(map) if !map.is_empty() => input.to_string(),
                        _ => String::new(),
                    };
                    out.push(self.chunk(
                        json!({"tool_calls": [{
                            "index": n,
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }]}),
                        None,
                    ));
                }
                // Thinking is not part of the Chat Completions answer, nor is
                // a block this daemon does not know.
                ContentBlock::Thinking { .. }
                | ContentBlock::RedactedThinking { .. }
                | ContentBlock::Other(_) => {}
            },
            JobEvent::BlockDelta { index, delta } => match delta {
                Delta::Text { text } => out.extend(self.content(&text)),
                Delta::InputJson { partial_json } => {
                    if let Some(&n) = self.tool_index.get(&index) {
                        if !partial_json.is_empty() {
                            out.push(self.chunk(
                                json!({"tool_calls": [{
                                    "index": n,
                                    "function": {"arguments": partial_json},
                                }]}),
                                None,
                            ));
                        }
                    }
                }
                Delta::Thinking { .. } | Delta::Signature { .. } => {}
            },
            JobEvent::BlockStop { .. } => {}
            JobEvent::Finished(completion) => {
                let reason =
                    crate::api::stop_reason::chat_completions(completion.stop_reason.as_ref());
                out.push(self.chunk(json!({}), Some(reason)));
                if self.meta.include_usage {
                    let usage = if completion.usage == Usage::default() {
                        self.input_usage
                    } else {
                        completion.usage
                    };
                    out.push(json!({
                        "id": self.meta.id,
                        "object": "chat.completion.chunk",
                        "created": self.meta.created,
                        "model": self.meta.model,
                        "system_fingerprint": null,
                        "choices": [],
                        "usage": usage_json(&usage),
                    }));
                }
            }
            JobEvent::Failed(error) => {
                out.push(ApiError::from_job(error, Dialect::ChatCompletions).openai_body());
            }
        }
        out
    }
}
