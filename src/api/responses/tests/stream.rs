//! Golden event lists: what the Responses stream sends for each kind of
//! answer, as OpenAI sends it, and the whole body with the same items.

use super::super::*;
use super::parse;
use crate::api::{EventEncoder, Frame};
use crate::error::JobError;
use crate::job::fixtures::*;
use crate::job::{Completion, Delta, JobEvent, Usage};
use serde_json::{json, Value};

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
