//! What the dispatcher makes of its workers' reports: the slot's state
//! follows the worker's, job outcomes are counted, and a worker whose
//! process exited is replaced — at once when it was retired or stopped on
//! purpose, after a capped, doubling backoff when it failed.

use tokio::time::Instant;

use super::order::Order;
use super::pool::{Effect, Pool};
use super::slots::Leaving;
use crate::error::JobError;
use crate::worker::report::{ExitReason, Outcome, WorkerReport, WorkerState};
use crate::worker::WorkerId;

impl Pool {
    /// Worker `report.id` reported at `now`; `failover` is the order of the
    /// job it handed back, which its holder took out of the report (the
    /// pool holds no job).
    pub fn report(
        &mut self,
        now: Instant,
        report: WorkerReport,
        failover: Option<Order>,
    ) -> Vec<Effect> {
        self.at(now);
        debug_assert!(report.failover.is_none(), "held, and given as an order");
        let WorkerReport {
            id,
            state,
            booted,
            job,
            limit,
            failover: _,
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
            WorkerState::Exited(reason) => self.on_exit(id, reason),
            state @ WorkerState::Parked { .. } => {
                self.on_state(id, state, booted);
                self.limit_parks_of_key(id);
            }
            state => self.on_state(id, state, booted),
        }
        // Whatever changed may let a queued job run: a worker came free, or
        // the turn or conversation a queued job continues is now known.
        self.dispatch();
        self.effects()
    }
}

impl Pool {
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
            self.restarts.booted();
            if slot.state == WorkerState::Starting {
                // `since` is when it was spawned: how long spares take to make.
                self.spares
                    .booted(now.saturating_duration_since(slot.since));
            }
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
    fn on_exit(&mut self, id: WorkerId, reason: ExitReason) {
        let Some((slot, leaving)) = self.workers.remove(id) else {
            return;
        };
        let (kind, account) = (slot.replace_with.unwrap_or(slot.kind), slot.account);
        self.forget_empty_accounts();
        match leaving {
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
        let why = match &reason {
            ExitReason::BootFailed(why) | ExitReason::Crashed(why) => why.clone(),
            ExitReason::Retired | ExitReason::Stopped => {
                self.restarts.restarts += 1;
                if reason == ExitReason::Retired {
                    self.restarts.recycles += 1;
                }
                if self.understaffed(account) {
                    self.spawn_worker(kind, account);
                }
                return;
            }
        };
        let now = self.now();
        let delay = self
            .restarts
            .failed(&self.settings.pool, account, kind, why, now);
        log::warn!("worker-{id} failed; respawning in {delay:?}");
        self.push(Effect::WakeIn(delay));
        if self.is_degraded() {
            let why = self.restarts.last_failure.clone().unwrap_or_default();
            for job in self.queue.take_all() {
                self.fail(job, JobError::Unavailable(why.clone()));
                self.stats.rejected += 1;
            }
        }
    }

    /// Spawns the respawns whose backoff has ended (unless draining, or the
    /// account no longer needs them); whether any was spawned.
    pub(super) fn respawn_due(&mut self) -> bool {
        let mut spawned = false;
        for respawn in self.restarts.take_due(self.now()) {
            if !self.draining && self.understaffed(respawn.account) {
                self.spawn_worker(respawn.kind, respawn.account);
                spawned = true;
            }
        }
        spawned
    }
}
