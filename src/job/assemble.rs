//! Builds a job's whole answer from the events the client gets, in the
//! worker, once: the `Finished` event carries it (see [`Completion`]).

use std::collections::BTreeMap;

use crate::job::{Completion, ContentBlock, Delta, JobEvent, Usage};

/// Collects the blocks of the events it is shown, and puts them into the
/// `Finished` event that ends them.
#[derive(Debug, Default)]
pub struct Assembler {
    blocks: BTreeMap<usize, ContentBlock>,
    /// Tool input arrives as JSON fragments, parsed at the end.
    partial_json: BTreeMap<usize, String>,
    input_usage: Usage,
}

impl Assembler {
    /// Notes one event on its way to the client, in the order they go. A
    /// `Finished` event comes back carrying the whole answer.
    pub fn note(&mut self, event: JobEvent) -> JobEvent {
        match event {
            JobEvent::Finished(completion) => JobEvent::Finished(self.finish(completion)),
            event => {
                self.collect(&event);
                event
            }
        }
    }

    fn collect(&mut self, event: &JobEvent) {
        match event {
            JobEvent::Started { usage, .. } => self.input_usage = *usage,
            JobEvent::BlockStart { index, block } => {
                if let ContentBlock::ToolUse { .. } = block {
                    self.partial_json.insert(*index, String::new());
                }
                self.blocks.insert(*index, block.clone());
            }
            JobEvent::BlockDelta { index, delta } => self.apply(*index, delta),
            JobEvent::BlockStop { .. } | JobEvent::Finished(_) | JobEvent::Failed(_) => {}
        }
    }

    fn apply(&mut self, index: usize, delta: &Delta) {
        let Some(block) = self.blocks.get_mut(&index) else {
            return;
        };
        // In place: a long answer arrives in many small deltas, and copying
        // the text so far for each one would cost quadratic time.
        match (block, delta) {
            (ContentBlock::Text { text }, Delta::Text { text: more }) => text.push_str(more),
            (ContentBlock::Thinking { thinking, .. }, Delta::Thinking { thinking: more }) => {
                thinking.push_str(more)
            }
            (ContentBlock::Thinking { signature, .. }, Delta::Signature { signature: more }) => {
                signature.get_or_insert_with(String::new).push_str(more)
            }
            (_, Delta::InputJson { partial_json }) => {
                if let Some(buf) = self.partial_json.get_mut(&index) {
                    buf.push_str(partial_json);
                }
            }
            // A delta of another kind than its block: the API sends none.
            _ => {}
        }
    }

    /// The answer so far, ending as `completion` says.
    fn finish(&mut self, mut completion: Completion) -> Completion {
        for (index, json_text) in std::mem::take(&mut self.partial_json) {
            if let Some(ContentBlock::ToolUse { input, .. }) = self.blocks.get_mut(&index) {
                *input = serde_json::from_str(&json_text)
                    .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
            }
        }
        // The CLI's result carries the job's usage; fall back to what the
        // stream reported if it had none.
        if completion.usage == Usage::default() {
            completion.usage = self.input_usage;
        }
        completion.content = std::mem::take(&mut self.blocks).into_values().collect();
        completion
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::fixtures::*;

    #[test]
    fn text_and_tool_input_are_assembled() {
        let mut a = Assembler::default();
        let events = vec![
            started(),
            text_start(0),
            text_delta(0, "Hel"),
            text_delta(0, "lo"),
            tool_start(1, "t1", "f"),
            json_delta(1, "{\"a\":"),
            json_delta(1, "1}"),
        ];
        for e in events {
            assert_eq!(a.note(e.clone()), e, "passed on as it is");
        }
        let done = a.note(JobEvent::Finished(Completion {
            stop_reason: Some(crate::job::StopReason::ToolUse),
            usage: Usage {
                input_tokens: 5,
                output_tokens: 2,
                ..Default::default()
            },
            ..Default::default()
        }));
        let JobEvent::Finished(done) = done else {
            panic!("{done:?}")
        };
        assert_eq!(done.text(), "Hello");
        assert!(matches!(
            &done.content[1],
            ContentBlock::ToolUse { input, .. } if *input == serde_json::json!({"a": 1})
        ));
        assert_eq!(done.usage.input_tokens, 5);
    }
}
