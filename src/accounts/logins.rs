//! Accounts whose login failed: a job that met missing or rejected
//! credentials marks its account (`login_failed` in `/health`), which then
//! takes no new work while another account can (see [`Roster::usable`]).
//! The job itself had no output yet, so the dispatcher runs it again on an
//! account whose login works; only when none has one does the client get
//! the credentials error, with what to do. A job that succeeds on the
//! account, or a reload, clears the mark.

use std::time::SystemTime;

use super::roster::{AccountKey, Roster};

impl Roster {
    /// A job on account `key` failed on its credentials (`reason`), or
    /// (`None`) succeeded, which shows they work.
    pub fn note_login(&mut self, key: AccountKey, reason: Option<String>) {
        let Some(account) = self.get_mut(key) else {
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

    /// Whether the best account that may take work at `wall` has a login
    /// not known to fail: a job handed back after a failed login can run
    /// there.
    pub fn a_login_works(&self, wall: SystemTime) -> bool {
        self.usable(wall)
            .first()
            .is_some_and(|key| self.get(*key).is_some_and(|a| a.login_failed.is_none()))
    }

    /// Why the pool cannot serve when every account's login failed: the
    /// error (one account), or each account's, named.
    pub fn login_failure(&self) -> Option<String> {
        let reasons: Vec<(&str, &String)> = self
            .live()
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
