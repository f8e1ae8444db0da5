//! The body of `POST /v1/chat/completions` as it arrives, and its
//! validation; the messages are translated at parse time (see `spec.rs`), so
//! every content error is reported before a job is submitted.

use serde::Deserialize;
use serde_json::Value;

use super::content::thinking_budget;
use super::spec::Conversation;
use super::ChatMeta;
use crate::api::InvalidRequest;

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
    pub(super) conversation: Conversation,
}

/// `stream_options`: whether a stream ends with a usage chunk.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `stop`: one stop sequence or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// `response_format`: plain text, or one of the JSON modes (instructed, not
/// enforced: see `content::json_instruction`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

/// The schema of `response_format: {"type": "json_schema"}`.
#[derive(Debug, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
}

/// One entry of `messages`.
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

/// Who speaks a message.
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

/// A message's `content`: a string or content parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    /// Content parts, checked one by one so that errors can name the part.
    Parts(Vec<Value>),
}

/// One of an assistant message's `tool_calls`.
#[derive(Debug, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub function: FunctionCall,
}

/// The function a tool call names, with its arguments.
#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text, as OpenAI sends them.
    #[serde(default)]
    pub arguments: String,
}

impl ChatRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidRequest> {
        let mut request: Self = crate::api::parse_json(body)?;
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

    /// Whether the client asked for a stream.
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
        crate::api::models::reported_model(self.model.as_deref(), default_model)
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
}
