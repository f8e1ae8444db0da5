//! Live state belongs to the API key that made it, with the real CLI: a
//! session id, a conversation and a parked turn are continued only by
//! requests with the same key; another key takes the normal path and sees
//! nothing of them.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

const KEYS: &str = "server.api_keys = [\"key-a\", \"key-b\"]";

fn send(daemon: &Daemon, key: &str, session: Option<&str>, body: &Value) -> Value {
    let mut req = client()
        .post(daemon.url("/v1/messages"))
        .header("x-api-key", key)
        .json(body);
    if let Some(session) = session {
        req = req.header("x-claude-pool-session", session);
    }
    let res = req.send().unwrap();
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn chat(messages: Value) -> Value {
    json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": "S", "messages": messages})
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// The roles and all text of the latest upstream call.
fn last_call(upstream: &FakeUpstream) -> (Vec<String>, String) {
    let call = upstream.last_message_call(|_| true).unwrap();
    let roles = call.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    (roles, call.all_text())
}

#[test]
fn sessions_and_conversations_are_per_key() {
    let upstream = FakeUpstream::start();
    // Three workers: A's session is never evicted for B's requests.
    let daemon = Daemon::start(DaemonConfig::real(3).with_toml(KEYS), &upstream);
    let first = user("my secret is ALPHA");
    let reply = send(&daemon, "key-a", Some("s-1"), &chat(json!([first])));
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["bound"] == 1);

    // Key B with A's session id: a session of its own.
    send(
        &daemon,
        "key-b",
        Some("s-1"),
        &chat(json!([user("what is my secret?")])),
    );
    let (roles, text) = last_call(&upstream);
    assert_eq!(roles, ["user"], "B must start fresh");
    assert!(!text.contains("ALPHA"), "B saw A's session: {text}");

    // Key B replaying A's whole conversation: the normal path, not A's worker.
    let replay = json!([first, {"role": "assistant", "content": reply["content"]}, user("and?")]);
    send(&daemon, "key-b", None, &chat(replay.clone()));
    let (roles, text) = last_call(&upstream);
    assert_eq!(roles, ["user"], "B's replay is rendered, not continued");
    assert!(text.contains("<conversation_history>"), "{text}");

    // A's session is still A's, on its worker.
    send(
        &daemon,
        "key-a",
        Some("s-1"),
        &chat(json!([user("still me")])),
    );
    let (roles, text) = last_call(&upstream);
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "A continues its session"
    );
    assert!(
        text.contains("ALPHA") && text.contains("still me"),
        "{text}"
    );
}

#[test]
fn a_parked_turn_is_resumed_only_by_its_own_key() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2).with_toml(KEYS), &upstream);
    let tools = json!([{"name": "lookup", "description": "Looks up",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]);
    let request = json!({"model": "claude-haiku-4-5", "max_tokens": 100, "tools": tools,
        "messages": [user("look it up [[tool:lookup]]")]});
    let reply = send(&daemon, "key-a", None, &request);
    assert_eq!(reply["stop_reason"], "tool_use", "{reply}");
    let id = tool_use(&reply)["id"].clone();
    let with_result = |request: &Value, text: &str| {
        let mut r = request.clone();
        let messages = r["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": reply["content"]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": text}]}));
        r
    };

    // Key B answering A's tool call: the fallback path; A's turn stays parked.
    send(&daemon, "key-b", None, &with_result(&request, "FROM-B"));
    let (roles, text) = last_call(&upstream);
    assert_eq!(roles, ["user"], "{text}");
    assert!(text.contains("<conversation_history>") && text.contains("FROM-B"));
    assert_eq!(daemon.health()["workers"]["parked"], 1);

    // A's own results resume A's turn in place.
    let done = send(&daemon, "key-a", None, &with_result(&request, "FROM-A"));
    assert_eq!(done["content"][0]["text"], "Tool results: FROM-A", "{done}");
    let call = upstream.last_message_call(|_| true).unwrap();
    let last = call.body["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(last["content"][0]["type"], "tool_result", "{last}");
    assert_eq!(daemon.health()["workers"]["parked"], 0);
}
