//! Batch capacity: background jobs (message batches) run only on idle
//! workers ("spare" means blank workers elsewhere, see `blank`): a job is
//! taken only when no interactive job is waiting and a worker is free for it
//! right now, so it never enters the queue and never delays an interactive
//! request beyond the job already running. The dispatcher signals whoever
//! feeds it such jobs when a worker may have become free.
//!
//! With several accounts, capacity is what the accounts able to take new
//! work have: background jobs hold at most `batches.worker_cap` of *their*
//! workers (all but one, by default), so that while an account is limited
//! (or its login failed) batch work cannot take every worker interactive
//! requests can still use.

use actix::Message;
use tokio::time::Instant;

use super::accounts::AccountKey;
use super::order::Order;
use super::pool::{Effect, Pool};
use super::queue::Ticket;
use crate::config::BatchSettings;
use crate::job::Job;
use crate::worker::report::WorkerState;
use crate::worker::WorkerKind;

/// Run a background job now on a free worker, or hand it back: refused
/// while the dispatcher drains, interactive jobs wait, or no worker is free.
#[derive(Message)]
#[rtype(result = "Result<(), Job>")]
pub struct RunIfIdle(pub Job);

impl Pool {
    /// Called after every dispatch round: free workers and nothing queued
    /// may take a background job.
    pub(super) fn signal_idle_capacity(&mut self) {
        let ready = self
            .workers
            .count(|s| matches!(s, WorkerState::Ready { .. }));
        if self.queue.is_empty() && ready > 0 {
            self.push(Effect::IdleCapacity);
        }
    }

    /// No worker fits the job: make one. A ready worker set up with another
    /// system prompt is retired (its replacement boots blank), unless a
    /// worker is already booting; failing that, the least recently used
    /// bound conversation is let go. Batch work waits meanwhile. Only
    /// workers of `accounts` (those the job's key may use) are touched: no
    /// other could take the job.
    fn make_room(&mut self, kind: WorkerKind, accounts: &[AccountKey]) {
        if self.workers.count(|s| *s == WorkerState::Starting) + self.restarts.pending.len() > 0 {
            return;
        }
        if let Some(id) = self
            .workers
            .iter()
            .find(|(_, s)| {
                matches!(s.state, WorkerState::Ready { .. }) && accounts.contains(&s.account)
            })
            .map(|(id, _)| *id)
        {
            self.replace(id, kind);
            return;
        }
        if self
            .workers
            .count(|s| matches!(s, WorkerState::Clearing { .. }))
            > 0
        {
            return;
        }
        let oldest = self
            .workers
            .iter()
            .filter(|(_, s)| {
                matches!(s.state, WorkerState::Bound { .. }) && accounts.contains(&s.account)
            })
            .map(|(id, s)| (s.since, *id))
            .min();
        if let Some((_, id)) = oldest {
            self.unbind(id);
        }
    }
}

impl Pool {
    /// Whether one more background job leaves the accounts that can take
    /// new work their share of workers for interactive requests.
    fn background_fits(&self) -> bool {
        let usable = self.usable_accounts();
        let workers = self
            .workers
            .values()
            .filter(|s| usable.contains(&s.account) && s.state != WorkerState::Stopping)
            .map(|s| matches!(&s.state, WorkerState::Busy(holder) if holder.background));
        fits_one_more(&self.settings.batches, workers)
    }
}

/// Whether one more background job fits among `workers` (the workers of the
/// accounts that can take new work; for each, whether it runs a background
/// job): background jobs hold at most `batches.worker_cap` of them.
fn fits_one_more(batches: &BatchSettings, workers: impl Iterator<Item = bool>) -> bool {
    let (total, background) = workers.fold((0, 0), |(total, background), runs_one| {
        (total + 1, background + usize::from(runs_one))
    });
    total > 0 && background < batches.worker_cap(total)
}

impl Pool {
    /// A background job arrived at `now`: it runs now on a free worker, or
    /// (`Err`, its ticket) is handed back to its holder (see the module
    /// docs).
    pub fn run_if_idle(&mut self, now: Instant, job: Order) -> (Result<(), Ticket>, Vec<Effect>) {
        self.at(now);
        let taken = self.take_background(job);
        (taken, self.effects())
    }

    fn take_background(&mut self, job: Order) -> Result<(), Ticket> {
        if self.draining || !self.queue.is_empty() || self.is_degraded() || !self.background_fits()
        {
            return Err(job.ticket);
        }
        let kind = job.kind();
        let Some(id) = self.pick(&job, false) else {
            let accounts = self.accounts_for(&job);
            self.make_room(kind, &accounts);
            return Err(job.ticket);
        };
        log::debug!("[{}] background job on worker-{id}", job.id);
        self.assign(id, job);
        // It may have taken a blank spare: restored now, not at the tick.
        self.keep_spares();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(max_workers: usize, workers: &[bool]) -> bool {
        let batches = BatchSettings {
            max_workers,
            ..BatchSettings::default()
        };
        fits_one_more(&batches, workers.iter().copied())
    }

    #[test]
    fn batch_work_leaves_the_usable_accounts_a_worker_for_interactive_requests() {
        // Two accounts of two workers: the pool-wide cap would be 3.
        assert!(fits(0, &[true, true, false, false]));
        assert!(!fits(0, &[true, true, true, false]));
        // One account limited: only the other's two workers count, and one
        // of them stays free for interactive work.
        assert!(fits(0, &[false, false]));
        assert!(!fits(0, &[true, false]));
        // A pool (or what is usable of it) of one is still used.
        assert!(fits(0, &[false]));
        assert!(!fits(0, &[true]));
        assert!(!fits(0, &[]), "no usable worker, no batch job");
        // An explicit batches.max_workers is the cap as configured.
        assert!(fits(2, &[true, false]));
        assert!(!fits(2, &[true, true, false, false]));
    }
}
