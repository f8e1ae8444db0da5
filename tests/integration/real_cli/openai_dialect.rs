//! End to end through the OpenAI dialect: HTTP client → daemon → real
//! Claude CLI → fake upstream. The configured model list is the fast tier's
//! `openai_dialect`.

use crate::common::*;
use serde_json::{json, Value};

/// The `data:` payloads of an OpenAI stream, `[DONE]` as a JSON string.
fn data_frames(text: &str) -> Vec<Value> {
    parse_sse(text).into_iter().map(|(_, data)| data).collect()
}

#[test]
fn non_stream_round_trip() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = daemon.post_to(
        "/v1/chat/completions",
        &json!({
            "model": "claude-haiku-4-5",
            "temperature": 0.3,
            "messages": [
                {"role": "system", "content": "OPENAI-SYS-MARK."},
                {"role": "developer", "content": "Be terse."},
                {"role": "user", "content": "ping openai"}
            ]
        }),
    );
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert!(
        body["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{body}"
    );
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-haiku-4-5");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hello! You said: ping openai");
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    let calls = upstream.message_calls();
    assert_eq!(calls.len(), 1);
    let system = calls[0].system_blocks().join("\n");
    assert!(
        system.contains("OPENAI-SYS-MARK.") && system.contains("Be terse."),
        "system and developer messages must reach the system prompt: {system}"
    );
    assert!(!calls[0].body["messages"]
        .to_string()
        .contains("OPENAI-SYS-MARK"));
}

#[test]
fn stream_round_trip() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);
    let res = daemon.post_to(
        "/chat/completions",
        &json!({
            "model": "gpt-4o",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "count [[words:5]]"}]
        }),
    );
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let frames = data_frames(&text);
    let (done, chunks) = frames.split_last().unwrap();
    assert_eq!(*done, json!("[DONE]"));
    let id = &chunks[0]["id"];
    for chunk in chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(&chunk["id"], id);
        assert_eq!(chunk["model"], "gpt-4o");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "w0 w1 w2 w3 w4 ");
    let (usage, rest) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    let last = rest.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["choices"][0]["delta"], json!({}));
}

#[test]
fn errors_models_and_token_counts() {
    let upstream = FakeUpstream::start();
    let daemon = Daemon::start(DaemonConfig::real(1), &upstream);

    let res = daemon.post_to(
        "/v1/chat/completions",
        &json!({"n": 3, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(res.status(), 400);
    let body: Value = res.json().unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("n:"));

    // An upstream rejection early in a stream still gets a real status.
    let res = daemon.post_to(
        "/v1/chat/completions",
        &json!({"stream": true, "messages": [{"role": "user", "content": "bad [[status:400]]"}]}),
    );
    assert_eq!(res.status(), 400);
    let body: Value = res.json().unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"].get("code").is_some(), "{body}");

    let list = blocking_get_json(&daemon.url("/v1/models"));
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "sonnet"));
    let model: Value = client()
        .get(daemon.url("/models/claude-haiku-4-5"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(model["type"], "model");
    assert_eq!(model["object"], "model");
    let res = client()
        .get(daemon.url("/v1/models/gpt-4o"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.json::<Value>().unwrap()["error"]["type"],
        "not_found_error"
    );

    let res = daemon.post_to("/v1/messages/count_tokens",
        &json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hello, world"}]}),
    );
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().unwrap(), json!({"input_tokens": 14}));
    // Counting never runs a model turn.
    assert_eq!(
        upstream.message_calls().len(),
        1,
        "only the [[status:400]] job"
    );
}
