//! OpenAI Chat Completions on the wire: the request body, its validation and
//! translation into a [`JobSpec`], and the response body and stream chunks
//! built from [`JobEvent`]s.
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

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{json, Value};

use super::assemble::Assembled;
use super::error::ApiError;
use super::models::resolve_model;
pub use super::InvalidRequest;
use super::{tools, Codec, Context, Dialect, EventEncoder, Frame, Parsed};
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
    pub fn to_spec(&self, ctx: &Context) -> JobSpec {
        let ignored = [
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
            model: resolve_model(self.model.as_deref(), &ctx.default_model),
            turns: &self.conversation.turns,
            // Off unless asked for, as in the Messages API.
            thinking_budget: self
                .reasoning_effort
                .as_deref()
                .and_then(thinking_budget)
                .unwrap_or(0),
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            tools: &self.tool_defs(),
            tool_choice: self.tool_choice(),
            stop_sequences: match &self.stop {
                Some(Stop::One(one)) => vec![one.clone()],
                Some(Stop::Many(many)) => many.clone(),
                None => Vec::new(),
            },
        }
        .into_spec(ctx)
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

/// Chat Completions as a [`Codec`].
pub struct ChatCompletions;

impl Codec for ChatCompletions {
    const DIALECT: Dialect = Dialect::OpenAi;
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

    fn body(meta: &ChatMeta, answer: &Assembled) -> Value {
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

mod chat_content;
pub(crate) mod content;
mod response;
use chat_content::{assistant_blocks, plain_text, user_blocks};
use content::*;
pub use response::*;

#[cfg(test)]
mod tests;
