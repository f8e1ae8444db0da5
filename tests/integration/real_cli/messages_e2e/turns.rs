//! A conversation's turns reach the model, and only its own: the system
//! prompt and usage, streaming as produced, every earlier turn, nothing of
//! another job or of the worker's last one.

use super::*;

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
