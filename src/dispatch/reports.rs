//! What the dispatcher makes of its workers' reports: the slot's state
//! follows the worker's, job outcomes are counted, and a worker whose
//! process exited is replaced — at once when it was retired or stopped on
//! purpose, after a capped, doubling backoff when it failed.

use std::time::Instant;

use actix::prelude::*;

use super::{Dispatcher, Leaving};
use crate::error::JobError;
use crate::worker::report::{ExitReason, Outcome, WorkerReport, WorkerState};
use crate::worker::WorkerId;

impl Handler<WorkerReport> for Dispatcher {
    type Result = ();

    fn handle(&mut self, report: WorkerReport, ctx: &mut Context<Self>) {
        let WorkerReport {
            id,
            state,
            booted,
            job,
            limit,
            failover,
        } = report;
        // The account's standing and login first, so a job handed back
        // below is not given to the account that just refused it.
        if let Some(signal) = limit {
            self.on_limit(id, signal);
        }
        let mut login_failed = None;
        if let Some(outcome) = job {
            match outcome {
                Outcome::Succeeded => {
                    self.stats.completed += 1;
                    self.note_login(id, None);
                }
                Outcome::Failed => self.stats.failed += 1,
                Outcome::CredentialsFailed(text) => {
                    let reason = JobError::Credentials(text.clone()).to_string();
                    self.note_login(id, Some(reason));
                    login_failed = Some(text);
                }
            }
            if let Some(slot) = self.workers.get_mut(&id) {
                slot.jobs += 1;
            }
        }
        match (failover, login_failed) {
            (Some(job), Some(text)) => self.on_login_failover(id, job, text),
            (Some(job), None) => self.on_failover(id, job),
            // The worker answered the client with the error itself.
            (None, Some(_)) => self.stats.failed += 1,
            (None, None) => {}
        }
        match state {
            WorkerState::Exited(reason) => self.on_exit(id, reason, ctx),
            state @ WorkerState::Parked { .. } => {
                self.on_state(id, state, booted);
                self.limit_parks_of_key(id);
            }
            state => self.on_state(id, state, booted),
        }
        // Whatever changed may let a queued job run: a worker came free, or
        // the turn or conversation a queued job continues is now known.
        self.dispatch();
    }
}

impl Dispatcher {
    /// Stores a live worker's state in its slot, as reported; `booted`
    /// (its pid) when it just finished booting.
    fn on_state(&mut self, id: WorkerId, state: WorkerState, booted: Option<u32>) {
        let now = self.now();
        let Some(slot) = self.workers.get_mut(&id) else {
            return;
        };
        if slot.state == WorkerState::Stopping {
            // Stopped by the pool: only its exit matters now.
            return;
        }
        if let Some(pid) = booted {
            self.consecutive_failures = 0;
            slot.pid = pid;
            slot.booted_at = Some(now);
        }
        if slot.state != state {
            slot.since = now;
        }
        slot.state = state;
    }

    /// A worker's process is gone: replace it, unless the pool is shrinking,
    /// its replacement already runs, or the pool is shutting down.
    fn on_exit(&mut self, id: WorkerId, reason: ExitReason, ctx: &mut Context<Self>) {
        let Some(slot) = self.workers.remove(&id) else {
            return;
        };
        let (kind, account) = (slot.replace_with.unwrap_or(slot.kind), slot.account);
        self.forget_empty_accounts();
        match self.leaving.remove(&id) {
            Some(Leaving::Shrink) => {
                log::info!("worker-{id} gone: the pool shrank");
                return;
            }
            Some(Leaving::Replaced) => return,
            None => {}
        }
        if self.draining {
            return;
        }
        self.restarts += 1;
        if reason == ExitReason::Retired {
            self.recycles += 1;
        }
        let why = match &reason {
            ExitReason::BootFailed(why) | ExitReason::Crashed(why) => why.clone(),
            ExitReason::Retired | ExitReason::Stopped => {
                if self.understaffed(account) {
                    self.spawn_worker(kind, account);
                }
                return;
            }
        };
        self.consecutive_failures += 1;
        self.failures.push_back(Instant::now());
        let window = self.settings.pool.crash_loop_window();
        while self
            .failures
            .front()
            .is_some_and(|at| at.elapsed() > window)
        {
            self.failures.pop_front();
        }
        self.last_failure = Some(why);
        let delay = self.backoff();
        log::warn!("worker-{id} failed; respawning in {delay:?}");
        self.pending_spawns.push(account);
        ctx.run_later(delay, move |act, _ctx| {
            if let Some(i) = act.pending_spawns.iter().position(|a| *a == account) {
                act.pending_spawns.remove(i);
            }
            if !act.draining && act.understaffed(account) {
                act.spawn_worker(kind, account);
                act.dispatch();
            }
        });
        if self.is_degraded() {
            for job in self.queue.drain(..) {
                job.fail(JobError::Unavailable(
                    self.last_failure.clone().unwrap_or_default(),
                ));
                self.stats.rejected += 1;
            }
        }
    }
}
