//! Blank spares with the real CLI against the test upstream (issue 27),
//! each workload with a fixed `pool.blank_spares = 1` and with `"auto"`:
//!
//! - a new system prompt every 0.5 s on a pool of 3, with the host as it
//!   is and with one more core kept busy by a spinning process;
//! - two system prompts alternating at the same pace;
//! - Claude Code's project-A/project-B sequence on a pool of 2 (its real
//!   captured request: two conversations in project A, the second while the
//!   first's worker is bound, then one in project B, whose system prompt
//!   differs): B should not wait for a boot;
//! - both orders for a new conversation whose prompt a bound worker holds:
//!   clearing that worker (same caller) or taking the blank spare (another
//!   caller), then the evicted or kept conversation's next turn, then a new
//!   prompt: what each order costs each of the three.
//!
//! Prints a table: median, p95 and max latency, jobs that waited for a
//! boot, workers replaced, and the target `/health` reported at the end;
//! and the host's load average before and after (on a shared host the
//! boots compete with everything else: note it with the figures).
//! Run: `nice cargo bench --bench spares` (after scripts/install-claude-cli.sh);
//! `--profile dev` measures a debug daemon, whose own share is small here.

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{client, message_body, Daemon, DaemonConfig, FakeUpstream};
use serde_json::{json, Value};

/// Requests measured per paced workload (after three finding the pool's
/// first blank workers).
const RUNS: usize = 30;
/// The pace of the paced workloads.
const EVERY: Duration = Duration::from_millis(500);
/// Runs of each order (medians printed).
const ORDER_RUNS: usize = 5;
/// The `pool.blank_spares` settings compared.
const SETTINGS: [&str; 2] = ["1", "\"auto\""];

/// One measured workload.
struct Row {
    case: String,
    setting: &'static str,
    times: Vec<Duration>,
    /// `/health` at the end.
    health: Value,
}

impl Row {
    fn print(&self) {
        let [_, median, p95, max] = support::stats(self.times.clone());
        let h = &self.health;
        println!(
            "| {} | {} | {median:.0} | {p95:.0} | {max:.0} | {} | {} | {} |",
            self.case,
            self.setting,
            h["jobs"]["waited_for_boot"],
            h["restarts"],
            h["spares"]["target"],
        );
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn daemon(upstream: &FakeUpstream, size: usize, setting: &str, extra: &str) -> Daemon {
    let toml = format!("pool.blank_spares = {setting}\n{extra}");
    Daemon::start(DaemonConfig::real(size).with_toml(&toml), upstream)
}

/// POSTs `body` as `key` (if any); the time to the whole answer.
fn post(daemon: &Daemon, key: Option<&str>, body: &Value) -> (Duration, Value) {
    let started = Instant::now();
    let mut req = client().post(daemon.url("/v1/messages")).json(body);
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    let res = req.send().unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().unwrap();
    (started.elapsed(), answer)
}

/// A conversation every 0.5 s on a pool of 3, the `i`-th with system
/// prompt number `prompt(i)`.
fn paced(
    upstream: &FakeUpstream,
    case: &str,
    setting: &'static str,
    prompt: impl Fn(usize) -> usize,
) -> Row {
    let daemon = daemon(upstream, 3, setting, "");
    let times: Vec<Duration> = (0..RUNS + 3)
        .map(|i| {
            let mut body = message_body(&format!("hello {i}"));
            body["system"] = format!("You are assistant number {}.", prompt(i)).into();
            let (took, _) = post(&daemon, None, &body);
            std::thread::sleep(EVERY.saturating_sub(took));
            took
        })
        .collect();
    let health = daemon.health();
    daemon.stop().unwrap();
    Row {
        case: case.into(),
        setting,
        times: times[3..].to_vec(),
        health,
    }
}

/// A process spinning on one core while it lives.
struct BusyCore(Child);

impl BusyCore {
    fn start() -> Self {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh");
        Self(child)
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Claude Code's sequence: project A, project A again while the first
/// conversation's worker is bound, then project B; B's latency is the row.
fn projects(upstream: &FakeUpstream, captured: &Value, setting: &'static str) -> Row {
    let daemon = daemon(upstream, 2, setting, "");
    let http = client();
    let a = |i| support::claude_code::first_request(captured, i);
    let mut b = support::claude_code::first_request(captured, 3);
    let blocks = b["system"].as_array_mut().unwrap();
    let last = blocks.last_mut().unwrap();
    let text = last["text"].as_str().unwrap().to_string();
    last["text"] = json!(format!("{text}\nWorking directory: /projects/b"));
    support::claude_code::send(&http, &daemon, &a(1));
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["bound"] == 1);
    support::claude_code::send(&http, &daemon, &a(2));
    let (took, _) = support::claude_code::send(&http, &daemon, &b);
    let health = daemon.health();
    daemon.stop().unwrap();
    Row {
        case: "Claude Code: project A, A, then B (pool 2); B's latency".into(),
        setting,
        times: vec![took],
        health,
    }
}

/// What a new conversation with a bound worker's prompt costs each way:
/// `same_caller` has it clear that worker (evicting the conversation),
/// otherwise it takes the blank spare. Returns the new conversation's,
/// the first conversation's next turn's and a new prompt's latency.
fn clear_or_spare(upstream: &FakeUpstream, same_caller: bool) -> ([Duration; 3], Value) {
    let keys = "server.api_keys = [\"key-a\", \"key-b\"]";
    let daemon = daemon(upstream, 2, "1", keys);
    let chat = |system: &str, messages: Value| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 64, "system": system,
               "messages": messages})
    };
    // Conversation X: three turns, bound to its worker.
    let mut history = Vec::new();
    for turn in 0..3 {
        history.push(json!({"role": "user", "content": format!("x says {turn}")}));
        let (_, answer) = post(&daemon, Some("key-a"), &chat("P", json!(history)));
        history.push(json!({"role": "assistant", "content": answer["content"]}));
    }
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["workers"]["bound"] == 1 && h["workers"]["starting"] == 0
    });
    let y_key = if same_caller { "key-a" } else { "key-b" };
    let (y, _) = post(
        &daemon,
        Some(y_key),
        &chat("P", json!([{"role": "user", "content": "y"}])),
    );
    std::thread::sleep(EVERY.saturating_sub(y));
    history.push(json!({"role": "user", "content": "x goes on"}));
    let (x, _) = post(&daemon, Some("key-a"), &chat("P", json!(history)));
    std::thread::sleep(EVERY.saturating_sub(x));
    let fresh = json!([{"role": "user", "content": "q"}]);
    let (q, _) = post(&daemon, Some("key-a"), &chat("Q", fresh));
    let health = daemon.health();
    daemon.stop().unwrap();
    ([y, x, q], health)
}

fn main() {
    if !support::measuring() {
        return;
    }
    let upstream = FakeUpstream::start();
    println!("load average before: {}", load());
    let mut rows = Vec::new();
    for setting in SETTINGS {
        rows.push(paced(
            &upstream,
            "new prompt every 0.5 s (pool 3)",
            setting,
            |i| i,
        ));
        let busy = BusyCore::start();
        rows.push(paced(
            &upstream,
            "the same, one more core busy",
            setting,
            |i| i + 1000,
        ));
        drop(busy);
        rows.push(paced(
            &upstream,
            "two prompts alternating (pool 3)",
            setting,
            |i| i % 2,
        ));
    }
    let captured = support::claude_code::capture(&upstream);
    for setting in SETTINGS {
        rows.push(projects(&upstream, &captured, setting));
    }
    println!();
    println!(
        "| workload | blank_spares | median ms | p95 ms | max ms | waited for a boot | workers replaced | target at end |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in &rows {
        row.print();
    }
    println!();
    println!(
        "A new conversation whose prompt a bound worker holds (pool 2, 1 spare), then the first conversation's next turn, then a new prompt, 0.5 s apart (medians of {ORDER_RUNS} runs):"
    );
    println!("| order | new conversation ms | evicted/kept conversation's next turn ms | new prompt ms | waited for a boot |");
    println!("|---|---|---|---|---|");
    for (order, same_caller) in [
        ("clear the bound worker (same caller)", true),
        ("take the blank spare (another caller)", false),
    ] {
        let runs: Vec<([Duration; 3], Value)> = (0..ORDER_RUNS)
            .map(|_| clear_or_spare(&upstream, same_caller))
            .collect();
        let median = |i: usize| support::stats(runs.iter().map(|r| r.0[i]).collect())[1];
        let waited: u64 = runs
            .iter()
            .map(|r| r.1["jobs"]["waited_for_boot"].as_u64().unwrap_or(0))
            .sum();
        println!(
            "| {order} | {:.0} | {:.0} | {:.0} | {waited} of {ORDER_RUNS} runs |",
            median(0),
            median(1),
            median(2),
        );
    }
    println!();
    println!("load average after: {}", load());
}
