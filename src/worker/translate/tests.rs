//! The translator over the real CLI's recorded sessions.

use super::*;
use crate::error::JobError;
use crate::job::Delta;
use crate::worker::protocol::parse_line;

/// The lines the CLI wrote in a recorded session, typed.
fn recorded(fixture: &str) -> Vec<CliMessage> {
    let path = format!(
        "{}/tests/fixtures/cli-transcripts/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("<< "))
        .map(|line| parse_line(line.as_bytes()).unwrap().unwrap())
        .collect()
}

/// Feeds the CLI side of a recorded transcript through a translator,
/// up to the first terminal event.
fn translate(fixture: &str) -> Vec<JobEvent> {
    translate_holding(fixture, false)
}

fn text_of(events: &[JobEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            JobEvent::BlockDelta {
                delta: Delta::Text { text },
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn streamed_turn_is_forwarded_once_with_result_usage() {
    let events = translate("01-turn-probe-init-clear.jsonl");
    assert!(matches!(events[0], JobEvent::Started { .. }));
    assert_eq!(text_of(&events), "Here is a short answer.");
    let starts = events
        .iter()
        .filter(|e| matches!(e, JobEvent::BlockStart { .. }))
        .count();
    assert_eq!(starts, 1, "assistant line must not duplicate the block");
    match events.last().unwrap() {
        JobEvent::Finished(c) => {
            assert_eq!(c.stop_reason, Some(crate::job::StopReason::EndTurn));
            assert_eq!(c.usage.input_tokens, 17);
            assert_eq!(c.usage.output_tokens, 6);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn upstream_error_becomes_a_typed_failure() {
    let events = translate("02-upstream-error-400.jsonl");
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        JobEvent::Failed(JobError::Upstream { status, message }) => {
            assert_eq!(*status, Some(400));
            assert!(message.contains("400"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cli_without_credentials_fails_on_credentials() {
    // No API status here: only the made-up assistant line's `error`
    // tells a missing login from an upstream timeout.
    let events = translate("07-not-logged-in.jsonl");
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        JobEvent::Failed(JobError::Credentials(message)) => {
            assert_eq!(message, "Not logged in · Please run /login");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn interrupted_turn_fails_after_partial_text() {
    let events = translate("04-interrupt-mid-stream.jsonl");
    assert_eq!(text_of(&events), "word0 word1 word2 ");
    assert!(matches!(
        events.last(),
        Some(JobEvent::Failed(JobError::TurnFailed(_)))
    ));
}

#[test]
fn thinking_blocks_and_signature_are_kept() {
    let events = translate("05-thinking-and-usage.jsonl");
    assert!(events.iter().any(|e| matches!(
        e,
        JobEvent::BlockStart {
            index: 0,
            block: ContentBlock::Thinking { .. }
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        JobEvent::BlockDelta { index: 0, delta: Delta::Signature { signature } } if signature == "sig"
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        JobEvent::BlockStart {
            index: 1,
            block: ContentBlock::Text { .. }
        }
    )));
}

#[test]
fn caller_tool_calls_name_the_node_in_their_ids_and_lose_the_mcp_prefix() {
    let mut t =
        TurnTranslator::with_tools(Some("mcp__caller_ab12__".into()), "n1", Usage::default());
    let mut events = Vec::new();
    for msg in recorded("06-sdk-mcp-parallel-tool-calls.jsonl") {
        // The first tools/call ends the job; stop where it arrives.
        if matches!(&msg, CliMessage::ControlRequest {
            request: crate::worker::protocol::CliRequest::McpMessage { message, .. }, ..
        } if message["method"] == "tools/call")
        {
            break;
        }
        events.extend(t.on_message(&msg));
    }
    let tools: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            JobEvent::BlockStart {
                block: ContentBlock::ToolUse { id, name, .. },
                ..
            } => Some((id.clone(), name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tools,
        [
            (
                "toolu_n1_fake000007_0".to_string(),
                "get_weather".to_string()
            ),
            (
                "toolu_n1_fake000007_1".to_string(),
                "get_weather".to_string()
            )
        ]
    );
    // The parked turn is matched by the CLI's own ids.
    assert_eq!(t.tool_ids(), ["toolu_fake000007_0", "toolu_fake000007_1"]);
    let paused = t.pause_for_tools();
    assert_eq!(paused.stop_reason, Some(crate::job::StopReason::ToolUse));
    assert_eq!(paused.usage.input_tokens, 17);
}

/// [`translate`] with a translator holding back (a job answered whole)
/// or not (a streamed one).
fn translate_holding(fixture: &str, hold_back: bool) -> Vec<JobEvent> {
    let mut translator = TurnTranslator::default().holding_back(hold_back);
    let mut events = Vec::new();
    for msg in recorded(fixture) {
        let out = translator.on_message(&msg);
        let done = out.iter().any(JobEvent::is_terminal);
        events.extend(out);
        if done {
            break;
        }
    }
    events
}

fn blocks(events: &[JobEvent]) -> Vec<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            JobEvent::BlockStart { index, .. } => Some(*index),
            _ => None,
        })
        .collect()
}

#[test]
fn a_whole_answer_keeps_only_the_repeat_of_a_broken_stream() {
    for fixture in [
        "stream-cut-text-cut.jsonl",
        "stream-cut-error-event.jsonl",
        "stream-cut-same-id.jsonl",
    ] {
        let events = translate_holding(fixture, true);
        let text = text_of(&events);
        assert!(text.starts_with("Hello! You said: "), "{fixture}: {text}");
        assert!(!text.contains("part0"), "{fixture}: {text}");
        assert_eq!(blocks(&events), [0], "{fixture}: {events:?}");
        match events.last().unwrap() {
            // The repeat's usage: the result's is all zero.
            JobEvent::Finished(c) => assert!(c.usage.output_tokens > 1, "{fixture}: {c:?}"),
            other => panic!("{fixture}: {other:?}"),
        }
    }
}

#[test]
fn a_whole_answer_offers_only_the_repeats_tool_call() {
    let events = translate_holding("stream-cut-tool-cut.jsonl", true);
    let tools: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            JobEvent::BlockStart {
                block: ContentBlock::ToolUse { id, .. },
                ..
            } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    // toolu_fake_6 was cut mid-JSON; toolu_fake_8 is the repeat's.
    assert_eq!(tools, ["toolu_fake_8"]);
    // The late end of the broken stream (after the tool ran) adds no
    // block stop of its own, and the answer after the tool is whole.
    let stops = events
        .iter()
        .filter(|e| matches!(e, JobEvent::BlockStop { .. }))
        .count();
    assert_eq!(stops, blocks(&events).len(), "{events:?}");
    assert!(text_of(&events).starts_with("Tool results: "));
}

#[test]
fn a_streamed_answer_ends_in_an_error_once_part_of_a_broken_call_went_out() {
    for fixture in [
        "stream-cut-text-cut.jsonl",
        "stream-cut-same-id.jsonl",
        "stream-cut-tool-cut.jsonl",
    ] {
        let mut translator = TurnTranslator::default();
        let mut events = Vec::new();
        for msg in recorded(fixture) {
            events.extend(translator.on_message(&msg));
            if translator.take_broken_off() {
                break;
            }
        }
        assert!(
            matches!(
                events.last(),
                Some(JobEvent::Failed(JobError::UpstreamBroken(_)))
            ),
            "{fixture}: {events:?}"
        );
        assert!(
            !text_of(&events).contains("Hello!"),
            "{fixture}: {events:?}"
        );
    }
}

#[test]
fn a_break_after_a_whole_block_and_a_dropped_connection_are_upstream_failures() {
    for fixture in [
        "stream-cut-cut-after-a-block.jsonl",
        "stream-cut-drop.jsonl",
    ] {
        let events = translate_holding(fixture, true);
        assert!(
            matches!(
                events.last(),
                Some(JobEvent::Failed(JobError::UpstreamBroken(_)))
            ),
            "{fixture}: {events:?}"
        );
    }
}

#[test]
fn non_streamed_blocks_are_synthesised() {
    let line = r#"{"type":"assistant","message":{"id":"msg_b","model":"m","content":[{"type":"text","text":"whole"}],"usage":{"input_tokens":3,"output_tokens":1}}}"#;
    let mut t = TurnTranslator::default();
    let events = t.on_message(&parse_line(line.as_bytes()).unwrap().unwrap());
    assert!(matches!(events[0], JobEvent::Started { .. }));
    assert_eq!(text_of(&events), "whole");
    assert!(matches!(
        events.last(),
        Some(JobEvent::BlockStop { index: 0 })
    ));
}
