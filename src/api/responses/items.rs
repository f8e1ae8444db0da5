//! Responses input items as a conversation: `message` items by role,
//! `function_call` / `custom_tool_call` as `tool_use` blocks of assistant
//! turns, their outputs as `tool_result` blocks of user turns. Reasoning
//! items passed back are dropped (the CLI cannot take them back), as are
//! items of hosted tools the pool never ran.

use serde_json::{json, Value};

use super::tools::ToolNames;
use crate::api::openai::content::{
    image_block, parse_arguments, pdf_block, text_block, unsupported_part,
};
use crate::api::InvalidRequest;
use crate::prompt::{Role, Turn};

/// A conversation in Anthropic's terms: system prompt pieces and turns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Translated {
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
}

impl Translated {
    /// Appends blocks to the last turn when it has the same role (a user
    /// message and tool outputs, or text and calls, are one turn).
    fn push(&mut self, role: Role, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some(turn) if turn.role == role => turn.blocks.extend(blocks),
            _ => self.turns.push(Turn { role, blocks }),
        }
    }
}

/// Translates `items`; `at(i)` names item `i` in errors.
pub fn translate(
    items: &[Value],
    names: &ToolNames,
    at: impl Fn(usize) -> String,
) -> Result<Translated, InvalidRequest> {
    let mut out = Translated::default();
    for (i, item) in items.iter().enumerate() {
        let at = at(i);
        let Some(obj) = item.as_object() else {
            return Err(InvalidRequest(format!(
                "{at}: an input item must be an object"
            )));
        };
        // A message may omit `type` (EasyInputMessage).
        let kind = match obj.get("type").and_then(Value::as_str) {
            Some(kind) => kind,
            None if obj.contains_key("role") => "message",
            None => {
                return Err(InvalidRequest(format!(
                    "{at}.type: an input item needs a string `type`"
                )))
            }
        };
        match kind {
            "message" => message(&mut out, item, &at)?,
            "function_call" | "custom_tool_call" => {
                let call_id = string_field(item, "call_id", &at)?;
                let name = string_field(item, "name", &at)?;
                let namespace = item.get("namespace").and_then(Value::as_str);
                let input = if kind == "function_call" {
                    parse_arguments(item["arguments"].as_str().unwrap_or_default())
                } else {
                    json!({"input": item["input"].as_str().unwrap_or_default()})
                };
                out.push(
                    Role::Assistant,
                    vec![json!({
                        "type": "tool_use",
                        "id": call_id,
                        "name": names.model_name(namespace, name),
                        "input": input,
                    })],
                );
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = string_field(item, "call_id", &at)?;
                let content = output_content(item.get("output"), &format!("{at}.output"))?;
                out.push(
                    Role::User,
                    vec![
                        json!({"type": "tool_result", "tool_use_id": call_id, "content": content}),
                    ],
                );
            }
            // Passed back from an earlier response; nothing the CLI can use.
            "reasoning" | "item_reference" | "compaction" => {}
            other if other.ends_with("_call") || other.ends_with("_call_output") => {
                crate::api::note_ignored("input items of hosted tools");
            }
            other => {
                return Err(InvalidRequest(format!(
                    "{at}.type: unsupported input item type `{other}`"
                )))
            }
        }
    }
    Ok(out)
}

fn string_field<'a>(item: &'a Value, key: &str, at: &str) -> Result<&'a str, InvalidRequest> {
    item.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| InvalidRequest(format!("{at}.{key}: a non-empty string is required")))
}

/// A `message` item: system and developer text joins the system prompt.
fn message(out: &mut Translated, item: &Value, at: &str) -> Result<(), InvalidRequest> {
    let role = item.get("role").and_then(Value::as_str).unwrap_or_default();
    let at_content = format!("{at}.content");
    let blocks = content_blocks(item.get("content"), &at_content)?;
    match role {
        "user" => out.push(Role::User, blocks),
        "assistant" => out.push(Role::Assistant, blocks),
        "system" | "developer" => {
            if let Some(j) = blocks.iter().position(|b| b["type"] != "text") {
                return Err(InvalidRequest(format!(
                    "{at_content}[{j}]: only text is allowed in {role} messages"
                )));
            }
            let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            if !text.is_empty() {
                out.system.push(text);
            }
        }
        other => {
            return Err(InvalidRequest(format!(
                "{at}.role: unknown role `{other}`; use user, assistant, system or developer"
            )))
        }
    }
    Ok(())
}

/// Message content (a string or parts) as Anthropic blocks; empty text is
/// dropped.
fn content_blocks(content: Option<&Value>, at: &str) -> Result<Vec<Value>, InvalidRequest> {
    let parts = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(text_blocks(text)),
        Some(Value::Array(parts)) => parts,
        Some(_) => {
            return Err(InvalidRequest(format!(
                "{at}: content must be a string or an array of parts"
            )))
        }
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "input_text" | "output_text" | "text" | "summary_text" => {
                let text = part["text"].as_str().ok_or_else(|| {
                    InvalidRequest(format!("{at}.text: a text part needs a string `text`"))
                })?;
                blocks.extend(text_blocks(text));
            }
            "refusal" => blocks.extend(text_blocks(part["refusal"].as_str().unwrap_or_default())),
            "input_image" => {
                let Some(url) = part.get("image_url").and_then(Value::as_str) else {
                    return Err(InvalidRequest(format!(
                        "{at}.image_url: needs a URL (uploaded files by `file_id` are not supported)"
                    )));
                };
                blocks.push(
                    image_block(url).map_err(|m| InvalidRequest(format!("{at}.image_url: {m}")))?,
                );
            }
            "input_file" => {
                let Some(data) = part.get("file_data").and_then(Value::as_str) else {
                    return Err(InvalidRequest(format!(
                        "{at}: needs `file_data` (files by `file_id` or `file_url` are not supported)"
                    )));
                };
                let filename = part.get("filename").and_then(Value::as_str);
                blocks.push(pdf_block(data, filename, &format!("{at}.file_data"))?);
            }
            other => return Err(unsupported_part(other, &at)),
        }
    }
    Ok(blocks)
}

/// A text block, or none for empty text (the Messages API refuses empty
/// text blocks).
fn text_blocks(text: &str) -> Vec<Value> {
    (!text.is_empty())
        .then(|| text_block(text))
        .into_iter()
        .collect()
}

/// A tool output (a string, or input parts) as `tool_result` content.
fn output_content(output: Option<&Value>, at: &str) -> Result<Value, InvalidRequest> {
    match output {
        None | Some(Value::Null) => Ok(Value::String(String::new())),
        Some(Value::String(text)) => Ok(Value::String(text.clone())),
        Some(Value::Array(_)) => Ok(Value::Array(content_blocks(output, at)?)),
        Some(other) => Ok(Value::String(other.to_string())),
    }
}
