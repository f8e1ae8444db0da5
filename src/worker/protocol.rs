//! The CLI's stream-json line protocol: typed lines read from its stdout and
//! builders for the lines written to its stdin. Only what the daemon acts on
//! is typed; everything else is kept as JSON or ignored.
//!
//! Every outgoing line is produced by `serde_json` from typed values, so it is
//! always one valid JSON object: a single invalid line kills the CLI.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::job::{BlockStart, Delta, Usage};

/// One line of the CLI's stdout.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CliMessage {
    ControlRequest {
        request_id: String,
        request: Value,
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

/// `system/*` lines: init, status, api_retry, model_fallback, …
#[derive(Debug, Clone, Deserialize)]
pub struct SystemMessage {
    pub subtype: String,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub retry_delay_ms: Option<f64>,
    #[serde(default)]
    pub error_status: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
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

/// A raw Messages API stream event, as the CLI relays it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiStreamEvent {
    MessageStart {
        message: StreamedMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: usize,
        delta: Delta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<Usage>,
    },
    MessageStop,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamedMessage {
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// A completed assistant message; the CLI writes one per content block.
#[derive(Debug, Clone, Deserialize)]
pub struct AssistantMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<Value>,
    #[serde(default)]
    pub usage: Usage,
}

impl AssistantMessage {
    /// The CLI reports API errors as a fake assistant message with this model.
    pub fn is_synthetic(&self) -> bool {
        self.model == "<synthetic>"
    }
}

/// The `result` line that ends every turn (including `/clear`).
#[derive(Debug, Clone, Deserialize)]
pub struct ResultMessage {
    pub subtype: String,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default)]
    pub api_error_status: Option<u16>,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub errors: Vec<Value>,
    #[serde(default)]
    pub terminal_reason: Option<String>,
    /// The CLI conversation's id; `/clear` answers with a new one.
    #[serde(default)]
    pub session_id: Option<String>,
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

/// A control request line.
pub fn control_request(request_id: &str, request: Value) -> String {
    line(json!({"type": "control_request", "request_id": request_id, "request": request}))
}

/// A successful reply to a control request the CLI sent.
pub fn control_success(request_id: &str, response: Value) -> String {
    line(json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response}
    }))
}

/// An error reply to a control request the CLI sent.
pub fn control_error(request_id: &str, message: &str) -> String {
    line(json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": message}
    }))
}

/// A user message line carrying content blocks.
pub fn user_message(content: &[Value]) -> String {
    line(json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
        "session_id": ""
    }))
}

/// The `/clear` command, which starts a fresh conversation in the same
/// process (the system prompt set by `initialize` stays).
pub fn clear_command() -> String {
    line(json!({
        "type": "user",
        "message": {"role": "user", "content": "/clear"},
        "parent_tool_use_id": null,
        "session_id": ""
    }))
}

/// A compaction boundary: the CLI sends the model nothing of the
/// conversation before it. Verified on 2.1.197 (the fake upstream records
/// what the model is sent): after `/clear` and this line, the next request
/// carries the new prompt exactly as a fresh process sends it, with none of
/// the `<local-command-caveat>`, `<command-name>/clear</command-name>` and
/// `<local-command-stdout>` blocks that `/clear` alone leaves; after
/// `set_model`, none of its `/model` record. The CLI answers nothing to it.
pub fn conversation_boundary() -> String {
    line(json!({
        "type": "system",
        "subtype": "compact_boundary",
        "compact_metadata": {"trigger": "manual", "pre_tokens": 0},
        "uuid": uuid::Uuid::new_v4().to_string(),
        "session_id": ""
    }))
}

fn line(value: Value) -> String {
    let mut s = value.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_lines_are_single_json_lines() {
        let l = user_message(&[json!({"type": "text", "text": "a\nb\"c"})]);
        assert!(l.ends_with('\n'));
        assert_eq!(l.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["message"]["content"][0]["text"], "a\nb\"c");
    }

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
    fn every_recorded_line_parses() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cli-transcripts"
        );
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for l in text.lines().filter_map(|l| l.strip_prefix("<< ")) {
                let parsed = parse_line(l.as_bytes()).expect("json line");
                assert!(parsed.is_ok(), "{l}: {parsed:?}");
                seen += 1;
            }
        }
        assert!(seen > 50, "only {seen} lines");
    }
}
