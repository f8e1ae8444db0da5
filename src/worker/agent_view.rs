//! How an agent job looks to a chat client: one text block holding the
//! agent's text from every model turn as it streams, separated by blank
//! lines; the tool calls and their results stay inside the worker (or show
//! as a line of text each, if configured).

use crate::job::{ContentBlock, Delta, JobEvent};

/// Maps an agent turn's events (many upstream calls, tool blocks) onto one
/// text block at index 0.
#[derive(Debug, Default)]
pub struct AgentView {
    show_tools: bool,
    started: bool,
    /// The single text block has been opened.
    opened: bool,
    /// Some text was written, so the next model turn gets a separator.
    wrote_text: bool,
}

impl AgentView {
    /// A view for one agent job; `show_tools` writes each tool call and its
    /// result as a line of text (`agent.show_tool_activity`).
    pub fn new(show_tools: bool) -> Self {
        Self {
            show_tools,
            ..Self::default()
        }
    }

    fn open(&mut self) -> Vec<JobEvent> {
        if self.opened {
            return Vec::new();
        }
        self.opened = true;
        vec![JobEvent::BlockStart {
            index: 0,
            block: ContentBlock::Text {
                text: String::new(),
            },
        }]
    }

    fn text(&mut self, text: String) -> Vec<JobEvent> {
        let mut out = self.open();
        self.wrote_text |= !text.is_empty();
        out.push(JobEvent::BlockDelta {
            index: 0,
            delta: Delta::Text { text },
        });
        out
    }

    /// The events the client sees for one event of the turn.
    pub fn map(&mut self, event: JobEvent) -> Vec<JobEvent> {
        match event {
            JobEvent::Started { .. } if self.started => Vec::new(),
            JobEvent::Started { .. } => {
                self.started = true;
                vec![event]
            }
            JobEvent::BlockStart {
                block: ContentBlock::Text { .. },
                ..
            } => {
                if self.wrote_text {
                    self.text("\n\n".into())
                } else {
                    self.open()
                }
            }
            JobEvent::BlockStart {
                block: ContentBlock::ToolUse { name, .. },
                ..
            } if self.show_tools => {
                let separator = if self.wrote_text { "\n\n" } else { "" };
                self.text(format!("{separator}[{name}]"))
            }
            JobEvent::BlockDelta {
                delta: Delta::Text { text },
                ..
            } => self.text(text),
            JobEvent::BlockStart { .. }
            | JobEvent::BlockDelta { .. }
            | JobEvent::BlockStop { .. } => Vec::new(),
            JobEvent::Finished(completion) => {
                let mut out = self.open();
                out.push(JobEvent::BlockStop { index: 0 });
                out.push(JobEvent::Finished(completion));
                out
            }
            JobEvent::Failed(_) => {
                let mut out = Vec::new();
                if self.opened {
                    out.push(JobEvent::BlockStop { index: 0 });
                }
                out.push(event);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Completion, Usage};
    use serde_json::json;

    fn text_start(index: usize) -> JobEvent {
        JobEvent::BlockStart {
            index,
            block: ContentBlock::Text {
                text: String::new(),
            },
        }
    }
    fn text(index: usize, t: &str) -> JobEvent {
        JobEvent::BlockDelta {
            index,
            delta: Delta::Text { text: t.into() },
        }
    }

    #[test]
    fn many_turns_become_one_text_block() {
        let mut view = AgentView::new(false);
        let tool = JobEvent::BlockStart {
            index: 1,
            block: ContentBlock::ToolUse {
                id: "t".into(),
                name: "Bash".into(),
                input: json!({}),
            },
        };
        let events = vec![
            text_start(0),
            text(0, "Looking."),
            JobEvent::BlockStop { index: 0 },
            tool,
            JobEvent::BlockStop { index: 1 },
            text_start(2),
            text(2, "Done."),
            JobEvent::BlockStop { index: 2 },
            JobEvent::Finished(Completion {
                content: Vec::new(),
                stop_reason: Some(crate::job::StopReason::EndTurn),
                stop_sequence: None,
                usage: Usage::default(),
            }),
        ];
        let out: Vec<JobEvent> = events.into_iter().flat_map(|e| view.map(e)).collect();
        let starts = out
            .iter()
            .filter(|e| matches!(e, JobEvent::BlockStart { .. }))
            .count();
        assert_eq!(starts, 1);
        let all: String = out
            .iter()
            .filter_map(|e| match e {
                JobEvent::BlockDelta {
                    index: 0,
                    delta: Delta::Text { text },
                } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(all, "Looking.\n\nDone.");
        assert!(matches!(
            out[out.len() - 2],
            JobEvent::BlockStop { index: 0 }
        ));
    }

    #[test]
    fn tool_activity_can_be_shown_as_text() {
        let mut view = AgentView::new(true);
        let out = view.map(JobEvent::BlockStart {
            index: 0,
            block: ContentBlock::ToolUse {
                id: "t".into(),
                name: "Write".into(),
                input: json!({}),
            },
        });
        assert!(out.iter().any(|e| matches!(e, JobEvent::BlockDelta { delta: Delta::Text { text }, .. } if text == "[Write]")));
    }
}
