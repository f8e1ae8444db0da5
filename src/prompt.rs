//! Renders a client's conversation into the one user message a fresh CLI
//! conversation receives.
//!
//! The CLI's stdin takes only user messages, so the earlier turns of a
//! stateless API request are written into that message, each in a
//! `<turn role="…">` element inside `<conversation_history>`, followed by the
//! latest user message. Images and documents stay real content blocks at
//! their place in the history; tool calls and results become tagged text.

use serde_json::{json, Value};

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation, as Anthropic content blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub blocks: Vec<Value>,
}

const HISTORY_INTRO: &str = "The conversation so far is below, oldest turn first. \
You are the assistant in it; continue it naturally, without mentioning this format.\n\n";

/// The content blocks of the single user message that carries `turns`.
/// `turns` must be non-empty and end with a user turn (the caller validates).
pub fn render(turns: &[Turn]) -> Vec<Value> {
    let Some((last, history)) = turns.split_last() else {
        return Vec::new();
    };
    let mut out = BlockWriter::default();
    if !history.is_empty() {
        out.text(HISTORY_INTRO);
        out.text("<conversation_history>\n");
        for turn in history {
            out.text(&format!("<turn role=\"{}\">\n", turn.role.as_str()));
            for block in &turn.blocks {
                out.history_block(block);
            }
            out.text("\n</turn>\n");
        }
        out.text("</conversation_history>\n\nThe user's latest message:\n\n");
    }
    match last.role {
        Role::User => {
            for block in &last.blocks {
                out.current_block(block);
            }
        }
        Role::Assistant => {
            // A prefilled assistant reply: ask for its continuation.
            out.text("Continue your reply, which so far reads:\n\n");
            for block in &last.blocks {
                out.history_block(block);
            }
        }
    }
    let mut blocks = out.finish();
    guard_against_slash_commands(&mut blocks);
    blocks
}

/// The CLI treats a message whose last text block starts with `/` as one of
/// its own commands (`/clear`, `/cost`, …): verified on 2.1.197. A leading
/// space makes it ordinary text for the model.
fn guard_against_slash_commands(blocks: &mut [Value]) {
    let last_text = blocks
        .iter_mut()
        .rev()
        .find(|b| b.get("type").and_then(Value::as_str) == Some("text"));
    if let Some(block) = last_text {
        if let Some(text) = block.get("text").and_then(Value::as_str) {
            if text.starts_with('/') {
                block["text"] = Value::String(format!(" {text}"));
            }
        }
    }
}

/// Accumulates blocks, merging consecutive text into one block.
#[derive(Default)]
struct BlockWriter {
    blocks: Vec<Value>,
    text: String,
}

impl BlockWriter {
    fn text(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn flush_text(&mut self) {
        if !self.text.is_empty() {
            let text = std::mem::take(&mut self.text);
            self.blocks.push(json!({"type": "text", "text": text}));
        }
    }

    fn media(&mut self, block: &Value) {
        self.flush_text();
        self.blocks.push(strip_cache_control(block));
    }

    /// A block of the latest user message: passed through as it is.
    fn current_block(&mut self, block: &Value) {
        match block_type(block) {
            "text" => {
                self.flush_text();
                self.blocks.push(strip_cache_control(block));
            }
            "image" | "document" => self.media(block),
            _ => self.history_block(block),
        }
    }

    /// A block of an earlier turn.
    fn history_block(&mut self, block: &Value) {
        match block_type(block) {
            "text" => self.text(str_field(block, "text")),
            "image" | "document" => self.media(block),
            "tool_use" => {
                let input = block.get("input").cloned().unwrap_or(json!({}));
                self.text(&format!(
                    "<tool_use id=\"{}\" name=\"{}\">{}</tool_use>\n",
                    str_field(block, "id"),
                    str_field(block, "name"),
                    input
                ));
            }
            "tool_result" => {
                let error = block
                    .get("is_error")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                self.text(&format!(
                    "<tool_result tool_use_id=\"{}\"{}>",
                    str_field(block, "tool_use_id"),
                    if error { " is_error=\"true\"" } else { "" }
                ));
                match block.get("content") {
                    Some(Value::String(s)) => self.text(s),
                    Some(Value::Array(parts)) => {
                        for part in parts {
                            self.history_block(part);
                        }
                    }
                    _ => {}
                }
                self.text("</tool_result>\n");
            }
            // The model's private reasoning of earlier turns is not replayed.
            "thinking" | "redacted_thinking" => {}
            other => self.text(&format!("[{other} block omitted]")),
        }
    }

    fn finish(mut self) -> Vec<Value> {
        self.flush_text();
        self.blocks
    }
}

fn block_type(block: &Value) -> &str {
    str_field(block, "type")
}

fn str_field<'a>(block: &'a Value, key: &str) -> &'a str {
    block.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The CLI places its own cache breakpoints; a client's would add to them and
/// can exceed the API's limit of four.
fn strip_cache_control(block: &Value) -> Value {
    let mut block = block.clone();
    if let Some(obj) = block.as_object_mut() {
        obj.remove("cache_control");
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Turn {
        Turn {
            role: Role::User,
            blocks: vec![json!({"type": "text", "text": text})],
        }
    }
    fn assistant(text: &str) -> Turn {
        Turn {
            role: Role::Assistant,
            blocks: vec![json!({"type": "text", "text": text})],
        }
    }

    #[test]
    fn single_message_passes_through() {
        let blocks = render(&[user("hello")]);
        assert_eq!(blocks, vec![json!({"type": "text", "text": "hello"})]);
    }

    #[test]
    fn earlier_turns_are_rendered_in_order_with_roles() {
        let blocks = render(&[user("one"), assistant("two"), user("three")]);
        let all: String = blocks.iter().map(|b| b["text"].as_str().unwrap()).collect();
        let one = all.find("<turn role=\"user\">\none").unwrap();
        let two = all.find("<turn role=\"assistant\">\ntwo").unwrap();
        let three = all.rfind("three").unwrap();
        assert!(one < two && two < three);
        assert_eq!(blocks.last().unwrap()["text"], "three");
    }

    #[test]
    fn images_stay_blocks_in_history() {
        let image = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}});
        let first = Turn {
            role: Role::User,
            blocks: vec![json!({"type": "text", "text": "look"}), image.clone()],
        };
        let blocks = render(&[first, assistant("a cat"), user("again?")]);
        assert!(blocks.contains(&image));
    }

    #[test]
    fn slash_commands_are_neutralised() {
        let blocks = render(&[user("/clear")]);
        assert_eq!(blocks[0]["text"], " /clear");
        let blocks = render(&[user("/cost"), assistant("x"), user("/context")]);
        assert_eq!(blocks.last().unwrap()["text"], " /context");
    }

    #[test]
    fn client_cache_control_is_dropped() {
        let turn = Turn {
            role: Role::User,
            blocks: vec![
                json!({"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}),
            ],
        };
        assert_eq!(render(&[turn])[0], json!({"type": "text", "text": "hi"}));
    }
}
