//! The Anthropic Messages API on the wire: the request body, its validation
//! and translation into a [`JobSpec`], and the response body and SSE events
//! built from [`JobEvent`]s.

use serde::Deserialize;
use serde_json::{json, Value};

use super::assemble::Assembled;
use super::error::ApiError;
use super::models::resolve_model;
use super::system;
use super::{tools, Codec, Context, Dialect, EventEncoder, Frame, Parsed};
use crate::job::{JobEvent, JobSpec, Usage};
use crate::prompt::{Role, Turn};

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

/// The budget given for `adaptive` thinking: the CLI's own default.
const ADAPTIVE_THINKING_BUDGET: u32 = 31_999;

#[derive(Debug, Deserialize)]
pub struct InputMessage {
    pub role: InputRole,
    pub content: MessageContent,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputRole {
    User,
    Assistant,
    /// System context at this point of the conversation (Claude Code's
    /// mid-conversation system messages); see [`super::system`].
    System,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Blocks(Vec<Value>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<SystemBlock>),
}

#[derive(Debug, Deserialize)]
pub struct SystemBlock {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

pub use super::InvalidRequest;

impl MessagesRequest {
    /// Parses and validates a request body.
    pub fn parse(body: &[u8]) -> Result<Self, InvalidRequest> {
        let request: Self = super::parse_json(body)?;
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

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The model name the response reports: the one the client asked for.
    pub fn response_model(&self, default_model: &str) -> String {
        self.model
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| default_model.to_string())
    }

    /// The instruction standing in for a JSON schema output format, as for
    /// OpenAI's `response_format` (see [`super::json_instruction`]).
    fn output_instruction(&self) -> Option<String> {
        let format = (self.output_config.as_ref())
            .and_then(|c| c.get("format"))
            .or(self.output_format.as_ref())
            .filter(|f| f["type"] == "json_schema")?;
        Some(super::json_instruction(format.get("schema"), None, None))
    }

    /// What a worker must run for this request.
    pub fn to_spec(&self, ctx: &Context) -> JobSpec {
        let ignored = [
            ("temperature", self.temperature.is_some()),
            ("top_p", self.top_p.is_some()),
            ("top_k", self.top_k.is_some()),
            ("metadata", self.metadata.is_some()),
        ];
        for (field, present) in ignored {
            if present {
                super::note_ignored(field);
            }
        }
        let mut system = match &self.system {
            None => String::new(),
            Some(SystemPrompt::Text(text)) => system::join_system([text.as_str()]),
            Some(SystemPrompt::Blocks(blocks)) => {
                system::join_system(blocks.iter().map(|b| b.text.as_str()))
            }
        };
        if let Some(instruction) = self.output_instruction() {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(&instruction);
        }
        let turns = system::fold_system_messages(self.messages.iter().map(|m| {
            let blocks = match &m.content {
                MessageContent::Text(text) => vec![json!({"type": "text", "text": text})],
                MessageContent::Blocks(blocks) => blocks.clone(),
            };
            let role = match m.role {
                InputRole::User => Role::User,
                InputRole::Assistant => Role::Assistant,
                InputRole::System => {
                    let text: Vec<&str> =
                        blocks.iter().filter_map(|b| b["text"].as_str()).collect();
                    return system::Message::System(text.join("\n\n"));
                }
            };
            system::Message::Turn(Turn { role, blocks })
        }));
        let choice = match &self.tool_choice {
            None | Some(ToolChoiceParam::Auto {}) => tools::Choice::Auto,
            Some(ToolChoiceParam::Any {}) => tools::Choice::Any,
            Some(ToolChoiceParam::Tool { name }) => tools::Choice::Tool(name.clone()),
            Some(ToolChoiceParam::None {}) => tools::Choice::None,
        };
        let defs: Vec<tools::ToolDef> = self
            .tools
            .iter()
            .map(|t| tools::ToolDef {
                name: t.name.clone(),
                description: t.description.clone().unwrap_or_default(),
                input_schema: t.input_schema.clone().unwrap_or(Value::Null),
            })
            .collect();
        super::Conversation {
            system,
            model: resolve_model(self.model.as_deref(), &ctx.default_model),
            turns: &turns,
            thinking_budget: match self.thinking {
                Some(ThinkingParam::Enabled { budget_tokens }) => budget_tokens.max(1),
                Some(ThinkingParam::Adaptive) => ADAPTIVE_THINKING_BUDGET,
                Some(ThinkingParam::Disabled) | None => 0,
            },
            max_tokens: self.max_tokens,
            tools: &defs,
            tool_choice: choice,
            stop_sequences: match &self.stop_sequences {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(one)) => vec![one.clone()],
                _ => Vec::new(),
            },
        }
        .into_spec(ctx)
    }
}

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

    fn body(meta: &MessageMeta, answer: &Assembled) -> Value {
        message_body(meta, answer)
    }

    fn stream(meta: MessageMeta) -> StreamEncoder {
        StreamEncoder::new(meta)
    }
}

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
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            model,
        }
    }
}

fn usage_json(usage: &Usage) -> Value {
    serde_json::to_value(usage).unwrap_or_else(|_| json!({}))
}

/// The non-streaming response body.
pub fn message_body(meta: &MessageMeta, answer: &Assembled) -> Value {
    json!({
        "id": meta.id,
        "type": "message",
        "role": "assistant",
        "model": meta.model,
        "content": answer.content,
        "stop_reason": answer.completion.stop_reason,
        "stop_sequence": answer.completion.stop_sequence,
        "usage": usage_json(&answer.completion.usage),
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
                            "stop_reason": completion.stop_reason,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_string_and_block_content() {
        let r = MessagesRequest::parse(
            br#"{"model":"claude-x","max_tokens":5,"system":[{"type":"text","text":"S1"},{"type":"text","text":"S2"}],
                "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"yo"}]},{"role":"user","content":"again"}]}"#,
        )
        .unwrap();
        let spec = r.to_spec(&Context::new("sonnet"));
        assert_eq!(spec.system, "S1\n\nS2");
        assert_eq!(spec.model, "claude-x");
        assert!(!spec.prompt.is_empty());
    }

    #[test]
    fn claude_codes_system_messages_and_billing_header() {
        let r = MessagesRequest::parse(
            br#"{"model":"claude-opus-4-8","max_tokens":5,
                "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.197.d7d; cc_entrypoint=sdk-cli;"},
                          {"type":"text","text":"You are Claude Code."}],
                "messages":[{"role":"user","content":"hi"},{"role":"system","content":"agents: Explore"}]}"#,
        )
        .unwrap();
        let spec = r.to_spec(&Context::new("sonnet"));
        assert_eq!(spec.system, "You are Claude Code.");
        let texts: Vec<&str> = spec
            .prompt
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect();
        assert_eq!(
            texts,
            [
                "hi",
                "<system-reminder>\nagents: Explore\n</system-reminder>\n"
            ]
        );
        let e = MessagesRequest::parse(br#"{"messages":[{"role":"system","content":"x"}]}"#)
            .unwrap_err();
        assert!(e.0.contains("user message"), "{e}");
        let e = MessagesRequest::parse(
            br#"{"messages":[{"role":"user","content":"hi"},{"role":"system","content":[{"type":"image","source":{"type":"url"}}]}]}"#,
        )
        .unwrap_err();
        assert!(e.0.starts_with("messages[1].content[0].type"), "{e}");
    }

    #[test]
    fn structured_outputs_are_instructed_and_other_output_config_is_ignored() {
        let r = MessagesRequest::parse(
            br#"{"max_tokens":5,"system":"S","output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object","properties":{"n":{"type":"integer"}}}}},
                "context_management":{"edits":[]},"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let system = r.to_spec(&Context::new("sonnet")).system;
        assert!(
            system.starts_with("S\n\nRespond with only a single valid JSON object"),
            "{system}"
        );
        assert!(
            system.contains(r#"{"properties":{"n":{"type":"integer"}},"type":"object"}"#),
            "{system}"
        );
        let r = MessagesRequest::parse(
            br#"{"output_format":{"type":"json_schema","schema":{"type":"object"}},"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert!(r
            .to_spec(&Context::new("sonnet"))
            .system
            .contains("JSON Schema"));
        let r = MessagesRequest::parse(
            br#"{"output_config":{"effort":"low"},"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(r.to_spec(&Context::new("sonnet")).system, "");
    }

    #[test]
    fn errors_name_the_field() {
        let e = MessagesRequest::parse(br#"{"messages":[{"role":"robot","content":"x"}]}"#)
            .unwrap_err();
        assert!(e.0.starts_with("messages[0].role"), "{e}");
        let e = MessagesRequest::parse(br#"{"messages":[]}"#).unwrap_err();
        assert!(e.0.contains("at least one"), "{e}");
        let e = MessagesRequest::parse(br#"{"model":"x"}"#).unwrap_err();
        assert!(e.0.contains("messages"), "{e}");
        let e = MessagesRequest::parse(
            br#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
        )
        .unwrap_err();
        assert!(e.0.starts_with("messages[0].content[0]"), "{e}");
        let e = MessagesRequest::parse(b"{not json").unwrap_err();
        assert!(e.0.contains("invalid request body"), "{e}");
    }

    #[test]
    fn stream_opens_with_message_start_and_ends_with_message_stop() {
        let mut enc = StreamEncoder::new(MessageMeta::new("claude-test".into()));
        let first = enc.events(JobEvent::Started {
            model: "m".into(),
            usage: Usage {
                input_tokens: 3,
                ..Default::default()
            },
        });
        assert_eq!(first[0].0, "message_start");
        assert_eq!(first[0].1["message"]["model"], "claude-test");
        assert_eq!(first[0].1["message"]["usage"]["input_tokens"], 3);
        let last = enc.events(JobEvent::Finished(crate::job::Completion {
            stop_reason: Some("end_turn".into()),
            stop_sequence: None,
            usage: Usage::default(),
        }));
        assert_eq!(
            last.iter().map(|e| e.0).collect::<Vec<_>>(),
            ["message_delta", "message_stop"]
        );
    }
}
