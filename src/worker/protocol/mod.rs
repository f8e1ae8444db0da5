//! The CLI's stream-json line protocol: the typed lines read from its
//! stdout ([`CliLine`], [`CliMessage`], the CLI's own control requests as
//! [`CliRequest`]) here, the lines written to its stdin in [`outgoing`], the
//! replies of the daemon's SDK MCP server in [`mcp`].
//! Only what the daemon acts on is typed; everything else is kept as JSON
//! or ignored.

pub mod mcp;
pub mod outgoing;
#[cfg(test)]
mod recorded;
mod result;
mod stream;
mod system;

use serde::Deserialize;
use serde_json::Value;

use crate::job::{ContentBlock, Usage};

pub use outgoing::{Outgoing, Reply, Request};
pub use result::{ResultMessage, ResultSubtype};
pub use stream::{ApiStreamEvent, MessageDeltaBody, StreamedMessage, UnknownEvent};
pub use system::{ApiRetry, SystemMessage, UnknownSubtype};

/// One line of the CLI's stdout.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CliMessage {
    ControlRequest {
        request_id: String,
        request: CliRequest,
    },
    ControlResponse {
        response: ControlResponse,
    },
    System(SystemMessage),
    StreamEvent {
        event: ApiStreamEvent,
    },
    Assistant {
        message: AssistantMessage,
        /// Why the CLI made this message up instead of the model, e.g.
        /// `authentication_failed` (no login, or a rejected key).
        #[serde(default)]
        error: Option<String>,
    },
    User {},
    Result(ResultMessage),
    /// The account's plan limits, from the upstream's
    /// `anthropic-ratelimit-unified-*` headers (subscription logins only).
    RateLimitEvent {
        rate_limit_info: RateLimitInfo,
    },
    #[serde(other)]
    Unknown,
}

/// A control request the CLI sends the daemon (docs/cli-protocol.md §2.4, §6).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Value")]
pub enum CliRequest {
    /// A JSON-RPC message for an SDK MCP server the daemon hosts.
    McpMessage { server_name: String, message: Value },
    /// Whether a tool call may run (`--permission-prompt-tool stdio`).
    CanUseTool(ToolPermission),
    /// Anything else, by subtype: refused.
    Other(String),
}

/// A `can_use_tool` request: the fields the permission check reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolPermission {
    /// `mcp__<server>__<tool>` for an MCP tool, else the built-in's name.
    pub tool_name: String,
    /// The tool's input, returned as is when the call is allowed.
    pub input: Value,
    /// The path that made the CLI ask, when one did.
    pub blocked_path: Option<String>,
}

impl From<Value> for CliRequest {
    /// Lenient: a missing field reads as empty, so that an odd request is
    /// still answered rather than left blocking the turn.
    fn from(mut request: Value) -> Self {
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_string();
        match request["subtype"].as_str().unwrap_or("?") {
            "mcp_message" => CliRequest::McpMessage {
                server_name: text(&request, "server_name"),
                message: request["message"].take(),
            },
            "can_use_tool" => CliRequest::CanUseTool(ToolPermission {
                tool_name: text(&request, "tool_name"),
                blocked_path: request["blocked_path"].as_str().map(str::to_string),
                input: match request["input"].take() {
                    Value::Null => Value::Object(Default::default()),
                    input => input,
                },
            }),
            other => CliRequest::Other(other.to_string()),
        }
    }
}

/// What the stdout reader makes of one line of the CLI's output.
#[derive(Debug, Clone)]
pub enum CliLine {
    Message(CliMessage),
    /// Not a JSON object (some builds print debug lines there): skipped.
    NotJson(String),
    /// JSON the protocol types do not accept: skipped.
    Unreadable {
        error: String,
        line: String,
    },
    /// A line over the reader's cap, the last line read: the process is
    /// being killed.
    TooLong {
        cap: usize,
    },
}

impl CliLine {
    /// Parses a line; `None` for an empty one.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let text = || String::from_utf8_lossy(line).trim_end().to_string();
        match parse_line(line) {
            None if line.trim_ascii().is_empty() => None,
            None => Some(CliLine::NotJson(text())),
            Some(Err(e)) => Some(CliLine::Unreadable {
                error: e.to_string(),
                line: text(),
            }),
            Some(Ok(CliMessage::Unknown)) => {
                // The CLI adds kinds of lines; none so far changes a turn.
                log::info!("the CLI wrote a line of a new type: {}", line_type(line));
                Some(CliLine::Message(CliMessage::Unknown))
            }
            Some(Ok(message)) => Some(CliLine::Message(message)),
        }
    }
}

/// The reply to a control request the daemon sent.
#[derive(Debug, Clone, Deserialize)]
pub struct ControlResponse {
    pub subtype: String,
    pub request_id: String,
    #[serde(default)]
    pub error: Option<String>,
}

impl ControlResponse {
    pub fn is_success(&self) -> bool {
        self.subtype == "success"
    }
}

/// What a `rate_limit_event` says (the fields the daemon acts on).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitInfo {
    /// `allowed`, `allowed_warning` or `rejected`.
    #[serde(default)]
    pub status: Option<String>,
    /// When the limit resets, unix seconds.
    #[serde(default)]
    pub resets_at: Option<f64>,
    /// Share of the limit used, 0..1; only reported near a limit.
    #[serde(default)]
    pub utilization: Option<f64>,
    /// The plan's limit is spent and calls are billed as overage.
    #[serde(default)]
    pub is_using_overage: bool,
}

/// A completed assistant message; the CLI writes one per content block.
#[derive(Debug, Clone, Deserialize)]
pub struct AssistantMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(default)]
    pub usage: Usage,
    /// Set only on a whole message (a non-streamed call, or a synthetic
    /// one); a streamed call's block lines carry `null`.
    #[serde(default)]
    pub stop_reason: Option<crate::job::StopReason>,
}

impl AssistantMessage {
    /// The CLI reports API errors as a fake assistant message with this model.
    pub fn is_synthetic(&self) -> bool {
        self.model == "<synthetic>"
    }
}

/// The `type` of a line, for the log.
fn line_type(line: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Typed>(line.trim_ascii())
        .map(|typed| typed.kind)
        .unwrap_or_default()
}

/// Parses one stdout line. `None` for lines that are not JSON objects (some
/// builds print debug lines there); those are logged and skipped.
pub fn parse_line(line: &[u8]) -> Option<Result<CliMessage, serde_json::Error>> {
    let trimmed = line.trim_ascii();
    if !trimmed.starts_with(b"{") {
        return None;
    }
    Some(serde_json::from_slice(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_json_lines_are_skipped() {
        assert!(parse_line(b"[SandboxDebug] hello").is_none());
        assert!(parse_line(b"").is_none());
        assert!(parse_line(b"{\"type\":\"whatever\"}").unwrap().is_ok());
        assert!(matches!(
            parse_line(b"{\"type\":\"brand_new\",\"x\":1}")
                .unwrap()
                .unwrap(),
            CliMessage::Unknown
        ));
    }

    #[test]
    fn cli_requests_are_typed_and_odd_ones_still_answerable() {
        let parsed = |l: &str| match CliLine::parse(l.as_bytes()) {
            Some(CliLine::Message(CliMessage::ControlRequest { request, .. })) => request,
            other => panic!("{other:?}"),
        };
        let r = parsed(
            r#"{"type":"control_request","request_id":"1","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"ls"},"blocked_path":"/x"}}"#,
        );
        assert_eq!(
            r,
            CliRequest::CanUseTool(ToolPermission {
                tool_name: "Bash".into(),
                input: json!({"command": "ls"}),
                blocked_path: Some("/x".into()),
            })
        );
        let r = parsed(
            r#"{"type":"control_request","request_id":"2","request":{"subtype":"can_use_tool"}}"#,
        );
        let CliRequest::CanUseTool(p) = r else {
            panic!()
        };
        assert_eq!((p.tool_name.as_str(), p.input), ("", json!({})));
        let r = parsed(
            r#"{"type":"control_request","request_id":"3","request":{"subtype":"mcp_message","server_name":"s","message":{"id":1}}}"#,
        );
        assert_eq!(
            r,
            CliRequest::McpMessage {
                server_name: "s".into(),
                message: json!({"id": 1})
            }
        );
        let r = parsed(
            r#"{"type":"control_request","request_id":"4","request":{"subtype":"hook_callback"}}"#,
        );
        assert_eq!(r, CliRequest::Other("hook_callback".into()));
    }

    #[test]
    fn stdout_lines_are_typed_or_reported_as_garbage() {
        assert!(CliLine::parse(b"  \n").is_none());
        assert!(matches!(
            CliLine::parse(b"[SandboxDebug] hi\n"),
            Some(CliLine::NotJson(t)) if t == "[SandboxDebug] hi"
        ));
        assert!(matches!(
            CliLine::parse(b"{\"type\":\"result\"}"),
            Some(CliLine::Unreadable { .. })
        ));
        assert!(matches!(
            CliLine::parse(b"{\"type\":\"user\"}"),
            Some(CliLine::Message(CliMessage::User {}))
        ));
        assert!(matches!(
            CliLine::parse(b"{\"type\":\"brand_new\",\"x\":1}"),
            Some(CliLine::Message(CliMessage::Unknown))
        ));
        assert_eq!(line_type(b"{\"type\":\"brand_new\"}\n"), "brand_new");
    }

    /// What of a line the types did not recognise, if anything.
    fn unrecognised(message: &CliMessage) -> Option<String> {
        let block =
            |b: &ContentBlock| matches!(b, ContentBlock::Other(_)).then(|| format!("{b:?}"));
        match message {
            CliMessage::Unknown => Some("line type".into()),
            CliMessage::System(SystemMessage::Unknown(u)) => Some(u.subtype.clone()),
            CliMessage::Result(r) => match &r.subtype {
                ResultSubtype::Unknown(name) => Some(name.clone()),
                _ => None,
            },
            CliMessage::StreamEvent { event } => match event {
                ApiStreamEvent::Unknown(e) => Some(e.kind.clone()),
                ApiStreamEvent::ContentBlockStart { content_block, .. } => block(content_block),
                _ => None,
            },
            CliMessage::Assistant { message, .. } => message.content.iter().find_map(block),
            CliMessage::ControlRequest {
                request: CliRequest::Other(subtype),
                ..
            } => Some(subtype.clone()),
            _ => None,
        }
    }

    /// The real CLI's recorded sessions: every stdout line parses, and
    /// each is of a kind, subtype, event and block the types know.
    #[test]
    fn every_recorded_line_parses_and_none_is_unknown() {
        let mut seen = 0;
        for l in recorded::stdout_lines() {
            let parsed = parse_line(l.as_bytes()).expect("json line");
            let message = parsed.unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(unrecognised(&message), None, "{l}");
            seen += 1;
        }
        assert!(seen > 150, "only {seen} lines");
    }
}
