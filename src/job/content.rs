//! The content of an answer, typed: the blocks a worker reports and every
//! dialect encodes, in the Messages API's wire shape (which is what the CLI
//! relays), and the deltas a streamed block grows by.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A content block of the model's answer: the opening of a streamed block
/// (`content_block_start`, its text still empty) or a finished one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default = "empty_input")]
        input: Value,
    },
    /// A block this daemon does not know (a server tool's, say): passed on
    /// as the API wrote it to a client of the Messages API; the other
    /// dialects have no place for it and leave it out.
    #[serde(untagged)]
    Other(Value),
}

fn empty_input() -> Value {
    Value::Object(Default::default())
}

/// An increment of a content block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "signature_delta")]
    Signature { signature: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
}

impl ContentBlock {
    /// An empty text block, as a streamed one opens.
    pub fn empty_text() -> Self {
        ContentBlock::Text {
            text: String::new(),
        }
    }

    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentBlock::Text { text } => Some(text),
            _ => None,
        }
    }

    /// A finished block as the opening a stream would have sent, plus the
    /// deltas carrying the rest of it (a non-streamed upstream call's
    /// blocks, replayed as if streamed). `None` for a block no stream
    /// would carry.
    pub fn into_stream(self) -> Option<(ContentBlock, Vec<Delta>)> {
        match self {
            ContentBlock::Text { text } => Some((Self::empty_text(), vec![Delta::Text { text }])),
            ContentBlock::Thinking {
                thinking,
                signature,
            } => Some((
                ContentBlock::Thinking {
                    thinking: String::new(),
                    signature: Some(String::new()),
                },
                vec![
                    Delta::Thinking { thinking },
                    Delta::Signature {
                        signature: signature.unwrap_or_default(),
                    },
                ],
            )),
            block @ ContentBlock::RedactedThinking { .. } => Some((block, Vec::new())),
            ContentBlock::ToolUse { id, name, input } => Some((
                ContentBlock::ToolUse {
                    id,
                    name,
                    input: empty_input(),
                },
                vec![Delta::InputJson {
                    partial_json: input.to_string(),
                }],
            )),
            ContentBlock::Other(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_read_and_write_back_in_the_wire_shape() {
        for wire in [
            json!({"type": "text", "text": "hi"}),
            json!({"type": "thinking", "thinking": "hm", "signature": "sig"}),
            json!({"type": "thinking", "thinking": ""}),
            json!({"type": "redacted_thinking", "data": "xyz"}),
            json!({"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}),
            json!({"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}}),
        ] {
            let block: ContentBlock = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(serde_json::to_value(&block).unwrap(), wire);
        }
        let unknown: ContentBlock =
            serde_json::from_value(json!({"type": "web_search_tool_result", "content": []}))
                .unwrap();
        assert!(matches!(unknown, ContentBlock::Other(_)));
        let tool: ContentBlock =
            serde_json::from_value(json!({"type": "tool_use", "id": "t", "name": "f"})).unwrap();
        assert_eq!(
            tool,
            ContentBlock::ToolUse {
                id: "t".into(),
                name: "f".into(),
                input: json!({})
            }
        );
    }

    #[test]
    fn a_finished_block_replays_as_its_opening_and_deltas() {
        let (start, deltas) = ContentBlock::ToolUse {
            id: "t".into(),
            name: "f".into(),
            input: json!({"a": 1}),
        }
        .into_stream()
        .unwrap();
        assert_eq!(
            serde_json::to_value(start).unwrap(),
            json!({"type": "tool_use", "id": "t", "name": "f", "input": {}})
        );
        assert_eq!(
            deltas,
            [Delta::InputJson {
                partial_json: r#"{"a":1}"#.into()
            }]
        );
        assert!(ContentBlock::Other(json!({"type": "x"}))
            .into_stream()
            .is_none());
    }
}
