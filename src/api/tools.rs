//! Caller-defined tools, shared by both dialects: the tool set offered to
//! the model, the caller's results found in the final user message, and
//! `tool_choice`.
//!
//! Exactness of `tool_choice`: `auto` is exact (the model decides); `none`
//! is exact (no tools are registered for the job); `any` and a named tool
//! are best effort — the CLI has no per-turn control for them, so the model
//! is told in the prompt that it must call a tool (or that tool).

use serde_json::{json, Value};

use crate::job::{ToolContent, ToolResult, ToolSet};
use crate::node;
use crate::prompt::{Role, Turn};

/// One tool as the caller defined it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// What the caller asked for with `tool_choice`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Choice {
    #[default]
    Auto,
    Any,
    Tool(String),
    None,
}

/// The tool set for a job, or `None` when it has no usable tools.
pub fn tool_set(defs: &[ToolDef], choice: &Choice) -> Option<ToolSet> {
    if defs.is_empty() || *choice == Choice::None {
        return None;
    }
    let tools = defs
        .iter()
        .map(|d| {
            let schema = if d.input_schema.is_object() {
                d.input_schema.clone()
            } else {
                json!({"type": "object", "properties": {}})
            };
            // Built field by field: `json!` would copy the schema once more
            // (through serialization), and a client's tools are tens of KB.
            let mut tool = serde_json::Map::new();
            tool.insert("name".into(), Value::String(d.name.clone()));
            tool.insert("description".into(), Value::String(d.description.clone()));
            tool.insert("inputSchema".into(), schema);
            Value::Object(tool)
        })
        .collect();
    Some(ToolSet::new(tools))
}

/// The prompt line that asks for a tool call, for `any` and a named tool.
pub fn choice_instruction(choice: &Choice) -> Option<Value> {
    let text = match choice {
        Choice::Any => "(Respond by calling at least one of the available tools.)".to_string(),
        Choice::Tool(name) => format!("(Respond by calling the tool `{name}`.)"),
        Choice::Auto | Choice::None => return None,
    };
    Some(json!({"type": "text", "text": format!("\n\n{text}")}))
}

/// The caller's tool results in the conversation's final user message, with
/// any text of that message added to the last result (a tool call's answer
/// is the only way text reaches a turn blocked on tools). Ids this node
/// handed out are mapped back to the CLI's own (see [`crate::node`]).
pub fn results_in_last_turn(turns: &[Turn], node: &str) -> Vec<ToolResult> {
    let Some(last) = turns.last().filter(|t| t.role == Role::User) else {
        return Vec::new();
    };
    let mut results: Vec<ToolResult> = last
        .blocks
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| ToolResult {
            tool_use_id: node::cli_tool_use_id(node, b["tool_use_id"].as_str().unwrap_or_default()),
            content: tool_content(b.get("content")),
            is_error: b["is_error"].as_bool().unwrap_or(false),
        })
        .collect();
    if let Some(result) = results.last_mut() {
        for block in last.blocks.iter().filter(|b| b["type"] == "text") {
            let text = block["text"].as_str().unwrap_or_default();
            result.content.push(ToolContent::text(text));
        }
    }
    results
}

/// A `tool_result`'s content as the MCP content items a worker's tool
/// server answers with (see [`ToolResult`]).
fn tool_content(content: Option<&Value>) -> Vec<ToolContent> {
    match content {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![ToolContent::text(text)],
        Some(Value::Array(blocks)) => blocks.iter().map(result_item).collect(),
        Some(other) => vec![ToolContent::text(other.to_string())],
    }
}

fn result_item(block: &Value) -> ToolContent {
    let source = &block["source"];
    match block["type"].as_str() {
        Some("text") => ToolContent::text(block["text"].as_str().unwrap_or_default()),
        Some("image") if source["type"] == "base64" => ToolContent::Image {
            data: source["data"].as_str().unwrap_or_default().to_string(),
            mime_type: source["media_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        },
        _ => ToolContent::text(block.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_sets_are_named_by_content() {
        let def = |name: &str| ToolDef {
            name: name.into(),
            description: "d".into(),
            input_schema: json!({"type": "object"}),
        };
        let a = tool_set(&[def("a")], &Choice::Auto).unwrap();
        let a2 = tool_set(&[def("a")], &Choice::Any).unwrap();
        let b = tool_set(&[def("b")], &Choice::Auto).unwrap();
        assert_eq!(a.server, a2.server);
        assert_ne!(a.server, b.server);
        assert!(tool_set(&[def("a")], &Choice::None).is_none());
        assert_eq!(a.tools[0]["inputSchema"], json!({"type": "object"}));
    }

    #[test]
    fn results_come_from_the_final_user_turn_only() {
        let turns = vec![
            Turn {
                role: Role::User,
                blocks: vec![json!({"type": "tool_result", "tool_use_id": "old", "content": "x"})],
            },
            Turn {
                role: Role::Assistant,
                blocks: vec![
                    json!({"type": "tool_use", "id": "toolu_n1_t1", "name": "f", "input": {}}),
                ],
            },
            Turn {
                role: Role::User,
                blocks: vec![
                    json!({"type": "tool_result", "tool_use_id": "toolu_n1_t1", "content": "18C", "is_error": true}),
                    json!({"type": "text", "text": "thanks"}),
                ],
            },
        ];
        let results = results_in_last_turn(&turns, "n1");
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].tool_use_id, "toolu_t1", "the CLI's own id");
        assert!(results[0].is_error);
        assert_eq!(results[0].content[0], ToolContent::text("18C"));
        assert_eq!(results[0].content[1], ToolContent::text("thanks"));
    }
}
