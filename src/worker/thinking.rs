//! Hiding thinking the client did not ask for. The Messages API returns no
//! thinking blocks unless `thinking` was requested, but some models think
//! regardless of the CLI's budget (adaptive thinking); clients reading
//! `content[0].text` must not find a thinking block there. Dropped blocks
//! are cut out of the index sequence so the remaining ones stay contiguous.

use std::collections::HashMap;

use crate::job::{ContentBlock, JobEvent};

/// Drops thinking blocks from a job's events and renumbers the rest.
#[derive(Debug, Default)]
pub struct HideThinking {
    /// Original block index → index the client sees; `None` for a hidden one.
    indexes: HashMap<usize, Option<usize>>,
    next: usize,
}

impl HideThinking {
    /// The event as the client sees it: `None` for one of a thinking block,
    /// others with their block index renumbered.
    pub fn map(&mut self, event: JobEvent) -> Option<JobEvent> {
        match event {
            JobEvent::BlockStart { index, block } => {
                let hidden = matches!(
                    block,
                    ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. }
                );
                let shown = (!hidden).then(|| {
                    self.next += 1;
                    self.next - 1
                });
                self.indexes.insert(index, shown);
                shown.map(|index| JobEvent::BlockStart { index, block })
            }
            JobEvent::BlockDelta { index, delta } => self
                .shown(index)
                .map(|index| JobEvent::BlockDelta { index, delta }),
            JobEvent::BlockStop { index } => {
                self.shown(index).map(|index| JobEvent::BlockStop { index })
            }
            other => Some(other),
        }
    }

    fn shown(&self, index: usize) -> Option<usize> {
        self.indexes.get(&index).copied().unwrap_or(Some(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Delta;

    #[test]
    fn thinking_is_dropped_and_text_moves_to_index_zero() {
        let mut hide = HideThinking::default();
        let events = vec![
            JobEvent::BlockStart {
                index: 0,
                block: ContentBlock::Thinking {
                    thinking: String::new(),
                    signature: None,
                },
            },
            JobEvent::BlockDelta {
                index: 0,
                delta: Delta::Thinking {
                    thinking: "hmm".into(),
                },
            },
            JobEvent::BlockStop { index: 0 },
            JobEvent::BlockStart {
                index: 1,
                block: ContentBlock::Text {
                    text: String::new(),
                },
            },
            JobEvent::BlockDelta {
                index: 1,
                delta: Delta::Text { text: "hi".into() },
            },
            JobEvent::BlockStop { index: 1 },
        ];
        let out: Vec<JobEvent> = events.into_iter().filter_map(|e| hide.map(e)).collect();
        assert_eq!(out.len(), 3);
        assert!(matches!(
            out[0],
            JobEvent::BlockStart {
                index: 0,
                block: ContentBlock::Text { .. }
            }
        ));
        assert!(matches!(out[1], JobEvent::BlockDelta { index: 0, .. }));
        assert!(matches!(out[2], JobEvent::BlockStop { index: 0 }));
    }
}
