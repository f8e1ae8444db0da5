//! The pool's side of several accounts: whose workers are whose, each
//! account staffed to its share, and jobs moved to another account after a
//! 429 or a failed login. Which account takes work, what a limit or a failed
//! login does to it, and the accounts a reload adds or removes are the
//! [`Roster`]'s (`crate::accounts`); the pool asks it with the time.

use super::order::Order;

use super::pool::{Effect, Pool};
use crate::accounts::signal::Signal;
pub(super) use crate::accounts::AccountKey;
use crate::accounts::{Account, AccountHealth};
use crate::error::JobError;
use crate::worker::report::WorkerState;
use crate::worker::WorkerId;

impl Pool {
    pub(super) fn account(&self, key: AccountKey) -> Option<&Account> {
        self.accounts.get(key)
    }

    /// Accounts that may take new work now, best first (see
    /// [`crate::accounts::Roster::usable`]).
    pub(super) fn usable_accounts(&self) -> Vec<AccountKey> {
        self.accounts.usable(self.wall())
    }

    /// The refusal for a job when no account may take it now.
    pub(super) fn all_limited(&self) -> Option<JobError> {
        self.accounts.all_limited(self.wall())
    }

    /// Queued jobs are refused at once when no account can take them: the
    /// client learns when to come back instead of waiting out the queue.
    pub(super) fn refuse_queue_if_all_limited(&mut self) {
        let Some(error) = self.all_limited() else {
            return;
        };
        for job in self.queue.take_all() {
            log::info!("[{}] refused: every account is rate-limited", job.id);
            self.fail(job, error.clone());
            self.stats.rejected += 1;
        }
    }

    /// Brings the accounts in line with the settings' plans (at start and
    /// on reload); workers follow in [`Pool::staff_accounts`] and
    /// `trim_surplus`.
    pub(super) fn apply_account_plans(&mut self) {
        for dir in self.accounts.apply_plans(self.settings.account_plans()) {
            // Made private by the actor (it will hold the account's login).
            self.push(Effect::CreateDir(dir));
        }
        self.forget_empty_accounts();
    }

    /// Drops removed accounts without workers.
    pub(super) fn forget_empty_accounts(&mut self) {
        let workers = &self.workers;
        self.accounts
            .forget_empty(|key| workers.values().any(|s| s.account == key));
    }

    /// Workers an account has or will have: all but those stopping for
    /// good, plus respawns waiting out a backoff.
    pub(super) fn planned_for(&self, account: &Account) -> usize {
        let live = self.workers.staying(Some(account.key));
        live + self.restarts.pending_for(account.key)
    }

    /// Whether the account exists and has fewer workers than it should.
    pub(super) fn understaffed(&self, key: AccountKey) -> bool {
        self.account(key)
            .is_some_and(|a| self.planned_for(a) < a.target())
    }

    /// Spawns workers for every account below its target.
    pub(super) fn staff_accounts(&mut self) {
        if self.draining {
            return;
        }
        let missing: Vec<(AccountKey, usize)> = self
            .accounts
            .iter()
            .map(|a| (a.key, a.target().saturating_sub(self.planned_for(a))))
            .filter(|(_, n)| *n > 0)
            .collect();
        for (key, n) in missing {
            for _ in 0..n {
                let kind = self.default_kind;
                self.spawn_worker(kind, key);
            }
        }
    }

    /// The accounts for `/health`, in configuration order.
    pub(super) fn accounts_health(&self) -> Vec<AccountHealth> {
        let workers = |key| {
            self.workers
                .values()
                .filter(|s| s.account == key && !matches!(s.state, WorkerState::Stopping))
                .count()
        };
        let plans = self.settings.account_plans();
        self.accounts.health(self.wall(), workers, &plans)
    }

    /// Why the pool cannot serve when every account's login failed.
    pub(super) fn login_failure(&self) -> Option<String> {
        self.accounts.login_failure()
    }

    /// A worker's CLI said something about its account's limits.
    pub(super) fn on_limit(&mut self, id: WorkerId, signal: Signal) {
        let Some(key) = self.workers.get(&id).map(|s| s.account) else {
            return;
        };
        let wall = self.wall();
        self.accounts
            .note_limit(key, &signal, wall, &format!("worker-{id}"));
        self.refuse_queue_if_all_limited();
    }

    /// A job on worker `id` failed on its account's credentials (`reason`),
    /// or (`None`) succeeded, which shows they work.
    pub(super) fn note_login(&mut self, id: WorkerId, reason: Option<String>) {
        if let Some(key) = self.workers.get(&id).map(|s| s.account) {
            self.accounts.note_login(key, reason);
        }
    }

    /// A job handed back unanswered after a 429: it runs again on another
    /// account, ahead of the queue (it was admitted first).
    pub(super) fn on_failover(&mut self, id: WorkerId, job: Order) {
        if let Some(key) = self.workers.get(&id).map(|s| s.account) {
            self.accounts.note_failover(key);
        }
        self.run_again(job, &format!("from worker-{id}"), Self::all_limited);
    }

    /// A job handed back by worker `id` after its account's credentials
    /// failed (`text`, the CLI's words), its account already marked: it
    /// runs again, ahead of the queue, on an account whose login works, or
    /// fails with the credentials error when there is none.
    pub(super) fn on_login_failover(&mut self, id: WorkerId, job: Order, text: String) {
        let why = format!("worker-{id}'s login failed");
        self.run_again(job, &why, |pool| {
            let elsewhere = pool.accounts.a_login_works(pool.wall());
            (!elsewhere).then_some(JobError::Credentials(text))
        });
    }

    /// Runs a job handed back unanswered again, ahead of the queue (it was
    /// admitted first), on another account; or fails it with what `refusal`
    /// says when no other account can take it, or while draining. `why` is
    /// for the log.
    pub(super) fn run_again(
        &mut self,
        job: Order,
        why: &str,
        refusal: impl FnOnce(&Self) -> Option<JobError>,
    ) {
        if self.draining {
            self.fail(job, JobError::ShuttingDown);
            self.stats.failed += 1;
            return;
        }
        if let Some(error) = refusal(self) {
            log::warn!("[{}] no other account can take it: {error}", job.id);
            self.fail(job, error);
            self.stats.failed += 1;
            return;
        }
        log::info!("[{}] runs again on another account ({why})", job.id);
        self.queue.push_front(job);
    }
}
