//! A streamed upstream call the CLI may still give up (docs/cli-protocol.md
//! §12): its events held back for a job answered whole, or its failure
//! reported once part of it reached a streaming client.

use super::TurnTranslator;
use crate::error::JobError;
use crate::job::{JobEvent, Usage};

/// A streamed upstream call between its `message_start` and `message_stop`.
#[derive(Debug)]
pub(super) struct OpenCall {
    pub(super) id: String,
    /// Whether any of its blocks went to the client.
    pub(super) sent_blocks: bool,
    /// The translator as it was before the call, restored if the CLI
    /// gives the call up.
    pub(super) started: bool,
    pub(super) usage: Usage,
    pub(super) stop_reason: Option<crate::job::StopReason>,
    pub(super) stop_sequence: Option<String>,
}

impl TurnTranslator {
    /// Holds each streamed call's events back until the call completes, for
    /// a job whose client gets the answer whole: a call the CLI gives up
    /// then leaves no trace in it.
    pub fn holding_back(mut self, hold_back: bool) -> Self {
        self.hold_back = hold_back;
        self
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

    /// Events of the open call: held back, or passed on now.
    pub(super) fn pass(&mut self, events: Vec<JobEvent>) -> Vec<JobEvent> {
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
    pub(super) fn give_up_open_call(&mut self) -> Option<JobEvent> {
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
}

fn is_block_event(event: &JobEvent) -> bool {
    matches!(
        event,
        JobEvent::BlockStart { .. } | JobEvent::BlockDelta { .. } | JobEvent::BlockStop { .. }
    )
}
