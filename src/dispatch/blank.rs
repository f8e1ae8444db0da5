//! Blank spares: a job with a system prompt no worker holds needs a blank
//! worker, and making one (replacing a worker set up with another prompt)
//! costs a boot of about 0.6 s. So when such a job takes a blank worker, the
//! least recently used idle worker holding another prompt (ready first, then
//! bound, whose conversation is let go) is replaced by a blank one in the
//! background, keeping `pool.blank_spares` blank workers ready or booting:
//! the boot leaves the next new prompt's critical path. A workload with one
//! system prompt never takes a blank worker for a new prompt after its first
//! job, so it never pays for spares. A new conversation of a prompt that an
//! idle worker bound to the same caller's conversation holds clears that
//! worker rather than take a spare (see `routing::pick` and `room`).

use tokio::time::Instant;

use super::pool::Pool;
use crate::worker::report::WorkerState;
use crate::worker::{WorkerId, WorkerKind};

impl Pool {
    /// Whether a job with `system` given to worker `id` takes a blank worker
    /// for a prompt no other live worker holds.
    pub(super) fn is_new_prompt(&self, id: WorkerId, system: &str) -> bool {
        let takes_blank = self
            .workers
            .get(&id)
            .is_some_and(|s| s.state == WorkerState::Ready { prompt: None });
        takes_blank
            && !self
                .workers
                .iter()
                .any(|(other, s)| *other != id && s.state.prompt() == Some(system))
    }

    /// Makes the blank spares due (see the module docs), as far as idle
    /// workers allow now; the rest waits for the next dispatch round.
    pub(super) fn keep_spares(&mut self) {
        let Some(kind) = self.spare_due else {
            return;
        };
        if self.draining || !self.queue.is_empty() {
            // Waiting jobs come first; `cover_queue` frees workers for them.
            return;
        }
        let target = self.spare_target();
        let mut blanks = self.blanks(kind);
        while blanks < target {
            let Some(id) = self.least_recently_used_idle(kind) else {
                return;
            };
            log::info!("worker-{id} replaced by a blank spare for new system prompts");
            self.replace(id, kind);
            blanks += 1;
        }
        self.spare_due = None;
    }

    /// How many blank workers to keep: `pool.blank_spares`, leaving at
    /// least one worker for prompts already held.
    pub(super) fn spare_target(&self) -> usize {
        let pool = &self.settings.pool;
        pool.blank_spares.min(pool.size.saturating_sub(1))
    }

    /// Blank workers of `kind` ready or on their way (booting, replacing a
    /// stopping worker, or a respawn waiting out its backoff).
    pub(super) fn blanks(&self, kind: WorkerKind) -> usize {
        let workers = self
            .workers
            .iter()
            .filter(|(id, s)| match s.state {
                WorkerState::Ready { prompt: None } | WorkerState::Starting => s.kind == kind,
                WorkerState::Stopping => {
                    !self.workers.is_leaving(**id) && s.replace_with.unwrap_or(s.kind) == kind
                }
                _ => false,
            })
            .count();
        workers + self.restarts.pending.len()
    }

    /// The idle worker of `kind` holding a prompt that was used least
    /// recently: ready ones (a prompt only) before bound ones (a
    /// conversation).
    fn least_recently_used_idle(&self, kind: WorkerKind) -> Option<WorkerId> {
        self.workers
            .iter()
            .filter(|(_, s)| s.kind == kind)
            .filter_map(|(id, s)| match s.state {
                WorkerState::Ready { prompt: Some(_) } => Some((false, s.since, *id)),
                WorkerState::Bound { .. } => Some((true, s.since, *id)),
                _ => None,
            })
            .min_by_key(|(bound, since, _): &(bool, Instant, WorkerId)| (*bound, *since))
            .map(|(_, _, id)| id)
    }
}
