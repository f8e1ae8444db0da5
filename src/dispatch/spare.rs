//! Background jobs (message batches) run only on spare capacity: a job is
//! taken only when no interactive job is waiting and a worker is free for it
//! right now, so it never enters the queue and never delays an interactive
//! request beyond the job already running. The dispatcher signals whoever
//! feeds it such jobs when a worker may have become free.

use std::sync::Arc;

use tokio::sync::Notify;

use super::*;

/// Run a background job now on a free worker, or hand it back: refused
/// while the dispatcher drains, interactive jobs wait, or no worker is free.
#[derive(Message)]
#[rtype(result = "Result<(), Job>")]
pub struct RunIfIdle(pub Job);

impl Dispatcher {
    /// Pokes `signal` whenever a worker may be free for a background job.
    pub fn with_spare_signal(mut self, signal: Arc<Notify>) -> Self {
        self.spare_signal = Some(signal);
        self
    }

    /// Called after every dispatch round: free workers and nothing queued.
    pub(super) fn signal_spare(&self) {
        if let Some(signal) = &self.spare_signal {
            if self.queue.is_empty() && self.count(SlotState::Ready) > 0 {
                signal.notify_one();
            }
        }
    }

    /// No worker fits the job: make one. A ready worker set up with another
    /// system prompt is retired (its replacement boots blank), unless a
    /// worker is already booting; failing that, the least recently used
    /// bound conversation is let go. Batch work waits meanwhile.
    fn make_room(&mut self, kind: WorkerKind) {
        if self.count(SlotState::Starting) + self.pending_spawns.len() > 0 {
            return;
        }
        if let Some(id) = self
            .workers
            .iter()
            .find(|(_, s)| s.state == SlotState::Ready)
            .map(|(id, _)| *id)
        {
            self.replace(id, kind);
            return;
        }
        if self.count(SlotState::Clearing) > 0 {
            return;
        }
        let oldest = self
            .workers
            .iter()
            .filter(|(_, s)| s.state == SlotState::Bound)
            .filter_map(|(id, s)| s.bound.map(|(_, since)| (since, *id)))
            .min();
        if let Some((_, id)) = oldest {
            self.unbind(id);
        }
    }
}

impl Handler<RunIfIdle> for Dispatcher {
    type Result = Result<(), Job>;

    fn handle(&mut self, RunIfIdle(job): RunIfIdle, _ctx: &mut Context<Self>) -> Self::Result {
        if self.draining || !self.queue.is_empty() || self.is_degraded() {
            return Err(job);
        }
        let kind = WorkerKind::for_job(job.spec.agent);
        let Some(id) = self.pick(&job.spec.system, kind) else {
            self.make_room(kind);
            return Err(job);
        };
        log::debug!("[{}] background job on worker-{id}", job.id);
        self.assign(id, job);
        Ok(())
    }
}
