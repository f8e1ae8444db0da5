//! Blank spares: a job with a system prompt no worker holds needs a blank
//! worker, and making one (replacing a worker set up with another prompt)
//! costs a boot of about 0.6 s. So the pool keeps a target of blank workers
//! ready or booting (`pool.blank_spares`, or `"auto"`: see `spares`), and
//! whenever fewer are blank, whatever took them, replaces an idle worker
//! holding a prompt by a blank one in the background: the boot leaves the
//! next new prompt's critical path.
//!
//! Which worker, and when:
//! - only an idle one: ready with a prompt, then bound (its conversation is
//!   let go; its next turn is sent whole), the least recently used first;
//!   never one running a job or holding a parked turn, and only while no
//!   job waits (waiting jobs come first: see `room`);
//! - only of an account that may take work, and the target counts only
//!   those accounts' workers, one of which always keeps a prompt: a pool
//!   whose last usable worker is the spare does not boot for every job;
//! - at once when a new prompt (held by no worker that could serve the job:
//!   see `is_new_prompt`) took the blank worker; otherwise (a repeated
//!   prompt took it: another caller, another account, a second job at
//!   once) only a worker idle for
//!   `pool.spare_refill_idle_secs`: the jobs at hand keep the workers they
//!   use, and only a worker they left is retired;
//! - never while a retired prompt's return held refills back (see
//!   `spares`): no boot, retire, boot loop.
//!
//! A new conversation of a prompt that an idle worker bound to the same
//! caller's conversation holds clears that worker rather than take a spare
//! (see `routing::pick` and `room`).

use std::time::Duration;

use tokio::time::Instant;

use super::order::Order;
use super::pool::{Effect, Pool};
use super::spares::{Held, HostCpu, Seen};
use crate::affinity;
use crate::config::BlankSpares;
use crate::worker::report::WorkerState;
use crate::worker::{WorkerId, WorkerKind};

impl Pool {
    /// The host's CPU was read at `now` (the `"auto"` target keeps no more
    /// spares than its idle cores allow).
    pub fn host_cpu(&mut self, now: Instant, cpu: HostCpu) -> Vec<Effect> {
        self.at(now);
        self.spares.host(cpu);
        self.effects()
    }

    /// Whether `job` given to worker `id` takes a blank worker for a prompt
    /// no other live worker that could serve it holds: a prompt held only
    /// by a worker of another kind, or by an agent worker pinned to another
    /// key, is new to this job (it needed the blank one all the same).
    pub(super) fn is_new_prompt(&self, id: WorkerId, job: &Order) -> bool {
        let takes_blank = self
            .workers
            .get(&id)
            .is_some_and(|s| s.state == WorkerState::Ready { prompt: None });
        let kind = job.kind();
        takes_blank
            && !self.workers.iter().any(|(other, s)| {
                *other != id
                    && s.kind == kind
                    && s.tenant.as_ref().is_none_or(|t| *t == job.scope)
                    && s.state.prompt() == Some(job.system.as_str())
            })
    }

    /// Tells the spare policy what `job`, about to run on worker `id`,
    /// found; a new prompt on a blank worker makes a spare due at once.
    pub(super) fn note_for_spares(&mut self, id: WorkerId, job: &Order) {
        let Some(slot) = self.workers.get(&id) else {
            return;
        };
        let continues = matches!(
            slot.state,
            WorkerState::Parked { .. } | WorkerState::Bound { .. }
        );
        if job.background || matches!(slot.state, WorkerState::Parked { .. }) {
            return;
        }
        let now = self.now();
        let admitted = job.admitted_at;
        if !continues && slot.booted_at.is_some_and(|at| at > admitted) {
            self.spares.saw(now, Seen::WaitedForBoot);
        }
        let kind = job.kind();
        let held = Held {
            kind,
            prompt: affinity::digest_str(&job.system),
            tenant: (kind == WorkerKind::Agent).then(|| job.scope.clone()),
        };
        let takes_blank = slot.state == WorkerState::Ready { prompt: None };
        if takes_blank && self.spares.came_back(now, &held) {
            log::debug!("a prompt retired for a blank spare came back: refills held back");
            self.spares.saw(now, Seen::Regret);
        } else if self.is_new_prompt(id, job) {
            self.spares.saw(admitted, Seen::NewPrompt);
            self.spare_due = Some(kind);
        } else {
            self.spares.saw(now, Seen::Repeat);
        }
    }

    /// Restores the blank-spare target (see the module docs), as far as
    /// idle workers allow now; the rest waits for the next round.
    pub(super) fn keep_spares(&mut self) {
        if self.draining || !self.queue.is_empty() {
            // Waiting jobs come first; `cover_queue` frees workers for them.
            return;
        }
        self.refill(self.default_kind);
        if let Some(kind) = self.spare_due.filter(|k| *k != self.default_kind) {
            self.refill(kind);
        }
    }

    fn refill(&mut self, kind: WorkerKind) {
        let due = self.spare_due == Some(kind);
        let target = self.spare_target_for(kind);
        let mut blanks = self.blanks(kind);
        while blanks < target {
            let idle_for = match (due, self.spares.held_back) {
                (true, _) => Duration::ZERO,
                (false, false) => self.settings.pool.spare_refill_idle(),
                (false, true) => return,
            };
            let Some(id) = self.spare_candidate(kind, idle_for) else {
                return;
            };
            let slot = &self.workers[&id];
            let held = Held {
                kind: slot.kind,
                prompt: slot.state.prompt().map_or(0, affinity::digest_str),
                tenant: slot.tenant.clone(),
            };
            self.spares.retired(self.now(), held);
            log::info!("worker-{id} replaced by a blank spare for new system prompts");
            self.replace(id, kind);
            blanks += 1;
        }
        if due {
            self.spare_due = None;
        }
    }

    /// Works out again how many blank workers to keep (for `"auto"`,
    /// from demand): once a dispatch round and a tick.
    pub(super) fn update_spare_target(&mut self) {
        let pool = &self.settings.pool;
        let (setting, size, now) = (pool.blank_spares, pool.size, self.now());
        self.spares.update(setting, size, now);
    }

    /// How many blank workers to keep (`pool.blank_spares`, at most
    /// `pool.size - 1`), as last worked out.
    pub(super) fn spare_target(&self) -> usize {
        self.spares.current()
    }

    /// The target for `kind`: one of the workers of accounts that may take
    /// work always keeps a prompt.
    pub(super) fn spare_target_for(&self, kind: WorkerKind) -> usize {
        let usable = self.usable_accounts();
        let workers = self
            .workers
            .iter()
            .filter(|(id, s)| {
                s.kind == kind && usable.contains(&s.account) && !self.workers.is_leaving(**id)
            })
            .count();
        self.spare_target().min(workers.saturating_sub(1))
    }

    /// How many replacements may boot alongside the workers they replace.
    pub(super) fn overlapping_boots(&self) -> usize {
        match self.settings.pool.blank_spares {
            BlankSpares::Fixed(n) => n,
            BlankSpares::Auto => self.spare_target().max(1),
        }
    }

    /// Blank workers of `kind`, of accounts that may take work, ready or on
    /// their way (booting, replacing a stopping worker, or a respawn
    /// waiting out its backoff).
    pub(super) fn blanks(&self, kind: WorkerKind) -> usize {
        let usable = self.usable_accounts();
        let workers = self
            .workers
            .iter()
            .filter(|(_, s)| usable.contains(&s.account))
            .filter(|(id, s)| match s.state {
                WorkerState::Ready { prompt: None } | WorkerState::Starting => s.kind == kind,
                WorkerState::Stopping => {
                    !self.workers.is_leaving(**id) && s.replace_with.unwrap_or(s.kind) == kind
                }
                _ => false,
            })
            .count();
        let respawns = self
            .restarts
            .pending
            .iter()
            .filter(|r| usable.contains(&r.account))
            .count();
        workers + respawns
    }

    /// The idle worker of `kind` to make a blank spare of, idle for at
    /// least `idle_for`, of an account that may take work: the least
    /// recently used, ready ones (a prompt only) before bound ones (a
    /// conversation).
    pub(super) fn spare_candidate(&self, kind: WorkerKind, idle_for: Duration) -> Option<WorkerId> {
        let usable = self.usable_accounts();
        let now = self.now();
        self.workers
            .iter()
            .filter(|(id, s)| {
                s.kind == kind
                    && usable.contains(&s.account)
                    && !self.workers.is_leaving(**id)
                    && now.saturating_duration_since(s.since) >= idle_for
            })
            .filter_map(|(id, s)| match s.state {
                WorkerState::Ready { prompt: Some(_) } => Some((false, s.since, *id)),
                WorkerState::Bound { .. } => Some((true, s.since, *id)),
                _ => None,
            })
            .min()
            .map(|(_, _, id)| id)
    }
}
