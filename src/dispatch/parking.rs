//! Turns parked on a caller's tool calls hold a worker each until the
//! caller sends the results (or `tools.park_timeout_secs` passes). Two
//! bounds keep parks from starving other work:
//! - an API key (scope) holds at most `tools.max_parked_per_key` parks: when
//!   it parks one more, its oldest is released;
//! - a waiting job that nothing else can be freed for takes the oldest park
//!   (see `room`).
//!
//! A released turn is interrupted and its worker cleared. Its continuation
//! is refused once with [`JobError::ParkReleased`], so the client learns
//! why; sent again, it is a plain request replayed from its history.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::order::Order;
use super::pool::{Command, Pool};
use crate::worker::report::WorkerState;
use crate::worker::WorkerId;

/// Released parks remembered for their continuation's error; beyond this,
/// the oldest are forgotten (their continuation is simply replayed).
const REMEMBERED: usize = 1024;

/// A released park: the caller it belonged to, and its tool_use ids, sorted.
pub(super) type ReleasedPark = (String, Vec<String>);

impl Pool {
    /// Gives up worker `id`'s parked turn for other work.
    pub(super) fn release_park(&mut self, id: WorkerId, why: &str) {
        let now = self.now();
        let Some(slot) = self.workers.get_mut(&id) else {
            return;
        };
        let WorkerState::Parked {
            holder,
            tool_use_ids,
        } = &slot.state
        else {
            return;
        };
        log::info!("worker-{id}: parked turn released: {why}");
        let released = (holder.scope.clone(), tool_use_ids.clone());
        slot.state = WorkerState::Clearing {
            prompt: Some(holder.prompt.clone()),
        };
        slot.since = now;
        self.released_parks.push_back(released);
        if self.released_parks.len() > REMEMBERED {
            self.released_parks.pop_front();
        }
        self.tell(id, Command::ReleasePark);
    }

    /// Worker `id` just parked: its key's oldest parks beyond
    /// `tools.max_parked_per_key` are released.
    pub(super) fn limit_parks_of_key(&mut self, id: WorkerId) {
        let limit = self.settings.tools.max_parked_per_key;
        let scope = self.workers.get(&id).and_then(|s| s.state.holder());
        let Some(scope) = scope.map(|h| h.scope.clone()) else {
            return;
        };
        let mut parks: Vec<(Instant, WorkerId)> = self
            .workers
            .iter()
            .filter(|(_, s)| match &s.state {
                WorkerState::Parked { holder, .. } => holder.scope == scope,
                _ => false,
            })
            .map(|(id, s)| (s.since, *id))
            .collect();
        if limit == 0 || parks.len() <= limit {
            return;
        }
        parks.sort();
        let over = parks.len() - limit;
        for (_, oldest) in parks.into_iter().take(over) {
            self.release_park(
                oldest,
                "its API key holds more than tools.max_parked_per_key",
            );
        }
    }

    /// The longest-parked worker of an account that may take work, not in
    /// `claimed`.
    pub(super) fn oldest_park(&self, claimed: &BTreeSet<WorkerId>) -> Option<WorkerId> {
        let usable = self.usable_accounts();
        self.workers
            .iter()
            .filter(|(id, s)| {
                matches!(s.state, WorkerState::Parked { .. })
                    && !claimed.contains(id)
                    && usable.contains(&s.account)
            })
            .min_by_key(|(_, s)| s.since)
            .map(|(id, _)| *id)
    }

    /// Whether `job` continues a turn released for other work; the release
    /// is forgotten, so that the job sent again is served from its history.
    pub(super) fn continues_released_park(&mut self, job: &Order) -> bool {
        if job.tool_calls.is_empty() {
            return false;
        }
        let found = self.released_parks.iter().position(|(scope, parked)| {
            *scope == job.scope
                && parked
                    .iter()
                    .map(String::as_str)
                    .eq(job.tool_calls.iter().map(String::as_str))
        });
        found.and_then(|i| self.released_parks.remove(i)).is_some()
    }
}
