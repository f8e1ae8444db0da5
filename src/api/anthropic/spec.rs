//! A Messages API request turned into the [`JobSpec`] a worker runs: the
//! system prompt (with Claude Code's mid-conversation system messages folded
//! in), the turns, tools, thinking budget, limits and stop sequences.

use serde_json::{json, Value};

use super::request::{
    InputRole, MessageContent, MessagesRequest, SystemPrompt, ThinkingParam, ToolChoiceParam,
};
use crate::api::models::resolve_model;
use crate::api::{system, tools, Context};
use crate::job::JobSpec;
use crate::prompt::{Role, Turn};

/// The budget given for `adaptive` thinking: the CLI's own default.
const ADAPTIVE_THINKING_BUDGET: u32 = 31_999;

impl MessagesRequest {
    /// The instruction standing in for a JSON schema output format, as for
    /// OpenAI's `response_format` (see [`crate::api::json_instruction`]).
    fn output_instruction(&self) -> Option<String> {
        let format = (self.output_config.as_ref())
            .and_then(|c| c.get("format"))
            .or(self.output_format.as_ref())
            .filter(|f| f["type"] == "json_schema")?;
        Some(crate::api::json_instruction(
            format.get("schema"),
            None,
            None,
        ))
    }

    /// What a worker must run for this request.
    pub fn to_spec(&self, ctx: &Context) -> JobSpec {
        crate::api::note_ignored_fields(&[
            ("temperature", self.temperature.is_some()),
            ("top_p", self.top_p.is_some()),
            ("top_k", self.top_k.is_some()),
            ("metadata", self.metadata.is_some()),
        ]);
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
        crate::api::Conversation {
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
