//! Unit tests of the OpenAI dialect: parsing, translation, bodies, chunks.

use serde_json::{json, Value};

use super::*;
use crate::api::Context;
use crate::job::fixtures::*;
use crate::job::ContentBlock;
use crate::job::{Completion, JobEvent, JobSpec, Usage};

fn parse(body: Value) -> Result<ChatRequest, InvalidRequest> {
    ChatRequest::parse(body.to_string().as_bytes())
}

fn all_text(spec: &JobSpec) -> String {
    spec.prompt
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect()
}

fn finished(stop_reason: &str, usage: Usage) -> JobEvent {
    JobEvent::Finished(Completion {
        content: Vec::new(),
        stop_reason: Some(stop_reason.into()),
        stop_sequence: None,
        usage,
    })
}

#[test]
fn minimal_request_becomes_a_spec() {
    let r =
        parse(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(spec.model, "sonnet");
    assert_eq!(spec.system, "");
    assert_eq!(spec.prompt, vec![json!({"type": "text", "text": "hi"})]);
    assert_eq!(r.response_model("sonnet"), "gpt-4o");
    assert!(!r.is_stream());
}

#[test]
fn system_and_developer_are_merged_into_the_system_prompt() {
    let r = parse(json!({
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "S1"},
            {"role": "developer", "content": [{"type": "text", "text": "D1"}]},
            {"role": "user", "content": "hi", "name": "bob"},
            {"role": "system", "content": "S2"},
        ]
    }))
    .unwrap();
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(spec.system, "S1\n\nD1\n\nS2");
    assert_eq!(spec.model, "claude-haiku-4-5");
    assert!(!all_text(&spec).contains("S1"));
}

#[test]
fn image_parts_become_image_blocks() {
    let r = parse(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]}))
    .unwrap();
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(
        spec.prompt[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        spec.prompt[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );
}

#[test]
fn pdf_file_parts_become_documents() {
    let r = parse(json!({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
        {"type": "text", "text": "summarise"},
    ]}]}))
    .unwrap();
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(spec.prompt[0]["type"], "document");
    assert_eq!(spec.prompt[0]["source"]["data"], "JVBERi0=");
    assert_eq!(spec.prompt[0]["title"], "a.pdf");
}

#[test]
fn history_with_tool_calls_and_results_is_rendered() {
    let r = parse(json!({"messages": [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "thanks"},
    ]}))
    .unwrap();
    let turns = &r.conversation.turns;
    assert_eq!(turns.len(), 4, "the two tool results share one turn");
    assert_eq!(turns[1].blocks[0]["input"], json!({"city": "Paris"}));
    assert_eq!(turns[2].blocks.len(), 2);
    let text = all_text(&r.to_spec(&Context::new("sonnet")));
    assert!(
        text.contains(r#"<tool_use id="call_1" name="get_weather">{"city":"Paris"}</tool_use>"#),
        "{text}"
    );
    assert!(
        text.contains(r#"<tool_result tool_use_id="call_2">25C</tool_result>"#),
        "{text}"
    );
}

#[test]
fn n_above_one_is_refused_by_name() {
    let e = parse(json!({"n": 2, "messages": [{"role": "user", "content": "hi"}]})).unwrap_err();
    assert!(e.0.starts_with("n:"), "{e}");
    assert!(parse(json!({"n": 1, "messages": [{"role": "user", "content": "hi"}]})).is_ok());
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({"model": "x"}), "messages"),
        (json!({"messages": []}), "messages: at least one"),
        (
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]}),
            "messages[0].content[0].image_url.url: unsupported image type",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "messages[0].content[0].text",
        ),
        (
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]}),
            "messages[1].tool_call_id",
        ),
        (
            json!({"messages": [{"role": "assistant", "content": "a", "tool_calls": [{"id": "c"}]}]}),
            "messages[0].tool_calls[0]",
        ),
        (
            json!({"messages": [{"role": "system", "content": "s"}]}),
            "must contain a user message",
        ),
        (
            json!({"response_format": {"type": "yaml"}, "messages": [{"role": "user", "content": "x"}]}),
            "response_format",
        ),
        (json!({"stream": "yes", "messages": []}), "stream"),
    ];
    for (body, expected) in cases {
        let e = parse(body.clone()).unwrap_err();
        assert!(
            e.0.starts_with(expected) || e.0.contains(expected),
            "{body} -> {e}"
        );
    }
    let e = ChatRequest::parse(b"{not json").unwrap_err();
    assert!(e.0.contains("invalid request body"), "{e}");
}

#[test]
fn unknown_and_sampling_fields_are_accepted() {
    let r = parse(json!({
        "model": "opus", "temperature": 0.2, "top_p": 0.9, "stop": ["x"], "seed": 7,
        "user": "u", "max_completion_tokens": 10, "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto",
        "parallel_tool_calls": false, "logit_bias": {}, "store": false,
        "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]
    }))
    .unwrap();
    assert!(r.is_stream() && r.include_usage());
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(spec.model, "opus");
    assert_eq!(spec.thinking_budget, 1_024);
    let r = parse(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert_eq!(
        r.to_spec(&Context::new("sonnet")).thinking_budget,
        0,
        "thinking is off unless asked"
    );
    let e =
        parse(json!({"reasoning_effort": "max", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap_err();
    assert!(e.0.starts_with("reasoning_effort:"), "{e}");
}

#[test]
fn json_response_formats_add_a_system_instruction() {
    let r = parse(json!({
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}},
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    }))
    .unwrap();
    let system = r.to_spec(&Context::new("sonnet")).system;
    assert!(
        system.starts_with("Be brief.\n\nRespond with only a single valid JSON object"),
        "{system}"
    );
    assert!(
        system.contains("`person`") && system.contains(r#""properties""#),
        "{system}"
    );
    assert!(r.meta("sonnet").json_mode);
    let r = parse(json!({"response_format": {"type": "text"}, "messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert_eq!(r.to_spec(&Context::new("sonnet")).system, "");
}

fn text_answer(text: &str, stop_reason: &str) -> Completion {
    Completion {
        content: vec![ContentBlock::Text { text: text.into() }],
        stop_reason: Some(stop_reason.into()),
        stop_sequence: None,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_input_tokens: 3,
            cache_read_input_tokens: 2,
        },
    }
}

#[test]
fn text_response_has_the_openai_shape() {
    let meta = ChatMeta::new("gpt-4o".into());
    let body = completion_body(&meta, &text_answer("Hello!", "end_turn"));
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(
        body["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": null}, "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(body["usage"]["prompt_tokens"], 15);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 20);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert!(body["system_fingerprint"].is_null());
}

#[test]
fn tool_use_response_has_tool_calls() {
    let answer = Completion {
        content: vec![ContentBlock::ToolUse {
            id: "toolu_1".into(),
            name: "get_weather".into(),
            input: json!({"city": "Paris"}),
        }],
        stop_reason: Some("tool_use".into()),
        ..Completion::default()
    };
    let body = completion_body(&ChatMeta::new("m".into()), &answer);
    let message = &body["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn json_mode_unwraps_a_code_fence() {
    let mut meta = ChatMeta::new("m".into());
    meta.json_mode = true;
    let body = completion_body(&meta, &text_answer("```json\n{\"a\": 1}\n```", "end_turn"));
    assert_eq!(body["choices"][0]["message"]["content"], "{\"a\": 1}");
    let body = completion_body(&meta, &text_answer("{\"a\": 1}", "end_turn"));
    assert_eq!(body["choices"][0]["message"]["content"], "{\"a\": 1}");
}

#[test]
fn text_stream_chunks() {
    let mut meta = ChatMeta::new("gpt-4o".into());
    meta.include_usage = true;
    let mut enc = ChunkEncoder::new(meta);
    let mut chunks = Vec::new();
    let events = vec![
        started(),
        thinking_start(0),
        thinking_delta(0, "hmm"),
        text_start(1),
        text_delta(1, "Hel"),
        text_delta(1, "lo"),
        JobEvent::BlockStop { index: 1 },
        finished(
            "end_turn",
            Usage {
                input_tokens: 7,
                output_tokens: 2,
                ..Default::default()
            },
        ),
    ];
    for e in events {
        chunks.extend(enc.chunks(e));
    }
    let ids: Vec<_> = chunks.iter().map(|c| c["id"].clone()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(chunks.len(), 5, "{chunks:#?}");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-4o");
    }
    assert_eq!(
        chunks[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}])
    );
    assert!(chunks[0]["usage"].is_null() && chunks[0].get("usage").is_some());
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "Hel"}));
    assert_eq!(chunks[2]["choices"][0]["delta"], json!({"content": "lo"}));
    assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["prompt_tokens"], 7);
    assert_eq!(chunks[4]["usage"]["total_tokens"], 9);
}

#[test]
fn tool_use_stream_chunks() {
    let mut enc = ChunkEncoder::new(ChatMeta::new("m".into()));
    let mut chunks = Vec::new();
    let events = vec![
        text_start(0),
        text_delta(0, "Checking."),
        tool_start(1, "toolu_1", "get_weather"),
        json_delta(1, "{\"city\":"),
        json_delta(1, "\"Paris\"}"),
        tool_start(2, "toolu_2", "get_time"),
        finished("tool_use", Usage::default()),
    ];
    for e in events {
        chunks.extend(enc.chunks(e));
    }
    let deltas: Vec<_> = chunks
        .iter()
        .map(|c| c["choices"][0]["delta"].clone())
        .collect();
    assert_eq!(deltas[1], json!({"content": "Checking."}));
    assert_eq!(
        deltas[2],
        json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]})
    );
    assert_eq!(
        deltas[3],
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})
    );
    assert_eq!(deltas[5]["tool_calls"][0]["index"], 1);
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "tool_calls");
    assert!(chunks[6].get("usage").is_none(), "no usage unless asked");
    assert_eq!(chunks.len(), 7);
}

#[test]
fn a_failed_stream_sends_the_openai_error_body() {
    let mut enc = ChunkEncoder::new(ChatMeta::new("m".into()));
    let out = enc.chunks(JobEvent::Failed(crate::error::JobError::Timeout(
        "too slow".into(),
    )));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["error"]["message"], "too slow");
    assert_eq!(out[0]["error"]["type"], "server_error");
}

#[test]
fn frames_are_data_only_and_end_with_done() {
    let mut enc = ChunkEncoder::new(ChatMeta::new("m".into()));
    let frames = EventEncoder::encode(
        &mut enc,
        JobEvent::Failed(crate::error::JobError::ShuttingDown),
    );
    assert!(matches!(&frames[0], Frame::Data(v) if v.get("error").is_some()));
    assert_eq!(enc.finish(), vec![Frame::Done]);
    assert_eq!(enc.keepalive(), vec![Frame::Comment("keep-alive")]);
}
