//! Caller-defined tools end to end, with the real CLI: the model's tool
//! calls come back as `tool_use` (or OpenAI `tool_calls`), the turn stays
//! parked in its worker, and the caller's next request resumes it.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("Looks up {name}"),
           "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}}})
}

fn post(daemon: &Daemon, path: &str, body: &Value) -> Value {
    let res = client().post(daemon.url(path)).json(body).send().unwrap();
    let status = res.status();
    let body: Value = res.json().unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn ask(tools: &[&str], text: &str) -> Value {
    json!({
        "model": "claude-haiku-4-5", "max_tokens": 200,
        "tools": tools.iter().map(|t| tool(t)).collect::<Vec<_>>(),
        "messages": [{"role": "user", "content": text}]
    })
}

/// The follow-up request: the history plus results for every tool_use.
fn answer(mut request: Value, reply: &Value, results: &[(&str, bool)]) -> Value {
    let uses: Vec<&Value> = reply["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), results.len(), "{reply}");
    let blocks: Vec<Value> = uses
        .iter()
        .zip(results)
        .map(|(u, (text, is_error))| json!({"type": "tool_result", "tool_use_id": u["id"], "content": text, "is_error": is_error}))
        .collect();
    let messages = request["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": reply["content"]}));
    messages.push(json!({"role": "user", "content": blocks}));
    request
}

/// The last user message of the last upstream call.
fn last_user_message(upstream: &FakeUpstream) -> Value {
    let calls = upstream.message_calls();
    let call = calls.last().unwrap();
    call.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()
        .clone()
}

#[test]
fn a_tool_call_parks_the_turn_and_the_result_resumes_it() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let request = ask(&["get_weather"], "weather in Lima? [[tool:get_weather]]");
    let response = daemon.post_to("/v1/messages", &request);
    let node = response.headers()["x-claude-pool-node"]
        .to_str()
        .unwrap()
        .to_string();
    let reply: Value = response.json().unwrap();
    assert_eq!(reply["stop_reason"], "tool_use", "{reply}");
    let tool_use = tool_use(&reply);
    assert_eq!(
        tool_use["name"], "get_weather",
        "the caller's own tool name"
    );
    // The upstream's id, tagged with the node that parked the turn.
    let id = tool_use["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("toolu_{node}_fake_")), "{id}");
    assert_eq!(tool_use["input"], json!({"query": "get_weather-input"}));
    // The model saw a real tool, and the CLI's built-ins were not offered.
    let offered = upstream.message_calls()[0].body["tools"].clone();
    assert_eq!(offered.as_array().unwrap().len(), 1, "{offered}");
    assert!(offered[0]["name"]
        .as_str()
        .unwrap()
        .ends_with("__get_weather"));
    let h = daemon.health();
    assert_eq!(h["workers"]["parked"], 1, "{h}");
    assert_eq!(h["workers"]["busy"], 1, "a parked worker counts as busy");

    let follow_up = answer(request, &reply, &[("18C and sunny", false)]);
    let done = post(&daemon, "/v1/messages", &follow_up);
    assert_eq!(done["stop_reason"], "end_turn", "{done}");
    assert_eq!(done["content"][0]["text"], "Tool results: 18C and sunny");
    // Parked path: the result reached the same CLI conversation as a real
    // tool_result block, not as re-sent history.
    let last = last_user_message(&upstream);
    assert_eq!(last["content"][0]["type"], "tool_result", "{last}");
    assert_eq!(
        last["content"][0]["tool_use_id"].as_str().unwrap(),
        id.replacen(&format!("_{node}_"), "_", 1),
        "the CLI gets its own id back"
    );
    assert!(!upstream
        .message_calls()
        .last()
        .unwrap()
        .all_text()
        .contains("<conversation_history>"));
    daemon.wait_ready(Duration::from_secs(5));
    assert_eq!(daemon.health()["restarts"], 0);
}

#[test]
fn parallel_calls_errors_and_several_rounds() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let request = ask(
        &["alpha", "beta"],
        "both please [[tool:alpha]] [[tool:beta]]",
    );
    let reply = post(&daemon, "/v1/messages", &request);
    let names: Vec<&str> = reply["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);

    // Round two: the first result asks for another call.
    let follow_up = answer(
        request,
        &reply,
        &[("A1 [[tool:beta]]", false), ("B1 failed", true)],
    );
    let reply2 = post(&daemon, "/v1/messages", &follow_up);
    assert_eq!(reply2["stop_reason"], "tool_use", "{reply2}");
    let last = last_user_message(&upstream);
    let results = last["content"].as_array().unwrap();
    assert_eq!(results.len(), 2, "both results in one user message: {last}");
    assert_eq!(results[1]["is_error"], true, "{last}");

    let final_request = answer(follow_up, &reply2, &[("B2", false)]);
    let done = post(&daemon, "/v1/messages", &final_request);
    assert_eq!(done["content"][0]["text"], "Tool results: B2");
    // Usage is per request: the last one did not re-count earlier calls.
    assert!(
        done["usage"]["output_tokens"].as_u64().unwrap() <= 4,
        "{done}"
    );
}

#[test]
fn a_streamed_tool_call() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let mut request = ask(&["get_weather"], "stream it [[tool:get_weather]]");
    request["stream"] = json!(true);
    let text = daemon.post(&request).text().unwrap();
    let events = parse_sse(&text);
    let start = events
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(start.1["content_block"]["name"], "get_weather");
    let json: String = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"query": "get_weather-input"})
    );
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events.last().unwrap().0, "message_stop");
}

#[test]
fn openai_tool_calls_round_trip() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let tools = json!([{"type": "function", "function": {"name": "lookup", "description": "Look up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]);
    let mut messages = vec![json!({"role": "user", "content": "find it [[tool:lookup]]"})];
    let reply = post(
        &daemon,
        "/v1/chat/completions",
        &json!({"model": "claude-haiku-4-5", "messages": messages, "tools": tools}),
    );
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{reply}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "lookup");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"query": "lookup-input"}));

    messages.push(choice["message"].clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "found 42"}));
    let body =
        json!({"model": "claude-haiku-4-5", "messages": messages, "tools": tools, "stream": true});
    let text = daemon
        .post_to("/v1/chat/completions", &body)
        .text()
        .unwrap();
    let chunks: Vec<Value> = parse_sse(&text)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.is_object())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Tool results: found 42", "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"));
    // The result went to the parked turn as a real tool_result block.
    assert_eq!(
        last_user_message(&upstream)["content"][0]["type"],
        "tool_result"
    );
}

#[test]
fn after_the_park_times_out_the_history_goes_to_a_fresh_worker() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(1).with_toml("tools.park_timeout_secs = 1"),
        &upstream,
    );
    let request = ask(&["get_weather"], "weather? [[tool:get_weather]]");
    let reply = post(&daemon, "/v1/messages", &request);
    assert_eq!(reply["stop_reason"], "tool_use");
    daemon.wait_health(Duration::from_secs(10), |h| {
        h["workers"]["parked"] == 0 && h["workers"]["ready"] == 1
    });

    let follow_up = answer(request, &reply, &[("RESULT-77", false)]);
    let done = post(&daemon, "/v1/messages", &follow_up);
    assert_eq!(done["stop_reason"], "end_turn", "{done}");
    let seen = upstream.message_calls().last().unwrap().all_text();
    assert!(
        seen.contains("RESULT-77"),
        "the result must reach the model: {seen}"
    );
    assert!(seen.contains("<tool_result"), "rendered as history: {seen}");

    // A result for a call nobody made also takes the fallback path.
    let stray = answer(
        ask(&["get_weather"], "hmm"),
        &json!({"content": [{"type": "tool_use", "id": "toolu_nobody", "name": "get_weather", "input": {}}]}),
        &[("STRAY-5", false)],
    );
    let done = post(&daemon, "/v1/messages", &stray);
    assert_eq!(done["type"], "message");
    assert!(upstream
        .message_calls()
        .last()
        .unwrap()
        .all_text()
        .contains("STRAY-5"));
}

#[test]
fn a_draining_daemon_serves_the_continuation_of_a_parked_turn() {
    let upstream = FakeUpstream::start();
    let mut daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let request = ask(&["get_weather"], "weather in Lima? [[tool:get_weather]]");
    let reply = post(&daemon, "/v1/messages", &request);
    assert_eq!(reply["stop_reason"], "tool_use", "{reply}");
    daemon.wait_health(Duration::from_secs(5), |h| h["workers"]["parked"] == 1);
    // SIGTERM while the only work is the parked turn.
    daemon.begin_stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client()
        .get(daemon.url("/health"))
        .send()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(std::time::Instant::now() < deadline, "never drained");
        std::thread::sleep(Duration::from_millis(50));
    }
    // New work is refused; the parked turn's results are taken.
    let refused = client()
        .post(daemon.url("/v1/messages"))
        .json(&ask(&[], "new work"))
        .send()
        .expect("the listener stays open while draining");
    assert_eq!(refused.status(), 503);
    let follow_up = answer(request, &reply, &[("18C and sunny", false)]);
    let done = post(&daemon, "/v1/messages", &follow_up);
    assert_eq!(done["content"][0]["text"], "Tool results: 18C and sunny");
    assert_eq!(daemon.stop(), Ok(()));
}

/// Posts `body`; returns the status and the JSON body.
fn send(daemon: &Daemon, path: &str, body: &Value) -> (u16, Value) {
    let res = client().post(daemon.url(path)).json(body).send().unwrap();
    (res.status().as_u16(), res.json().unwrap())
}

#[test]
fn a_key_holds_at_most_max_parked_per_key_parks_and_its_oldest_is_released() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(
        DaemonConfig::real(2).with_toml("tools.max_parked_per_key = 1\npool.blank_spares = 0"),
        &upstream,
    );
    let first = ask(&["get_weather"], "weather in Lima? [[tool:get_weather]]");
    let first_reply = post(&daemon, "/v1/messages", &first);
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["parked"] == 1);
    let second = ask(&["get_time"], "time in Oslo? [[tool:get_time]]");
    let second_reply = post(&daemon, "/v1/messages", &second);
    assert_eq!(second_reply["stop_reason"], "tool_use", "{second_reply}");
    // The key's second park released its first: one worker parked, the
    // other cleared and free.
    daemon.wait_health(Duration::from_secs(10), |h| {
        h["workers"]["parked"] == 1 && h["workers"]["busy"] == 1
    });
    // The first turn's results get a clear error, once…
    let late = answer(first, &first_reply, &[("18C", false)]);
    let (status, body) = send(&daemon, "/v1/messages", &late);
    assert_eq!(status, 529, "{body}");
    assert_eq!(body["error"]["type"], "overloaded_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("released") && message.contains("tools.max_parked_per_key"),
        "{message}"
    );
    // …and sent again, it is answered from its history.
    let (status, body) = send(&daemon, "/v1/messages", &late);
    assert_eq!(status, 200, "{body}");
    assert!(upstream
        .message_calls()
        .last()
        .unwrap()
        .all_text()
        .contains("<tool_result"));
    // The second turn is still parked and resumes.
    let done = post(
        &daemon,
        "/v1/messages",
        &answer(second, &second_reply, &[("noon", false)]),
    );
    assert_eq!(done["content"][0]["text"], "Tool results: noon", "{done}");
}

#[test]
fn a_waiting_job_takes_the_oldest_park_of_a_full_pool() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    // An OpenAI client's tool call parks the only worker.
    let request = json!({
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "weather? [[tool:get_weather]]"}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
    });
    let reply = post(&daemon, "/v1/chat/completions", &request);
    let message = reply["choices"][0]["message"].clone();
    assert_eq!(
        reply["choices"][0]["finish_reason"], "tool_calls",
        "{reply}"
    );
    daemon.wait_health(Duration::from_secs(10), |h| h["workers"]["parked"] == 1);
    // Another job is served without waiting out tools.park_timeout_secs.
    let other = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(daemon.url("/v1/messages"))
        .json(&message_body("another client"))
        .send()
        .expect("served while the turn was parked");
    assert_eq!(other.status(), 200);
    // The parked client's results get the error in its own dialect's shape.
    let mut follow_up = request.clone();
    let messages = follow_up["messages"].as_array_mut().unwrap();
    messages.push(message.clone());
    messages.push(
        json!({"role": "tool", "tool_call_id": message["tool_calls"][0]["id"],
                         "content": "18C"}),
    );
    let (status, body) = send(&daemon, "/v1/chat/completions", &follow_up);
    assert_eq!(status, 529, "{body}");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("released to make room"),
        "{body}"
    );
    let (status, body) = send(&daemon, "/v1/chat/completions", &follow_up);
    assert_eq!(status, 200, "replayed from its history: {body}");
}
