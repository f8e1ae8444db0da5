//! The pool's accounts in the dispatcher: whose workers are whose, which
//! account gets new work (see [`crate::accounts::standing`]), what a
//! worker's rate-limit signal does to its account, and accounts added,
//! removed or resized by a reload.
//!
//! An account removed by a reload (or redefined: new credentials make a new
//! account of the same name) keeps its workers until they are idle; they
//! finish their job and retire, and no new work goes to them.

use std::time::Duration;

use crate::job::Job;
use serde::Serialize;

use super::pool::Pool;
use crate::accounts::signal::Signal;
use crate::accounts::standing::{self, Candidate, Standing, Status};
use crate::config::AccountPlan;
use crate::error::JobError;
use crate::worker::report::WorkerState;
use crate::worker::WorkerId;

/// Identifies an account for the life of the daemon (a redefined account
/// gets a new key under the same name).
pub(super) type AccountKey = u64;

/// The dispatcher's view of one account.
pub(super) struct Account {
    pub key: AccountKey,
    pub plan: AccountPlan,
    pub standing: Standing,
    /// Gone from the configuration: its workers retire once idle.
    pub removed: bool,
    /// New jobs given to its workers.
    pub jobs: u64,
    /// 429s its workers met.
    pub rate_limited: u64,
    /// Jobs moved from it to another account after a 429.
    pub failovers: u64,
    /// Set when a job failed on its credentials (missing login, rejected
    /// key): the error, with what to do. It then takes no new work while
    /// another account can; a job that succeeds on it, or a reload, clears
    /// it.
    pub login_failed: Option<String>,
}

impl Account {
    /// Account `key` under `plan`, in good standing, with no jobs yet.
    pub fn new(key: AccountKey, plan: AccountPlan) -> Self {
        Self {
            key,
            plan,
            standing: Standing::default(),
            removed: false,
            jobs: 0,
            rate_limited: 0,
            failovers: 0,
            login_failed: None,
        }
    }

    /// The workers it should have.
    pub fn target(&self) -> usize {
        if self.removed {
            0
        } else {
            self.plan.workers
        }
    }
}

/// One account in `/health`. Never its credentials.
#[derive(Debug, Clone, Serialize)]
pub struct AccountHealth {
    pub name: String,
    /// `ok`, `limited`, `overage`, or `login_failed` (see `reason`).
    pub status: &'static str,
    /// Why it is `login_failed`: the CLI's error and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its live workers.
    pub workers: usize,
    /// New jobs its workers were given since start.
    pub jobs: u64,
    /// When its limit ends, unix seconds; `null` when not limited.
    pub limited_until: Option<u64>,
    /// Share of the plan's limit used, when the CLI reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// 429s its workers met since start.
    pub rate_limited: u64,
    /// Jobs moved to another account after a 429.
    pub failovers: u64,
}

impl AccountHealth {
    /// The `status` of an account whose login failed.
    const LOGIN_FAILED: &'static str = "login_failed";

    /// Every `status` an account can have (`/metrics` sets one of them).
    pub const STATUSES: [&'static str; 4] = [
        Status::Ok.as_str(),
        Status::Limited.as_str(),
        Status::Overage.as_str(),
        Self::LOGIN_FAILED,
    ];
}

impl Pool {
    pub(super) fn account(&self, key: AccountKey) -> Option<&Account> {
        self.accounts.iter().find(|a| a.key == key)
    }

    pub(super) fn account_mut(&mut self, key: AccountKey) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| a.key == key)
    }

    /// Accounts that may take new work, best first (removed ones never).
    /// One whose login failed only when no other may: its jobs then get the
    /// credentials error with what to do, and a fixed login is noticed by
    /// the next job.
    pub(super) fn usable_accounts(&self) -> Vec<AccountKey> {
        let mut usable = self.ranked_accounts();
        let logged_in =
            |key: &AccountKey| self.account(*key).is_some_and(|a| a.login_failed.is_none());
        if usable.iter().any(logged_in) {
            usable.retain(logged_in);
        }
        usable
    }

    /// [`Pool::usable_accounts`] by standing alone.
    fn ranked_accounts(&self) -> Vec<AccountKey> {
        let live: Vec<&Account> = self.accounts.iter().filter(|a| !a.removed).collect();
        let candidates: Vec<Candidate> = live
            .iter()
            .map(|a| Candidate {
                standing: &a.standing,
                allow_overage: a.plan.allow_overage,
            })
            .collect();
        standing::ranked(&candidates, self.wall())
            .into_iter()
            .map(|i| live[i].key)
            .collect()
    }

    /// The refusal for a job when no account may take it: 429 with the time
    /// until the soonest limit ends. `None` while some account is usable.
    pub(super) fn all_limited(&self) -> Option<JobError> {
        if !self.usable_accounts().is_empty() {
            return None;
        }
        let candidates: Vec<Candidate> = self
            .accounts
            .iter()
            .filter(|a| !a.removed)
            .map(|a| Candidate {
                standing: &a.standing,
                allow_overage: a.plan.allow_overage,
            })
            .collect();
        let retry_after =
            standing::soonest_reset(&candidates, self.wall()).unwrap_or(standing::DEFAULT_LIMIT);
        Some(JobError::RateLimited {
            retry_after: retry_after.max(Duration::from_secs(1)),
        })
    }

    /// Records that `account` got a new job.
    pub(super) fn note_assigned(&mut self, account: AccountKey) {
        self.assignments += 1;
        let ordinal = self.assignments;
        if let Some(account) = self.account_mut(account) {
            account.jobs += 1;
            account.standing.used(ordinal);
        }
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
    /// on reload): new accounts are added, changed ones replaced, missing
    /// ones marked removed. Workers follow in [`Pool::staff_accounts`]
    /// and `trim_surplus`.
    pub(super) fn apply_account_plans(&mut self) {
        let plans = self.settings.account_plans();
        for account in &mut self.accounts {
            let kept = plans.iter().any(|p| same_account(p, &account.plan));
            if !kept && !account.removed {
                log::info!(
                    "account {}: removed; its workers retire once idle",
                    account.plan.name
                );
                account.removed = true;
            }
        }
        for plan in plans {
            if let Some(account) = self
                .accounts
                .iter_mut()
                .find(|a| !a.removed && same_account(&plan, &a.plan))
            {
                if account.plan.workers != plan.workers {
                    log::info!(
                        "account {}: {} workers (was {})",
                        plan.name,
                        plan.workers,
                        account.plan.workers
                    );
                }
                if account.login_failed.take().is_some() {
                    log::info!("account {}: its login is tried again", plan.name);
                }
                account.plan = plan;
                continue;
            }
            // Made private (it will hold the account's login) when missing.
            if let Some(dir) = plan.config_dir.as_ref().filter(|d| !d.exists()) {
                self.push(super::pool::Effect::CreateDir(dir.clone()));
            }
            if !plan.implicit {
                log::info!("account {}: {} workers", plan.name, plan.workers);
            }
            // A redefined account's old entry stays, removed, until its
            // workers are gone; the new one goes first.
            self.next_account += 1;
            let key = self.next_account;
            self.accounts.insert(0, Account::new(key, plan));
        }
        self.forget_empty_accounts();
    }

    /// Drops removed accounts without workers.
    pub(super) fn forget_empty_accounts(&mut self) {
        let workers = &self.workers;
        self.accounts
            .retain(|a| !a.removed || workers.values().any(|s| s.account == a.key));
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
        let now = self.wall();
        let mut out: Vec<AccountHealth> = self
            .accounts
            .iter()
            .filter(|a| !a.removed)
            .map(|a| AccountHealth {
                name: a.plan.name.clone(),
                status: match a.login_failed {
                    Some(_) => AccountHealth::LOGIN_FAILED,
                    None => a.standing.status(now).as_str(),
                },
                reason: a.login_failed.clone(),
                workers: self
                    .workers
                    .values()
                    .filter(|s| s.account == a.key && !matches!(s.state, WorkerState::Stopping))
                    .count(),
                jobs: a.jobs,
                limited_until: a.standing.limit_end(now).map(standing::unix_secs),
                utilization: a.standing.utilization(),
                rate_limited: a.rate_limited,
                failovers: a.failovers,
            })
            .collect();
        let order = self.settings.account_plans();
        out.sort_by_key(|a| order.iter().position(|p| p.name == a.name));
        out
    }
}

/// The same account: name, credentials and login; the worker count may differ.
fn same_account(a: &AccountPlan, b: &AccountPlan) -> bool {
    AccountPlan {
        workers: 0,
        ..a.clone()
    } == AccountPlan {
        workers: 0,
        ..b.clone()
    }
}

impl Pool {
    /// A worker's CLI said something about its account's limits.
    pub(super) fn on_limit(&mut self, id: WorkerId, signal: Signal) {
        let wall = self.wall();
        let Some(slot) = self.workers.get(&id) else {
            return;
        };
        let Some(account) = self.accounts.iter_mut().find(|a| a.key == slot.account) else {
            return;
        };
        let limited = matches!(signal, Signal::Limited { .. });
        if limited {
            account.rate_limited += 1;
        }
        let before = account.standing.status(wall);
        if let Some(until) = account.standing.note(&signal, wall) {
            let secs = until.duration_since(wall).unwrap_or_default().as_secs();
            log::warn!(
                "account {}: rate-limited for {secs}s (seen by worker-{})",
                account.plan.name,
                id
            );
        }
        let after = account.standing.status(wall);
        if before != after && after == Status::Overage {
            log::warn!(
                "account {}: now drawing on overage (extra usage){}",
                account.plan.name,
                if account.plan.allow_overage {
                    ""
                } else {
                    "; it takes new work only when no other account has plan headroom"
                }
            );
        }
        self.refuse_queue_if_all_limited();
    }

    /// A job handed back unanswered after a 429: it runs again on another
    /// account, ahead of the queue (it was admitted first).
    pub(super) fn on_failover(&mut self, id: WorkerId, job: Job) {
        let from = self.workers.get(&id).map(|s| s.account);
        if let Some(account) = from.and_then(|key| self.account_mut(key)) {
            account.failovers += 1;
        }
        self.run_again(job, &format!("from worker-{id}"), Self::all_limited);
    }

    /// Runs a job handed back unanswered again, ahead of the queue (it was
    /// admitted first), on another account; or fails it with what `refusal`
    /// says when no other account can take it, or while draining. `why` is
    /// for the log.
    pub(super) fn run_again(
        &mut self,
        job: Job,
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
