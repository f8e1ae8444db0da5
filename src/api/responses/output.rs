//! The response object, built from job events: text blocks become
//! `message` items, thinking (when asked for) `reasoning` items with a
//! summary, and tool calls `function_call` (or `custom_tool_call`) items
//! under the caller's own names. The stream is in `stream`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::kept::{Kept, StoredResponse};
use super::tools::{CallerTool, ToolNames};
use super::ResponsesRequest;
use crate::api::models::reported_model;
use crate::api::openai::strip_code_fence;
use crate::job::{Completion, ContentBlock, Usage};

/// What a finished response is kept with: stored (`store` was not false
/// and the daemon stores responses), added to its conversation, or both.
#[derive(Debug, Clone)]
pub struct Keep {
    /// The response is stored.
    pub store: bool,
    pub scope: String,
    /// The request's own input items, with ids.
    pub input: Vec<Value>,
    /// The conversation before them (from `previous_response_id`).
    pub context: Vec<Value>,
    /// The conversation (`conversation`) the input and output items are
    /// appended to when the response finishes.
    pub conversation: Option<String>,
}

/// Response identity and the request fields a response object echoes.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    /// `resp_…`
    pub id: String,
    pub created_at: u64,
    /// The fields of the response object that come from the request.
    echo: Map<String, Value>,
    pub(super) names: ToolNames,
    /// A JSON `text.format` was asked for.
    json_mode: bool,
    keep: Option<Keep>,
    /// `background: true`: run on spare capacity, polled or streamed back
    /// by id (see `http::background`).
    pub background: bool,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A new id of an item (or, until the codec names it after its node, a
/// response): `<prefix>_<random>`.
pub(super) fn new_id(prefix: &str) -> String {
    crate::ids::new(&format!("{prefix}_"))
}

impl ResponseMeta {
    pub fn new(
        request: &ResponsesRequest,
        default_model: &str,
        names: ToolNames,
        json_mode: bool,
        keep: Option<Keep>,
    ) -> Self {
        let model = reported_model(request.model.as_deref(), default_model);
        let or = |value: &Option<Value>, default: Value| value.clone().unwrap_or(default);
        let reasoning = request.reasoning.as_ref();
        let echo = json!({
            "model": model,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "max_tool_calls": request.max_tool_calls,
            "metadata": or(&request.metadata, json!({})),
            "parallel_tool_calls": request.parallel_tool_calls.unwrap_or(true),
            "previous_response_id": request.previous_response_id,
            "conversation": request.conversation_id().map(|id| json!({"id": id})),
            "prompt_cache_key": request.prompt_cache_key,
            "reasoning": {
                "effort": reasoning.and_then(|r| r.effort.clone()),
                "summary": reasoning.and_then(|r| r.summary.clone()),
            },
            "safety_identifier": request.safety_identifier,
            "service_tier": "default",
            "store": request.store.unwrap_or(true),
            "temperature": or(&request.temperature, json!(1.0)),
            "text": or(&request.text, json!({"format": {"type": "text"}})),
            "tool_choice": request.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            "tools": request.tools.clone().unwrap_or_default(),
            "top_logprobs": 0,
            "top_p": or(&request.top_p, json!(1.0)),
            "truncation": or(&request.truncation, json!("disabled")),
            "user": request.user,
        });
        Self {
            id: new_id("resp"),
            created_at: now_secs(),
            echo: echo.as_object().cloned().unwrap_or_default(),
            names,
            json_mode,
            keep,
            background: request.background == Some(true),
        }
    }

    /// The response object.
    pub(super) fn response(&self, status: &str, output: Vec<Value>, end: End) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), json!(self.id));
        body.insert("object".into(), json!("response"));
        body.insert("created_at".into(), json!(self.created_at));
        body.insert("status".into(), json!(status));
        body.insert("background".into(), json!(self.background));
        body.insert("error".into(), end.error.unwrap_or(Value::Null));
        body.insert(
            "incomplete_details".into(),
            end.incomplete
                .map_or(Value::Null, |reason| json!({"reason": reason})),
        );
        body.extend(self.echo.clone());
        body.insert("output".into(), Value::Array(output));
        body.insert(
            "usage".into(),
            end.usage.map_or(Value::Null, |u| usage_json(&u)),
        );
        if status == "completed" {
            body.insert("completed_at".into(), json!(now_secs()));
        }
        Value::Object(body)
    }

    /// What of a finished response is kept: the response, when the
    /// request asked to store it, and its items, added to its conversation
    /// (a response that ended without an answer adds nothing). The route
    /// writes it (`stored::Keeping`); one the store refuses (writes fail
    /// and its backlog is full) says `store: false`: the client must not
    /// count on reading it back.
    pub fn kept(&self, response: &Value) -> Option<Kept> {
        let keep = self.keep.as_ref()?;
        let answered = matches!(
            response["status"].as_str(),
            Some("completed" | "incomplete")
        );
        let conversation = keep.conversation.as_ref().filter(|_| answered).map(|id| {
            let output = response["output"].as_array().into_iter().flatten();
            (
                id.clone(),
                keep.input.iter().chain(output).cloned().collect(),
            )
        });
        let stored = keep.store.then(|| StoredResponse {
            id: self.id.clone(),
            scope: keep.scope.clone(),
            response: response.clone(),
            input: keep.input.clone(),
            context: keep.context.clone(),
        });
        (stored.is_some() || conversation.is_some()).then(|| Kept {
            scope: keep.scope.clone(),
            response: stored,
            conversation,
        })
    }
}

/// How a response ended, beyond its status.
#[derive(Default)]
pub(super) struct End {
    pub usage: Option<Usage>,
    pub error: Option<Value>,
    pub incomplete: Option<&'static str>,
}

/// Status and `incomplete_details.reason` for how a turn completed.
pub(super) fn outcome(completion: &Completion) -> (&'static str, Option<&'static str>) {
    crate::api::stop_reason::responses(completion.stop_reason.as_ref())
}

/// The Responses API's usage: input tokens include cached and cache-written
/// ones; the CLI does not report reasoning tokens apart.
pub fn usage_json(usage: &Usage) -> Value {
    let input =
        usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens;
    json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_input_tokens,
            "cache_write_tokens": usage.cache_creation_input_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + usage.output_tokens,
    })
}

/// Input items with an `id` each, as `input_items` lists them.
pub fn with_ids(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut item| {
            if let Some(obj) = item.as_object_mut() {
                if !obj.contains_key("id") {
                    let prefix = match obj.get("type").and_then(Value::as_str) {
                        Some("function_call") => "fc",
                        Some("function_call_output") => "fco",
                        None | Some("message") => "msg",
                        Some(_) => "item",
                    };
                    obj.insert("id".into(), json!(new_id(prefix)));
                }
            }
            item
        })
        .collect()
}

pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(super) fn message_item(id: &str, text: Option<&str>, status: &str) -> Value {
    let content: Vec<Value> = text.map(text_part).into_iter().collect();
    json!({"id": id, "type": "message", "role": "assistant", "status": status, "content": content})
}

pub(super) fn reasoning_item(id: &str, summary: Option<&str>) -> Value {
    let summary: Vec<Value> = summary
        .map(|text| json!({"type": "summary_text", "text": text}))
        .into_iter()
        .collect();
    json!({"id": id, "type": "reasoning", "summary": summary})
}

/// A tool call item; `input` is the JSON text of the arguments.
pub(super) fn call_item(
    tool: &CallerTool,
    id: &str,
    call_id: &str,
    input: &str,
    status: &str,
) -> Value {
    let mut item = if tool.custom {
        let text = serde_json::from_str::<Value>(input)
            .ok()
            .and_then(|v| v.get("input").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        json!({"type": "custom_tool_call", "input": text})
    } else {
        let arguments = if input.trim().is_empty() { "{}" } else { input };
        json!({"type": "function_call", "arguments": arguments})
    };
    item["id"] = json!(id);
    item["call_id"] = json!(call_id);
    item["name"] = json!(tool.name);
    item["status"] = json!(status);
    if let Some(ns) = &tool.namespace {
        item["namespace"] = json!(ns);
    }
    item
}

pub(super) fn call_id_of(prefix: &str, call_id: &str) -> String {
    format!("{prefix}_{}", call_id.trim_start_matches("toolu_"))
}

/// The non-streaming response body; stores it when asked to.
pub fn body(meta: &ResponseMeta, answer: &Completion) -> Value {
    let mut output = Vec::new();
    for block in &answer.content {
        match block {
            ContentBlock::Text { text } => {
                let text = if meta.json_mode {
                    strip_code_fence(text)
                } else {
                    text
                };
                output.push(message_item(&new_id("msg"), Some(text), "completed"));
            }
            ContentBlock::Thinking { thinking, .. } => {
                output.push(reasoning_item(&new_id("rs"), Some(thinking)));
            }
            ContentBlock::ToolUse {
                id: call_id,
                name,
                input,
            } => {
                let tool = meta.names.caller(name);
                let prefix = if tool.custom { "ctc" } else { "fc" };
                let id = call_id_of(prefix, call_id);
                output.push(call_item(
                    &tool,
                    &id,
                    call_id,
                    &input.to_string(),
                    "completed",
                ));
            }
            ContentBlock::RedactedThinking { .. } | ContentBlock::Other(_) => {}
        }
    }
    let (status, incomplete) = outcome(answer);
    let end = End {
        usage: Some(answer.usage),
        incomplete,
        ..End::default()
    };
    meta.response(status, output, end)
}
