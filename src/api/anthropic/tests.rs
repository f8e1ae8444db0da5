use super::*;
use crate::api::Context;
use crate::job::{JobEvent, Usage};

#[test]
fn parses_string_and_block_content() {
    let r = MessagesRequest::parse(
        br#"{"model":"claude-x","max_tokens":5,"system":[{"type":"text","text":"S1"},{"type":"text","text":"S2"}],
            "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"yo"}]},{"role":"user","content":"again"}]}"#,
    )
    .unwrap();
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(spec.system, "S1\n\nS2");
    assert_eq!(spec.model, "claude-x");
    assert!(!spec.prompt.is_empty());
}

#[test]
fn claude_codes_system_messages_and_billing_header() {
    let r = MessagesRequest::parse(
        br#"{"model":"claude-opus-4-8","max_tokens":5,
            "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.197.d7d; cc_entrypoint=sdk-cli;"},
                      {"type":"text","text":"You are Claude Code."}],
            "messages":[{"role":"user","content":"hi"},{"role":"system","content":"agents: Explore"}]}"#,
    )
    .unwrap();
    let spec = r.to_spec(&Context::new("sonnet"));
    assert_eq!(spec.system, "You are Claude Code.");
    let texts: Vec<&str> = spec
        .prompt
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "hi",
            "<system-reminder>\nagents: Explore\n</system-reminder>\n"
        ]
    );
    let e =
        MessagesRequest::parse(br#"{"messages":[{"role":"system","content":"x"}]}"#).unwrap_err();
    assert!(e.0.contains("user message"), "{e}");
    let e = MessagesRequest::parse(
        br#"{"messages":[{"role":"user","content":"hi"},{"role":"system","content":[{"type":"image","source":{"type":"url"}}]}]}"#,
    )
    .unwrap_err();
    assert!(e.0.starts_with("messages[1].content[0].type"), "{e}");
}

#[test]
fn structured_outputs_are_instructed_and_other_output_config_is_ignored() {
    let r = MessagesRequest::parse(
        br#"{"max_tokens":5,"system":"S","output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object","properties":{"n":{"type":"integer"}}}}},
            "context_management":{"edits":[]},"metadata":{"user_id":"u"},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    let system = r.to_spec(&Context::new("sonnet")).system;
    assert!(
        system.starts_with("S\n\nRespond with only a single valid JSON object"),
        "{system}"
    );
    assert!(
        system.contains(r#"{"properties":{"n":{"type":"integer"}},"type":"object"}"#),
        "{system}"
    );
    let r = MessagesRequest::parse(
        br#"{"output_format":{"type":"json_schema","schema":{"type":"object"}},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert!(r
        .to_spec(&Context::new("sonnet"))
        .system
        .contains("JSON Schema"));
    let r = MessagesRequest::parse(
        br#"{"output_config":{"effort":"low"},"messages":[{"role":"user","content":"hi"}]}"#,
    )
    .unwrap();
    assert_eq!(r.to_spec(&Context::new("sonnet")).system, "");
}

#[test]
fn errors_name_the_field() {
    let e =
        MessagesRequest::parse(br#"{"messages":[{"role":"robot","content":"x"}]}"#).unwrap_err();
    assert!(e.0.starts_with("messages[0].role"), "{e}");
    let e = MessagesRequest::parse(br#"{"messages":[]}"#).unwrap_err();
    assert!(e.0.contains("at least one"), "{e}");
    let e = MessagesRequest::parse(br#"{"model":"x"}"#).unwrap_err();
    assert!(e.0.contains("messages"), "{e}");
    let e =
        MessagesRequest::parse(br#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#)
            .unwrap_err();
    assert!(e.0.starts_with("messages[0].content[0]"), "{e}");
    let e = MessagesRequest::parse(b"{not json").unwrap_err();
    assert!(e.0.contains("invalid request body"), "{e}");
}

#[test]
fn stream_opens_with_message_start_and_ends_with_message_stop() {
    let mut enc = StreamEncoder::new(MessageMeta::new("claude-test".into()));
    let first = enc.events(JobEvent::Started {
        model: "m".into(),
        usage: Usage {
            input_tokens: 3,
            ..Default::default()
        },
    });
    assert_eq!(first[0].0, "message_start");
    assert_eq!(first[0].1["message"]["model"], "claude-test");
    assert_eq!(first[0].1["message"]["usage"]["input_tokens"], 3);
    let last = enc.events(JobEvent::Finished(crate::job::Completion {
        content: Vec::new(),
        stop_reason: Some("end_turn".into()),
        stop_sequence: None,
        usage: Usage::default(),
    }));
    assert_eq!(
        last.iter().map(|e| e.0).collect::<Vec<_>>(),
        ["message_delta", "message_stop"]
    );
}
