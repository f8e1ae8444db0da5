//! Unit tests of the Responses dialect: translation and golden event lists.

use serde_json::{json, Value};

use super::*;
use crate::api::{EventEncoder, Frame};
use crate::error::JobError;
use crate::job::fixtures::*;
use crate::job::{Completion, Delta, JobEvent, JobSpec, Usage};

fn parse(body: Value) -> Result<Parsed<ResponseMeta>, ApiError> {
    Responses::parse(body.to_string().as_bytes(), &Context::new("sonnet"))
}

fn spec(body: Value) -> JobSpec {
    parse(body).unwrap().spec
}

fn text_of(blocks: &[Value]) -> String {
    blocks.iter().filter_map(|b| b["text"].as_str()).collect()
}

#[test]
fn a_string_input_is_one_user_message_and_instructions_the_system_prompt() {
    let parsed =
        parse(json!({"model": "gpt-5", "input": "hi", "instructions": "Be terse."})).unwrap();
    assert_eq!(parsed.spec.system, "Be terse.");
    assert_eq!(parsed.spec.model, "sonnet");
    assert_eq!(
        parsed.spec.prompt,
        vec![json!({"type": "text", "text": "hi"})]
    );
    assert!(!parsed.stream);
    assert_eq!(parsed.spec.thinking_budget, 0);
}

#[test]
fn items_map_roles_calls_and_outputs() {
    let spec = spec(json!({
        "model": "claude-haiku-4-5",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "D"}]},
            {"role": "system", "content": "S"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "weather?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "18C"},
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        "reasoning": {"effort": "low"},
        "max_output_tokens": 100,
    }));
    assert_eq!(spec.system, "D\n\nS");
    assert_eq!(spec.model, "claude-haiku-4-5");
    assert_eq!(spec.thinking_budget, 1_024);
    assert_eq!(spec.max_tokens, Some(100));
    assert_eq!(spec.tool_results.len(), 1);
    assert_eq!(spec.tool_results[0].tool_use_id, "toolu_1");
    assert_eq!(
        spec.tool_results[0].content[0],
        crate::job::ToolContent::text("18C")
    );
    let rendered = text_of(&spec.prompt);
    assert!(rendered.contains("weather?"), "{rendered}");
    assert!(rendered.contains("get_weather"), "{rendered}");
    assert!(spec.prompt.iter().any(|b| b["type"] == "image"));
    let tools = spec.tools.unwrap();
    assert_eq!(tools.tools[0]["name"], "get_weather");
}

#[test]
fn namespaced_custom_and_hosted_tools() {
    let (defs, names) = tools::tool_defs(&[
        json!({"type": "namespace", "name": "agents", "description": "d", "tools": [
            {"type": "function", "name": "spawn", "parameters": {"type": "object"}},
        ]}),
        json!({"type": "custom", "name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}}),
        json!({"type": "web_search"}),
    ])
    .unwrap();
    let names_seen: Vec<_> = defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names_seen, ["agents__spawn", "apply_patch"]);
    assert_eq!(
        names.caller("agents__spawn").namespace.as_deref(),
        Some("agents")
    );
    assert_eq!(names.caller("agents__spawn").name, "spawn");
    assert!(names.caller("apply_patch").custom);
    assert_eq!(defs[1].input_schema["required"], json!(["input"]));
    assert!(defs[1].input_schema["properties"]["input"]["description"]
        .as_str()
        .unwrap()
        .contains("start: x"));
}

#[test]
fn bad_requests_name_the_field() {
    let err = |body: Value| parse(body).unwrap_err();
    assert!(
        err(json!({"input": [{"type": "message", "role": "robot", "content": "x"}]}))
            .message
            .starts_with("input[0].role")
    );
    assert!(
        err(json!({"input": [{"type": "function_call_output", "output": "x"}]}))
            .message
            .starts_with("input[0].call_id")
    );
    assert!(err(json!({"input": []})).message.contains("user message"));
    assert!(parse(json!({"input": "x", "background": true})).is_ok());
    assert!(
        err(json!({"input": "x", "background": true, "store": false}))
            .message
            .starts_with("background")
    );
    assert!(err(json!({"input": "x", "reasoning": {"effort": "max"}}))
        .message
        .starts_with("reasoning.effort"));
    let missing = err(json!({"input": "x", "previous_response_id": "resp_nope"}));
    assert_eq!(missing.param, Some("previous_response_id"));
    assert_eq!(missing.body()["error"]["param"], "previous_response_id");
}

fn meta() -> ResponseMeta {
    parse(
        json!({"model": "gpt-5", "input": "hi", "store": false, "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object"}},
        ]}),
    )
    .unwrap()
    .meta
}

fn finished(stop_reason: &str) -> JobEvent {
    JobEvent::Finished(Completion {
        content: Vec::new(),
        stop_reason: Some(stop_reason.into()),
        stop_sequence: None,
        usage: Usage {
            input_tokens: 10,
            output_tokens: 3,
            cache_read_input_tokens: 5,
            ..Usage::default()
        },
    })
}

fn run(events: Vec<JobEvent>) -> Vec<(String, Value)> {
    let mut enc = ResponseStream::new(meta());
    let mut frames = Vec::new();
    for e in events {
        frames.extend(enc.encode(e));
    }
    assert!(enc.finish().is_empty(), "no [DONE]");
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Event(name, data) => (name.to_string(), data),
            other => panic!("not an event frame: {other:?}"),
        })
        .collect()
}

/// The event names of a run, in order.
fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_text_answer_streams_as_openai_sends_it() {
    let events = run(vec![
        started(),
        text_start(0),
        text_delta(0, "Hel"),
        text_delta(0, "lo"),
        JobEvent::BlockStop { index: 0 },
        finished("end_turn"),
    ]);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "{name}");
        assert_eq!(data["type"], name.as_str());
    }
    assert_eq!(events[6].1["text"], "Hello");
    let done = &events[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["object"], "response");
    assert_eq!(done["model"], "gpt-5");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["output"][0]["id"], events[2].1["item"]["id"]);
    assert_eq!(done["usage"]["input_tokens"], 15);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 5);
    assert_eq!(done["usage"]["total_tokens"], 18);
}

#[test]
fn a_call_streams_its_arguments_and_ends_the_response() {
    let events = run(vec![
        tool_start(0, "toolu_9", "f"),
        json_delta(0, "{\"a\":"),
        json_delta(0, "1}"),
        JobEvent::BlockStop { index: 0 },
        finished("tool_use"),
    ]);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let item = &events[6].1["item"];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["call_id"], "toolu_9");
    assert_eq!(item["name"], "f");
    assert_eq!(item["arguments"], "{\"a\":1}");
}

#[test]
fn thinking_streams_as_a_reasoning_summary_and_limits_end_incomplete() {
    let events = run(vec![
        thinking_start(0),
        thinking_delta(0, "hmm"),
        JobEvent::BlockDelta {
            index: 0,
            delta: Delta::Signature {
                signature: "sig".into(),
            },
        },
        JobEvent::BlockStop { index: 0 },
        finished("max_tokens"),
    ]);
    assert_eq!(
        names(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    let done = &events[8].1["response"];
    assert_eq!(done["status"], "incomplete");
    assert_eq!(done["incomplete_details"]["reason"], "max_output_tokens");
    assert_eq!(done["output"][0]["summary"][0]["text"], "hmm");
}

#[test]
fn a_failure_ends_the_stream_with_response_failed() {
    let events = run(vec![JobEvent::Failed(JobError::Upstream {
        status: Some(429),
        message: "slow down".into(),
    })]);
    let last = events.last().unwrap();
    assert_eq!(last.0, "response.failed");
    assert_eq!(last.1["response"]["status"], "failed");
    assert_eq!(last.1["response"]["error"]["code"], "rate_limit_exceeded");
}

#[test]
fn a_silent_model_still_gets_response_created_then_comments() {
    let mut enc = ResponseStream::new(meta());
    let first = enc.keepalive();
    assert!(matches!(&first[0], Frame::Event("response.created", _)));
    assert_eq!(enc.keepalive(), vec![Frame::Comment("keep-alive")]);
}

#[test]
fn the_body_has_the_same_items() {
    let JobEvent::Finished(mut answer) = finished("tool_use") else {
        unreachable!()
    };
    answer.content = serde_json::from_value(json!([
        {"type": "text", "text": "Calling."},
        {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {"x": 1}},
    ]))
    .unwrap();
    let body = Responses::body(&meta(), &answer);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(body["output"][1]["type"], "function_call");
    assert_eq!(body["output"][1]["arguments"], "{\"x\":1}");
    assert_eq!(body["output"][1]["call_id"], "toolu_2");
    assert_eq!(body["store"], false);
    assert_eq!(body["tools"][0]["name"], "f");
}

#[test]
fn item_references_and_previous_responses_come_from_the_lookups() {
    let earlier = StoredResponse {
        id: "resp_1".into(),
        scope: "me".into(),
        response: json!({"output": [{"id": "msg_a", "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "Earlier answer."}]}]}),
        input: vec![
            json!({"id": "msg_q", "type": "message", "role": "user", "content": "First question"}),
        ],
        context: vec![],
    };
    // What the route found in the store (nothing, for another key).
    let found = kept::Lookups {
        can_store: true,
        previous: Some(earlier.clone()),
        conversation: None,
        items: [("msg_a".to_string(), earlier.response["output"][0].clone())].into(),
    };
    let ctx = |lookups: &kept::Lookups| Context {
        scope: "me".into(),
        stored: lookups.clone(),
        ..Context::new("sonnet")
    };
    let parse_with = |lookups: &kept::Lookups, body: Value| {
        let request = ResponsesRequest::parse(body.to_string().as_bytes()).unwrap();
        Responses::translate(request, &ctx(lookups))
    };
    let referencing = json!({"input": [
        {"role": "user", "content": "Q"},
        {"type": "item_reference", "id": "msg_a"},
        {"role": "user", "content": "next"},
    ]});
    let request = ResponsesRequest::parse(referencing.to_string().as_bytes()).unwrap();
    assert_eq!(request.references().items, ["msg_a"]);
    let referenced = parse_with(&found, referencing.clone()).unwrap();
    assert!(text_of(&referenced.spec.prompt).contains("Earlier answer."));
    let continuing = json!({"input": "next", "previous_response_id": "resp_1"});
    let request = ResponsesRequest::parse(continuing.to_string().as_bytes()).unwrap();
    assert_eq!(request.references().previous.as_deref(), Some("resp_1"));
    let continued = parse_with(&found, continuing.clone()).unwrap();
    let text = text_of(&continued.spec.prompt);
    assert!(
        text.contains("First question") && text.contains("Earlier answer."),
        "{text}"
    );
    let nothing = kept::Lookups::default();
    let e = parse_with(&nothing, referencing).unwrap_err();
    assert!(e.message.contains("msg_a"), "{}", e.message);
    let e = parse_with(&nothing, continuing).unwrap_err();
    assert_eq!(e.param, Some("previous_response_id"));
    // Without a response store nothing is kept, whatever `store` says.
    let meta = parse_with(&nothing, json!({"input": "x"})).unwrap().meta;
    assert_eq!(
        meta.kept(&json!({"status": "completed", "output": []})),
        None
    );
    let meta = parse_with(&found, json!({"input": "x"})).unwrap().meta;
    let kept = meta
        .kept(&json!({"status": "completed", "output": []}))
        .unwrap();
    assert_eq!(kept.response.unwrap().input[0]["content"][0]["text"], "x");
}

#[test]
fn a_stored_response_replays_as_its_events() {
    let response = json!({"id": "resp_1", "status": "completed", "output": [
        {"type": "message", "id": "msg_1"}, {"type": "function_call", "id": "fc_1"},
    ], "usage": {"input_tokens": 1}});
    let frames = stream::replay(&response);
    let names: Vec<&str> = frames
        .iter()
        .map(|f| match f {
            Frame::Event(name, _) => *name,
            _ => "",
        })
        .collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let Frame::Event(_, last) = &frames[6] else {
        panic!()
    };
    assert_eq!(last["sequence_number"], 6);
    assert_eq!(last["response"], response);
    let Frame::Event(_, first) = &frames[0] else {
        panic!()
    };
    assert_eq!(first["response"]["status"], "in_progress");
    assert_eq!(first["response"]["output"], json!([]));
}

#[test]
fn the_fields_sdks_send_are_checked_and_echoed() {
    let parsed = parse(
        json!({"input": "x", "include": ["reasoning.encrypted_content"],
        "truncation": "auto", "max_tool_calls": 3, "parallel_tool_calls": false,
        "prompt_cache_key": "k", "safety_identifier": "user-1", "service_tier": "auto"}),
    )
    .unwrap();
    let response = parsed
        .meta
        .response("completed", Vec::new(), output::End::default());
    assert_eq!(response["max_tool_calls"], 3);
    assert_eq!(response["safety_identifier"], "user-1");
    assert_eq!(response["truncation"], "auto");
    assert_eq!(response["prompt_cache_key"], "k");
    assert_eq!(response["parallel_tool_calls"], false);
    assert_eq!(response["service_tier"], "default");
    let err = |body: Value| parse(body).unwrap_err();
    assert_eq!(
        err(json!({"input": "x", "service_tier": "gold"}))
            .message
            .split(':')
            .next(),
        Some("service_tier")
    );
    assert_eq!(
        err(json!({"input": "x", "truncation": "middle"}))
            .message
            .split(':')
            .next(),
        Some("truncation")
    );
    assert_eq!(
        err(json!({"input": "x", "include": "all"}))
            .message
            .split(':')
            .next(),
        Some("include")
    );
}
