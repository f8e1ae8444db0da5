//! Accounts whose login failed: a job that met missing or rejected
//! credentials marks its account (`login_failed` in `/health`), which then
//! takes no new work while another account can (see
//! `Pool::usable_accounts`). The job itself had no output yet, so it
//! runs again on an account whose login works; only when none has one does
//! the client get the credentials error, with what to do. A job that
//! succeeds on the account, or a reload, clears the mark.

use super::accounts::Account;
use super::pool::Pool;
use crate::error::JobError;
use crate::job::Job;
use crate::worker::WorkerId;

impl Pool {
    /// A job on worker `id` failed on its account's credentials (`reason`),
    /// or (`None`) succeeded, which shows they work.
    pub(super) fn note_login(&mut self, id: WorkerId, reason: Option<String>) {
        let Some(key) = self.workers.get(&id).map(|s| s.account) else {
            return;
        };
        let Some(account) = self.account_mut(key) else {
            return;
        };
        match (&account.login_failed, &reason) {
            (None, Some(why)) => log::error!(
                "account {}: {why}; it takes no new work while another account can",
                account.plan.name
            ),
            (Some(_), None) => log::info!("account {}: its login works again", account.plan.name),
            _ => {}
        }
        account.login_failed = reason;
    }

    /// A job handed back by worker `id` after its account's credentials
    /// failed (`text`, the CLI's words), its account already marked: it
    /// runs again, ahead of the queue, on an account whose login works, or
    /// fails with the credentials error when there is none.
    pub(super) fn on_login_failover(&mut self, id: WorkerId, job: Job, text: String) {
        let why = format!("worker-{id}'s login failed");
        self.run_again(job, &why, |pool| {
            let elsewhere = pool
                .usable_accounts()
                .first()
                .is_some_and(|key| pool.account(*key).is_some_and(|a| a.login_failed.is_none()));
            (!elsewhere).then_some(JobError::Credentials(text))
        });
    }

    /// Why the pool cannot serve when every account's login failed: the
    /// error (one account), or each account's, named.
    pub(super) fn login_failure(&self) -> Option<String> {
        let live: Vec<&Account> = self.accounts.iter().filter(|a| !a.removed).collect();
        let reasons: Vec<(&str, &String)> = live
            .iter()
            .map(|a| Some((a.plan.name.as_str(), a.login_failed.as_ref()?)))
            .collect::<Option<_>>()?;
        match reasons.as_slice() {
            [] => None,
            [(_, why)] => Some((*why).clone()),
            _ => Some(format!(
                "no account has a working login: {}",
                reasons
                    .iter()
                    .map(|(name, why)| format!("account {name}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}
