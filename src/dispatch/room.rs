//! Making room for waiting jobs: exactly as many workers are cleared or
//! replaced as the queue needs, counting those already on their way.
//!
//! A waiting job is covered, in this order, by a worker clearing its
//! conversation under the job's system prompt; by a bound worker of that
//! prompt, which is cleared for it (the least recently used: a `/clear`
//! takes tens of ms, where waiting for a boot takes hundreds, and a booting
//! worker stays a blank spare for the next new prompt); by one booting
//! blank, being replaced by a blank one, or (to be replaced once ready) one
//! clearing under another prompt; or by a respawn waiting out its backoff.
//! Each covers one job. A job left uncovered gets, in this order: an idle
//! worker holding another prompt replaced, or the least recently used bound
//! worker replaced, or (unless it is a batch request) the oldest parked turn
//! released (see `parking`). Otherwise it waits for a busy one.
//! Only workers of accounts that may take work count (see `accounts`).

use std::collections::BTreeSet;

use super::accounts::AccountKey;
use super::pool::Pool;
use super::slots::{Leaving, Slot};
use crate::worker::report::WorkerState;
use crate::worker::{WorkerId, WorkerKind};

/// How a worker is freed for a waiting job.
enum Free {
    /// Stop it; a blank worker of the job's kind replaces it.
    Replace,
    /// Give up its parked turn (see `parking`); it is cleared.
    ReleasePark,
}

impl Pool {
    /// Workers that are free, or will be without a job ending first: ready,
    /// bound, clearing, booting, or being replaced (not leaving for good),
    /// plus respawns waiting out a backoff. Admission counts them as
    /// capacity, so a job waiting for one of them is not over `max_queue`.
    pub(super) fn room(&self) -> usize {
        let coming = self
            .workers
            .iter()
            .filter(|(id, slot)| match slot.state {
                WorkerState::Ready { .. }
                | WorkerState::Bound { .. }
                | WorkerState::Clearing { .. }
                | WorkerState::Starting => true,
                WorkerState::Stopping => !self.workers.is_leaving(**id),
                WorkerState::Busy(_) | WorkerState::Parked { .. } | WorkerState::Exited(_) => false,
            })
            .count();
        coming + self.restarts.pending.len()
    }

    /// Clears or replaces workers for the queued jobs that no worker on its
    /// way covers (see the module docs).
    pub(super) fn cover_queue(&mut self) {
        if self.draining {
            return;
        }
        let needs: Vec<(String, WorkerKind, bool)> = self
            .queue
            .jobs()
            .map(|job| {
                let kind = job.kind();
                // A batch request runs on spare capacity: it never takes a park.
                (job.system.clone(), kind, !job.background)
            })
            .collect();
        let mut claimed = BTreeSet::new();
        let mut respawns = self.restarts.pending.len();
        for (system, kind, may_take_park) in needs {
            if let Some(id) = self.clearing_for(&system, kind, &claimed) {
                claimed.insert(id);
                continue;
            }
            // A bound worker of the job's prompt is cleared for it before a
            // booting worker is counted as coming: a `/clear` takes tens of
            // ms, a boot hundreds, and the booting worker stays a blank
            // spare for the next new prompt.
            if let Some(id) = self.bound_with_prompt(&system, kind, &claimed) {
                claimed.insert(id);
                log::debug!("worker-{id} unbound for a waiting job of its prompt");
                self.unbind(id);
                continue;
            }
            if let Some(id) = self.coming_for(kind, &claimed) {
                claimed.insert(id);
                continue;
            }
            if respawns > 0 {
                respawns -= 1;
                continue;
            }
            let freed = self.to_free(&claimed).or_else(|| {
                may_take_park
                    .then(|| self.oldest_park(&claimed))
                    .flatten()
                    .map(|id| (id, Free::ReleasePark))
            });
            let Some((id, how)) = freed else {
                continue;
            };
            claimed.insert(id);
            match how {
                Free::Replace => {
                    log::debug!("worker-{id} replaced by a blank worker for a waiting job");
                    self.replace(id, kind);
                }
                Free::ReleasePark => self.release_park(id, "a job waits and every worker is busy"),
            }
        }
    }

    /// A worker clearing its conversation under `system` on `kind`: ready
    /// for a job with that prompt in tens of ms.
    fn clearing_for(
        &self,
        system: &str,
        kind: WorkerKind,
        claimed: &BTreeSet<WorkerId>,
    ) -> Option<WorkerId> {
        let usable = self.usable_accounts();
        let clearing = self
            .unclaimed(claimed, &usable)
            .find(|(_, slot)| {
                slot.kind == kind
                    && matches!(&slot.state, WorkerState::Clearing { prompt } if prompt.as_deref() == Some(system))
            })
            .map(|(id, _)| *id);
        clearing
    }

    /// The least recently used idle worker bound to a conversation under
    /// `system` on `kind`, of an account that may take work, not in
    /// `claimed`.
    pub(super) fn bound_with_prompt(
        &self,
        system: &str,
        kind: WorkerKind,
        claimed: &BTreeSet<WorkerId>,
    ) -> Option<WorkerId> {
        let usable = self.usable_accounts();
        let bound = self
            .unclaimed(claimed, &usable)
            .filter(|(_, slot)| {
                slot.kind == kind
                    && matches!(&slot.state, WorkerState::Bound { holder, .. } if holder.prompt == system)
            })
            .min_by_key(|(_, slot)| slot.since)
            .map(|(id, _)| *id);
        bound
    }

    /// A worker on its way that will take a job on `kind` (booting blank,
    /// or replacing a stopping worker), or one clearing under another
    /// prompt (to be replaced once ready).
    fn coming_for(&self, kind: WorkerKind, claimed: &BTreeSet<WorkerId>) -> Option<WorkerId> {
        let usable = self.usable_accounts();
        let fits = |slot: &Slot| match &slot.state {
            WorkerState::Starting => slot.kind == kind,
            WorkerState::Stopping => slot.replace_with.unwrap_or(slot.kind) == kind,
            _ => false,
        };
        let on_its_way = self
            .unclaimed(claimed, &usable)
            .find(|(_, slot)| fits(slot))
            .map(|(id, _)| *id);
        // Clearing under another prompt: replaced once it is ready.
        on_its_way.or_else(|| {
            self.unclaimed(claimed, &usable)
                .find(|(_, slot)| matches!(slot.state, WorkerState::Clearing { .. }))
                .map(|(id, _)| *id)
        })
    }

    /// Workers not in `claimed`, not leaving for good, of accounts that may
    /// take work: those that can still cover a waiting job.
    /// `usable` is `usable_accounts()`, read once by the caller.
    fn unclaimed<'s: 'c, 'c>(
        &'s self,
        claimed: &'c BTreeSet<WorkerId>,
        usable: &'c [AccountKey],
    ) -> impl Iterator<Item = (&'s WorkerId, &'s Slot)> + 'c {
        self.workers.iter().filter(move |(id, slot)| {
            !claimed.contains(id)
                && !self.workers.is_leaving(**id)
                && usable.contains(&slot.account)
        })
    }

    /// The idle worker to free for a job with `system` on `kind`.
    fn to_free(&self, claimed: &BTreeSet<WorkerId>) -> Option<(WorkerId, Free)> {
        // Freeing a worker of an account that may not take work helps no one.
        let usable = self.usable_accounts();
        let bound = self
            .unclaimed(claimed, &usable)
            .filter(|(_, s)| matches!(s.state, WorkerState::Bound { .. }))
            .min_by_key(|(id, s)| (s.since, **id))
            .map(|(id, _)| *id);
        // Ready workers left after dispatching suit no waiting job.
        let ready = self
            .unclaimed(claimed, &usable)
            .find(|(_, s)| matches!(s.state, WorkerState::Ready { .. }))
            .map(|(id, _)| *id);
        ready.or(bound).map(|id| (id, Free::Replace))
    }

    /// Stops a worker, to be replaced by a blank one of `kind` on the same
    /// account. The replacement is spawned at once, alongside the exiting
    /// process, so that its boot does not wait for that exit (the CLI takes
    /// a few hundred ms to exit): up to `pool.blank_spares` such overlaps at
    /// a time (for `"auto"`, its current target, at least one) bound the
    /// extra processes. Beyond that, or when the account
    /// needs no replacement, it is spawned (if still due) once the process
    /// has exited.
    pub(super) fn replace(&mut self, id: WorkerId, kind: WorkerKind) {
        let Some(slot) = self.workers.get_mut(&id) else {
            return;
        };
        slot.replace_with = Some(kind);
        let account = slot.account;
        self.stop(id);
        let overlapping = self.workers.leaving_for(Leaving::Replaced);
        if self.draining || overlapping >= self.overlapping_boots() {
            return;
        }
        // Counted as leaving first: the account is then one worker short.
        self.workers.leave(id, Leaving::Replaced);
        if self.understaffed(account) {
            self.restarts.restarts += 1;
            self.spawn_worker(kind, account);
        } else {
            self.workers.stay(id);
        }
    }
}
