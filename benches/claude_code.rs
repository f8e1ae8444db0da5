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

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::{client, Daemon, DaemonConfig, FakeUpstream};
use serde_json::json;
use support::claude_code::{capture, first_request, reply_text, send};

const CONVERSATIONS: usize = 20;

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
        "Claude Code request", "n", "min ms", "median", "p95", "max"
    );
    let mut medians = Vec::new();
    for (name, times) in rows {
        let n = times.len();
        let [min, med, p95, max] = support::stats(times);
        medians.push(med);
        println!("{name:<34} {n:>4} {min:>9.1} {med:>9.1} {p95:>9.1} {max:>9.1}");
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
