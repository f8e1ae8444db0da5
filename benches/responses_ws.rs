//! A 10-turn Codex-style session (instructions, a shell tool, `store:
//! false`) through the Responses API over HTTP (the whole input re-sent each
//! turn, as Codex does without WebSockets) and over the WebSocket
//! (`previous_response_id` and only the new input), against the real CLI
//! and the fake upstream (which answers at once). Prints per-turn latency,
//! the bytes the client sent, and the size of what the upstream was sent
//! (≈ tokens, chars/4). The client is `benches/responses_ws.py`.
//! Run: `cargo bench --bench responses_ws`.

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;

use common::{python, repo_path, Daemon, DaemonConfig, FakeUpstream};
use serde_json::Value;

const TURNS: usize = 10;

/// Per turn: latency (ms), client request bytes, upstream request tokens.
type Turns = Vec<(f64, u64, u64)>;

fn session(upstream: &FakeUpstream, mode: &str) -> Turns {
    let daemon = Daemon::start(DaemonConfig::real(1), upstream);
    let out = Command::new(python())
        .arg(repo_path("benches/responses_ws.py"))
        .args([mode, &daemon.base, &TURNS.to_string(), mode])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let marker = format!("{mode} turn ");
    let upstream_tokens: Vec<u64> = upstream
        .message_calls()
        .iter()
        .filter(|c| c.all_text().contains(&marker))
        .map(|c| (c.body.to_string().len() / 4) as u64)
        .collect();
    let turns: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    daemon.stop().unwrap();
    turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t["ms"].as_f64().unwrap(),
                t["bytes"].as_u64().unwrap(),
                upstream_tokens.get(i).copied().unwrap_or(0),
            )
        })
        .collect()
}

fn main() {
    if !support::measuring() {
        return;
    }
    let upstream = FakeUpstream::start();
    let http = session(&upstream, "http");
    let ws = session(&upstream, "ws");
    println!(
        "\n{:>4} | {:>9} {:>12} {:>15} | {:>9} {:>12} {:>15}",
        "turn",
        "HTTP ms",
        "client bytes",
        "upstream tokens",
        "WS ms",
        "client bytes",
        "upstream tokens"
    );
    for t in 0..TURNS {
        println!(
            "{:>4} | {:>9.1} {:>12} {:>15} | {:>9.1} {:>12} {:>15}",
            t + 1,
            http[t].0,
            http[t].1,
            http[t].2,
            ws[t].0,
            ws[t].1,
            ws[t].2
        );
    }
    let sum = |v: &Turns, f: fn(&(f64, u64, u64)) -> f64| v.iter().map(f).sum::<f64>();
    println!(
        "total: HTTP {:.0} ms, {:.0} client bytes; WS {:.0} ms, {:.0} client bytes",
        sum(&http, |t| t.0),
        sum(&http, |t| t.1 as f64),
        sum(&ws, |t| t.0),
        sum(&ws, |t| t.1 as f64)
    );
}
