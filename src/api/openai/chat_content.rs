//! The content of Chat Completions messages as Anthropic content blocks:
//! text, image and file parts of user messages, text-only messages (system,
//! developer, tool) and earlier assistant messages with their tool calls.
//! Errors name the part at fault (`messages[i].content[j]…`).

use serde_json::{json, Value};

use super::content::*;
use super::{ChatContent, ChatMessage, InvalidRequest};

/// The text of a message whose parts may only be text (system, developer,
/// tool). Parts are joined without a separator, as OpenAI does.
pub(super) fn plain_text(
    content: Option<&ChatContent>,
    at: &str,
) -> Result<String, InvalidRequest> {
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

/// A user message as Anthropic content blocks. Empty text is dropped.
pub(super) fn user_blocks(
    content: Option<&ChatContent>,
    at: &str,
) -> Result<Vec<Value>, InvalidRequest> {
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
            other => return Err(unsupported_part(other, &at)),
        }
    }
    Ok(blocks)
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
    let filename = file.and_then(|f| f.get("filename")).and_then(Value::as_str);
    pdf_block(data, filename, &format!("{at}.file.file_data"))
}

/// An earlier assistant message: its text, then its tool calls.
pub(super) fn assistant_blocks(
    message: &ChatMessage,
    at: &str,
) -> Result<Vec<Value>, InvalidRequest> {
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
