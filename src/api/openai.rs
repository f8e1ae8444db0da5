//! OpenAI Chat Completions on the wire: the request body, its validation and
//! translation into a [`JobSpec`], and the response body and stream chunks
//! built from [`JobEvent`]s.
//!
//! The conversation maps onto Anthropic content: `system` and `developer`
//! messages become the system prompt, image parts become image blocks,
//! assistant `tool_calls` become `tool_use` blocks and `tool` messages
//! `tool_result` blocks; [`prompt::render`] then writes it for the CLI.
//!
//! `reasoning_effort` sets the extended-thinking budget (off by default).
//! Sampling and limit fields (`temperature`, `top_p`, `seed`, `stop`,
//! `max_tokens`, `max_completion_tokens`, `user`) are accepted so that
//! existing clients work, but not enforced: a pooled CLI worker takes no
//! per-turn sampling settings. `tools` (functions) and `tool_choice` map to
//! the same caller-tools mechanism as the Messages API (see `api::tools`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};

use super::assemble::Assembled;
use super::models::resolve_model;
use super::tools;
use super::Dialect;
pub use super::InvalidRequest;
use crate::http::error::ApiError;
use crate::job::{BlockStart, Delta, JobEvent, JobSpec, Usage};
use crate::prompt::{Role, Turn};

/// `POST /v1/chat/completions`. Unknown fields are accepted: SDKs add new ones.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub seed: Option<i64>,
    /// Only one choice can be produced per request.
    #[serde(default)]
    pub n: Option<u32>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    /// The conversation translated at parse time, so that every content
    /// error is reported before a job is submitted.
    #[serde(skip)]
    conversation: Conversation,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    #[serde(default)]
    pub content: Option<ChatContent>,
    /// Calls an assistant made in an earlier turn.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The legacy single-call form of `tool_calls`.
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
    /// Which call a `tool` message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// Ignored, except as the call id of a legacy `function` message.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    /// The legacy predecessor of `tool`.
    Function,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    /// Content parts, checked one by one so that errors can name the part.
    Parts(Vec<Value>),
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text, as OpenAI sends them.
    #[serde(default)]
    pub arguments: String,
}

/// The translated conversation: system prompt and turns.
#[derive(Debug, Default)]
struct Conversation {
    system: Vec<String>,
    turns: Vec<Turn>,
}

/// The image types the Messages API accepts.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

impl ChatRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidRequest> {
        let mut request: Self = super::parse_json(body)?;
        request.validate()?;
        request.conversation = request.translate()?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), InvalidRequest> {
        if self.messages.is_empty() {
            return Err(InvalidRequest(
                "messages: at least one message is required".into(),
            ));
        }
        match self.n {
            Some(0) => return Err(InvalidRequest("n: must be at least 1".into())),
            Some(n) if n > 1 => {
                return Err(InvalidRequest(format!(
                    "n: only n = 1 is supported (got {n}); send separate requests for more choices"
                )))
            }
            _ => {}
        }
        if self.max_tokens == Some(0) {
            return Err(InvalidRequest("max_tokens: must be at least 1".into()));
        }
        if let Some(effort) = self.reasoning_effort.as_deref() {
            if thinking_budget(effort).is_none() {
                return Err(InvalidRequest(format!(
                    "reasoning_effort: unknown value `{effort}`; use none, minimal, low, medium, high or xhigh"
                )));
            }
        }
        if self.max_completion_tokens == Some(0) {
            return Err(InvalidRequest(
                "max_completion_tokens: must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Translates the messages, naming the field at fault on error.
    fn translate(&self) -> Result<Conversation, InvalidRequest> {
        let mut conversation = Conversation::default();
        // Consecutive tool results belong to one user message.
        let mut last_was_tool = false;
        for (i, message) in self.messages.iter().enumerate() {
            let at = |rest: &str| format!("messages[{i}].{rest}");
            let is_tool = matches!(message.role, ChatRole::Tool | ChatRole::Function);
            match message.role {
                ChatRole::System | ChatRole::Developer => {
                    let text = plain_text(message.content.as_ref(), &at("content"))?;
                    if !text.is_empty() {
                        conversation.system.push(text);
                    }
                }
                ChatRole::User => {
                    let blocks = user_blocks(message.content.as_ref(), &at("content"))?;
                    if blocks.is_empty() {
                        return Err(InvalidRequest(format!(
                            "{}: a user message needs content",
                            at("content")
                        )));
                    }
                    conversation.turns.push(Turn {
                        role: Role::User,
                        blocks,
                    });
                }
                ChatRole::Assistant => {
                    let blocks = assistant_blocks(message, &at(""))?;
                    // An empty assistant message says nothing worth replaying.
                    if !blocks.is_empty() {
                        conversation.turns.push(Turn {
                            role: Role::Assistant,
                            blocks,
                        });
                    }
                }
                ChatRole::Tool | ChatRole::Function => {
                    let (id, field) = if message.role == ChatRole::Tool {
                        (message.tool_call_id.as_deref(), "tool_call_id")
                    } else {
                        (message.name.as_deref(), "name")
                    };
                    let Some(id) = id.filter(|id| !id.is_empty()) else {
                        return Err(InvalidRequest(format!(
                            "{}: required for a `{}` message",
                            at(field),
                            if field == "name" { "function" } else { "tool" }
                        )));
                    };
                    let content = plain_text(message.content.as_ref(), &at("content"))?;
                    let block =
                        json!({"type": "tool_result", "tool_use_id": id, "content": content});
                    match conversation.turns.last_mut() {
                        Some(turn) if last_was_tool => turn.blocks.push(block),
                        _ => conversation.turns.push(Turn {
                            role: Role::User,
                            blocks: vec![block],
                        }),
                    }
                }
            }
            if !matches!(message.role, ChatRole::System | ChatRole::Developer) {
                last_was_tool = is_tool;
            }
        }
        if !conversation.turns.iter().any(|t| t.role == Role::User) {
            return Err(InvalidRequest(
                "messages: the conversation must contain a user message".into(),
            ));
        }
        Ok(conversation)
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed answer ends with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The model name the response reports: the one the client asked for.
    pub fn response_model(&self, default_model: &str) -> String {
        self.model
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| default_model.to_string())
    }

    /// Response identity for this request.
    pub fn meta(&self, default_model: &str) -> ChatMeta {
        let mut meta = ChatMeta::new(self.response_model(default_model));
        meta.include_usage = self.include_usage();
        meta.json_mode = matches!(
            self.response_format,
            Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
        );
        meta
    }

    /// What a worker must run for this request.
    pub fn to_spec(&self, default_model: &str) -> JobSpec {
        let ignored = [
            ("max_tokens", self.max_tokens.is_some()),
            (
                "max_completion_tokens",
                self.max_completion_tokens.is_some(),
            ),
            ("temperature", self.temperature.is_some()),
            ("top_p", self.top_p.is_some()),
            ("seed", self.seed.is_some()),
            ("user", self.user.is_some()),
        ];
        for (field, present) in ignored {
            if present {
                super::note_ignored(field);
            }
        }
        let mut system = self.conversation.system.clone();
        if let Some(instruction) = self.response_format.as_ref().and_then(json_instruction) {
            system.push(instruction);
        }
        super::Conversation {
            system: system.join("\n\n"),
            model: resolve_model(self.model.as_deref(), default_model),
            turns: &self.conversation.turns,
            // Off unless asked for, as in the Messages API.
            thinking_budget: self
                .reasoning_effort
                .as_deref()
                .and_then(thinking_budget)
                .unwrap_or(0),
            tools: &self.tool_defs(),
            tool_choice: self.tool_choice(),
            stop_sequences: match &self.stop {
                Some(Stop::One(one)) => vec![one.clone()],
                Some(Stop::Many(many)) => many.clone(),
                None => Vec::new(),
            },
        }
        .into_spec()
    }

    /// `tools[].function` as tool definitions (other tool types are skipped).
    fn tool_defs(&self) -> Vec<tools::ToolDef> {
        self.tools
            .iter()
            .flatten()
            .filter(|t| t["type"] == "function")
            .filter_map(|t| {
                let f = &t["function"];
                Some(tools::ToolDef {
                    name: f["name"].as_str()?.to_string(),
                    description: f["description"].as_str().unwrap_or_default().to_string(),
                    input_schema: f["parameters"].clone(),
                })
            })
            .collect()
    }

    /// `tool_choice`: `auto`, `none`, `required`, or a named function.
    fn tool_choice(&self) -> tools::Choice {
        match &self.tool_choice {
            Some(Value::String(s)) if s == "none" => tools::Choice::None,
            Some(Value::String(s)) if s == "required" => tools::Choice::Any,
            Some(Value::Object(o)) => match o.get("function").and_then(|f| f["name"].as_str()) {
                Some(name) => tools::Choice::Tool(name.to_string()),
                None => tools::Choice::Auto,
            },
            _ => tools::Choice::Auto,
        }
    }
}

/// The extended-thinking budget for a `reasoning_effort`; `None` for a
/// value OpenAI does not define. Without one, thinking is off, as for a
/// non-reasoning Chat Completions model.
fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "none" | "minimal" => Some(0),
        "low" => Some(1_024),
        "medium" => Some(8_192),
        "high" => Some(24_576),
        // The CLI's own default budget.
        "xhigh" => Some(31_999),
        _ => None,
    }
}

/// The system-prompt instruction that stands in for OpenAI's JSON modes.
/// Best effort: the model is asked, not constrained, to answer in JSON.
fn json_instruction(format: &ResponseFormat) -> Option<String> {
    const BASE: &str = "Respond with only a single valid JSON object: no text before or after \
                        it, and no Markdown code fences.";
    match format {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(BASE.to_string()),
        ResponseFormat::JsonSchema { json_schema } => {
            let mut out = BASE.to_string();
            if let Some(schema) = &json_schema.schema {
                out.push_str(" The object must conform to this JSON Schema");
                if let Some(name) = json_schema.name.as_deref().filter(|n| !n.is_empty()) {
                    out.push_str(&format!(" (named `{name}`)"));
                }
                out.push_str(&format!(":\n{schema}"));
            }
            if let Some(description) = json_schema.description.as_deref() {
                out.push_str(&format!("\nWhat the object is for: {description}"));
            }
            Some(out)
        }
    }
}

/// The text of a message whose parts may only be text (system, developer,
/// tool). Parts are joined without a separator, as OpenAI does.
fn plain_text(content: Option<&ChatContent>, at: &str) -> Result<String, InvalidRequest> {
    match content {
        None => Ok(String::new()),
        Some(ChatContent::Text(text)) => Ok(text.clone()),
        Some(ChatContent::Parts(parts)) => {
            let mut out = String::new();
            for (j, part) in parts.iter().enumerate() {
                match part_type(part, &format!("{at}[{j}]"))? {
                    "text" => out.push_str(part_text(part, &format!("{at}[{j}]"))?),
                    other => {
                        return Err(InvalidRequest(format!(
                            "{at}[{j}].type: `{other}` parts are not allowed here, only `text`"
                        )))
                    }
                }
            }
            Ok(out)
        }
    }
}

fn part_type<'a>(part: &'a Value, at: &str) -> Result<&'a str, InvalidRequest> {
    if !part.is_object() {
        return Err(InvalidRequest(format!(
            "{at}: a content part must be an object"
        )));
    }
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidRequest(format!("{at}.type: a content part needs a string `type`")))
}

fn part_text<'a>(part: &'a Value, at: &str) -> Result<&'a str, InvalidRequest> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidRequest(format!("{at}.text: a text part needs a string `text`")))
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// A user message as Anthropic content blocks. Empty text is dropped.
fn user_blocks(content: Option<&ChatContent>, at: &str) -> Result<Vec<Value>, InvalidRequest> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(ChatContent::Text(text)) if text.is_empty() => return Ok(Vec::new()),
        Some(ChatContent::Text(text)) => return Ok(vec![text_block(text)]),
        Some(ChatContent::Parts(parts)) => parts,
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        match part_type(part, &at)? {
            "text" => {
                let text = part_text(part, &at)?;
                if !text.is_empty() {
                    blocks.push(text_block(text));
                }
            }
            "image_url" => {
                // `{"url": …, "detail": …}`, or a bare URL from lenient clients.
                let url = match part.get("image_url") {
                    Some(Value::String(url)) => Some(url.as_str()),
                    Some(Value::Object(obj)) => obj.get("url").and_then(Value::as_str),
                    _ => None,
                };
                let Some(url) = url else {
                    return Err(InvalidRequest(format!(
                        "{at}.image_url: needs an object with a string `url`"
                    )));
                };
                blocks.push(
                    image_block(url)
                        .map_err(|m| InvalidRequest(format!("{at}.image_url.url: {m}")))?,
                );
            }
            "file" => blocks.push(file_block(part, &at)?),
            "input_audio" => {
                return Err(InvalidRequest(format!(
                    "{at}.type: audio input is not supported"
                )))
            }
            other => {
                return Err(InvalidRequest(format!(
                    "{at}.type: unsupported content part type `{other}`"
                )))
            }
        }
    }
    Ok(blocks)
}

/// A `data:` URL split into media type and base64 payload.
fn parse_data_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("data:").unwrap_or(url);
    let Some((header, data)) = rest.split_once(',') else {
        return Err("a data URL needs a `,` before its payload".into());
    };
    let Some(media_type) = header.strip_suffix(";base64") else {
        return Err("only base64 data URLs are supported (`data:<type>;base64,…`)".into());
    };
    Ok((media_type.trim(), data))
}

/// An image part's URL as an Anthropic image block.
fn image_block(url: &str) -> Result<Value, String> {
    let url = url.trim();
    if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url)?;
        let media_type = media_type.to_ascii_lowercase();
        let media_type = if media_type == "image/jpg" {
            "image/jpeg".to_string()
        } else {
            media_type
        };
        if !IMAGE_TYPES.contains(&media_type.as_str()) {
            return Err(format!(
                "unsupported image type `{media_type}`; use one of {}",
                IMAGE_TYPES.join(", ")
            ));
        }
        if data.is_empty() {
            return Err("the data URL has no image data".into());
        }
        Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}),
        )
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok(json!({"type": "image", "source": {"type": "url", "url": url}}))
    } else {
        Err("expected a `data:` URL or an http(s) URL".into())
    }
}

/// A `file` part (inline PDF) as an Anthropic document block.
fn file_block(part: &Value, at: &str) -> Result<Value, InvalidRequest> {
    let file = part.get("file").and_then(Value::as_object);
    let data = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str);
    let Some(data) = data else {
        let why = if file.is_some_and(|f| f.contains_key("file_id")) {
            "uploaded files (`file_id`) are not supported; send the file inline as `file_data`"
        } else {
            "needs an object with `file_data`"
        };
        return Err(InvalidRequest(format!("{at}.file: {why}")));
    };
    let at = format!("{at}.file.file_data");
    let (media_type, payload) =
        parse_data_url(data).map_err(|m| InvalidRequest(format!("{at}: {m}")))?;
    if media_type != "application/pdf" {
        return Err(InvalidRequest(format!(
            "{at}: unsupported file type `{media_type}`; only application/pdf is supported"
        )));
    }
    let mut block = json!({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": payload}});
    if let Some(name) = file.and_then(|f| f.get("filename")).and_then(Value::as_str) {
        block["title"] = Value::String(name.to_string());
    }
    Ok(block)
}

/// An earlier assistant message: its text, then its tool calls.
fn assistant_blocks(message: &ChatMessage, at: &str) -> Result<Vec<Value>, InvalidRequest> {
    let mut blocks = Vec::new();
    match &message.content {
        Some(ChatContent::Text(text)) if !text.is_empty() => blocks.push(text_block(text)),
        None | Some(ChatContent::Text(_)) => {}
        Some(ChatContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let at = format!("{at}content[{j}]");
                let text = match part_type(part, &at)? {
                    "text" => part_text(part, &at)?,
                    "refusal" => part.get("refusal").and_then(Value::as_str).ok_or_else(|| {
                        InvalidRequest(format!(
                            "{at}.refusal: a refusal part needs a string `refusal`"
                        ))
                    })?,
                    other => {
                        return Err(InvalidRequest(format!(
                            "{at}.type: `{other}` parts are not allowed in assistant messages"
                        )))
                    }
                };
                if !text.is_empty() {
                    blocks.push(text_block(text));
                }
            }
        }
    }
    let legacy = message
        .function_call
        .as_ref()
        .map(|f| ("call_0", f))
        .into_iter();
    let calls = message
        .tool_calls
        .iter()
        .flatten()
        .map(|c| (c.id.as_str(), &c.function))
        .chain(legacy);
    for (id, function) in calls {
        blocks.push(json!({
            "type": "tool_use",
            "id": id,
            "name": function.name,
            "input": parse_arguments(&function.arguments),
        }));
    }
    Ok(blocks)
}

/// Tool-call arguments as JSON; text that is not JSON is kept as a string
/// rather than refused, since it only ever reaches the prompt.
fn parse_arguments(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

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
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model,
            include_usage: false,
            json_mode: false,
        }
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, none or anything new.
        _ => "stop",
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
fn tool_calls(content: &[Value]) -> Vec<Value> {
    content
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
            json!({
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": input.to_string()},
            })
        })
        .collect()
}

/// In JSON mode, a reply the model wrapped in a Markdown code fence anyway
/// is unwrapped (non-streaming responses only).
fn strip_code_fence(text: &str) -> &str {
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
pub fn completion_body(meta: &ChatMeta, answer: &Assembled) -> Value {
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
            "finish_reason": finish_reason(answer.completion.stop_reason.as_deref()),
        }],
        "usage": usage_json(&answer.completion.usage),
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
    pub fn encode(&mut self, event: JobEvent) -> Vec<Value> {
        let mut out = Vec::new();
        if !self.started && !matches!(event, JobEvent::Failed(_)) {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
        match event {
            JobEvent::Started { usage, .. } => self.input_usage = usage,
            JobEvent::BlockStart { index, block } => match block {
                BlockStart::Text { text } => out.extend(self.content(&text)),
                BlockStart::ToolUse { id, name, input } => {
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
                // Thinking is not part of the Chat Completions answer.
                BlockStart::Thinking { .. } | BlockStart::RedactedThinking { .. } => {}
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
                let reason = finish_reason(completion.stop_reason.as_deref());
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
                out.push(ApiError::from_job(error, Dialect::OpenAi).openai_body());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Completion;

    fn parse(body: Value) -> Result<ChatRequest, InvalidRequest> {
        ChatRequest::parse(body.to_string().as_bytes())
    }

    fn all_text(spec: &JobSpec) -> String {
        spec.prompt
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect()
    }

    fn finished(stop_reason: &str, usage: Usage) -> JobEvent {
        JobEvent::Finished(Completion {
            stop_reason: Some(stop_reason.into()),
            stop_sequence: None,
            usage,
        })
    }

    #[test]
    fn minimal_request_becomes_a_spec() {
        let r = parse(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
        let spec = r.to_spec("sonnet");
        assert_eq!(spec.model, "sonnet");
        assert_eq!(spec.system, "");
        assert_eq!(spec.prompt, vec![json!({"type": "text", "text": "hi"})]);
        assert_eq!(r.response_model("sonnet"), "gpt-4o");
        assert!(!r.is_stream());
    }

    #[test]
    fn system_and_developer_are_merged_into_the_system_prompt() {
        let r = parse(json!({
            "model": "claude-haiku-4-5",
            "messages": [
                {"role": "system", "content": "S1"},
                {"role": "developer", "content": [{"type": "text", "text": "D1"}]},
                {"role": "user", "content": "hi", "name": "bob"},
                {"role": "system", "content": "S2"},
            ]
        }))
        .unwrap();
        let spec = r.to_spec("sonnet");
        assert_eq!(spec.system, "S1\n\nD1\n\nS2");
        assert_eq!(spec.model, "claude-haiku-4-5");
        assert!(!all_text(&spec).contains("S1"));
    }

    #[test]
    fn image_parts_become_image_blocks() {
        let r = parse(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]}]}))
        .unwrap();
        let spec = r.to_spec("sonnet");
        assert_eq!(
            spec.prompt[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            spec.prompt[2],
            json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
        );
    }

    #[test]
    fn pdf_file_parts_become_documents() {
        let r = parse(json!({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
            {"type": "text", "text": "summarise"},
        ]}]}))
        .unwrap();
        let spec = r.to_spec("sonnet");
        assert_eq!(spec.prompt[0]["type"], "document");
        assert_eq!(spec.prompt[0]["source"]["data"], "JVBERi0=");
        assert_eq!(spec.prompt[0]["title"], "a.pdf");
    }

    #[test]
    fn history_with_tool_calls_and_results_is_rendered() {
        let r = parse(json!({"messages": [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
            {"role": "user", "content": "thanks"},
        ]}))
        .unwrap();
        let turns = &r.conversation.turns;
        assert_eq!(turns.len(), 4, "the two tool results share one turn");
        assert_eq!(turns[1].blocks[0]["input"], json!({"city": "Paris"}));
        assert_eq!(turns[2].blocks.len(), 2);
        let text = all_text(&r.to_spec("sonnet"));
        assert!(
            text.contains(
                r#"<tool_use id="call_1" name="get_weather">{"city":"Paris"}</tool_use>"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"<tool_result tool_use_id="call_2">25C</tool_result>"#),
            "{text}"
        );
    }

    #[test]
    fn n_above_one_is_refused_by_name() {
        let e =
            parse(json!({"n": 2, "messages": [{"role": "user", "content": "hi"}]})).unwrap_err();
        assert!(e.0.starts_with("n:"), "{e}");
        assert!(parse(json!({"n": 1, "messages": [{"role": "user", "content": "hi"}]})).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"model": "x"}), "messages"),
            (json!({"messages": []}), "messages: at least one"),
            (
                json!({"messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
                "messages[0].content[0].image_url.url",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]}),
                "messages[0].content[0].image_url.url: unsupported image type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages[0].content[0].text",
            ),
            (
                json!({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]}),
                "messages[1].tool_call_id",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": "a", "tool_calls": [{"id": "c"}]}]}),
                "messages[0].tool_calls[0]",
            ),
            (
                json!({"messages": [{"role": "system", "content": "s"}]}),
                "must contain a user message",
            ),
            (
                json!({"response_format": {"type": "yaml"}, "messages": [{"role": "user", "content": "x"}]}),
                "response_format",
            ),
            (json!({"stream": "yes", "messages": []}), "stream"),
        ];
        for (body, expected) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert!(
                e.0.starts_with(expected) || e.0.contains(expected),
                "{body} -> {e}"
            );
        }
        let e = ChatRequest::parse(b"{not json").unwrap_err();
        assert!(e.0.contains("invalid request body"), "{e}");
    }

    #[test]
    fn unknown_and_sampling_fields_are_accepted() {
        let r = parse(json!({
            "model": "opus", "temperature": 0.2, "top_p": 0.9, "stop": ["x"], "seed": 7,
            "user": "u", "max_completion_tokens": 10, "reasoning_effort": "low",
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
            "parallel_tool_calls": false, "logit_bias": {}, "store": false,
            "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        assert!(r.is_stream() && r.include_usage());
        let spec = r.to_spec("sonnet");
        assert_eq!(spec.model, "opus");
        assert_eq!(spec.thinking_budget, 1_024);
        let r = parse(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(
            r.to_spec("sonnet").thinking_budget,
            0,
            "thinking is off unless asked"
        );
        let e = parse(
            json!({"reasoning_effort": "max", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap_err();
        assert!(e.0.starts_with("reasoning_effort:"), "{e}");
    }

    #[test]
    fn json_response_formats_add_a_system_instruction() {
        let r = parse(json!({
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}},
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let system = r.to_spec("sonnet").system;
        assert!(
            system.starts_with("Be brief.\n\nRespond with only a single valid JSON object"),
            "{system}"
        );
        assert!(
            system.contains("`person`") && system.contains(r#""properties""#),
            "{system}"
        );
        assert!(r.meta("sonnet").json_mode);
        let r = parse(json!({"response_format": {"type": "text"}, "messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(r.to_spec("sonnet").system, "");
    }

    fn text_answer(text: &str, stop_reason: &str) -> Assembled {
        Assembled {
            content: vec![json!({"type": "text", "text": text})],
            completion: Completion {
                stop_reason: Some(stop_reason.into()),
                stop_sequence: None,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    cache_creation_input_tokens: 3,
                    cache_read_input_tokens: 2,
                },
            },
        }
    }

    #[test]
    fn text_response_has_the_openai_shape() {
        let meta = ChatMeta::new("gpt-4o".into());
        let body = completion_body(&meta, &text_answer("Hello!", "end_turn"));
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(body["object"], "chat.completion");
        assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(
            body["choices"],
            json!([{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": null}, "logprobs": null, "finish_reason": "stop"}])
        );
        assert_eq!(body["usage"]["prompt_tokens"], 15);
        assert_eq!(body["usage"]["completion_tokens"], 5);
        assert_eq!(body["usage"]["total_tokens"], 20);
        assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
        assert!(body["system_fingerprint"].is_null());
    }

    #[test]
    fn tool_use_response_has_tool_calls() {
        let answer = Assembled {
            content: vec![
                json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}),
            ],
            completion: Completion {
                stop_reason: Some("tool_use".into()),
                stop_sequence: None,
                usage: Usage::default(),
            },
        };
        let body = completion_body(&ChatMeta::new("m".into()), &answer);
        let message = &body["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(
            message["tool_calls"],
            json!([{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn json_mode_unwraps_a_code_fence() {
        let mut meta = ChatMeta::new("m".into());
        meta.json_mode = true;
        let body = completion_body(&meta, &text_answer("```json\n{\"a\": 1}\n```", "end_turn"));
        assert_eq!(body["choices"][0]["message"]["content"], "{\"a\": 1}");
        let body = completion_body(&meta, &text_answer("{\"a\": 1}", "end_turn"));
        assert_eq!(body["choices"][0]["message"]["content"], "{\"a\": 1}");
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason(None), "stop");
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason(Some("refusal")), "content_filter");
    }

    #[test]
    fn text_stream_chunks() {
        let mut meta = ChatMeta::new("gpt-4o".into());
        meta.include_usage = true;
        let mut enc = ChunkEncoder::new(meta);
        let mut chunks = Vec::new();
        let events = vec![
            JobEvent::Started {
                model: "m".into(),
                usage: Usage::default(),
            },
            JobEvent::BlockStart {
                index: 0,
                block: BlockStart::Thinking {
                    thinking: String::new(),
                    signature: None,
                },
            },
            JobEvent::BlockDelta {
                index: 0,
                delta: Delta::Thinking {
                    thinking: "hmm".into(),
                },
            },
            JobEvent::BlockStart {
                index: 1,
                block: BlockStart::Text {
                    text: String::new(),
                },
            },
            JobEvent::BlockDelta {
                index: 1,
                delta: Delta::Text { text: "Hel".into() },
            },
            JobEvent::BlockDelta {
                index: 1,
                delta: Delta::Text { text: "lo".into() },
            },
            JobEvent::BlockStop { index: 1 },
            finished(
                "end_turn",
                Usage {
                    input_tokens: 7,
                    output_tokens: 2,
                    ..Default::default()
                },
            ),
        ];
        for e in events {
            chunks.extend(enc.encode(e));
        }
        let ids: Vec<_> = chunks.iter().map(|c| c["id"].clone()).collect();
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(chunks.len(), 5, "{chunks:#?}");
        for c in &chunks {
            assert_eq!(c["object"], "chat.completion.chunk");
            assert_eq!(c["model"], "gpt-4o");
        }
        assert_eq!(
            chunks[0]["choices"],
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}])
        );
        assert!(chunks[0]["usage"].is_null() && chunks[0].get("usage").is_some());
        assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "Hel"}));
        assert_eq!(chunks[2]["choices"][0]["delta"], json!({"content": "lo"}));
        assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[4]["choices"], json!([]));
        assert_eq!(chunks[4]["usage"]["prompt_tokens"], 7);
        assert_eq!(chunks[4]["usage"]["total_tokens"], 9);
    }

    #[test]
    fn tool_use_stream_chunks() {
        let mut enc = ChunkEncoder::new(ChatMeta::new("m".into()));
        let mut chunks = Vec::new();
        let events = vec![
            JobEvent::BlockStart {
                index: 0,
                block: BlockStart::Text {
                    text: String::new(),
                },
            },
            JobEvent::BlockDelta {
                index: 0,
                delta: Delta::Text {
                    text: "Checking.".into(),
                },
            },
            JobEvent::BlockStart {
                index: 1,
                block: BlockStart::ToolUse {
                    id: "toolu_1".into(),
                    name: "get_weather".into(),
                    input: json!({}),
                },
            },
            JobEvent::BlockDelta {
                index: 1,
                delta: Delta::InputJson {
                    partial_json: "{\"city\":".into(),
                },
            },
            JobEvent::BlockDelta {
                index: 1,
                delta: Delta::InputJson {
                    partial_json: "\"Paris\"}".into(),
                },
            },
            JobEvent::BlockStart {
                index: 2,
                block: BlockStart::ToolUse {
                    id: "toolu_2".into(),
                    name: "get_time".into(),
                    input: json!({}),
                },
            },
            finished("tool_use", Usage::default()),
        ];
        for e in events {
            chunks.extend(enc.encode(e));
        }
        let deltas: Vec<_> = chunks
            .iter()
            .map(|c| c["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(deltas[1], json!({"content": "Checking."}));
        assert_eq!(
            deltas[2],
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
        );
        assert_eq!(
            deltas[3],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
        );
        assert_eq!(deltas[5]["tool_calls"][0]["index"], 1);
        assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
        assert!(chunks[6].get("usage").is_none(), "no usage unless asked");
        assert_eq!(chunks.len(), 7);
    }

    #[test]
    fn a_failed_stream_sends_the_openai_error_body() {
        let mut enc = ChunkEncoder::new(ChatMeta::new("m".into()));
        let out = enc.encode(JobEvent::Failed(crate::error::JobError::Timeout(
            "too slow".into(),
        )));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["error"]["message"], "too slow");
        assert_eq!(out[0]["error"]["type"], "server_error");
    }
}
