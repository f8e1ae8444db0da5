//! A CLI that misbehaves: crashes, hangs, overruns the request timeout,
//! prints garbage or an over-long line, boots slowly or not at all.

use super::*;

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
