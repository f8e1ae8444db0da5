//! Which worker gets which job: a turn parked on the job's tool results, a
//! worker bound to the job's conversation (both only while their account
//! may take work), or a ready worker of the right kind on the account in
//! best standing (same system prompt first, then blank). Queued jobs wait (see
//! `room` for the workers cleared or replaced for them); jobs whose client
//! left or whose wait ran out leave the queue.

use std::collections::{BTreeSet, HashMap};

use super::accounts::AccountKey;
use super::order::Order;
use super::pool::{Command, Pool, RETRY_AFTER};
use crate::error::JobError;
use crate::job::Placement;
use crate::worker::report::WorkerState;
use crate::worker::{WorkerId, WorkerKind};

impl Pool {
    /// The bound worker holding this job's earlier turns.
    /// Tool results are never written into a bound conversation: the CLI
    /// takes them only through the parked calls that asked for them.
    pub(super) fn bound_for(&self, job: &Order) -> Option<WorkerId> {
        if !job.tool_calls.is_empty() {
            return None;
        }
        let lookup = job.conversation?;
        let usable = self.accounts_for(job);
        self.workers
            .iter()
            .find(|(_, s)| {
                let bound = match &s.state {
                    WorkerState::Bound {
                        holder,
                        conversation,
                    } => holder.scope == job.scope && *conversation == lookup,
                    _ => false,
                };
                bound && usable.contains(&s.account) && s.kind == job.kind()
            })
            .map(|(id, _)| *id)
    }

    pub(super) fn unbind(&mut self, id: WorkerId) {
        let now = self.now();
        if let Some(slot) = self.workers.get_mut(&id) {
            slot.state = WorkerState::Clearing {
                prompt: slot.state.prompt().map(str::to_string),
            };
            slot.since = now;
            self.tell(id, Command::Unbind);
        }
    }

    /// The accounts that may take `job` now, best first: the usable ones
    /// its key may use (`accounts` of a key; empty: any).
    pub(super) fn accounts_for(&self, job: &Order) -> Vec<AccountKey> {
        let mut usable = self.usable_accounts();
        if !job.accounts.is_empty() {
            usable.retain(|key| {
                self.account(*key)
                    .is_some_and(|a| job.allows_account(&a.plan.name))
            });
        }
        usable
    }

    /// A ready worker for `job` (its system prompt, its kind), on the
    /// account in best standing that has one and that may serve the job's
    /// key: a worker already set up with the same prompt first (cheapest),
    /// else a blank one. An agent worker only for its tenant's jobs (the
    /// first scope it served): a job of another key waits, and the idle
    /// worker pinned to another key is replaced for it (see `room`).
    ///
    /// A blank worker the spares need is not taken by an interactive job
    /// whose prompt an idle worker bound to the same caller holds: that worker is cleared for the job instead
    /// (a `/clear`, tens of ms; see `room`), and the blank one stays for the
    /// next new prompt, which would otherwise wait for a boot. What that
    /// costs the evicted conversation: its next turn is sent whole (its
    /// history rendered) to whichever worker takes it.
    ///
    /// `clearing_for_it`: a worker clearing under the job's prompt is on its
    /// way to it (see `dispatch_fairly`); the job waits for it (tens of ms)
    /// rather than take the blank spare, as it would wait for a bound one.
    pub(super) fn pick(&self, job: &Order, clearing_for_it: bool) -> Option<WorkerId> {
        let system = job.system.as_str();
        let kind = job.kind();
        let clear_instead = !job.background
            && self.blanks(kind) <= self.spare_target_for(kind)
            && (clearing_for_it
                || self
                    .bound_with_prompt(system, kind, &BTreeSet::new())
                    .is_some_and(|id| {
                        self.workers[&id]
                            .state
                            .holder()
                            .is_some_and(|h| h.scope == job.scope)
                    }));
        self.accounts_for(job).into_iter().find_map(|account| {
            let ready = || {
                self.workers.iter().filter(|(_, s)| {
                    matches!(s.state, WorkerState::Ready { .. })
                        && s.kind == kind
                        && s.account == account
                        && s.tenant.as_ref().is_none_or(|t| *t == job.scope)
                })
            };
            ready()
                .find(|(_, s)| s.state.prompt() == Some(system))
                .or_else(|| ready().find(|(_, s)| !clear_instead && s.state.prompt().is_none()))
                .map(|(id, _)| *id)
        })
    }

    /// The parked worker waiting for exactly the results this job carries.
    pub(super) fn parked_for(&self, job: &Order) -> Option<WorkerId> {
        if job.tool_calls.is_empty() {
            return None;
        }
        let usable = self.accounts_for(job);
        self.workers
            .iter()
            .find(|(_, s)| {
                let waits_for_these = match &s.state {
                    WorkerState::Parked {
                        holder,
                        tool_use_ids,
                    } => {
                        holder.scope == job.scope
                            && tool_use_ids
                                .iter()
                                .map(String::as_str)
                                .eq(job.tool_calls.iter().map(String::as_str))
                    }
                    _ => false,
                };
                waits_for_these && usable.contains(&s.account)
            })
            .map(|(id, _)| *id)
    }

    /// The worker to run `job` now: the turn parked on its tool results,
    /// the worker bound to its conversation, or a ready worker.
    fn worker_for(&self, job: &Order, clearing_for_it: bool) -> Option<WorkerId> {
        self.parked_for(job)
            .or_else(|| self.bound_for(job))
            .or_else(|| self.pick(job, clearing_for_it))
    }

    /// Hands queued jobs to free workers in fair-share order (see `fair`:
    /// the least loaded key's oldest job first). Runs after every
    /// admission and every worker report, so a job that queued before the
    /// turn it continues was reported parked (or its conversation bound)
    /// still finds it.
    pub(super) fn dispatch(&mut self) {
        self.update_spare_target();
        if !self.queue.is_empty() {
            self.dispatch_fairly();
        }
        self.cover_queue();
        self.keep_spares();
        self.trim_surplus();
        self.signal_idle_capacity();
    }

    /// Offers each queued job a worker once, in fair-share order; the jobs
    /// left keep their queue order.
    fn dispatch_fairly(&mut self) {
        let mut running: HashMap<String, usize> = HashMap::new();
        for slot in self.workers.values() {
            if let WorkerState::Busy(holder) = &slot.state {
                if !holder.background {
                    *running.entry(holder.scope.clone()).or_default() += 1;
                }
            }
        }
        // Workers clearing under a prompt, by prompt and kind (agent or
        // not, as the job's `agent` says which it needs): each is on
        // its way to one waiting job of that prompt, oldest first (as
        // `room` counts them), which waits for it.
        let mut clearing: HashMap<(String, bool), usize> = HashMap::new();
        for (id, slot) in &self.workers {
            if let WorkerState::Clearing { prompt: Some(p) } = &slot.state {
                if !self.workers.is_leaving(*id) {
                    let agent = slot.kind == WorkerKind::Agent;
                    *clearing.entry((p.clone(), agent)).or_default() += 1;
                }
            }
        }
        let mut round = self
            .queue
            .round(|key| running.get(key).copied().unwrap_or(0));
        while let Some((offer, job)) = round.next() {
            let coming = clearing
                .get_mut(&(job.system.clone(), job.agent))
                .filter(|n| **n > 0);
            let clearing_for_it = coming.is_some();
            match self.worker_for(job, clearing_for_it) {
                Some(id) => {
                    let job = round.place(offer);
                    self.assign(id, job);
                }
                None => {
                    if let Some(n) = coming {
                        *n -= 1;
                    }
                }
            }
        }
        self.queue.end_round(round);
    }

    /// Gives `job` to worker `id`, which the caller found free for it.
    pub(super) fn assign(&mut self, id: WorkerId, job: Order) {
        let account = self.workers[&id].account;
        self.accounts.note_assigned(account);
        let placement = Placement {
            worker: id,
            account: self
                .account(account)
                .map_or_else(String::new, |a| a.plan.name.clone()),
            queued: self.waited(&job),
        };
        self.note_for_spares(id, &job);
        let now = self.now();
        let admitted = job.admitted_at;
        let slot = self.workers.get_mut(&id).expect("chosen worker exists");
        match slot.state {
            WorkerState::Parked { .. } => {
                log::debug!("[{}] resumes the turn parked on worker-{id}", job.id)
            }
            WorkerState::Bound { .. } => log::debug!(
                "[{}] continues the conversation bound to worker-{id}",
                job.id
            ),
            _ => {
                if slot.booted_at.is_some_and(|at| at > admitted) {
                    self.stats.waited_for_boot += 1;
                }
                if slot.kind == WorkerKind::Agent && slot.tenant.is_none() {
                    slot.tenant = Some(job.scope.clone());
                }
                log::debug!(
                    "[{}] assigned to worker-{id} after {:?}",
                    job.id,
                    now.saturating_duration_since(admitted)
                );
            }
        }
        // What the worker reports once it has the job; recorded now, so
        // that the worker is not given another job meanwhile.
        slot.state = WorkerState::Busy(job.holder());
        slot.since = now;
        self.tell(id, Command::Run(job.ticket, placement));
    }

    /// Fails the queued jobs that waited longer than `pool.queue_timeout_secs`.
    pub(super) fn expire_queued(&mut self) {
        let timeout = self.settings.pool.queue_timeout();
        for (job, waited) in self.queue.take_expired(self.now(), timeout) {
            log::warn!("[{}] gave up after {waited:?} in the queue", job.id);
            let error = JobError::QueueTimeout {
                waited,
                retry_after: RETRY_AFTER,
            };
            self.fail(job, error);
            self.stats.rejected += 1;
        }
    }
}
