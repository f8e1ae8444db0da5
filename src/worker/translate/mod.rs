//! Turns the CLI's stdout lines for one turn into [`JobEvent`]s: here the
//! line dispatch and block renumbering, in `open_call` a streamed call the
//! CLI may give up, in `outcome` how the turn ended.
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

mod open_call;
mod outcome;
#[cfg(test)]
mod tests;

pub use outcome::result_error;

use open_call::OpenCall;
use outcome::add_usage;

use super::protocol::{ApiStreamEvent, AssistantMessage, CliMessage};
use crate::job::{ContentBlock, JobEvent, Usage};

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

    /// Whether the turn has produced anything for the client yet.
    pub fn has_output(&self) -> bool {
        self.started
    }

    /// The CLI's ids of the tool_use blocks of the latest upstream call.
    pub fn tool_ids(&self) -> &[String] {
        &self.tool_ids
    }

    /// A tool_use block as the client sees it: its own tool name, and an id
    /// naming this node.
    fn rename_tool(&self, block: ContentBlock) -> ContentBlock {
        let ContentBlock::ToolUse { id, name, input } = block else {
            return block;
        };
        let name = match &self.tool_prefix {
            Some(prefix) => name.strip_prefix(prefix.as_str()).unwrap_or(&name),
            None => &name,
        };
        ContentBlock::ToolUse {
            id: match &self.node {
                Some(node) => crate::node::client_tool_use_id(node, &id),
                None => id,
            },
            name: name.to_string(),
            input,
        }
    }

    fn note_block(&mut self, block: &ContentBlock) {
        if let ContentBlock::ToolUse { id, .. } = block {
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
            ApiStreamEvent::Ping => Vec::new(),
            ApiStreamEvent::Unknown(event) => {
                log::info!(
                    "a new kind of upstream stream event ignored: {}",
                    event.kind
                );
                Vec::new()
            }
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
            let Some((start, delta)) = block.clone().into_stream() else {
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
}
