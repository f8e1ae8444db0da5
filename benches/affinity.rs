//! A 10-turn conversation through the daemon with conversation affinity on
//! and off, and with a cold `claude -p` per turn (the history pasted into
//! the prompt, as stateless proxies do). Prints per-turn latency and the
//! size of what the upstream was sent (≈ input tokens, chars/4), against the
//! fake upstream, which answers at once.
//! Run: `cargo bench --bench affinity` (after scripts/install-claude-cli.sh).

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, real_cli, Daemon, DaemonConfig, FakeUpstream};
use serde_json::{json, Value};

const TURNS: usize = 10;

/// (latency, upstream request size in tokens) per turn.
type Turns = Vec<(Duration, u64)>;

fn question(turn: usize) -> String {
    format!("Turn {turn}: tell me one more thing about the history of computing, please.")
}

fn last_upstream_tokens(upstream: &FakeUpstream) -> u64 {
    let calls = upstream.message_calls();
    (calls.last().unwrap().body.to_string().len() / 4) as u64
}

fn through_daemon(upstream: &FakeUpstream, affinity: bool) -> Turns {
    let cfg = DaemonConfig::real(1).with_toml(&format!("pool.affinity = {affinity}"));
    let daemon = Daemon::start(cfg, upstream);
    let http = client();
    let mut messages: Vec<Value> = Vec::new();
    let mut out = Vec::new();
    for turn in 0..TURNS {
        messages.push(json!({"role": "user", "content": question(turn)}));
        let body = json!({"model": "claude-haiku-4-5", "max_tokens": 200, "system": "Be brief.", "messages": messages});
        std::thread::sleep(Duration::from_millis(30));
        let start = Instant::now();
        let reply: Value = http
            .post(daemon.url("/v1/messages"))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        out.push((start.elapsed(), last_upstream_tokens(upstream)));
        messages.push(json!({"role": "assistant", "content": reply["content"]}));
    }
    daemon.stop().unwrap();
    out
}

fn cold(upstream: &FakeUpstream) -> Turns {
    let dir = tempfile::tempdir().unwrap();
    let mut transcript = String::new();
    let mut out = Vec::new();
    for turn in 0..TURNS {
        let prompt = format!("{transcript}\nUser: {}", question(turn));
        let start = Instant::now();
        let output = Command::new(real_cli())
            .args([
                "-p",
                &prompt,
                "--output-format",
                "json",
                "--tools",
                "",
                "--setting-sources",
                "",
            ])
            .args([
                "--no-session-persistence",
                "--strict-mcp-config",
                "--model",
                "claude-haiku-4-5",
            ])
            .args(["--system-prompt", "Be brief."])
            .env("ANTHROPIC_BASE_URL", &upstream.url)
            .env("ANTHROPIC_API_KEY", "sk-test")
            .env("DISABLE_TELEMETRY", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("CLAUDE_CONFIG_DIR", dir.path())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        out.push((start.elapsed(), last_upstream_tokens(upstream)));
        let result: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        transcript.push_str(&format!(
            "\nUser: {}\nAssistant: {}",
            question(turn),
            result["result"].as_str().unwrap_or("")
        ));
    }
    out
}

fn main() {
    if !support::measuring() {
        return;
    }
    let upstream = FakeUpstream::start();
    let on = through_daemon(&upstream, true);
    let off = through_daemon(&upstream, false);
    let cold = cold(&upstream);
    println!(
        "\n{:>4} | {:>14} {:>8} | {:>14} {:>8} | {:>14} {:>8}",
        "turn", "affinity on ms", "tokens", "affinity off", "tokens", "cold -p ms", "tokens"
    );
    for t in 0..TURNS {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:>4} | {:>14.1} {:>8} | {:>14.1} {:>8} | {:>14.1} {:>8}",
            t + 1,
            ms(on[t].0),
            on[t].1,
            ms(off[t].0),
            off[t].1,
            ms(cold[t].0),
            cold[t].1
        );
    }
    let total = |v: &Turns| v.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).sum::<f64>();
    println!(
        "total ms: on {:.0}, off {:.0}, cold {:.0}",
        total(&on),
        total(&off),
        total(&cold)
    );
    println!("(with affinity the upstream gets real structured turns, so a real API's prompt cache applies; off and cold re-send one flattened prompt)");
}
