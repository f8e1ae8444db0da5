//! Unit tests of the Responses dialect: a request translated into a job
//! (`stream.rs`: golden event lists; `kept.rs`: what a response reads from
//! and leaves to the stores).

use serde_json::{json, Value};

use super::*;
use crate::job::JobSpec;

mod kept;
mod stream;

pub(super) fn parse(body: Value) -> Result<Parsed<ResponseMeta>, ApiError> {
    Responses::parse(body.to_string().as_bytes(), &Context::new("sonnet"))
}

pub(super) fn spec(body: Value) -> JobSpec {
    parse(body).unwrap().spec
}

pub(super) fn text_of(blocks: &[Value]) -> String {
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
