//! The pool's accounts as a plain value, [`Roster`]: each account's plan
//! and standing, which accounts may take new work and in what order, what a
//! rate-limit signal or a failed login does to an account, and accounts
//! added, redefined or removed by a reload. The dispatcher asks it and
//! tells it; it never sees a worker (the caller says which accounts still
//! have workers) and never reads the clock (the wall-clock time comes with
//! each question).
//!
//! An account removed by a reload (or redefined: new credentials make a new
//! account of the same name) stays, marked removed, until its workers are
//! gone; it takes no new work meanwhile.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::health::AccountHealth;
use super::signal::Signal;
use super::standing::{self, Candidate, Standing, Status};
use crate::config::AccountPlan;
use crate::error::JobError;

/// Identifies an account for the life of the daemon (a redefined account
/// gets a new key under the same name).
pub type AccountKey = u64;

/// One account as the pool runs it.
pub struct Account {
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
    /// it (see `logins`).
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

    fn candidate(&self) -> Candidate<'_> {
        Candidate {
            standing: &self.standing,
            allow_overage: self.plan.allow_overage,
        }
    }
}

/// The pool's accounts, newest definition first.
#[derive(Default)]
pub struct Roster {
    pub(super) accounts: Vec<Account>,
    next_key: AccountKey,
    /// New jobs handed out so far: orders accounts by last use.
    assignments: u64,
}

impl Roster {
    pub fn get(&self, key: AccountKey) -> Option<&Account> {
        self.accounts.iter().find(|a| a.key == key)
    }

    pub fn get_mut(&mut self, key: AccountKey) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| a.key == key)
    }

    /// Every account, removed ones too.
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
    }

    /// The accounts in the configuration (not removed).
    pub fn live(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter().filter(|a| !a.removed)
    }

    /// Accounts that may take new work at `wall`, best first (removed ones
    /// never). One whose login failed only when no other may: its jobs then
    /// get the credentials error with what to do, and a fixed login is
    /// noticed by the next job.
    pub fn usable(&self, wall: SystemTime) -> Vec<AccountKey> {
        let mut usable = self.ranked(wall);
        let logged_in = |key: &AccountKey| self.get(*key).is_some_and(|a| a.login_failed.is_none());
        if usable.iter().any(logged_in) {
            usable.retain(logged_in);
        }
        usable
    }

    /// [`Roster::usable`] by standing alone.
    fn ranked(&self, wall: SystemTime) -> Vec<AccountKey> {
        let live: Vec<&Account> = self.live().collect();
        let candidates: Vec<Candidate> = live.iter().map(|a| a.candidate()).collect();
        standing::ranked(&candidates, wall)
            .into_iter()
            .map(|i| live[i].key)
            .collect()
    }

    /// The refusal for a job when no account may take it at `wall`: 429
    /// with the time until the soonest limit ends. `None` while some
    /// account is usable.
    pub fn all_limited(&self, wall: SystemTime) -> Option<JobError> {
        if !self.usable(wall).is_empty() {
            return None;
        }
        let candidates: Vec<Candidate> = self.live().map(|a| a.candidate()).collect();
        let retry_after =
            standing::soonest_reset(&candidates, wall).unwrap_or(standing::DEFAULT_LIMIT);
        Some(JobError::RateLimited {
            retry_after: retry_after.max(Duration::from_secs(1)),
        })
    }

    /// Records that account `key` got a new job.
    pub fn note_assigned(&mut self, key: AccountKey) {
        self.assignments += 1;
        let ordinal = self.assignments;
        if let Some(account) = self.get_mut(key) {
            account.jobs += 1;
            account.standing.used(ordinal);
        }
    }

    /// A worker of account `key` (`seen_by`, for the log) met what `signal`
    /// says about its limits at `wall`.
    pub fn note_limit(
        &mut self,
        key: AccountKey,
        signal: &Signal,
        wall: SystemTime,
        seen_by: &str,
    ) {
        let Some(account) = self.get_mut(key) else {
            return;
        };
        if matches!(signal, Signal::Limited { .. }) {
            account.rate_limited += 1;
        }
        let before = account.standing.status(wall);
        if let Some(until) = account.standing.note(signal, wall) {
            let secs = until.duration_since(wall).unwrap_or_default().as_secs();
            log::warn!(
                "account {}: rate-limited for {secs}s (seen by {seen_by})",
                account.plan.name
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
    }

    /// A job of account `key` moved to another account after a 429.
    pub fn note_failover(&mut self, key: AccountKey) {
        if let Some(account) = self.get_mut(key) {
            account.failovers += 1;
        }
    }

    /// Brings the accounts in line with `plans` (at start and on reload):
    /// new accounts are added, changed ones replaced, missing ones marked
    /// removed. Returns the configuration directories of the accounts
    /// added, which are to exist (private) before their workers start.
    pub fn apply_plans(&mut self, plans: Vec<AccountPlan>) -> Vec<PathBuf> {
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
        let mut dirs = Vec::new();
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
            dirs.extend(plan.config_dir.clone());
            if !plan.implicit {
                log::info!("account {}: {} workers", plan.name, plan.workers);
            }
            // A redefined account's old entry stays, removed, until its
            // workers are gone; the new one goes first.
            self.next_key += 1;
            self.accounts.insert(0, Account::new(self.next_key, plan));
        }
        dirs
    }

    /// Drops removed accounts that `has_workers` says have none left.
    pub fn forget_empty(&mut self, has_workers: impl Fn(AccountKey) -> bool) {
        self.accounts.retain(|a| !a.removed || has_workers(a.key));
    }

    /// The live accounts for `/health` at `wall`, in the order of `plans`
    /// (the configuration's), each with the `workers(key)` it has.
    pub fn health(
        &self,
        wall: SystemTime,
        workers: impl Fn(AccountKey) -> usize,
        plans: &[AccountPlan],
    ) -> Vec<AccountHealth> {
        let mut out: Vec<AccountHealth> = self
            .live()
            .map(|a| AccountHealth {
                name: a.plan.name.clone(),
                status: match a.login_failed {
                    Some(_) => AccountHealth::LOGIN_FAILED,
                    None => a.standing.status(wall).as_str(),
                },
                reason: a.login_failed.clone(),
                workers: workers(a.key),
                jobs: a.jobs,
                limited_until: a.standing.limit_end(wall).map(standing::unix_secs),
                utilization: a.standing.utilization(),
                rate_limited: a.rate_limited,
                failovers: a.failovers,
            })
            .collect();
        out.sort_by_key(|a| plans.iter().position(|p| p.name == a.name));
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
