//! Reloaded settings (SIGHUP) in the dispatcher: new limits and timeouts for
//! it and every worker, and each account's workers grown or shrunk to its
//! share (`pool.size`, or the account's `workers`; accounts come and go).
//!
//! Growing spawns workers at once. Shrinking stops idle workers only —
//! ready ones first, then bound ones, least recently used first — and never
//! one that is running, parked on tool calls, or booting; the rest of the
//! surplus goes as workers become idle ([`Pool::trim_surplus`] runs
//! after every dispatch). Jobs in flight are never touched.

use std::sync::Arc;

use tokio::time::Instant;

use super::accounts::AccountKey;
use super::pool::{Effect, Pool};
use super::slots::Leaving;
use crate::config::Settings;
use crate::worker::report::WorkerState;
use crate::worker::WorkerId;

impl Pool {
    /// Workers the pool has or will have: all but those stopping for good,
    /// plus respawns waiting out a backoff.
    fn planned_workers(&self) -> usize {
        self.workers.staying(None) + self.restarts.pending.len()
    }

    /// Stops idle workers beyond their account's share (see the module docs).
    pub(super) fn trim_surplus(&mut self) {
        if self.draining {
            return;
        }
        let surplus: Vec<(AccountKey, usize)> = self
            .accounts
            .iter()
            .map(|a| (a.key, self.planned_for(a).saturating_sub(a.target())))
            .filter(|(_, n)| *n > 0)
            .collect();
        for (account, n) in surplus {
            self.trim_account(account, n);
        }
    }

    /// Stops up to `surplus` idle workers of `account`.
    fn trim_account(&mut self, account: AccountKey, surplus: usize) {
        // Ready before bound; bound ones idle longest first.
        let mut idle: Vec<(u8, Option<Instant>, WorkerId)> = self
            .workers
            .iter()
            .filter(|(id, slot)| slot.account == account && !self.workers.is_leaving(**id))
            .filter_map(|(id, slot)| match slot.state {
                WorkerState::Ready { .. } => Some((0, None, *id)),
                WorkerState::Bound { .. } => Some((1, Some(slot.since), *id)),
                _ => None,
            })
            .collect();
        idle.sort();
        for (_, _, id) in idle.into_iter().take(surplus) {
            self.stop(id);
            self.workers.leave(id, Leaving::Shrink);
            log::info!("worker-{id} stopping: its account needs fewer workers");
        }
    }
}

impl Pool {
    /// Reloaded settings at `now` (see the module docs). The workers read
    /// them from the shared copy themselves.
    pub fn reconfigure(&mut self, now: Instant, settings: Arc<Settings>) -> Vec<Effect> {
        self.at(now);
        self.settings = settings;
        if !self.draining {
            self.grow_or_shrink();
        }
        self.effects()
    }

    fn grow_or_shrink(&mut self) {
        let before = self.planned_workers();
        self.apply_account_plans();
        self.staff_accounts();
        if self.planned_workers() > before {
            log::info!(
                "pool grows from {before} to {} workers",
                self.planned_workers()
            );
        }
        // Also hands queued jobs to the new limits and trims a surplus.
        self.dispatch();
    }
}
