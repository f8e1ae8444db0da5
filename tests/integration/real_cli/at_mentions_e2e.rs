//! Text the CLI would interpret in user content (at-mentions of files and
//! MCP resources, `#`, `!`, image paths) never makes a worker read a host
//! file into the prompt: real CLI, fake upstream, every API surface.
//!
//! Each test writes a marker file in a temp dir, mentions it, and asserts
//! that the marker appears in no request the upstream received.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

/// A file holding a secret marker, in a temp dir that lives as long as the
/// returned guard.
struct Secret {
    dir: tempfile::TempDir,
    marker: String,
}

impl Secret {
    fn new(tag: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("SECRET-{tag}-{}", std::process::id());
        let secret = Self { dir, marker };
        std::fs::write(secret.path(), format!("{}\n", secret.marker)).unwrap();
        secret
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("secret.txt")
    }

    /// Asserts the marker reached no request the upstream received.
    fn assert_not_sent(&self, upstream: &FakeUpstream, context: &str) {
        let requests = upstream.requests();
        assert!(
            !requests.is_empty(),
            "{context}: nothing reached the upstream"
        );
        for r in &requests {
            assert!(
                !r.body.to_string().contains(&self.marker),
                "{context}: the file's content reached the upstream: {}",
                r.body
            );
        }
    }
}

fn post_ok(daemon: &Daemon, path: &str, body: &Value) -> Value {
    let res = daemon.post_to(path, body);
    let status = res.status();
    let body: Value = res.json().unwrap_or(Value::Null);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Runs a one-request batch to its end and returns its result.
fn run_batch(daemon: &Daemon, params: Value) -> Value {
    let created = post_ok(
        daemon,
        "/v1/messages/batches",
        &json!({"requests": [{"custom_id": "r1", "params": params}]}),
    );
    let id = created["id"].as_str().expect("batch id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let batch = loop {
        let batch = blocking_get_json(&daemon.url(&format!("/v1/messages/batches/{id}")));
        if batch["processing_status"] == "ended" {
            break batch;
        }
        assert!(Instant::now() < deadline, "batch never ended: {batch}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let url = batch["results_url"].as_str().expect("results_url");
    let text = client().get(url).send().unwrap().text().unwrap();
    serde_json::from_str::<Value>(text.lines().next().expect("a result line")).unwrap()
}

fn mention(path: &Path) -> String {
    format!("see @{} and tell me", path.display())
}

#[test]
fn an_at_mention_of_a_host_file_reaches_the_upstream_through_no_surface() {
    let secret = Secret::new("ATFILE");
    let text = mention(&secret.path());
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);

    post_ok(&daemon, "/v1/messages", &message_body(&text));
    secret.assert_not_sent(&upstream, "/v1/messages");

    post_ok(
        &daemon,
        "/v1/chat/completions",
        &json!({"model": "claude-haiku-4-5",
                "messages": [{"role": "user", "content": text}]}),
    );
    secret.assert_not_sent(&upstream, "/v1/chat/completions");

    post_ok(
        &daemon,
        "/v1/responses",
        &json!({"model": "claude-haiku-4-5", "input": text}),
    );
    secret.assert_not_sent(&upstream, "/v1/responses");

    let result = run_batch(&daemon, message_body(&text));
    assert_eq!(result["result"]["type"], "succeeded", "{result}");
    secret.assert_not_sent(&upstream, "batch");
}

/// Neither `[claude.env]` nor an account's `env` can turn the protection
/// off: the daemon sets it last.
#[test]
fn configured_environment_cannot_turn_attachments_back_on() {
    let secret = Secret::new("ENV");
    let text = mention(&secret.path());
    let upstream = FakeUpstream::start();
    let mut cfg = DaemonConfig::real(1).with_env("CLAUDE_CODE_DISABLE_ATTACHMENTS", "0");
    cfg.accounts_toml = "[[accounts]]\nname = \"team\"\nworkers = 1\n\
        env = { ANTHROPIC_API_KEY = \"sk-team\", CLAUDE_CODE_DISABLE_ATTACHMENTS = \"\" }\n"
        .into();
    let daemon = Daemon::start(cfg, &upstream);
    post_ok(&daemon, "/v1/messages", &message_body(&text));
    assert_eq!(
        upstream.calls_with_key("sk-team"),
        1,
        "the account's worker answered"
    );
    secret.assert_not_sent(&upstream, "configured env");
}

/// A 1x1 PNG, for the image-path cases.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

fn user(content: Value) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 64,
           "messages": [{"role": "user", "content": content}]})
}

/// Every other kind of text the CLI interprets in a user message, each
/// sent through `/v1/messages` to a worker whose home and working
/// directory hold the secret (so `~/` and `./` resolve to it). Cases that
/// leak are collected, so a failure names all of them.
#[test]
fn no_other_text_the_cli_interprets_reads_a_host_file() {
    let secret = Secret::new("FORMS");
    let dir = secret.dir.path();
    let path = secret.path().display().to_string();
    std::fs::write(dir.join("picture.png"), PNG).unwrap();
    let png = dir.join("picture.png").display().to_string();
    let listed = format!("LISTED-{}", std::process::id());
    std::fs::write(dir.join(format!("{listed}.txt")), "x").unwrap();
    let dir_str = dir.display().to_string();
    let upstream = FakeUpstream::start();
    let cfg = DaemonConfig::real(1)
        .with_toml(&format!("claude.working_dir = {dir_str:?}"))
        .with_env("HOME", &dir_str);
    let daemon = Daemon::start(cfg, &upstream);

    let weather = json!([{"name": "get_weather", "description": "Weather",
                          "input_schema": {"type": "object"}}]);
    let cases: Vec<(&str, Value)> = vec![
        (
            "@ in a text block that is not the last",
            user(json!([{"type": "text", "text": format!("see @{path}")},
                        {"type": "text", "text": "and answer"}])),
        ),
        (
            "@ in an earlier message of the conversation",
            json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [
                {"role": "user", "content": format!("see @{path}")},
                {"role": "assistant", "content": "Seen."},
                {"role": "user", "content": "go on"}]}),
        ),
        (
            "@ in the system prompt",
            json!({"model": "claude-haiku-4-5", "max_tokens": 64,
                   "system": format!("see @{path}"),
                   "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "@ in a tool result",
            json!({"model": "claude-haiku-4-5", "max_tokens": 64, "tools": weather,
                   "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                    "name": "get_weather", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                    "content": format!("see @{path}")}]}]}),
        ),
        (
            "@\"quoted path\"",
            user(json!(format!("see @\"{path}\" now"))),
        ),
        ("@path#L1-2", user(json!(format!("see @{path}#L1-2")))),
        ("@~/", user(json!("see @~/secret.txt"))),
        ("@./", user(json!("see @./secret.txt"))),
        ("@relative", user(json!("see @secret.txt"))),
        ("@directory", user(json!(format!("list @{dir_str}")))),
        ("# memory", user(json!(format!("# remember @{path}")))),
        ("#path", user(json!(format!("#{path}")))),
        ("! bash mode", user(json!(format!("!cat {path}")))),
        ("! bash mode, relative", user(json!("!cat secret.txt"))),
        ("image path", user(json!(png.clone()))),
        ("@image path", user(json!(format!("look @{png}")))),
        (
            "MCP resource of the job's own tool server",
            json!({"model": "claude-haiku-4-5", "max_tokens": 64, "tools": weather,
                   "messages": [{"role": "user", "content": format!(
                       "see @{{server}}:file://{path} and @{{server}}:{path}")}]}),
        ),
        (
            "MCP resource of an unknown server",
            user(json!(format!("see @files:file://{path}"))),
        ),
    ];

    // The job's tool server is named after its tools: learn the name.
    post_ok(
        &daemon,
        "/v1/messages",
        &json!({"model": "claude-haiku-4-5",
        "max_tokens": 64, "tools": weather,
        "messages": [{"role": "user", "content": "hello"}]}),
    );
    let server = upstream
        .last_message_call(|_| true)
        .and_then(|r| {
            r.body["tools"].as_array()?.iter().find_map(|t| {
                let name = t["name"].as_str()?;
                Some(name.strip_prefix("mcp__")?.split("__").next()?.to_string())
            })
        })
        .expect("the job's tool server in the upstream request");

    let mut leaks = Vec::new();
    for (case, body) in cases {
        let body: Value =
            serde_json::from_str(&body.to_string().replace("{server}", &server)).unwrap();
        let before = upstream.requests().len();
        let res = daemon.post(&body);
        let status = res.status();
        let reply: Value = res.json().unwrap_or(Value::Null);
        assert_eq!(status, 200, "{case}: {reply}");
        let sent = &upstream.requests()[before..];
        assert!(!sent.is_empty(), "{case}: nothing reached the upstream");
        for r in sent {
            let text = r.body.to_string();
            if text.contains(&secret.marker) || text.contains(&listed) {
                leaks.push(format!("{case}: {text}"));
            } else if text.contains("\"type\":\"image\"") {
                leaks.push(format!("{case}: an image was attached: {text}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "host files reached the upstream:\n{}",
        leaks.join("\n\n")
    );
}

/// Today's date, as the workers' CLI (same clock and time zone) sees it.
fn today() -> String {
    let out = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_model_still_learns_todays_date() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let before = today();
    post_ok(&daemon, "/v1/messages", &message_body("what day is it?"));
    let after = today();
    let call = upstream
        .last_message_call(|_| true)
        .expect("an upstream call");
    let text = call.body.to_string();
    assert!(
        text.contains(&format!("Today's date is {before}"))
            || text.contains(&format!("Today's date is {after}")),
        "no date in {text}"
    );
}

/// Agent workers: a mention is no way around the path check a Read call
/// goes through. A symlink in the workspace to a host file and the host
/// file's own path, mentioned, reach nothing; the same paths in Read calls
/// are refused as outside the workspace.
fn an_agent_mention_is_held_to_the_read_check(sandbox: &str) {
    let secret = Secret::new("AGENT");
    let path = secret.path().display().to_string();
    let root = tempfile::tempdir().unwrap();
    let upstream = FakeUpstream::start();
    let toml = format!(
        "agent.enabled = true\nagent.workspace_root = {:?}\n{sandbox}",
        root.path().display().to_string()
    );
    let cfg = DaemonConfig::real(1).with_toml(&toml);
    let daemon = Daemon::start(cfg.with_client_key("sk-agent-client"), &upstream);
    std::os::unix::fs::symlink(secret.path(), root.path().join("worker-1/link.txt")).unwrap();
    let reads: String = ["link.txt", path.as_str()]
        .iter()
        .map(|p| format!("[[call:Read:{}]]", json!({ "file_path": p })))
        .collect();
    let reply = post_ok(
        &daemon,
        "/v1/messages",
        &message_body(&format!("see @link.txt and @{path} {reads}")),
    );
    let text = reply["content"][0]["text"].as_str().unwrap_or_default();
    secret.assert_not_sent(&upstream, sandbox);
    assert_eq!(
        text.matches("outside this agent's workspace").count(),
        2,
        "both Read calls are refused by the path check: {text}"
    );
}

#[test]
fn an_at_mention_in_a_sandboxed_agent_job_is_held_to_the_read_check() {
    an_agent_mention_is_held_to_the_read_check("");
}

#[test]
fn an_at_mention_in_an_unsandboxed_agent_job_is_held_to_the_read_check() {
    an_agent_mention_is_held_to_the_read_check("agent.sandbox = \"none\"");
}
