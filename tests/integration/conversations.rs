//! `/v1/conversations` belong to the API key that made them: another key
//! can neither read, list, add to, continue nor delete them.

use crate::common::*;
use serde_json::{json, Value};

const KEYS: &str = "server.api_keys = [\"key-a\", \"key-b\"]";

fn send(
    method: reqwest::Method,
    daemon: &Daemon,
    key: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client().request(method, daemon.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().unwrap();
    let status = res.status().as_u16();
    (status, res.json().unwrap_or(Value::Null))
}

#[test]
fn conversations_are_per_key() {
    use reqwest::Method;
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(1).with_toml(KEYS), &upstream);
    let (status, conv) = send(
        Method::POST,
        &daemon,
        "key-a",
        "/v1/conversations",
        Some(json!({"items": [{"type": "message", "role": "user", "content": "secret ALPHA"}]})),
    );
    assert_eq!(status, 200, "{conv}");
    let id = conv["id"].as_str().unwrap();
    assert!(id.starts_with("conv_"), "{conv}");
    let path = format!("/v1/conversations/{id}");
    let items = format!("{path}/items");
    for (method, path, body) in [
        (Method::GET, path.clone(), None),
        (Method::GET, items.clone(), None),
        (
            Method::POST,
            items.clone(),
            Some(json!({"items": [{"type": "message", "role": "user", "content": "x"}]})),
        ),
        (
            Method::POST,
            path.clone(),
            Some(json!({"metadata": {"a": "b"}})),
        ),
        (
            Method::POST,
            "/v1/responses".to_string(),
            Some(
                json!({"model": "claude-haiku-4-5", "conversation": id, "input": "what is the secret?"}),
            ),
        ),
        (Method::DELETE, path.clone(), None),
    ] {
        let (status, body) = send(method.clone(), &daemon, "key-b", &path, body);
        assert_eq!(status, 404, "{method} {path} with another key: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    let (status, listed) = send(Method::GET, &daemon, "key-a", &items, None);
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert!(
        !upstream
            .message_calls()
            .iter()
            .any(|c| c.all_text().contains("ALPHA")),
        "another key's request read the conversation"
    );
    let (status, _) = send(Method::DELETE, &daemon, "key-a", &path, None);
    assert_eq!(status, 200);
    let (status, _) = send(Method::GET, &daemon, "key-a", &path, None);
    assert_eq!(status, 404);
}

/// The text of a finished Responses stream's `response.completed`.
fn completed_text(events: &[(String, Value)]) -> String {
    let (_, done) = events
        .iter()
        .find(|(name, _)| name == "response.completed")
        .expect("the stream completes");
    let output = done["response"]["output"].as_array().unwrap();
    let message = output.iter().find(|o| o["type"] == "message").unwrap();
    message["content"][0]["text"].as_str().unwrap().to_string()
}

#[test]
fn a_conversations_next_turn_right_after_the_stream_ends_sees_the_turn_before() {
    use reqwest::Method;
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::fake(2), &upstream);
    let (status, conv) = send(
        Method::POST,
        &daemon,
        "",
        "/v1/conversations",
        Some(json!({})),
    );
    assert_eq!(status, 200, "{conv}");
    let id = conv["id"].as_str().unwrap();
    let items = format!("/v1/conversations/{id}/items?order=asc");
    // The turn's items are written behind the stream; the very next
    // requests of the conversation read them.
    let streamed = daemon.post_to(
        "/v1/responses",
        &json!({"model": "claude-haiku-4-5", "conversation": id, "stream": true,
                "input": "first turn PELICAN"}),
    );
    assert_eq!(streamed.status(), 200);
    let first = completed_text(&parse_sse(&streamed.text().unwrap()));
    let (status, listed) = send(Method::GET, &daemon, "", &items, None);
    assert_eq!(status, 200, "{listed}");
    let roles: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["role"])
        .collect();
    assert_eq!(roles, [&json!("user"), &json!("assistant")], "{listed}");
    assert!(listed.to_string().contains(&first), "{listed}");
    let streamed = daemon.post_to(
        "/v1/responses",
        &json!({"model": "claude-haiku-4-5", "conversation": id, "stream": true,
                "input": "second turn [[history]]"}),
    );
    let second = completed_text(&parse_sse(&streamed.text().unwrap()));
    assert!(
        second.contains("PELICAN") && second.contains("second turn"),
        "the second turn's conversation lacked the first: {second}"
    );
    let (_, listed) = send(Method::GET, &daemon, "", &items, None);
    assert_eq!(listed["data"].as_array().unwrap().len(), 4, "{listed}");
}
