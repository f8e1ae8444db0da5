//! Claude Code's own requests through the daemon: how long a new
//! conversation and a next turn take, with the fake upstream answering at
//! once (so the time is the daemon's and its worker's).
//!
//! One real Claude Code request (`claude -p`, its defaults: default model,
//! ~24 tools, the billing header, a system message in `messages`) is
//! captured from the fake upstream, then replayed as CONVERSATIONS
//! conversations of two turns each against a pool of 2, every conversation
//! with its own first message and billing-header hash, as Claude Code sends
//! them. Requests stream, with `?beta=true` and `anthropic-beta`, as the CLI's.
//!
//! Target: conversations after the first start in under 100 ms (median).
//! Run: `cargo bench --bench claude_code`; exits non-zero on a missed target.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, real_cli, Daemon, DaemonConfig, FakeUpstream};
use serde_json::{json, Value};

const CONVERSATIONS: usize = 20;

/// The body of Claude Code's first request for `claude -p "capture me"`.
fn capture(upstream: &FakeUpstream) -> Value {
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
fn first_request(captured: &Value, i: usize) -> Value {
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
fn send(http: &reqwest::blocking::Client, daemon: &Daemon, body: &Value) -> (Duration, String) {
    let start = Instant::now();
    let res = http
        .post(daemon.url("/v1/messages?beta=true"))
        .header(
            "anthropic-beta",
            "claude-code-20250219,mid-conversation-system-2026-04-07",
        )
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .expect("request");
    assert_eq!(res.status(), 200);
    let text = res.text().unwrap();
    (start.elapsed(), text)
}

/// The reply text of an SSE body.
fn reply_text(sse: &str) -> String {
    common::sse_text(&common::parse_sse(sse))
}

fn main() {
    if !support::measuring() {
        return;
    }
    let upstream = FakeUpstream::start();
    let captured = capture(&upstream);
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let http = client();
    let mut first = None;
    let (mut starts, mut next_turns) = (Vec::new(), Vec::new());
    for i in 0..CONVERSATIONS {
        let mut body = first_request(&captured, i);
        let (took, sse) = send(&http, &daemon, &body);
        match first {
            None => first = Some(took),
            Some(_) => starts.push(took),
        }
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(
            json!({"role": "assistant", "content": [{"type": "text", "text": reply_text(&sse)}]}),
        );
        messages.push(
            json!({"role": "user", "content": [{"type": "text", "text": "and a next turn"}]}),
        );
        next_turns.push(send(&http, &daemon, &body).0);
        // Claude Code's user reads the answer before the next conversation.
        daemon.wait_ready(Duration::from_secs(10));
    }
    let spawned = daemon.health()["restarts"].as_u64().unwrap_or(0);
    let rows = [
        (
            "first conversation (blank worker)",
            first.map(|d| vec![d]).unwrap(),
        ),
        ("later conversations, 1st turn", starts),
        ("2nd turn (bound worker)", next_turns),
    ];
    println!(
        "\n{:<34} {:>4} {:>9} {:>9} {:>9} {:>9}",
        "Claude Code request", "n", "min ms", "median", "p90", "max"
    );
    let mut medians = Vec::new();
    for (name, times) in rows {
        let n = times.len();
        let [min, med, p90, max] = support::stats(times);
        medians.push(med);
        println!("{name:<34} {n:>4} {min:>9.1} {med:>9.1} {p90:>9.1} {max:>9.1}");
    }
    println!("\nworkers spawned beyond the pool's own: {spawned}");
    let met = medians[1] < 100.0 && spawned == 0;
    println!(
        "later conversations start in {:.1} ms median, no spawn (target < 100 ms): {}",
        medians[1],
        if met { "met" } else { "MISSED" }
    );
    if !met {
        std::process::exit(1);
    }
}
