//! Faults and supervision: crashes, hangs, garbage, slow and failing boots,
//! client disconnects, recycling, orphans, with the fake CLI, which
//! misbehaves on demand. The real CLI's share is in
//! `real_cli/supervision.rs`.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

fn stream_body(text: &str) -> Value {
    let mut body = message_body(text);
    body["stream"] = json!(true);
    body
}

/// Lines the daemon wrote to fake CLIs' stdin (shared log file).
fn stdin_log(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("invalid line written to the CLI ({e}): {l}"))
        })
        .collect()
}

#[test]
fn a_crash_mid_job_fails_that_job_at_once_and_the_pool_refills() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let started = Instant::now();
    let res = daemon.post(&message_body("die [[crash]]"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang on a crash"
    );
    assert_eq!(res.status(), 500);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "api_error", "{body}");

    // Streaming: the stream has started, so the failure is an SSE error event.
    let text = daemon
        .post(&stream_body("die again [[crash]]"))
        .text()
        .unwrap();
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().0, "error", "{text}");

    daemon.wait_ready(Duration::from_secs(10));
    let res = daemon.post(&message_body("alive"));
    assert_eq!(res.status(), 200);
    assert!(daemon.health()["restarts"].as_u64().unwrap() >= 2);
}

#[test]
fn a_hung_cli_is_timed_out_killed_and_replaced() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.turn_idle_timeout_secs = 1"),
        &upstream,
    );
    let started = Instant::now();
    let res = daemon.post(&message_body("freeze [[hang]]"));
    assert_eq!(res.status(), 504);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "timeout_error");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The hung process ignores the interrupt, so it is killed and replaced.
    daemon.wait_health(Duration::from_secs(15), |h| {
        h["restarts"].as_u64() >= Some(1) && h["workers"]["ready"] == 1
    });
    assert_eq!(daemon.post(&message_body("next")).status(), 200);
}

#[test]
fn a_job_over_the_request_timeout_is_interrupted_and_the_worker_kept() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("server.request_timeout_secs = 1"),
        &upstream,
    );
    let started = Instant::now();
    let res = daemon.post(&message_body("long [[slow:300]]"));
    assert_eq!(res.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(4));
    daemon.wait_ready(Duration::from_secs(5));
    assert_eq!(daemon.post(&message_body("next")).status(), 200);
    assert_eq!(
        daemon.health()["restarts"],
        0,
        "an interruptible worker is cleared, not replaced"
    );
}

#[test]
fn garbage_on_stdout_is_skipped() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let res = daemon.post(&message_body("noisy [[garbage]]"));
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert!(
        body["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("fake reply #1"),
        "{body}"
    );
    assert_eq!(daemon.health()["restarts"], 0);
}

#[test]
fn a_stdout_line_over_the_cap_fails_the_job_and_replaces_the_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let pid = daemon.health()["workers"]["items"][0]["pid"].clone();
    // 65 MiB on one line: over the daemon's 64 MiB cap.
    let res = daemon.post(&message_body("flood [[flood:65]]"));
    assert_eq!(res.status(), 500);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "api_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("stdout line over 64 MiB"), "{message}");
    let health = daemon.wait_health(Duration::from_secs(30), |h| {
        h["workers"]["ready"] == 1 && h["restarts"] == 1
    });
    assert_ne!(health["workers"]["items"][0]["pid"], pid, "{health}");
    let res = daemon.post(&message_body("after the flood"));
    assert_eq!(res.status(), 200);
}

#[test]
fn every_job_is_followed_by_clear_and_only_valid_json_is_written() {
    let upstream = FakeUpstream::start();
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_LOG", log.path().to_str().unwrap())
            .with_toml("pool.affinity = false"),
        &upstream,
    );
    for text in ["one", "two [[error:500]]", "three"] {
        let _ = daemon.post(&message_body(text));
    }
    daemon.wait_ready(Duration::from_secs(5));
    // Each job runs in a fresh conversation: the counter never passes 1.
    let body: Value = daemon.post(&message_body("four")).json().unwrap();
    assert!(
        body["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("fake reply #1:"),
        "{body}"
    );
    daemon.wait_ready(Duration::from_secs(5));
    let users: Vec<String> = stdin_log(log.path())
        .iter()
        .filter(|l| l["type"] == "user")
        .map(|l| l["message"]["content"].to_string())
        .collect();
    let prompts: Vec<&String> = users.iter().filter(|u| *u != "\"/clear\"").collect();
    assert_eq!(prompts.len(), 4, "{users:?}");
    // Every prompt is followed by a /clear before anything else is sent.
    for (i, line) in users.iter().enumerate() {
        if *line != "\"/clear\"" {
            assert_eq!(
                users.get(i + 1).map(String::as_str),
                Some("\"/clear\""),
                "a job must be followed by /clear: {users:?}"
            );
        }
    }
}

#[test]
fn clear_is_followed_by_a_conversation_boundary() {
    let upstream = FakeUpstream::start();
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_LOG", log.path().to_str().unwrap())
            .with_toml("pool.affinity = false"),
        &upstream,
    );
    for text in ["one", "two"] {
        assert_eq!(daemon.post(&message_body(text)).status(), 200);
    }
    daemon.wait_ready(Duration::from_secs(5));
    let lines = stdin_log(log.path());
    let clears: Vec<usize> = (lines.iter().enumerate())
        .filter(|(_, l)| l["message"]["content"] == "/clear")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(clears.len(), 2, "{lines:?}");
    for i in clears {
        let next = &lines[i + 1];
        assert_eq!(
            (&next["type"], &next["subtype"]),
            (&json!("system"), &json!("compact_boundary")),
            "/clear must be followed by a boundary: {lines:?}"
        );
    }
}

#[test]
fn a_clear_that_keeps_the_conversation_retires_the_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_IGNORE_CLEAR", "1")
            .with_toml("pool.affinity = false"),
        &upstream,
    );
    assert_eq!(daemon.post(&message_body("secret one")).status(), 200);
    // The /clear result shows the same session: the worker is replaced.
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["restarts"] == 1 && h["workers"]["ready"] == 1
    });
    let body: Value = daemon
        .post(&message_body("two [[history]]"))
        .json()
        .unwrap();
    let text = body["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, "two [[history]]", "a fresh conversation: {text}");
}

#[test]
fn slow_boot_queues_jobs_until_ready() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start_unready(
        DaemonConfig::fake(1).with_env("FAKE_CLAUDE_BOOT_MS", "1500"),
        &upstream,
    );
    let h = daemon.health();
    assert_eq!(h["status"], "starting", "{h}");
    let started = Instant::now();
    let res = daemon.post(&message_body("patient"));
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the job must have waited for boot"
    );
}

#[test]
fn a_cli_that_cannot_boot_degrades_the_pool_with_a_reason() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start_unready(
        DaemonConfig::fake(1)
            .with_env("FAKE_CLAUDE_FAIL_BOOT", "1")
            .with_toml("pool.restart_backoff_ms = 20\npool.restart_backoff_max_ms = 100"),
        &upstream,
    );
    let h = daemon.wait_health(Duration::from_secs(10), |h| h["status"] == "degraded");
    assert!(h["reason"].as_str().is_some_and(|r| !r.is_empty()), "{h}");
    let res = client().get(daemon.url("/health")).send().unwrap();
    assert_eq!(res.status(), 503);
    let started = Instant::now();
    let res = daemon.post(&message_body("anyone?"));
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not queued"
    );
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
}

#[test]
fn workers_are_recycled_after_max_jobs_without_losing_a_job() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.max_jobs_per_worker = 2"),
        &upstream,
    );
    for i in 0..5 {
        let res = daemon.post(&message_body(&format!("job {i}")));
        assert_eq!(res.status(), 200, "job {i}");
    }
    let h = daemon.wait_health(Duration::from_secs(10), |h| {
        h["restarts"].as_u64() >= Some(2)
    });
    assert_eq!(h["jobs"]["completed"], 5);
    assert_eq!(h["jobs"]["failed"], 0);
}

#[test]
fn a_disconnected_non_stream_request_is_interrupted_too() {
    let upstream = FakeUpstream::start();
    let log = tempfile::NamedTempFile::new().unwrap();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_env("FAKE_CLAUDE_LOG", log.path().to_str().unwrap()),
        &upstream,
    );
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = impatient
        .post(daemon.url("/v1/messages"))
        .json(&message_body("slow one [[slow:300]]"))
        .send();
    assert!(err.is_err(), "the client should have timed out");
    let dropped = Instant::now();
    assert_eq!(daemon.post(&message_body("next")).status(), 200);
    assert!(
        dropped.elapsed() < Duration::from_secs(2),
        "took {:?}",
        dropped.elapsed()
    );
    let interrupted = stdin_log(log.path())
        .iter()
        .any(|l| l["request"]["subtype"] == "interrupt");
    assert!(interrupted, "the worker's turn must be interrupted");
}

#[test]
fn descendants_of_workers_do_not_outlive_the_daemon() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1), &upstream);
    let body: Value = daemon
        .post(&message_body("spawn something [[orphan]]"))
        .json()
        .unwrap();
    let text = body["content"][0]["text"].as_str().unwrap().to_string();
    let pid: i32 = text
        .rsplit("orphan-pid=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect(&text);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let needle = format!("CLAUDE_CONFIG_DIR={}", daemon.config_dir());
    daemon.stop().unwrap();
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}

#[test]
fn a_job_that_waits_too_long_in_the_queue_is_refused() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.queue_timeout_secs = 1"),
        &upstream,
    );
    let busy = {
        let url = daemon.url("/v1/messages");
        std::thread::spawn(move || {
            client()
                .post(url)
                .json(&message_body("hold on [[slow:150]]"))
                .send()
                .unwrap()
                .status()
        })
    };
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["busy"] == 1);
    let started = Instant::now();
    let res = daemon.post(&message_body("waiting in line"));
    let waited = started.elapsed();
    assert_eq!(res.status().as_u16(), 529);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(busy.join().unwrap(), 200, "the running job is unaffected");
    assert_eq!(daemon.health()["jobs"]["rejected"], 1);
}

/// Waits until `/health`'s job counters add up to `sent` requests; returns
/// them. The `/metrics` counters say the same.
fn wait_jobs_add_up(daemon: &Daemon, sent: u64) -> Value {
    let total = |h: &Value| -> u64 {
        ["completed", "failed", "rejected", "abandoned"]
            .iter()
            .map(|k| h["jobs"][k].as_u64().unwrap_or(0))
            .sum()
    };
    let h = daemon.wait_health(Duration::from_secs(15), |h| total(h) >= sent);
    assert_eq!(total(&h), sent, "{h}");
    let metrics = daemon.metrics();
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("claude_pool_jobs_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, sent, "{metrics}");
    h["jobs"].clone()
}

#[test]
fn jobs_killed_with_their_worker_are_counted_as_failed() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("pool.turn_idle_timeout_secs = 1"),
        &upstream,
    );
    // The CLI crashes mid-turn, streaming and not.
    assert_eq!(daemon.post(&message_body("die [[crash]]")).status(), 500);
    daemon.wait_ready(Duration::from_secs(10));
    let text = daemon.post(&stream_body("die [[crash]]")).text().unwrap();
    assert_eq!(parse_sse(&text).last().unwrap().0, "error", "{text}");
    daemon.wait_ready(Duration::from_secs(10));
    // A hung turn that ignores the interrupt: the worker is retired with
    // the job (the client has its timeout already).
    assert_eq!(daemon.post(&message_body("freeze [[hang]]")).status(), 504);
    daemon.wait_health(Duration::from_secs(15), |h| {
        h["restarts"].as_u64() >= Some(3) && h["workers"]["ready"] == 1
    });
    assert_eq!(daemon.post(&message_body("alive")).status(), 200);
    let jobs = wait_jobs_add_up(&daemon, 4);
    assert_eq!(jobs["failed"], 3, "{jobs}");
    assert_eq!(jobs["completed"], 1, "{jobs}");
}

#[test]
fn a_silent_stream_gets_its_first_keepalive_after_keepalive_secs_not_twice_that() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::fake(1).with_toml("server.keepalive_secs = 2"),
        &upstream,
    );
    // The only worker is busy for ~6 s (20 deltas, 300 ms apart).
    let holder = std::thread::spawn({
        let url = daemon.url("/v1/messages");
        move || {
            client()
                .post(url)
                .json(&message_body("hold [[slow:300]]"))
                .send()
        }
    });
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["busy"] == 1);
    // A stream that waits in the queue meanwhile: silent.
    let sent_at = Instant::now();
    let mut res = daemon.post(&stream_body("queued behind it"));
    assert_eq!(res.status(), 200);
    let mut first = [0u8; 256];
    let n = res.read(&mut first).unwrap();
    let first_frame_after = sent_at.elapsed();
    let text = String::from_utf8_lossy(&first[..n]).to_string();
    assert!(text.contains("message_start"), "{text}");
    // Headers and a first frame at keepalive_secs (2 s), where the old code
    // sent the first frame only at twice that.
    assert!(
        first_frame_after < Duration::from_secs(3),
        "first frame after {first_frame_after:?}"
    );
    let mut rest = String::new();
    res.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("message_stop"), "{rest}");
    assert_eq!(holder.join().unwrap().unwrap().status(), 200);
}
