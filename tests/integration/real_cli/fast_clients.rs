//! Clients that send their next request the instant a response ends (a tool
//! answered from a local function, a scripted second turn), with the real
//! CLI on a pool of 2: every continuation must reach the worker holding its
//! turn or conversation, nothing may stall, and every worker is free after.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

const ROUNDS: usize = 200;

/// A client whose requests fail rather than wait out a stall.
fn fast_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn post(http: &reqwest::blocking::Client, daemon: &Daemon, body: &Value) -> Value {
    let res = http
        .post(daemon.url("/v1/messages"))
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("a stalled or failed request: {e}"));
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The latest upstream call whose latest user message mentions `needle`.
fn call_with(upstream: &FakeUpstream, needle: &str) -> crate::common::upstream::Recorded {
    upstream
        .last_message_call(|c| {
            let messages = c.body["messages"].as_array().unwrap();
            let last = messages.iter().rev().find(|m| m["role"] == "user").unwrap();
            last["content"].to_string().contains(needle)
        })
        .unwrap_or_else(|| panic!("no upstream call carried {needle}"))
}

/// Waits until no worker is busy or parked and nothing is queued.
fn wait_all_free(daemon: &Daemon) {
    daemon.wait_health(Duration::from_secs(30), |h| {
        h["workers"]["busy"] == 0
            && h["workers"]["parked"] == 0
            && h["queue"]["depth"] == 0
            && h["workers"]["total"] == 2
    });
}

#[test]
fn instant_tool_results_always_resume_their_parked_turn() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let http = fast_client();
    let tools = json!([{"name": "lookup", "description": "Looks things up",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}}]);
    let mut misses = Vec::new();
    for round in 0..ROUNDS {
        let mut request = json!({
            "model": "claude-haiku-4-5", "max_tokens": 100, "tools": tools,
            "messages": [{"role": "user", "content": format!("round {round} [[tool:lookup]]")}]
        });
        let reply = post(&http, &daemon, &request);
        assert_eq!(reply["stop_reason"], "tool_use", "{reply}");
        let tool_use = tool_use(&reply).clone();
        let result = format!("RESULT-{round}");
        let messages = request["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": reply["content"]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_use["id"], "content": result}]}));
        let done = post(&http, &daemon, &request);
        // Resumed in place: the CLI sent the result as a structured block
        // of the live turn, not the whole history rendered as text.
        let call = call_with(&upstream, &result);
        let rendered = call.all_text().contains("<conversation_history>");
        let last = call.body["messages"].as_array().unwrap().last().unwrap();
        if rendered
            || last["content"][0]["type"] != "tool_result"
            || done["content"][0]["text"] != format!("Tool results: {result}")
        {
            misses.push(round);
        }
    }
    assert!(
        misses.is_empty(),
        "rounds that missed their parked turn: {misses:?}"
    );
    wait_all_free(&daemon);
}

#[test]
fn instant_second_turns_always_reach_their_bound_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(2), &upstream);
    let http = fast_client();
    let mut misses = Vec::new();
    for round in 0..ROUNDS {
        let first = json!({"role": "user", "content": format!("conversation {round} opens")});
        let body = |messages: Vec<Value>| json!({"model": "claude-haiku-4-5", "max_tokens": 100, "system": "S", "messages": messages});
        let reply = post(&http, &daemon, &body(vec![first.clone()]));
        let second = format!("conversation {round} goes on");
        post(
            &http,
            &daemon,
            &body(vec![
                first,
                json!({"role": "assistant", "content": reply["content"]}),
                json!({"role": "user", "content": second}),
            ]),
        );
        let call = call_with(&upstream, &second);
        let roles: Vec<&str> = call.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        if roles != ["user", "assistant", "user"]
            || call.all_text().contains("<conversation_history>")
        {
            misses.push(round);
        }
    }
    assert!(
        misses.is_empty(),
        "second turns that missed their worker: {misses:?}"
    );
    wait_all_free(&daemon);
}
