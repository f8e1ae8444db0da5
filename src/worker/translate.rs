//! Turns the CLI's stdout lines for one turn into [`JobEvent`]s.
//!
//! Normally the CLI relays the upstream's stream events (`stream_event`) and
//! then writes each finished block again as an `assistant` line; the stream
//! events are forwarded and the duplicates dropped. When the CLI falls back to
//! a non-streaming upstream call there are no stream events, and the blocks
//! are synthesised from the `assistant` lines instead. A turn may make several
//! upstream calls (tool use); block indexes are renumbered to stay unique.
//!
//! When an upstream stream breaks before its first block is complete, the
//! CLI gives the call up and repeats it without streaming; only the repeat
//! counts (docs/cli-protocol.md §12). A
//! streamed call is therefore *open* from its `message_start` to its
//! `message_stop`, and an `assistant` line that is not one of its blocks
//! (another id, or a `stop_reason`: a whole message) ends it as given up.
//! What the client already has of a given-up call cannot be taken back: a
//! job answered whole holds each call's events back until the call
//! completes ([`TurnTranslator::holding_back`]); a streamed one ends with
//! [`JobError::UpstreamBroken`] if blocks of the given-up call went out.

use std::collections::HashSet;

use serde_json::Value;

use super::protocol::{ApiStreamEvent, AssistantMessage, CliMessage, ResultMessage};
use crate::error::JobError;
use crate::job::{BlockStart, Completion, Delta, JobEvent, Usage};

/// Translation state of the turn currently running.
#[derive(Debug, Default)]
pub struct TurnTranslator {
    /// `Started` has been emitted.
    started: bool,
    /// Index given to the first block of the current upstream call.
    index_offset: usize,
    /// Blocks seen so far in the current upstream call.
    blocks_in_call: usize,
    /// Upstream message ids whose blocks arrived as stream events.
    streamed_ids: HashSet<String>,
    /// The message id of the last non-streamed assistant block.
    fallback_id: Option<String>,
    /// Stop reason reported by the last upstream call's `message_delta`.
    stop_reason: Option<crate::job::StopReason>,
    stop_sequence: Option<String>,
    /// `mcp__<server>__`: stripped from tool names so the client sees its own.
    tool_prefix: Option<String>,
    /// This node's id, put into tool_use ids as the client sees them
    /// (`toolu_<node>_…`); `None` keeps the CLI's ids.
    node: Option<String>,
    /// The CLI's ids of the tool_use blocks of the current upstream call.
    tool_ids: Vec<String>,
    /// Usage of the upstream calls seen by this translator, from the stream.
    streamed_usage: Usage,
    /// Usage already reported to earlier jobs of the same CLI turn (a turn
    /// resumed after tool calls); subtracted from the turn's final usage.
    already_reported: Usage,
    /// The CLI said the upstream refused its credentials (or it has none).
    auth_failed: bool,
    /// The streamed upstream call in progress (no `message_stop` yet).
    open: Option<OpenCall>,
    /// Events of the open call are held until it completes (the client
    /// gets the answer whole, so holding costs it nothing).
    hold_back: bool,
    /// The open call's events, while held back.
    held: Vec<JobEvent>,
    /// Some upstream call of this job was a non-streamed one, whose usage
    /// the CLI's `result` leaves out.
    unstreamed_call: bool,
    /// The client got part of a call the CLI gave up: the job ends here.
    broken_off: bool,
}

/// A streamed upstream call between its `message_start` and `message_stop`.
#[derive(Debug)]
struct OpenCall {
    id: String,
    /// Whether any of its blocks went to the client.
    sent_blocks: bool,
    /// The translator as it was before the call, restored if the CLI
    /// gives the call up.
    started: bool,
    usage: Usage,
    stop_reason: Option<crate::job::StopReason>,
    stop_sequence: Option<String>,
}

impl TurnTranslator {
    /// A translator for a job whose tools live on an MCP server with
    /// `tool_prefix`, on node `node`, continuing a turn that already
    /// reported `reported`.
    pub fn with_tools(tool_prefix: Option<String>, node: &str, reported: Usage) -> Self {
        Self {
            tool_prefix,
            node: Some(node.to_string()),
            already_reported: reported,
            ..Self::default()
        }
    }

    /// Holds each streamed call's events back until the call completes, for
    /// a job whose client gets the answer whole: a call the CLI gives up
    /// then leaves no trace in it.
    pub fn holding_back(mut self, hold_back: bool) -> Self {
        self.hold_back = hold_back;
        self
    }

    /// Whether the turn has produced anything for the client yet.
    pub fn has_output(&self) -> bool {
        self.started
    }

    /// The client got blocks of an upstream call the CLI then gave up: the
    /// events just returned end with [`JobError::UpstreamBroken`], and the
    /// rest of the turn is of no use to this job. Reported once.
    pub fn take_broken_off(&mut self) -> bool {
        std::mem::take(&mut self.broken_off)
    }

    /// The events held back of a call still open, as if it completed: the
    /// CLI acts on the call (it runs its tools) before it ends.
    pub fn release_held(&mut self) -> Vec<JobEvent> {
        if let Some(call) = &mut self.open {
            call.sent_blocks |= self.held.iter().any(is_block_event);
        }
        std::mem::take(&mut self.held)
    }

    /// The CLI's ids of the tool_use blocks of the latest upstream call.
    pub fn tool_ids(&self) -> &[String] {
        &self.tool_ids
    }

    /// The job ends here because the model called the caller's tools: the
    /// completion to report, with the usage of this job's upstream calls.
    pub fn pause_for_tools(&self) -> Completion {
        Completion {
            stop_reason: Some(crate::job::StopReason::ToolUse),
            stop_sequence: None,
            usage: self.streamed_usage,
        }
    }

    /// The usage reported by this job so far plus what came before it.
    pub fn reported_usage(&self) -> Usage {
        add_usage(self.already_reported, self.streamed_usage)
    }

    /// A tool_use block as the client sees it: its own tool name, and an id
    /// naming this node.
    fn rename_tool(&self, block: BlockStart) -> BlockStart {
        let BlockStart::ToolUse { id, name, input } = block else {
            return block;
        };
        let name = match &self.tool_prefix {
            Some(prefix) => name.strip_prefix(prefix.as_str()).unwrap_or(&name),
            None => &name,
        };
        BlockStart::ToolUse {
            id: match &self.node {
                Some(node) => crate::node::client_tool_use_id(node, &id),
                None => id,
            },
            name: name.to_string(),
            input,
        }
    }

    fn note_block(&mut self, block: &BlockStart) {
        if let BlockStart::ToolUse { id, .. } = block {
            self.tool_ids.push(id.clone());
        }
    }

    /// Events for one line of the CLI's output (none for most lines).
    pub fn on_message(&mut self, message: &CliMessage) -> Vec<JobEvent> {
        match message {
            CliMessage::StreamEvent { event } => self.on_stream_event(event),
            CliMessage::Assistant { message, error } => {
                self.auth_failed |= error.as_deref() == Some("authentication_failed");
                self.on_assistant(message)
            }
            CliMessage::Result(result) => {
                // A call still open when the turn ends: its events count
                // only if the turn succeeded (the CLI kept its answer).
                let mut events = self.release_held();
                self.open = None;
                let last = self.on_result(result);
                if !matches!(last, JobEvent::Finished(_)) {
                    events.clear();
                }
                events.push(last);
                events
            }
            _ => Vec::new(),
        }
    }

    /// Events of the open call: held back, or passed on now.
    fn pass(&mut self, events: Vec<JobEvent>) -> Vec<JobEvent> {
        match &mut self.open {
            Some(_) if self.hold_back => {
                self.held.extend(events);
                Vec::new()
            }
            Some(call) => {
                call.sent_blocks |= events.iter().any(is_block_event);
                events
            }
            None => events,
        }
    }

    /// The CLI gave up the open call (it repeats it without streaming):
    /// the translator forgets it. Returns the job's failure if the client
    /// already has blocks of it.
    fn give_up_open_call(&mut self) -> Option<JobEvent> {
        let call = self.open.take()?;
        self.held.clear();
        self.streamed_ids.remove(&call.id);
        self.started = call.started;
        self.streamed_usage = call.usage;
        self.stop_reason = call.stop_reason;
        self.stop_sequence = call.stop_sequence;
        // The repeat's blocks take the given-up call's indexes.
        self.blocks_in_call = 0;
        self.tool_ids.clear();
        log::info!(
            "the upstream stream of {} broke off; the CLI repeats the call",
            call.id
        );
        if !call.sent_blocks {
            return None;
        }
        self.broken_off = true;
        Some(JobEvent::Failed(JobError::UpstreamBroken(
            "the upstream's stream broke off after part of the answer was sent; \
             the call was repeated, but what was sent cannot be taken back: retry the request"
                .into(),
        )))
    }

    fn next_call(&mut self) {
        self.index_offset += self.blocks_in_call;
        self.blocks_in_call = 0;
        self.tool_ids.clear();
    }

    fn on_stream_event(&mut self, event: &ApiStreamEvent) -> Vec<JobEvent> {
        match event {
            ApiStreamEvent::MessageStart { message } => {
                if let Some(failed) = self.give_up_open_call() {
                    return vec![failed];
                }
                self.open = Some(OpenCall {
                    id: message.id.clone(),
                    sent_blocks: false,
                    started: self.started,
                    usage: self.streamed_usage,
                    stop_reason: self.stop_reason.clone(),
                    stop_sequence: self.stop_sequence.clone(),
                });
                self.next_call();
                self.streamed_ids.insert(message.id.clone());
                self.streamed_usage = add_usage(
                    self.streamed_usage,
                    Usage {
                        output_tokens: 0,
                        ..message.usage
                    },
                );
                if self.started {
                    return Vec::new();
                }
                self.started = true;
                self.pass(vec![JobEvent::Started {
                    model: message.model.clone(),
                    usage: message.usage,
                }])
            }
            // The late end of a call the CLI gave up (it closes the broken
            // stream when it next calls the upstream): nothing of it counts.
            _ if self.open.is_none() => Vec::new(),
            ApiStreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                self.blocks_in_call = self.blocks_in_call.max(index + 1);
                self.note_block(content_block);
                let start = JobEvent::BlockStart {
                    index: self.index_offset + index,
                    block: self.rename_tool(content_block.clone()),
                };
                self.pass(vec![start])
            }
            ApiStreamEvent::ContentBlockDelta { index, delta } => {
                let delta = JobEvent::BlockDelta {
                    index: self.index_offset + index,
                    delta: delta.clone(),
                };
                self.pass(vec![delta])
            }
            ApiStreamEvent::ContentBlockStop { index } => {
                let stop = JobEvent::BlockStop {
                    index: self.index_offset + index,
                };
                self.pass(vec![stop])
            }
            ApiStreamEvent::MessageDelta { delta, usage } => {
                self.stop_reason = delta.stop_reason.clone();
                self.stop_sequence = delta.stop_sequence.clone();
                if let Some(usage) = usage {
                    self.streamed_usage.output_tokens += usage.output_tokens;
                }
                Vec::new()
            }
            ApiStreamEvent::MessageStop => {
                self.open = None;
                std::mem::take(&mut self.held)
            }
            ApiStreamEvent::Other => Vec::new(),
        }
    }

    fn on_assistant(&mut self, message: &AssistantMessage) -> Vec<JobEvent> {
        if message.is_synthetic() {
            return Vec::new();
        }
        let of_open_call = self
            .open
            .as_ref()
            .is_some_and(|call| call.id == message.id && message.stop_reason.is_none());
        if of_open_call {
            return Vec::new();
        }
        if let Some(failed) = self.give_up_open_call() {
            return vec![failed];
        }
        if self.streamed_ids.contains(&message.id) && message.stop_reason.is_none() {
            return Vec::new();
        }
        self.unstreamed_call = true;
        // A block of a non-streamed upstream call: synthesise its events.
        if self.fallback_id.as_deref() != Some(message.id.as_str()) {
            self.next_call();
            self.fallback_id = Some(message.id.clone());
        }
        let mut events = Vec::new();
        if !self.started {
            self.started = true;
            events.push(JobEvent::Started {
                model: message.model.clone(),
                usage: message.usage,
            });
        }
        if self.blocks_in_call == 0 {
            self.streamed_usage = add_usage(self.streamed_usage, message.usage);
        }
        for block in &message.content {
            let index = self.index_offset + self.blocks_in_call;
            self.blocks_in_call += 1;
            let Some((start, delta)) = split_block(block) else {
                continue;
            };
            self.note_block(&start);
            events.push(JobEvent::BlockStart {
                index,
                block: self.rename_tool(start),
            });
            events.extend(
                delta
                    .into_iter()
                    .map(|delta| JobEvent::BlockDelta { index, delta }),
            );
            events.push(JobEvent::BlockStop { index });
        }
        events
    }

    fn on_result(&mut self, result: &ResultMessage) -> JobEvent {
        if let Some(error) = result_error(result, self.auth_failed) {
            return JobEvent::Failed(error);
        }
        JobEvent::Finished(Completion {
            stop_reason: result
                .stop_reason
                .clone()
                .or_else(|| self.stop_reason.clone()),
            stop_sequence: self.stop_sequence.clone(),
            // The CLI's sum leaves non-streamed calls out; this job's own
            // count has them (and never a given-up call).
            usage: match self.unstreamed_call {
                true => self.streamed_usage,
                false => sub_usage(result.usage, self.already_reported),
            },
        })
    }
}

fn is_block_event(event: &JobEvent) -> bool {
    matches!(
        event,
        JobEvent::BlockStart { .. } | JobEvent::BlockDelta { .. } | JobEvent::BlockStop { .. }
    )
}

fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens + b.input_tokens,
        output_tokens: a.output_tokens + b.output_tokens,
        cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
        cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    }
}

fn sub_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_tokens: a.input_tokens.saturating_sub(b.input_tokens),
        output_tokens: a.output_tokens.saturating_sub(b.output_tokens),
        cache_creation_input_tokens: a
            .cache_creation_input_tokens
            .saturating_sub(b.cache_creation_input_tokens),
        cache_read_input_tokens: a
            .cache_read_input_tokens
            .saturating_sub(b.cache_read_input_tokens),
    }
}

/// The error a `result` line reports, if it reports one. `auth_failed`:
/// the turn's made-up assistant message said the credentials failed, which
/// is the only sign of a CLI that is not logged in at all (no API status).
pub fn result_error(result: &ResultMessage, auth_failed: bool) -> Option<JobError> {
    if !result.is_error && result.subtype == "success" {
        return None;
    }
    let text = result
        .result
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            result
                .errors
                .iter()
                .filter_map(Value::as_str)
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| result.subtype.clone());
    if auth_failed || matches!(result.api_error_status, Some(401 | 403)) {
        return Some(JobError::Credentials(text));
    }
    // No status and no timeout: the connection failed or broke off
    // ("Unable to connect to API (ECONNRESET)", "Connection closed
    // mid-response"); a timeout says "Request timed out".
    if result.api_error_status.is_none()
        && result.subtype == "success"
        && !text.to_ascii_lowercase().contains("timed out")
    {
        return Some(JobError::UpstreamBroken(text));
    }
    if result.api_error_status.is_some() || result.subtype == "success" {
        return Some(JobError::Upstream {
            status: result.api_error_status,
            message: text,
        });
    }
    Some(JobError::TurnFailed(match &result.terminal_reason {
        Some(reason) => format!("{} ({reason})", result.subtype),
        None => result.subtype.clone(),
    }))
}

/// A finished block as its opening plus one delta carrying all of it.
fn split_block(block: &Value) -> Option<(BlockStart, Vec<Delta>)> {
    let string = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
    match block.get("type")?.as_str()? {
        "text" => Some((
            BlockStart::Text {
                text: String::new(),
            },
            vec![Delta::Text {
                text: string("text").to_string(),
            }],
        )),
        "thinking" => Some((
            BlockStart::Thinking {
                thinking: String::new(),
                signature: Some(String::new()),
            },
            vec![
                Delta::Thinking {
                    thinking: string("thinking").to_string(),
                },
                Delta::Signature {
                    signature: string("signature").to_string(),
                },
            ],
        )),
        "redacted_thinking" => Some((
            BlockStart::RedactedThinking {
                data: string("data").to_string(),
            },
            Vec::new(),
        )),
        "tool_use" => Some((
            BlockStart::ToolUse {
                id: string("id").to_string(),
                name: string("name").to_string(),
                input: Value::Object(Default::default()),
            },
            vec![Delta::InputJson {
                partial_json: block
                    .get("input")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "{}".into()),
            }],
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::protocol::parse_line;

    /// Feeds the CLI side of a recorded transcript through a translator,
    /// up to the first terminal event.
    fn translate(fixture: &str) -> Vec<JobEvent> {
        let path = format!(
            "{}/tests/fixtures/cli-transcripts/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut translator = TurnTranslator::default();
        let mut events = Vec::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("<< ")) {
            let msg = parse_line(line.as_bytes()).unwrap().unwrap();
            let out = translator.on_message(&msg);
            let done = out.iter().any(JobEvent::is_terminal);
            events.extend(out);
            if done {
                break;
            }
        }
        events
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
                block: BlockStart::Thinking { .. }
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
                block: BlockStart::Text { .. }
            }
        )));
    }

    #[test]
    fn caller_tool_calls_name_the_node_in_their_ids_and_lose_the_mcp_prefix() {
        let path = format!(
            "{}/tests/fixtures/cli-transcripts/06-sdk-mcp-parallel-tool-calls.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut t =
            TurnTranslator::with_tools(Some("mcp__caller_ab12__".into()), "n1", Usage::default());
        let mut events = Vec::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("<< ")) {
            let msg = parse_line(line.as_bytes()).unwrap().unwrap();
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
                    block: BlockStart::ToolUse { id, name, .. },
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
        let path = format!(
            "{}/tests/fixtures/cli-transcripts/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        let mut translator = TurnTranslator::default().holding_back(hold_back);
        let mut events = Vec::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("<< ")) {
            let msg = parse_line(line.as_bytes()).unwrap().unwrap();
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
                    block: BlockStart::ToolUse { id, .. },
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
            let path = format!(
                "{}/tests/fixtures/cli-transcripts/{fixture}",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(path).unwrap();
            let mut events = Vec::new();
            for line in text.lines().filter_map(|l| l.strip_prefix("<< ")) {
                let msg = parse_line(line.as_bytes()).unwrap().unwrap();
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
}
