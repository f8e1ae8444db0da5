//! The ledger row of a job that no HTTP request carries from start to end
//! (a message batch's request, a turn on a WebSocket): noted as the job's
//! events pass, and made into a [`Record`] when it ends. Requests that are
//! one HTTP exchange get theirs from the audit middleware instead.
// std::time::Instant here: a turn's wall-clock latencies for its ledger row.
#![allow(clippy::disallowed_types)]

use std::time::{Instant, SystemTime};

use serde_json::json;

use super::record::{self, Record};
use crate::job::{Delta, JobEvent, Placed, Usage};

/// A job on its way, noted for its ledger row.
#[derive(Debug)]
pub struct Trail {
    at: SystemTime,
    started: Instant,
    /// What is known from the start: key, route, model asked, …
    row: Record,
    model_served: Option<String>,
    first_content: Option<Instant>,
    /// The input side reported at the start, for a job whose end reports
    /// no usage (as the assembled answer falls back to it).
    started_usage: Usage,
    usage: Option<Usage>,
    /// Where the dispatcher placed the job (account, worker, wait).
    placed: Placed,
    /// With `ledger.record_content`: the request and the answer's text.
    content: Option<(String, String)>,
}

impl Trail {
    /// Starts now: `row` holds what is known already (its timings, status,
    /// usage and placement are filled in at the end), `placed` is the
    /// job's, `request` the request's text when content is recorded.
    pub fn start(row: Record, placed: Placed, request: Option<String>) -> Self {
        Self {
            at: SystemTime::now(),
            started: Instant::now(),
            row,
            model_served: None,
            first_content: None,
            started_usage: Usage::default(),
            usage: None,
            placed,
            content: request.map(|r| (r, String::new())),
        }
    }

    /// Notes what one of the job's events tells.
    pub fn observe(&mut self, event: &JobEvent) {
        match event {
            JobEvent::Started { model, usage } => {
                self.model_served = Some(model.clone());
                self.started_usage = *usage;
            }
            JobEvent::BlockStart { .. } | JobEvent::BlockDelta { .. } => {
                self.first_content.get_or_insert_with(Instant::now);
                if let (
                    JobEvent::BlockDelta {
                        delta: Delta::Text { text },
                        ..
                    },
                    Some((_, answer)),
                ) = (event, &mut self.content)
                {
                    answer.push_str(text);
                }
            }
            JobEvent::Finished(completion) => {
                self.usage = Some(match completion.usage == Usage::default() {
                    true => self.started_usage,
                    false => completion.usage,
                })
            }
            JobEvent::BlockStop { .. } | JobEvent::Failed(_) => {}
        }
    }

    /// The row, ended now with `status` (and `error_type`, the error's type
    /// in the Anthropic vocabulary, for a failure). Its tokens are those the
    /// job's end reported (none if it never finished).
    pub fn finish(self, status: u16, error_type: Option<String>) -> Record {
        let placement = self.placed.get();
        Record {
            at_ms: record::to_ms(self.at),
            model_served: self.model_served,
            account: placement.as_ref().map(|p| p.account.clone()),
            worker: placement.as_ref().map(|p| p.worker),
            queue_ms: placement.map(|p| p.queued.as_millis() as u64),
            status,
            error_type,
            usage: self.usage.unwrap_or_default(),
            ttft_ms: self
                .first_content
                .map(|at| at.saturating_duration_since(self.started).as_millis() as u64),
            duration_ms: self.started.elapsed().as_millis() as u64,
            content: self
                .content
                .map(|(request, answer)| json!({"request": request, "answer": answer}).to_string()),
            ..self.row
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Completion, Placement};

    #[test]
    fn a_trail_becomes_a_row_with_what_its_events_told() {
        let placed = Placed::default();
        let row = Record {
            key: "alice".into(),
            route: "/v1/responses".into(),
            model_asked: Some("claude-haiku-4-5".into()),
            ..Record::default()
        };
        let mut trail = Trail::start(row, placed.clone(), Some("question".into()));
        placed.set(Placement {
            worker: 3,
            account: "x".into(),
            queued: std::time::Duration::from_millis(7),
        });
        trail.observe(&JobEvent::Started {
            model: "claude-haiku-4-5-2".into(),
            usage: Usage::default(),
        });
        trail.observe(&JobEvent::BlockDelta {
            index: 0,
            delta: Delta::Text {
                text: "answer".into(),
            },
        });
        let usage = Usage {
            input_tokens: 11,
            output_tokens: 5,
            ..Usage::default()
        };
        trail.observe(&JobEvent::Finished(Completion {
            content: Vec::new(),
            stop_reason: Some("end_turn".into()),
            stop_sequence: None,
            usage,
        }));
        let row = trail.finish(200, None);
        assert_eq!(row.key, "alice");
        assert_eq!(row.model_served.as_deref(), Some("claude-haiku-4-5-2"));
        assert_eq!(
            (row.account.as_deref(), row.worker, row.queue_ms),
            (Some("x"), Some(3), Some(7))
        );
        assert_eq!(row.usage, usage);
        assert!(row.ttft_ms.is_some_and(|t| t <= row.duration_ms));
        let content: serde_json::Value =
            serde_json::from_str(row.content.as_deref().unwrap()).unwrap();
        assert_eq!(content, json!({"request": "question", "answer": "answer"}));
    }
}
