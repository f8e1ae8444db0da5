//! A conversation too long for the model's context is the client's error:
//! 400 `invalid_request_error` in every dialect (a batch request: errored
//! with that error), never a timeout. The fake upstream refuses a request
//! over its context window as the real API does ("prompt is too long: N
//! tokens > M maximum"), which the CLI reports as "Prompt is too long".

use crate::common::*;
use serde_json::{json, Value};

/// `n` alternating user/assistant messages ending with a user one.
fn messages(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": format!("message number {i} of a very long chat")})
        })
        .collect()
}

fn assert_too_long(context: &str, status: u16, body: &Value) {
    assert_eq!(status, 400, "{context}: {body}");
    assert_eq!(
        body["error"]["type"], "invalid_request_error",
        "{context}: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Prompt is too long"), "{context}: {body}");
}

#[test]
fn a_conversation_over_the_context_window_is_a_400_in_every_dialect() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let history = messages(100_001);
    let model = "claude-haiku-4-5";
    let cases = [
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 64, "messages": history}),
        ),
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 64, "stream": true, "messages": history}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": model, "messages": history}),
        ),
        ("/v1/responses", json!({"model": model, "input": history})),
    ];
    for (path, body) in cases {
        let context = format!("{path} stream={}", body["stream"]);
        let res = daemon.post_to(path, &body);
        let status = res.status().as_u16();
        let body: Value = res.json().unwrap_or(Value::Null);
        assert_too_long(&context, status, &body);
    }
    assert_eq!(upstream.message_calls().len(), 4, "one refused call each");

    // A batch request: errored, with the same error.
    let res = daemon.post_to(
        "/v1/messages/batches",
        &json!({"requests": [{"custom_id": "long",
            "params": {"model": model, "max_tokens": 64, "messages": history}}]}),
    );
    let batch: Value = res.json().unwrap();
    let id = batch["id"].as_str().expect("a batch id").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let batch = loop {
        let batch = blocking_get_json(&daemon.url(&format!("/v1/messages/batches/{id}")));
        if batch["processing_status"] == "ended" {
            break batch;
        }
        assert!(std::time::Instant::now() < deadline, "never ended: {batch}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let text = client()
        .get(batch["results_url"].as_str().unwrap())
        .send()
        .unwrap()
        .text()
        .unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["result"]["type"], "errored", "{line}");
    assert_too_long("batch", 400, &line["result"]["error"]);
}
