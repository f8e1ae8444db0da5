//! Background responses of the Responses API with the real CLI: polled
//! while they run, streamed back from any sequence number, cancelled (which
//! frees the worker), kept running when their client leaves, and visible
//! only to the key that made them.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const KEYS: &str = "server.api_keys = [\"key-a\", \"key-b\"]";

fn post(daemon: &Daemon, key: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = client()
        .post(daemon.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

fn get(daemon: &Daemon, key: &str, path: &str) -> (u16, String) {
    let res = client()
        .get(daemon.url(path))
        .bearer_auth(key)
        .send()
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().unwrap())
}

fn get_json(daemon: &Daemon, key: &str, path: &str) -> (u16, Value) {
    let (status, text) = get(daemon, key, path);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls the response until `pred` holds of it.
fn poll(daemon: &Daemon, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get_json(daemon, "key-a", &format!("/v1/responses/{id}"));
        assert_eq!(status, 200, "{body}");
        if pred(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never matched: {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn background(text: &str) -> Value {
    json!({"model": "claude-haiku-4-5", "input": text, "background": true})
}

#[test]
fn a_background_response_is_polled_streamed_back_and_cancelled() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1).with_toml(KEYS), &upstream);

    // Answered at once, before the model has said anything.
    let (status, created) = post(
        &daemon,
        "key-a",
        "/v1/responses",
        &background("[[slow:30]]"),
    );
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["background"], true, "{created}");
    assert!(
        matches!(created["status"].as_str(), Some("queued" | "in_progress")),
        "{created}"
    );
    let id = created["id"].as_str().unwrap().to_string();
    let (status, other) = get_json(&daemon, "key-b", &format!("/v1/responses/{id}"));
    assert_eq!(status, 404, "another key sees nothing: {other}");
    assert_eq!(other["error"]["type"], "invalid_request_error", "{other}");

    // Streamed back from sequence number 3 on, live, to the end.
    let (status, text) = get(
        &daemon,
        "key-a",
        &format!("/v1/responses/{id}?stream=true&starting_after=3"),
    );
    assert_eq!(status, 200);
    let events = parse_sse(&text);
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(sequence.first(), Some(&4), "{text}");
    assert!(
        sequence.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequence:?}"
    );
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "response.completed", "{text}");
    let words = done["response"]["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap();
    assert_eq!(words.split_whitespace().count(), 20, "{done}");
    let polled = poll(&daemon, &id, |r| r["status"] == "completed");
    assert_eq!(polled["output"], done["response"]["output"]);

    // The whole stream again, the same events.
    let (_, again) = get(&daemon, "key-a", &format!("/v1/responses/{id}?stream=true"));
    let again = parse_sse(&again);
    assert_eq!(again[0].0, "response.created");
    assert_eq!(again[4..], events[..], "replayed from memory");

    // Cancelling a completed response: the API's error.
    let (status, err) = post(
        &daemon,
        "key-a",
        &format!("/v1/responses/{id}/cancel"),
        &json!({}),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
    let (status, err) = post(
        &daemon,
        "key-a",
        "/v1/responses/resp_nope/cancel",
        &json!({}),
    );
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");

    // A long one, cancelled while it runs: the worker is let go.
    let (_, slow) = post(
        &daemon,
        "key-a",
        "/v1/responses",
        &background("[[slow:2000]]"),
    );
    let slow_id = slow["id"].as_str().unwrap().to_string();
    poll(&daemon, &slow_id, |r| r["status"] == "in_progress");
    let (status, _) = post(
        &daemon,
        "key-b",
        &format!("/v1/responses/{slow_id}/cancel"),
        &json!({}),
    );
    assert_eq!(status, 404, "another key cannot cancel it");
    let (status, cancelled) = post(
        &daemon,
        "key-a",
        &format!("/v1/responses/{slow_id}/cancel"),
        &json!({}),
    );
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(poll(&daemon, &slow_id, |_| true)["status"], "cancelled");
    let (status, twice) = post(
        &daemon,
        "key-a",
        &format!("/v1/responses/{slow_id}/cancel"),
        &json!({}),
    );
    assert_eq!((status, &twice["status"]), (200, &json!("cancelled")));
    daemon.wait_health(Duration::from_secs(30), |h| h["workers"]["busy"] == 0);
    // The pool's one worker is free again: an interactive request runs.
    let (status, next) = post(
        &daemon,
        "key-a",
        "/v1/responses",
        &json!({"model": "claude-haiku-4-5", "input": "after"}),
    );
    assert_eq!(
        (status, &next["status"]),
        (200, &json!("completed")),
        "{next}"
    );
}

#[test]
fn a_background_response_outlives_its_streaming_client() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let mut body = background("[[slow:50]]");
    body["stream"] = json!(true);
    let mut res = client()
        .post(daemon.url("/v1/responses"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut first = [0u8; 256];
    let n = res.read(&mut first).unwrap();
    let head = String::from_utf8_lossy(&first[..n]).to_string();
    assert!(head.contains("response.created"), "{head}");
    let id = head
        .split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    drop(res);
    let done = poll(&daemon, &id, |r| {
        r["status"] != "queued" && r["status"] != "in_progress"
    });
    assert_eq!(done["status"], "completed", "{done}");
    let text = done["output"][0]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 20, "{done}");
}

#[test]
fn background_responses_are_bounded_and_must_be_stored() {
    let upstream = FakeUpstream::start();
    let cfg = DaemonConfig::real(1).with_toml("responses.max_background = 1");
    let daemon = Daemon::start(cfg, &upstream);
    let (status, err) = post(
        &daemon,
        "",
        "/v1/responses",
        &json!({"input": "x", "background": true, "store": false}),
    );
    assert_eq!(status, 400, "{err}");
    let (_, first) = post(&daemon, "", "/v1/responses", &background("[[slow:1000]]"));
    let (status, err) = post(&daemon, "", "/v1/responses", &background("second"));
    assert_eq!(status, 429, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_background"));
    let id = first["id"].as_str().unwrap();
    let (status, _) = post(
        &daemon,
        "",
        &format!("/v1/responses/{id}/cancel"),
        &json!({}),
    );
    assert_eq!(status, 200);
    let (status, _) = post(&daemon, "", "/v1/responses", &background("third"));
    assert_eq!(status, 200, "a finished run leaves room");
}
