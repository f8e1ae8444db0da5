//! Claude Code's own requests, for the benches that replay them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{real_cli, Daemon, FakeUpstream};

/// The body of Claude Code's first request for `claude -p "capture me"`.
pub fn capture(upstream: &FakeUpstream) -> Value {
    let config = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let status = Command::new(real_cli())
        .args(["-p", "capture me"])
        .current_dir(cwd.path())
        .env("ANTHROPIC_BASE_URL", &upstream.url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("CLAUDE_CONFIG_DIR", config.path())
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run claude -p");
    assert!(status.success(), "claude -p failed: {status}");
    upstream.message_calls()[0].body.clone()
}

/// Conversation `i`'s first request: its own first message and, as Claude
/// Code derives it from that message, its own billing-header hash.
pub fn first_request(captured: &Value, i: usize) -> Value {
    let mut body = captured.clone();
    let header = body["system"][0]["text"].as_str().unwrap().to_string();
    let at = header.find("cc_version=").unwrap();
    let end = at + header[at..].find(';').unwrap();
    let version = &header[at..end];
    let hashed = format!("{}.{:03x}", &version[..version.rfind('.').unwrap()], i);
    body["system"][0]["text"] = json!(header.replace(version, &hashed));
    let text = serde_json::to_string(&body["messages"]).unwrap();
    body["messages"] =
        serde_json::from_str(&text.replace("capture me", &format!("conversation {i}: hello")))
            .unwrap();
    body
}

/// POSTs like Claude Code and reads the whole stream; the elapsed time.
pub fn send(http: &reqwest::blocking::Client, daemon: &Daemon, body: &Value) -> (Duration, String) {
    send_as(http, daemon, body, None)
}

/// [`send`] with the request id `id` (`x-request-id`), if given.
pub fn send_as(
    http: &reqwest::blocking::Client,
    daemon: &Daemon,
    body: &Value,
    id: Option<&str>,
) -> (Duration, String) {
    let start = Instant::now();
    let (_, text) = send_bytes(http, daemon, serde_json::to_vec(body).unwrap(), id);
    (start.elapsed(), text)
}

/// [`send_as`] of a body already serialized: the elapsed time leaves out
/// the client's own JSON encoding (0.1 ms or more for Claude Code's 76 KB).
pub fn send_bytes(
    http: &reqwest::blocking::Client,
    daemon: &Daemon,
    body: Vec<u8>,
    id: Option<&str>,
) -> (Duration, String) {
    let mut req = http.post(daemon.url("/v1/messages?beta=true"));
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    let req = req
        .header(
            "anthropic-beta",
            "claude-code-20250219,mid-conversation-system-2026-04-07",
        )
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body);
    let start = Instant::now();
    let res = req.send().expect("request");
    assert_eq!(res.status(), 200);
    let text = res.text().unwrap();
    (start.elapsed(), text)
}

/// The reply text of an SSE body.
pub fn reply_text(sse: &str) -> String {
    crate::common::sse_text(&crate::common::parse_sse(sse))
}
