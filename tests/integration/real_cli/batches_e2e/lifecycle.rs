//! A batch's requests in the pool: interactive requests first, expiry, a
//! SIGKILL mid-batch, tool calls and rate limits that do not hold a worker or
//! fail a request.

use super::*;

fn wait_ended(base: &str, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, batch) = get(base, &format!("/v1/messages/batches/{id}"));
        if batch["processing_status"] == "ended" {
            return batch;
        }
        assert!(Instant::now() < deadline, "batch never ended: {batch}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_interactive_request_does_not_wait_behind_a_large_batch() {
    let upstream = FakeUpstream::start();
    // One worker, which batch jobs may use: the hardest case.
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    // Each batch job takes about a second (20 words, 50 ms apart).
    let batch = create(&daemon.base, None, &numbered("b", 25, "[[slow:50]]"));
    let id = batch["id"].as_str().unwrap();
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["busy"] == 1);
    let started = Instant::now();
    let res = daemon.post(&message_body("interactive"));
    let waited = started.elapsed();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert_eq!(body["content"][0]["text"], "Hello! You said: interactive");
    // About one batch job's time (the one running), not the batch's 25 s.
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");
    let (_, now) = get(&daemon.base, &format!("/v1/messages/batches/{id}"));
    assert_eq!(now["processing_status"], "in_progress", "{now}");
    println!("interactive request served in {waited:?} during a 25-request batch");
    // Cancel rather than wait 25 s; the running job may finish.
    let res = client()
        .post(daemon.url(&format!("/v1/messages/batches/{id}/cancel")))
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_ended(&daemon.base, id, Duration::from_secs(30));
}

#[test]
fn requests_still_queued_at_expires_at_expire() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("batches.expiry_secs = 2"),
        &upstream,
    );
    let batch = create(&daemon.base, None, &numbered("e", 8, "[[slow:50]]"));
    let created = humantime::parse_rfc3339(batch["created_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(batch["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.duration_since(created).unwrap(),
        Duration::from_secs(2)
    );
    let ended = wait_ended(
        &daemon.base,
        batch["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
    let counts = &ended["request_counts"];
    let (succeeded, expired) = (
        counts["succeeded"].as_u64().unwrap(),
        counts["expired"].as_u64().unwrap(),
    );
    assert!(succeeded >= 1 && expired >= 4, "{counts}");
    assert_eq!(succeeded + expired, 8, "{counts}");
    let results = results(&ended);
    assert_eq!(results.len(), 8);
    let expired_lines = results.values().filter(|r| r["type"] == "expired").count();
    assert_eq!(expired_lines as u64, expired);
    // Batch jobs count in the token metric as interactive ones do (20
    // words each: the fake's usage), and there were no others.
    let metrics = daemon.metrics();
    let output = metrics
        .lines()
        .find(|l| l.starts_with("claude_pool_tokens_total{direction=\"output\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(output, Some(20 * succeeded), "{metrics}");
}

#[test]
fn a_batch_survives_sigkill_and_every_request_is_answered_once() {
    let upstream = FakeUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    // Port 0 for both runs: each reports the port it got in its log.
    let cfg = DaemonConfig::real(2).with_toml("server.listen = \"127.0.0.1:0\"");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, settings_toml(&cfg, &upstream, &dir)).unwrap();
    let mut daemon = DaemonProcess::start(&config, dir.path().join("daemon.log"));
    let n = 12;
    // About 0.6 s each, on one worker (batches.max_workers: all but one).
    let batch = create(&daemon.base, None, &numbered("s", n, "[[slow:30]]"));
    let id = batch["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while upstream.message_calls().len() < 3 {
        assert!(Instant::now() < deadline, "the batch never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Mid-request: the third is streaming.
    std::thread::sleep(Duration::from_millis(200));
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let before = upstream.message_calls().len();

    let daemon = DaemonProcess::start(&config, dir.path().join("daemon2.log"));
    let ended = wait_ended(&daemon.base, &id, Duration::from_secs(90));
    let results = results(&ended);
    drop(daemon);
    assert_eq!(ended["request_counts"]["succeeded"], n, "{ended}");
    assert_eq!(results.len(), n, "every custom_id exactly once");
    for i in 0..n {
        let r = &results[&format!("s{i}")];
        assert_eq!(r["type"], "succeeded", "s{i}: {r}");
        let text = r["message"]["content"][0]["text"].as_str().unwrap();
        assert!(text.ends_with("word19 "), "s{i} ran to the end: {text}");
    }
    // Each request reached the upstream once, the one interrupted twice.
    let calls = upstream.message_calls();
    let runs = |i: usize| {
        let marker = format!("s{i} [[slow");
        calls
            .iter()
            .filter(|c| c.all_text().contains(&marker))
            .count()
    };
    let counts: Vec<usize> = (0..n).map(runs).collect();
    assert!(counts.iter().all(|&c| (1..=2).contains(&c)), "{counts:?}");
    assert!(
        counts.iter().filter(|&&c| c == 2).count() == 1,
        "the request running at the kill, and only it, runs again: {counts:?} ({before} calls before)"
    );
}

#[test]
fn a_batch_request_ending_in_tool_calls_does_not_hold_its_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let mut with_tools = params("weather please [[tool:get_weather]]");
    with_tools["tools"] = json!([{"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let res = client()
        .post(daemon.url("/v1/messages/batches"))
        .json(&json!({"requests": [
            {"custom_id": "tool", "params": with_tools},
            {"custom_id": "after", "params": params("next one")},
        ]}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let batch: Value = res.json().unwrap();
    // Well within tools.park_timeout_secs (300): the turn was not parked.
    let ended = wait_ended(
        &daemon.base,
        batch["id"].as_str().unwrap(),
        Duration::from_secs(60),
    );
    let results = results(&ended);
    let tool = &results["tool"]["message"];
    assert_eq!(tool["stop_reason"], "tool_use", "{tool}");
    assert_eq!(tool_use(tool)["name"], "get_weather", "{tool}");
    assert_eq!(
        results["after"]["message"]["content"][0]["text"],
        "Hello! You said: next one"
    );
    daemon.wait_ready(Duration::from_secs(30));
}

#[test]
fn a_rate_limited_request_waits_for_capacity_instead_of_failing() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("batches.expiry_secs = 3"),
        &upstream,
    );
    let batch = create(
        &daemon.base,
        None,
        &[
            ("fine".into(), "all good".into()),
            ("limited".into(), "too much [[status:429]]".into()),
        ],
    );
    let ended = wait_ended(
        &daemon.base,
        batch["id"].as_str().unwrap(),
        Duration::from_secs(30),
    );
    let results = results(&ended);
    assert_eq!(results["fine"]["type"], "succeeded", "{results:?}");
    // Queued again after the 429, never errored; still waiting at expiry.
    assert_eq!(results["limited"]["type"], "expired", "{results:?}");
    let tries = upstream
        .message_calls()
        .iter()
        .filter(|c| c.all_text().contains("too much"))
        .count();
    assert!(tries >= 1, "the limited request was tried");
}
