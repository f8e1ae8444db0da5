//! Where the time of a big-prompt turn goes: Claude Code's own request
//! (its system prompt, its ~24 tools with 64 KB of schemas, a system
//! message in `messages`), captured from the real CLI, replayed as the next turn of a
//! conversation whose worker holds it (the bound case), split into stages:
//!
//! - parse, render and hash: the request body into the job (the daemon's
//!   codec, measured in this process on the same body), and of that the
//!   JSON parse and validation alone;
//! - waiting for the worker (dispatch), and setting the conversation up
//!   (control requests): from the worker's log line for the job;
//! - the CLI from the prompt on its stdin to the upstream's handler having
//!   the whole request (the CLI's own work, the HTTP call, the fake's body
//!   parse): the fake upstream notes when;
//! - from there to the CLI's first line of model output on stdout, and to
//!   its `result`: the worker's log line;
//! - the rest: HTTP in and out, the actor hops and the SSE encoding, what
//!   the client's time leaves over (the client's time starts after it has
//!   serialized the body: its own JSON encoding is not the daemon's).
//!
//! Target: the daemon's own share (parse/render/hash, dispatch, setup and
//! the rest) under 2 ms median (release build; issue 27).
//! Run: `cargo bench --bench turn_stages`.

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use claude_pool::api::anthropic::{Anthropic, MessagesRequest};
use claude_pool::api::{Codec, Context};
use common::{client, Daemon, DaemonConfig, FakeUpstream};
use serde_json::{json, Value};
use support::claude_code::{capture, first_request, reply_text, send_as, send_bytes};

const TURNS: usize = 20;
const PARSES: usize = 200;

/// The worker's line about each finished job: when it was logged, and the
/// message.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

struct JobLines(Lines);

impl log::Log for JobLines {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record) {
        let text = record.args().to_string();
        if text.contains(" job done in ") {
            self.0.lock().unwrap().push((Instant::now(), text));
        }
    }

    fn flush(&self) {}
}

/// The number before `unit` after `label` in `line`.
fn field(line: &str, label: &str) -> f64 {
    let at = line
        .find(label)
        .unwrap_or_else(|| panic!("{label} in {line}"))
        + label.len();
    let rest = line[at..].trim_start();
    let end = rest.find(' ').unwrap();
    rest[..end].parse().unwrap()
}

/// Median times of the codec's parse of `body`, in milliseconds: the whole
/// (parse, validation, the job: tools, render, conversation hash), and the
/// JSON parse and validation alone.
fn parse_time(body: &Value) -> (f64, f64) {
    let bytes = serde_json::to_vec(body).unwrap();
    let ctx = Context::new("claude-sonnet-4-5");
    let time = |f: &dyn Fn()| {
        let mut times: Vec<f64> = (0..PARSES)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let whole = time(&|| {
        drop(std::hint::black_box(
            Anthropic::parse(&bytes, &ctx).unwrap(),
        ))
    });
    let json = time(&|| {
        drop(std::hint::black_box(
            MessagesRequest::parse(&bytes).unwrap(),
        ))
    });
    (whole, json)
}

#[derive(Default)]
struct Stages {
    client: Vec<f64>,
    waited: Vec<f64>,
    setup: Vec<f64>,
    cli_to_upstream: Vec<f64>,
    upstream_to_output: Vec<f64>,
    output_to_result: Vec<f64>,
    rest: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !support::measuring() {
        return;
    }
    let lines: Lines = Arc::default();
    log::set_boxed_logger(Box::new(JobLines(lines.clone()))).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let upstream = FakeUpstream::start();
    let captured = capture(&upstream);
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let http = client();
    let mut stages = Stages::default();
    let mut next_turn = Value::Null;
    for i in 0..TURNS + 1 {
        let mut body = first_request(&captured, 1000 + i);
        let (_, sse) = send_as(&http, &daemon, &body, None);
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(
            json!({"role": "assistant", "content": [{"type": "text", "text": reply_text(&sse)}]}),
        );
        let marker = format!("and a next turn {i}");
        messages.push(json!({"role": "user", "content": [{"type": "text", "text": marker}]}));
        let id = format!("req_stage_{i}");
        // Serialized before the clock starts: the client's JSON encoding of
        // 76 KB is not the daemon's.
        let bytes = serde_json::to_vec(&body).unwrap();
        let (took, _) = send_bytes(&http, &daemon, bytes, Some(&id));
        daemon.wait_ready(Duration::from_secs(10));
        next_turn = body;
        if i == 0 {
            continue; // the worker's first conversation: not yet warm
        }
        let (logged, line) = (lines.lock().unwrap().iter())
            .find(|(_, l)| l.contains(&format!("[{id}]")))
            .cloned()
            .expect("the worker's line about the job");
        let call = (upstream.message_calls().into_iter().rev())
            .find(|r| r.all_text().contains(&marker))
            .expect("the upstream call");
        let (prompt_to_output, to_result) = (
            field(&line, "prompt to model output"),
            field(&line, "to result"),
        );
        let result_at = logged;
        let prompt_at = result_at - Duration::from_secs_f64((prompt_to_output + to_result) / 1e3);
        let cli_to_upstream = call
            .received_at
            .saturating_duration_since(prompt_at)
            .as_secs_f64()
            * 1e3;
        let client = took.as_secs_f64() * 1e3;
        let (waited, setup) = (field(&line, "waited"), field(&line, "setup"));
        stages.client.push(client);
        stages.waited.push(waited);
        stages.setup.push(setup);
        stages.cli_to_upstream.push(cli_to_upstream);
        stages
            .upstream_to_output
            .push(prompt_to_output - cli_to_upstream);
        stages.output_to_result.push(to_result);
        stages
            .rest
            .push(client - waited - setup - prompt_to_output - to_result);
    }
    daemon.stop().unwrap();
    if let Ok(path) = std::env::var("TURN_STAGES_DUMP") {
        std::fs::write(path, serde_json::to_vec(&next_turn).unwrap()).unwrap();
    }
    let (parse, json) = parse_time(&next_turn);
    let system_bytes = serde_json::to_string(&next_turn["system"]).unwrap().len();
    let body_bytes = serde_json::to_string(&next_turn).unwrap().len();
    println!(
        "\nClaude Code's next turn on its bound worker: {} tools, system {} KB, body {} KB, {TURNS} turns",
        next_turn["tools"].as_array().map_or(0, Vec::len),
        system_bytes / 1024,
        body_bytes / 1024,
    );
    let rest = median(&stages.rest);
    let rows = [
        ("parse, render, hash (daemon)", parse),
        ("  of which JSON parse, validation", json),
        ("wait for the worker (daemon)", median(&stages.waited)),
        ("setup requests (daemon + CLI)", median(&stages.setup)),
        (
            "CLI: prompt to upstream request",
            median(&stages.cli_to_upstream),
        ),
        (
            "upstream to CLI's first output",
            median(&stages.upstream_to_output),
        ),
        (
            "CLI: first output to result",
            median(&stages.output_to_result),
        ),
        ("HTTP, hops, encode (daemon)", rest - parse),
        ("client total", median(&stages.client)),
    ];
    println!("\n{:<34} {:>10}", "stage (medians)", "ms");
    for (name, ms) in rows {
        println!("{name:<34} {ms:>10.2}");
    }
    let daemon_share = rest + median(&stages.waited);
    let met = daemon_share < 2.0;
    println!(
        "\ndaemon's share (parse/render/hash, dispatch, HTTP, encode) = {daemon_share:.2} ms (target < 2): {}",
        if met { "met" } else { "MISSED" }
    );
    if !met {
        std::process::exit(1);
    }
}
