//! What a response reads from the stores (item references, a previous
//! response, as the route looked them up) and how a stored response
//! replays as its events.

use super::super::*;
use super::text_of;
use crate::api::Frame;
use serde_json::{json, Value};

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
