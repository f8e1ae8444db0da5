//! A Chat Completions request turned into the [`JobSpec`] a worker runs:
//! the messages as a system prompt and Anthropic turns, then the tools,
//! thinking budget, limits and stop sequences.

use serde_json::{json, Value};

use super::chat_content::{assistant_blocks, plain_text, user_blocks};
use super::content::{json_instruction, thinking_budget};
use super::request::{ChatRequest, ChatRole, Stop};
use crate::api::models::resolve_model;
use crate::api::{tools, Context, InvalidRequest};
use crate::job::JobSpec;
use crate::prompt::{Role, Turn};

/// The translated conversation: system prompt and turns.
#[derive(Debug, Default)]
pub(super) struct Conversation {
    pub(super) system: Vec<String>,
    pub(super) turns: Vec<Turn>,
}

impl ChatRequest {
    /// Translates the messages, naming the field at fault on error.
    pub(super) fn translate(&self) -> Result<Conversation, InvalidRequest> {
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

    /// What a worker must run for this request.
    pub fn to_spec(&self, ctx: &Context) -> JobSpec {
        crate::api::note_ignored_fields(&[
            ("temperature", self.temperature.is_some()),
            ("top_p", self.top_p.is_some()),
            ("seed", self.seed.is_some()),
            ("user", self.user.is_some()),
        ]);
        let mut system = self.conversation.system.clone();
        if let Some(instruction) = self.response_format.as_ref().and_then(json_instruction) {
            system.push(instruction);
        }
        crate::api::Conversation {
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
