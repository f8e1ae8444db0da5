//! The body of `POST /v1/messages` as it arrives, and its validation: every
//! refusal names the field at fault, as the Messages API does.

use serde::Deserialize;
use serde_json::Value;

use crate::api::InvalidRequest;

/// `POST /v1/messages`. Unknown fields are accepted: SDKs add new ones.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub system: Option<SystemPrompt>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub thinking: Option<ThinkingParam>,
    #[serde(default)]
    pub tools: Vec<ToolParam>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoiceParam>,
    /// Applied by the daemon: the turn ends at the first one the text shows.
    /// Typed loosely (a lone string is taken too) so odd values are no error.
    #[serde(default)]
    pub stop_sequences: Option<Value>,
    // Accepted, not applied: a pooled CLI worker takes no per-turn sampling
    // settings. Typed loosely so odd values are no error either.
    #[serde(default)]
    pub temperature: Option<Value>,
    #[serde(default)]
    pub top_p: Option<Value>,
    #[serde(default)]
    pub top_k: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Structured outputs: `output_config.format` (or the beta's earlier
    /// `output_format`) `{"type":"json_schema","schema":…}`, honoured as an
    /// instruction; other `output_config` parts (`effort`) do not apply.
    #[serde(default)]
    pub output_config: Option<Value>,
    #[serde(default)]
    pub output_format: Option<Value>,
}

/// A caller-defined tool. Server tools (`type` other than `custom`) are not
/// available through the CLI and are refused.
#[derive(Debug, Deserialize)]
pub struct ToolParam {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

/// `tool_choice`: `auto`, `any`, `{"type":"tool","name"}` or `none`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToolChoiceParam {
    Auto {},
    Any {},
    Tool { name: String },
    None {},
}

/// `thinking`: `{"type":"enabled","budget_tokens":N}`, `disabled` or `adaptive`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ThinkingParam {
    Enabled { budget_tokens: u32 },
    Disabled,
    Adaptive,
}

/// One entry of `messages`.
#[derive(Debug, Deserialize)]
pub struct InputMessage {
    pub role: InputRole,
    pub content: MessageContent,
}

/// Who speaks an entry of `messages`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputRole {
    User,
    Assistant,
    /// System context at this point of the conversation (Claude Code's
    /// mid-conversation system messages); see [`crate::api::system`].
    System,
}

/// A message's `content`: a string, or content blocks kept as JSON (they
/// go on to the CLI as they are, once validated).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<Value>),
}

/// `system`: a string or text blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<SystemBlock>),
}

/// One block of a block-form `system` (only `text` is accepted).
#[derive(Debug, Deserialize)]
pub struct SystemBlock {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl MessagesRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidRequest> {
        let request: Self = crate::api::parse_json(body)?;
        request.validate()?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), InvalidRequest> {
        if self.messages.is_empty() {
            return Err(InvalidRequest(
                "messages: at least one message is required".into(),
            ));
        }
        let mut spoken = self
            .messages
            .iter()
            .filter(|m| !matches!(m.role, InputRole::System));
        if matches!(
            (spoken.next().map(|m| m.role), spoken.next()),
            (None | Some(InputRole::Assistant), None)
        ) {
            return Err(InvalidRequest(
                "messages: the conversation must contain a user message".into(),
            ));
        }
        for (i, message) in self.messages.iter().enumerate() {
            if let (InputRole::System, MessageContent::Blocks(blocks)) =
                (message.role, &message.content)
            {
                if let Some(j) = blocks.iter().position(|b| b["type"] != "text") {
                    return Err(InvalidRequest(format!(
                        "messages[{i}].content[{j}].type: only text blocks are allowed in a system message"
                    )));
                }
            }
            match &message.content {
                MessageContent::Text(text) if text.is_empty() && i + 1 < self.messages.len() => {
                    return Err(InvalidRequest(format!(
                        "messages[{i}].content: text content must be non-empty"
                    )))
                }
                MessageContent::Text(_) => {}
                MessageContent::Blocks(blocks) => {
                    if blocks.is_empty() {
                        return Err(InvalidRequest(format!(
                            "messages[{i}].content: at least one content block is required"
                        )));
                    }
                    for (j, block) in blocks.iter().enumerate() {
                        validate_block(block).map_err(|m| {
                            InvalidRequest(format!("messages[{i}].content[{j}]: {m}"))
                        })?;
                    }
                }
            }
        }
        if let Some(SystemPrompt::Blocks(blocks)) = &self.system {
            if let Some(j) = blocks.iter().position(|b| b.kind != "text") {
                return Err(InvalidRequest(format!(
                    "system[{j}].type: only text blocks are allowed in system"
                )));
            }
        }
        for (i, tool) in self.tools.iter().enumerate() {
            if tool.kind.as_deref().is_some_and(|k| k != "custom") {
                return Err(InvalidRequest(format!(
                    "tools[{i}].type: only custom tools (with an input_schema) are supported"
                )));
            }
            if tool.name.is_empty() || tool.name.len() > 64 {
                return Err(InvalidRequest(format!(
                    "tools[{i}].name: must be 1 to 64 characters"
                )));
            }
        }
        if let Some(ToolChoiceParam::Tool { name }) = &self.tool_choice {
            if !self.tools.iter().any(|t| &t.name == name) {
                return Err(InvalidRequest(format!(
                    "tool_choice.name: no tool named `{name}`"
                )));
            }
        }
        if self.max_tokens == Some(0) {
            return Err(InvalidRequest("max_tokens: must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether the client asked for an SSE stream.
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The model name the response reports: the one the client asked for.
    pub fn response_model(&self, default_model: &str) -> String {
        crate::api::models::reported_model(self.model.as_deref(), default_model)
    }
}

/// One content block of a message: an object with a known `type` and the
/// fields the CLI needs of it.
fn validate_block(block: &Value) -> Result<(), String> {
    let Some(obj) = block.as_object() else {
        return Err("a content block must be an object".into());
    };
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Err("a content block needs a string `type`".into());
    };
    match kind {
        "text" => match obj.get("text") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("text block needs a string `text`".into()),
        },
        "image" | "document" => match obj.get("source") {
            Some(Value::Object(source)) if source.get("type").is_some_and(Value::is_string) => {
                Ok(())
            }
            _ => Err(format!(
                "{kind} block needs a `source` object with a `type`"
            )),
        },
        "tool_use" | "tool_result" | "thinking" | "redacted_thinking" => Ok(()),
        other => Err(format!("unsupported content block type `{other}`")),
    }
}
