//! Soak: the daemon with the real CLI (pool 2) against the fake upstream,
//! under concurrent clients mixing normal, streaming, disconnecting and bad
//! requests, bounded in time and count. Loopback only.
//!
//! Run: `scripts/soak.sh` (= `cargo bench --bench soak`, after
//! scripts/install-claude-cli.sh). Settings, from the environment:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SOAK_SECS` | 60 | how long clients keep sending |
//! | `SOAK_CLIENTS` | 8 | concurrent client threads |
//! | `SOAK_MAX_REQUESTS` | 20000 | requests in all, at most |
//! | `SOAK_POOL` | 2 | `pool.size` |
//! | `SOAK_MAX_QUEUE` | 4 | `pool.max_queue` (small, so some requests get 529) |
//! | `SOAK_SEED` | 1 | seed of the request mix |
//! | `SOAK_FAULT_PERCENT` | 4 | share of answering requests whose upstream call is broken |
//!
//! Upstream faults (issue 23): that share of the Messages, Chat and stream
//! requests gets one fault on its first upstream call (the fake upstream's
//! `[[fault_once]]`): a stream cut after K deltas, an `overloaded_error`
//! event after K deltas, a cut whose repeat has the same message id, a
//! delay before the first byte, or a connection closed before any byte.
//! Every request carries a nonce, so at the end each answer a client got
//! whole is checked against what the upstream finally sent for it
//! (corrupted answers must be 0), no request may have two whole upstream
//! answers (billed twice), and the daemon's `upstream_connection` errors
//! must equal the dropped connections plus the streams that ended in an
//! error after a break.
//!
//! Prints completed / rejected (529, 503) / errored counts, latency
//! percentiles per kind, the largest summed RSS of the worker processes
//! (sampled every second), and the pool's health at the end. Exits non-zero
//! if any request errored, the daemon did not stop cleanly, or a process
//! carrying the daemon's CLAUDE_CONFIG_DIR outlived it.
//!
//! `cargo test --all-targets` runs bench targets without `--bench`; this one
//! then does nothing, so the test suite never soaks.

// Each bench uses part of the test support.
#[allow(dead_code)]
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::upstream::faults;
use common::{parse_sse, processes_with_env, sse_text, Daemon, DaemonConfig, FakeUpstream, Rng};
use serde_json::{json, Value};

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Non-streaming Messages request; the full text is checked.
    Messages,
    /// Non-streaming Chat Completions request.
    Chat,
    /// Streaming Messages request read to the end.
    Stream,
    /// Streaming request dropped after the first text delta.
    DropStream,
    /// Non-streaming slow request abandoned by a client timeout.
    DropWaiting,
    /// A body the daemon must refuse with 4xx.
    Bad,
}

impl Kind {
    fn pick(rng: &mut Rng) -> Kind {
        match rng.below(100) {
            0..=29 => Kind::Messages,
            30..=44 => Kind::Chat,
            45..=69 => Kind::Stream,
            70..=79 => Kind::DropStream,
            80..=84 => Kind::DropWaiting,
            _ => Kind::Bad,
        }
    }
}

/// How one request ended.
enum Outcome {
    /// Served as expected, in this long.
    Completed(Duration),
    /// 529 or 503 before any work.
    Rejected(u16),
    /// The client left on purpose (dropped stream, timeout).
    Abandoned,
    /// A bad body refused with the expected 4xx.
    Refused,
    /// A broken upstream stream ended a stream with an `api_error` event,
    /// after part of the broken call had gone out.
    Interrupted,
    /// A dropped upstream connection answered with 502 `api_error`.
    UpstreamFailed,
    /// Anything else, with what went wrong.
    Errored(String),
}

/// The upstream fault a request asks for, in the fake upstream's markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Cut,
    ErrorEvent,
    CutSameId,
    SlowFirstByte,
    Drop,
}

impl Fault {
    fn pick(rng: &mut Rng, percent: u64) -> Option<Fault> {
        if rng.below(100) >= percent {
            return None;
        }
        Some(match rng.below(5) {
            0 => Fault::Cut,
            1 => Fault::ErrorEvent,
            2 => Fault::CutSameId,
            3 => Fault::SlowFirstByte,
            _ => Fault::Drop,
        })
    }

    fn markers(self, k: u64) -> String {
        match self {
            Fault::Cut => format!("[[cut:{k}]]"),
            Fault::ErrorEvent => format!("[[sse_error:{k}]]"),
            Fault::CutSameId => format!("[[reuse_id]] [[cut:{k}]]"),
            Fault::SlowFirstByte => "[[first_byte_ms:300]]".into(),
            Fault::Drop => "[[drop]]".into(),
        }
    }
}

/// What a client got whole, to check against the upstream's log.
struct Got {
    /// The request's `[[fault_once]]` marker.
    once: String,
    text: String,
}

#[derive(Default)]
struct Tally {
    completed: BTreeMap<Kind, Vec<Duration>>,
    rejected: BTreeMap<u16, u64>,
    abandoned: u64,
    refused: u64,
    errored: u64,
    error_samples: Vec<String>,
    /// Faults asked for, by kind.
    faults: BTreeMap<Fault, u64>,
    interrupted: u64,
    upstream_failed: u64,
    /// Answers got whole, with their request's nonce marker.
    got: Vec<Got>,
}

impl Tally {
    fn add(&mut self, kind: Kind, outcome: Outcome) {
        match outcome {
            Outcome::Completed(d) => self.completed.entry(kind).or_default().push(d),
            Outcome::Rejected(status) => *self.rejected.entry(status).or_default() += 1,
            Outcome::Abandoned => self.abandoned += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::Interrupted => self.interrupted += 1,
            Outcome::UpstreamFailed => self.upstream_failed += 1,
            Outcome::Errored(why) => {
                self.errored += 1;
                if self.error_samples.len() < 10 {
                    self.error_samples.push(format!("{kind:?}: {why}"));
                }
            }
        }
    }
}

fn words(n: u64) -> String {
    (0..n).map(|i| format!("w{i} ")).collect()
}

/// 529/503 as a rejection, anything else but `expected` as an error.
fn status_outcome(status: u16, expected: u16, body: &str) -> Option<Outcome> {
    match status {
        s if s == expected => None,
        529 | 503 => Some(Outcome::Rejected(status)),
        s => Some(Outcome::Errored(format!(
            "status {s}: {}",
            &body[..body.len().min(300)]
        ))),
    }
}

fn run_one(
    http: &reqwest::blocking::Client,
    base: &str,
    kind: Kind,
    rng: &mut Rng,
    fault_percent: u64,
) -> (Outcome, Option<Fault>, Option<Got>) {
    let started = Instant::now();
    let n = 1 + rng.below(30);
    let once = faults::once();
    let fault = match kind {
        Kind::Messages | Kind::Chat | Kind::Stream => Fault::pick(rng, fault_percent),
        _ => None,
    };
    let markers = fault
        .map(|f| f.markers(1 + rng.below(4)))
        .unwrap_or_default();
    let soak = format!("soak {once} {markers} [[words:{n}]]");
    let (outcome, text) = send_one(http, base, kind, rng, n, &soak, fault, started);
    let got = text.map(|text| Got { once, text });
    (outcome, fault, got)
}

/// One request of `kind` whose answering text is `soak`; the outcome, and
/// the text of an answer got whole.
#[allow(clippy::too_many_arguments)]
fn send_one(
    http: &reqwest::blocking::Client,
    base: &str,
    kind: Kind,
    rng: &mut Rng,
    n: u64,
    soak: &str,
    fault: Option<Fault>,
    started: Instant,
) -> (Outcome, Option<String>) {
    let outcome = |o| (o, None);
    let messages_url = format!("{base}/v1/messages");
    let ask = |text: String, stream: bool| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 256, "stream": stream,
               "messages": [{"role": "user", "content": text}]})
    };
    let sent = match kind {
        Kind::Messages => http
            .post(&messages_url)
            .json(&ask(soak.to_string(), false))
            .send(),
        Kind::Chat => http
            .post(format!("{base}/v1/chat/completions"))
            .json(&json!({"model": "claude-haiku-4-5",
                          "messages": [{"role": "user", "content": soak}]}))
            .send(),
        Kind::Stream => http
            .post(&messages_url)
            .json(&ask(soak.to_string(), true))
            .send(),
        Kind::DropStream => http
            .post(&messages_url)
            .json(&ask("soak drop [[slow:50]]".into(), true))
            .send(),
        Kind::DropWaiting => http
            .post(&messages_url)
            .timeout(Duration::from_millis(200 + rng.below(600)))
            .json(&ask("soak wait [[slow:50]]".into(), false))
            .send(),
        Kind::Bad => {
            let (content_type, body): (&str, &[u8]) = match rng.below(4) {
                0 => ("application/json", b"{\"messages\":[{\"role\":\"user\""),
                1 => ("application/json", b"{\"model\":\"claude-haiku-4-5\"}"),
                2 => ("text/plain", b"{\"messages\":[]}"),
                _ => ("application/json", b"\xff\xfe not json"),
            };
            http.post(&messages_url)
                .header("content-type", content_type)
                .body(body.to_vec())
                .send()
        }
    };
    let mut res = match sent {
        Ok(res) => res,
        Err(e) if kind == Kind::DropWaiting && e.is_timeout() => {
            return outcome(Outcome::Abandoned)
        }
        Err(e) => return outcome(Outcome::Errored(format!("no response: {e}"))),
    };
    let status = res.status().as_u16();
    if fault == Some(Fault::Drop) {
        let body = res.text().unwrap_or_default();
        return outcome(match status {
            502 if body.contains("api_error") || body.contains("server_error") => {
                Outcome::UpstreamFailed
            }
            _ => status_outcome(status, 502, &body).unwrap_or(Outcome::UpstreamFailed),
        });
    }
    let (result, text) = match kind {
        Kind::Bad => {
            let body = res.text().unwrap_or_default();
            if matches!(status, 400 | 415) && body.contains("invalid_request_error") {
                (Outcome::Refused, None)
            } else {
                (
                    Outcome::Errored(format!("bad body got {status}: {body}")),
                    None,
                )
            }
        }
        Kind::Messages | Kind::Chat | Kind::DropWaiting => {
            let body = match res.text() {
                Ok(body) => body,
                Err(e) if kind == Kind::DropWaiting && e.is_timeout() => {
                    return outcome(Outcome::Abandoned)
                }
                Err(e) => return outcome(Outcome::Errored(format!("reading the body: {e}"))),
            };
            if let Some(o) = status_outcome(status, 200, &body) {
                return outcome(o);
            }
            let json: Value = serde_json::from_str(&body).unwrap_or_default();
            let text = match kind {
                Kind::Chat => &json["choices"][0]["message"]["content"],
                _ => &json["content"][0]["text"],
            };
            let ok = match kind {
                Kind::DropWaiting => text.as_str().is_some_and(|t| t.contains("word19")),
                _ => text.as_str() == Some(words(n).as_str()),
            };
            let text = text.as_str().map(str::to_string);
            if ok {
                (Outcome::Completed(started.elapsed()), text)
            } else {
                (Outcome::Errored(format!("wrong answer: {body}")), None)
            }
        }
        Kind::Stream => {
            let body = match res.text() {
                Ok(body) => body,
                Err(e) => return outcome(Outcome::Errored(format!("reading the stream: {e}"))),
            };
            if let Some(o) = status_outcome(status, 200, &body) {
                return outcome(o);
            }
            let events = parse_sse(&body);
            let last = events.last();
            let broke_off = last.is_some_and(|(name, data)| {
                name == "error" && data["error"]["type"] == "api_error"
            });
            if last.map(|(name, _)| name.as_str()) == Some("message_stop")
                && sse_text(&events) == words(n)
            {
                (
                    Outcome::Completed(started.elapsed()),
                    Some(sse_text(&events)),
                )
            } else if broke_off && fault.is_some() {
                (Outcome::Interrupted, None)
            } else {
                (Outcome::Errored(format!("incomplete stream: {body}")), None)
            }
        }
        Kind::DropStream => {
            if status != 200 {
                let body = res.text().unwrap_or_default();
                return outcome(status_outcome(status, 200, &body).unwrap_or(Outcome::Abandoned));
            }
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match res.read(&mut buf) {
                    Ok(0) => {
                        return outcome(Outcome::Errored(format!(
                            "stream ended before a text delta: {}",
                            String::from_utf8_lossy(&seen)
                        )))
                    }
                    Ok(n) => {
                        seen.extend(&buf[..n]);
                        if String::from_utf8_lossy(&seen).contains("text_delta") {
                            drop(res);
                            return outcome(Outcome::Abandoned);
                        }
                    }
                    Err(e) => return outcome(Outcome::Errored(format!("reading the stream: {e}"))),
                }
            }
        }
    };
    (result, text)
}

/// Summed VmRSS (KiB) and count of the processes carrying `needle`.
fn workers_rss_kib(needle: &str) -> (u64, usize) {
    let pids = processes_with_env(needle);
    let kib = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum();
    (kib, pids.len())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    if !support::measuring() {
        println!("soak: not run outside `cargo bench` (see scripts/soak.sh)");
        return;
    }
    let secs = env_or("SOAK_SECS", 60);
    let clients = env_or("SOAK_CLIENTS", 8);
    let max_requests = env_or("SOAK_MAX_REQUESTS", 20_000);
    let pool = env_or("SOAK_POOL", 2);
    let max_queue = env_or("SOAK_MAX_QUEUE", 4);
    let seed = env_or("SOAK_SEED", 1);
    let fault_percent = env_or("SOAK_FAULT_PERCENT", 4);
    println!(
        "soak: {secs} s, {clients} clients, ≤ {max_requests} requests, pool {pool}, \
         max_queue {max_queue}, seed {seed}, upstream faults {fault_percent}%"
    );

    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(pool as usize).with_toml(&format!("pool.max_queue = {max_queue}")),
        &upstream,
    );
    let needle = daemon.config_dir();

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let needle = needle.clone();
        thread::spawn(move || {
            let (mut max_kib, mut max_procs) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let (kib, procs) = workers_rss_kib(&needle);
                max_kib = max_kib.max(kib);
                max_procs = max_procs.max(procs);
                thread::sleep(Duration::from_secs(1));
            }
            (max_kib, max_procs)
        })
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let issued = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let base = daemon.base.clone();
            let issued = issued.clone();
            let tally = tally.clone();
            thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_mul(1_000_003).wrapping_add(i));
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                while Instant::now() < deadline
                    && issued.fetch_add(1, Ordering::Relaxed) < max_requests
                {
                    let kind = Kind::pick(&mut rng);
                    let (outcome, fault, got) =
                        run_one(&http, &base, kind, &mut rng, fault_percent);
                    // A refused client backs off, as SDKs do, rather than
                    // spinning through the request budget on instant 529s.
                    let backoff = matches!(outcome, Outcome::Rejected(_));
                    let mut tally = tally.lock().unwrap();
                    // A request refused before it ran met no fault.
                    if !matches!(outcome, Outcome::Rejected(_)) {
                        if let Some(fault) = fault {
                            *tally.faults.entry(fault).or_default() += 1;
                        }
                    }
                    tally.got.extend(got);
                    tally.add(kind, outcome);
                    drop(tally);
                    if backoff {
                        thread::sleep(Duration::from_millis(50 + rng.below(200)));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = started.elapsed();
    let health = daemon.health();
    let metrics = daemon.metrics();
    stop.store(true, Ordering::Relaxed);
    let (max_kib, max_procs) = sampler.join().unwrap();

    let stopped = daemon.stop();
    let leak_deadline = Instant::now() + Duration::from_secs(10);
    let mut leaked = processes_with_env(&needle);
    while !leaked.is_empty() && Instant::now() < leak_deadline {
        thread::sleep(Duration::from_millis(200));
        leaked = processes_with_env(&needle);
    }

    let tally = tally.lock().unwrap();
    let completed: usize = tally.completed.values().map(Vec::len).sum();
    let rejected: u64 = tally.rejected.values().sum();
    println!("\nran {:.1} s", elapsed.as_secs_f64());
    println!(
        "completed {completed}, rejected {rejected} {:?}, errored {}, \
         abandoned on purpose {}, bad bodies refused {}",
        tally.rejected, tally.errored, tally.abandoned, tally.refused
    );
    println!(
        "\n{:<12} {:>6} {:>9} {:>9} {:>9}",
        "kind", "n", "p50 ms", "p95 ms", "max ms"
    );
    let mut all: Vec<Duration> = tally.completed.values().flatten().copied().collect();
    all.sort();
    let mut rows: Vec<(String, Vec<Duration>)> = tally
        .completed
        .iter()
        .map(|(kind, v)| (format!("{kind:?}"), v.clone()))
        .collect();
    rows.push(("all".into(), all));
    for (name, mut v) in rows {
        if v.is_empty() {
            continue;
        }
        v.sort();
        println!(
            "{name:<12} {:>6} {:>9.1} {:>9.1} {:>9.1}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.95),
            percentile(&v, 1.0)
        );
    }
    println!(
        "\nworkers: max total RSS {:.1} MiB over at most {max_procs} processes",
        max_kib as f64 / 1024.0
    );
    println!(
        "health at the end: restarts {} (recycling after pool.max_jobs_per_worker \
         counts too), jobs {}",
        health["restarts"], health["jobs"]
    );
    for sample in &tally.error_samples {
        println!("error: {sample}");
    }

    // Every answer got whole against what the upstream finally sent.
    let answers = upstream.answers();
    let corrupted: Vec<&Got> = tally
        .got
        .iter()
        .filter(|got| upstream.final_answer(&got.once).map(|a| a.text) != Some(got.text.clone()))
        .collect();
    let mut whole_per_request: BTreeMap<&str, u64> = BTreeMap::new();
    for answer in answers.iter().filter(|a| a.completed) {
        if let Some(nonce) = &answer.nonce {
            *whole_per_request.entry(nonce.as_str()).or_default() += 1;
        }
    }
    let billed_twice = whole_per_request.values().filter(|n| **n > 1).count();
    let broken_calls = answers.iter().filter(|a| !a.completed).count() as u64;
    let connection_errors: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("claude_pool_upstream_errors_total{kind=\"upstream_connection\"} ")
        })
        .map(|v| v.trim().parse().unwrap_or(f64::NAN))
        .unwrap_or(0.0);
    let breaks: u64 = [Fault::Cut, Fault::ErrorEvent, Fault::CutSameId]
        .iter()
        .map(|f| tally.faults.get(f).copied().unwrap_or(0))
        .sum();
    println!(
        "\nupstream faults asked for {:?}; broken upstream calls {broken_calls} (cut or error \
         event: {breaks}); answers checked against the upstream {}, corrupted {}; requests \
         with two whole upstream answers {billed_twice}; streams ended by a break {}, dropped \
         connections answered 502 {}, daemon upstream_connection errors {connection_errors}",
        tally.faults,
        tally.got.len(),
        corrupted.len(),
        tally.interrupted,
        tally.upstream_failed,
    );

    let mut failed = false;
    if tally.errored > 0 {
        println!("FAIL: {} requests errored", tally.errored);
        failed = true;
    }
    for got in corrupted.iter().take(5) {
        println!("FAIL: corrupted answer {}: {:?}", got.once, got.text);
        failed = true;
    }
    if billed_twice > 0 {
        println!("FAIL: {billed_twice} requests got two whole upstream answers");
        failed = true;
    }
    if broken_calls != breaks {
        println!("FAIL: {breaks} breaks asked for, {broken_calls} broken upstream calls");
        failed = true;
    }
    if connection_errors != (tally.interrupted + tally.upstream_failed) as f64 {
        println!(
            "FAIL: upstream_connection errors {connection_errors} are not the {} interrupted \
             streams plus the {} dropped connections",
            tally.interrupted, tally.upstream_failed
        );
        failed = true;
    }
    if let Err(e) = stopped {
        println!("FAIL: the daemon did not stop cleanly: {e}");
        failed = true;
    }
    if !leaked.is_empty() {
        println!("FAIL: processes outlived the daemon: {leaked:?}");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!("\nno errors, no leaked processes");
}
