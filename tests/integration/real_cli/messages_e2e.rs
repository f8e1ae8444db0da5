//! End to end: HTTP client → daemon → real Claude CLI → fake upstream.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

#[test]
fn non_stream_round_trip_uses_system_prompt_and_real_usage() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("server.node_id = \"edge-7\""),
        &upstream,
    );
    let res = daemon.post(&json!({
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "system": "You are a terse test assistant SYS-MARK-1.",
        "messages": [{"role": "user", "content": "ping round trip"}]
    }));
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("request-id"));
    assert_eq!(res.headers()["x-claude-pool-node"], "edge-7");
    let body: Value = res.json().unwrap();
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with("msg_edge-7_") && id.len() > 20, "{body}");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-haiku-4-5");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(
        body["content"][0]["text"],
        "Hello! You said: ping round trip"
    );

    let calls = upstream.message_calls();
    assert_eq!(calls.len(), 1, "one upstream call per job");
    let call = &calls[0];
    assert_eq!(call.body["model"], "claude-haiku-4-5");
    assert!(
        call.system_blocks()
            .iter()
            .any(|b| b == "You are a terse test assistant SYS-MARK-1."),
        "system prompt must be a real system block: {:?}",
        call.system_blocks()
    );
    assert!(
        !call.body["messages"].to_string().contains("SYS-MARK-1"),
        "system prompt leaked into user text"
    );
    assert!(
        !call.all_text().contains("<command-name>/model"),
        "set_model noise reached the model"
    );
    // Usage is the upstream's count as relayed by the CLI, not an estimate.
    let upstream_input = (call.body.to_string().len() / 4) as u64;
    assert_eq!(body["usage"]["input_tokens"], upstream_input);
    assert_eq!(body["usage"]["output_tokens"], 6);
}

#[test]
fn stream_is_forwarded_as_it_is_produced() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let started = Instant::now();
    let mut res = daemon.post(&json!({
        "model": "claude-haiku-4-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "stream please [[slow:60]]"}]
    }));
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let mut first_delta_at = None;
    loop {
        let n = res.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        if first_delta_at.is_none() && text.contains("text_delta") {
            first_delta_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let events = parse_sse(&text);
    let names: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != "ping")
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert!(names.contains(&"content_block_start") && names.contains(&"content_block_stop"));
    let expected: String = (0..20).map(|i| format!("word{i} ")).collect();
    assert_eq!(sse_text(&events), expected);
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 20);
    // 20 words 60 ms apart: the first must reach the client long before the
    // last, or the daemon buffered the stream.
    let first = first_delta_at.expect("a text delta");
    assert!(
        total - first > Duration::from_millis(600),
        "first delta at {first:?}, end at {total:?}"
    );
}

#[test]
fn every_earlier_turn_reaches_the_model() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = daemon.post(&json!({
        "model": "claude-haiku-4-5", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "alpha-turn-1"},
            {"role": "assistant", "content": "bravo-turn-2"},
            {"role": "user", "content": [{"type": "text", "text": "charlie-turn-3"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "delta-turn-4"}]},
            {"role": "user", "content": "echo-turn-5"}
        ]
    }));
    assert_eq!(res.status(), 200);
    let seen = upstream.message_calls()[0].all_text();
    let positions: Vec<usize> = [
        "alpha-turn-1",
        "bravo-turn-2",
        "charlie-turn-3",
        "delta-turn-4",
        "echo-turn-5",
    ]
    .iter()
    .map(|m| {
        seen.find(m)
            .unwrap_or_else(|| panic!("{m} missing from {seen}"))
    })
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "turns out of order: {seen}"
    );
    assert!(
        seen.contains("role=\"assistant\""),
        "roles must be marked: {seen}"
    );
}

#[test]
fn no_job_ever_sees_another_jobs_messages() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let marker = "ZEBRA-SECRET-4711";
    // A normal job, a failed job and a job with another system prompt, each
    // carrying the marker; then jobs without it on the same single worker.
    let with_marker = [
        json!({"model": "claude-haiku-4-5", "max_tokens": 50, "system": "S-one",
               "messages": [{"role": "user", "content": format!("remember {marker}")}]}),
        json!({"model": "claude-haiku-4-5", "max_tokens": 50, "system": "S-one",
               "messages": [{"role": "user", "content": format!("{marker} [[status:400]]")}]}),
        json!({"model": "claude-haiku-4-5", "max_tokens": 50, "system": "S-two",
               "messages": [{"role": "user", "content": format!("again {marker}")}]}),
    ];
    for body in &with_marker {
        let _ = daemon.post(body);
    }
    let before = upstream.message_calls().len();
    for system in ["S-one", "S-two", "S-one"] {
        let res = daemon.post(
            &json!({"model": "claude-haiku-4-5", "max_tokens": 50, "system": system,
                    "messages": [{"role": "user", "content": "what did I tell you?"}]}),
        );
        assert_eq!(res.status(), 200);
    }
    let calls = upstream.message_calls();
    assert_eq!(calls.len(), before + 3);
    for call in &calls[before..] {
        assert!(
            !call.all_text().contains(marker),
            "leaked into a later job: {}",
            call.body
        );
    }
    let h = daemon.health();
    assert_eq!(h["jobs"]["failed"], 1, "{h}");
}

#[test]
fn upstream_errors_keep_their_meaning() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    // 429 last: it marks the pool's account rate-limited (see below).
    for (status, kind, expect) in [
        (400, "invalid_request_error", 400),
        (529, "overloaded_error", 529),
        (401, "api_error", 502),
        (500, "api_error", 500),
        (429, "rate_limit_error", 429),
    ] {
        let res = daemon.post(&message_body(&format!("fail please [[status:{status}]]")));
        assert_eq!(res.status().as_u16(), expect, "upstream {status}");
        let body: Value = res.json().unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], kind, "upstream {status}: {body}");
    }
    // In a stream, an early failure is still a real HTTP status: here the
    // pool's only account is known to be rate-limited, so at once, with
    // the time until the limit ends.
    let mut body = message_body("[[status:429]]");
    body["stream"] = json!(true);
    let res = daemon.post(&body);
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // The limit ends by itself (the account still shows the 401 as
    // `login_failed` until a job succeeds), and the worker is fine
    // afterwards.
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["accounts"][0]["limited_until"].is_null()
    });
    let res = daemon.post(&message_body("after errors"));
    assert_eq!(res.status(), 200);
    let health = daemon.wait_health(Duration::from_secs(30), |h| h["status"] == "ok");
    assert_eq!(health["accounts"][0]["status"], "ok", "{health}");
}

#[test]
fn overload_is_refused_at_once_with_retry_after() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.max_queue = 1"),
        &upstream,
    );
    let url = daemon.url("/v1/messages");
    let slow = message_body("hold the worker [[slow:100]]");
    let busy = {
        let (url, body) = (url.clone(), slow.clone());
        std::thread::spawn(move || client().post(url).json(&body).send().unwrap().status())
    };
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["busy"] == 1);
    let queued = {
        let (url, body) = (url.clone(), message_body("queued one"));
        std::thread::spawn(move || client().post(url).json(&body).send().unwrap().status())
    };
    daemon.wait_health(Duration::from_secs(10), |h| h["queue"]["depth"] == 1);
    let started = Instant::now();
    let res = client()
        .post(&url)
        .json(&message_body("one too many"))
        .send()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal must be immediate"
    );
    assert_eq!(res.status().as_u16(), 529);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert_eq!(busy.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200);
}

#[test]
fn bad_requests_get_clear_4xx_and_the_daemon_keeps_serving() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("server.max_body_bytes = 4096"),
        &upstream,
    );
    let url = daemon.url("/v1/messages");
    let raw = |body: &'static [u8]| {
        client()
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    };
    let cases: Vec<(reqwest::blocking::Response, u16, &str)> = vec![
        (raw(b"{not json"), 400, "invalid_request_error"),
        (raw(b""), 400, "invalid_request_error"),
        (raw(b"[]"), 400, "invalid_request_error"),
        (raw(br#"{"model":"x"}"#), 400, "invalid_request_error"),
        (raw(br#"{"messages":[]}"#), 400, "invalid_request_error"),
        (
            raw(br#"{"messages":"hello"}"#),
            400,
            "invalid_request_error",
        ),
        (
            raw(br#"{"messages":[{"role":"robot","content":"x"}]}"#),
            400,
            "invalid_request_error",
        ),
        (
            raw(br#"{"messages":[{"role":"user","content":42}]}"#),
            400,
            "invalid_request_error",
        ),
        (
            raw(br#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#),
            400,
            "invalid_request_error",
        ),
        (raw(b"\xff\xfe\x00garbage"), 400, "invalid_request_error"),
        (
            client()
                .post(&url)
                .header("content-type", "application/json")
                .body(vec![b' '; 10_000])
                .send()
                .unwrap(),
            413,
            "request_too_large",
        ),
        (
            client().get(daemon.url("/v1/nothing")).send().unwrap(),
            404,
            "not_found_error",
        ),
    ];
    for (i, (res, status, kind)) in cases.into_iter().enumerate() {
        assert_eq!(res.status().as_u16(), status, "case {i}");
        let body: Value = res.json().unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(body["type"], "error", "case {i}: {body}");
        assert_eq!(body["error"]["type"], kind, "case {i}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let res = daemon.post(&message_body("still alive?"));
    assert_eq!(res.status(), 200);
    assert_eq!(
        daemon.health()["restarts"],
        0,
        "bad input must not cost a worker"
    );
    assert!(
        upstream.message_calls().len() == 1,
        "no bad request may reach the model"
    );
}

#[test]
fn slash_commands_from_clients_are_plain_text() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = daemon.post(&message_body("/cost"));
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert_eq!(body["content"][0]["text"], "Hello! You said: /cost");
    assert_eq!(
        upstream.message_calls().len(),
        1,
        "the text must reach the model"
    );
}

#[test]
fn request_ids_are_echoed_or_generated() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = client()
        .get(daemon.url("/health"))
        .header("x-request-id", "abc-123")
        .send()
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_eq!(res.headers()["request-id"], "abc-123");
    let head = client().head(daemon.url("/health")).send().unwrap();
    assert_eq!(head.status(), 200, "HEAD /health for load balancers");
    let res = client().get(daemon.url("/health")).send().unwrap();
    assert!(res.headers()["request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let h: Value = res.json().unwrap();
    for key in [
        "status",
        "workers",
        "queue",
        "jobs",
        "restarts",
        "uptime_secs",
        "version",
    ] {
        assert!(h.get(key).is_some(), "{key} missing from {h}");
    }
    for key in ["total", "ready", "busy", "starting"] {
        assert!(h["workers"].get(key).is_some(), "workers.{key} missing");
    }
}

#[test]
fn shutdown_stops_every_cli_process() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let needle = format!("CLAUDE_CONFIG_DIR={}", daemon.config_dir());
    assert_eq!(
        root_processes_with_env(&needle).len(),
        2,
        "two workers should be running"
    );
    assert_eq!(daemon.post(&message_body("one job")).status(), 200);
    daemon.stop().expect("clean stop");
    assert_no_processes_with_env(&needle, Duration::from_secs(5));
}

#[test]
fn stop_sequences_end_the_answer_where_they_appear() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let mut body = message_body("count [[slow:20]]");
    body["stop_sequences"] = json!(["word5", "never"]);
    let res = daemon.post(&body);
    assert_eq!(res.status(), 200);
    let reply: Value = res.json().unwrap();
    assert_eq!(
        reply["content"][0]["text"],
        "word0 word1 word2 word3 word4 "
    );
    assert_eq!(reply["stop_reason"], "stop_sequence");
    assert_eq!(reply["stop_sequence"], "word5");

    body["stream"] = json!(true);
    let text = daemon.post(&body).text().unwrap();
    let events = parse_sse(&text);
    assert_eq!(sse_text(&events), "word0 word1 word2 word3 word4 ");
    let delta = &events.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(events.last().unwrap().0, "message_stop");

    // OpenAI's `stop` does the same.
    let chat = json!({"model": "claude-haiku-4-5", "stop": "word2",
                      "messages": [{"role": "user", "content": "count [[slow:20]]"}]});
    let res = daemon.post_to("/v1/chat/completions", &chat);
    let reply: Value = res.json().unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "word0 word1 ");
    assert_eq!(reply["choices"][0]["finish_reason"], "stop");

    // The interrupted worker is cleared and serves the next request.
    assert_eq!(daemon.post(&message_body("after")).status(), 200);
    // An answer ended by a stop sequence ended normally: all four jobs
    // count as completed, none as failed (the worker reports the outcome
    // once the interrupted turn is over, after the client has its answer).
    let health = daemon.wait_health(Duration::from_secs(30), |h| {
        h["jobs"]["completed"].as_u64().unwrap_or(0) + h["jobs"]["failed"].as_u64().unwrap_or(0)
            >= 4
    });
    assert_eq!(health["jobs"]["failed"], 0, "{health}");
    assert_eq!(health["jobs"]["completed"], 4, "{health}");
    assert_eq!(health["restarts"], 0);
}

#[test]
fn thinking_nobody_asked_for_is_not_returned() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let reply: Value = daemon
        .post(&message_body("think anyway [[think]]"))
        .json()
        .unwrap();
    let content = reply["content"].as_array().unwrap();
    assert_eq!(content.len(), 1, "{reply}");
    assert_eq!(content[0]["type"], "text");

    let mut body = message_body("think anyway [[think]]");
    body["stream"] = json!(true);
    let events = parse_sse(&daemon.post(&body).text().unwrap());
    assert!(!events
        .iter()
        .any(|(_, d)| d["delta"]["type"] == "thinking_delta"));
    let starts: Vec<u64> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(starts, [0], "the text block is block 0");
}

#[test]
fn max_tokens_reaches_the_model_per_request() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let sent_max = |upstream: &FakeUpstream| {
        upstream.message_calls().last().unwrap().body["max_tokens"].clone()
    };
    let mut body = message_body("short please");
    body["max_tokens"] = json!(7);
    assert_eq!(daemon.post(&body).status(), 200);
    assert_eq!(sent_max(&upstream), 7);
    body["max_tokens"] = json!(300);
    assert_eq!(daemon.post(&body).status(), 200);
    assert_eq!(sent_max(&upstream), 300);
    // Without a limit (allowed in Chat Completions), the CLI's default again.
    let chat = json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(daemon.post_to("/v1/chat/completions", &chat).status(), 200);
    let default = sent_max(&upstream).as_u64().unwrap();
    assert!(
        default > 300,
        "the CLI's own default, not the last job's: {default}"
    );
    let mut chat = chat;
    chat["max_completion_tokens"] = json!(42);
    assert_eq!(daemon.post_to("/v1/chat/completions", &chat).status(), 200);
    assert_eq!(sent_max(&upstream), 42);
}

#[test]
fn a_reused_worker_sends_nothing_of_the_last_job_nor_of_clear() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("pool.affinity = false"),
        &upstream,
    );
    for (model, text) in [
        ("claude-haiku-4-5", "job one SECRET-A"),
        ("claude-haiku-4-5", "job two"),
        ("claude-sonnet-4-5", "job three, another model"),
    ] {
        let mut body = message_body(text);
        body["model"] = json!(model);
        assert_eq!(daemon.post(&body).status(), 200);
        daemon.wait_ready(Duration::from_secs(10));
    }
    let calls = upstream.message_calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        daemon.health()["restarts"],
        0,
        "one worker served all three"
    );
    for call in &calls[1..] {
        let messages = call.body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "a fresh conversation: {messages:?}");
        let text = call.all_text();
        for trace in [
            "SECRET-A",
            "local-command",
            "<command-name>",
            "/clear",
            "/model",
        ] {
            assert!(!text.contains(trace), "`{trace}` reached the model: {text}");
        }
    }
}
